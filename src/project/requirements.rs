//! Each declared requirement checked against the vault, with the exact
//! command that fixes it when it is not met.
//!
//! The states mirror what `authsome up` does about them: nothing (satisfied),
//! run the login (not logged in / client credentials missing / expired /
//! revoked), or log in again asking for the union of granted and required
//! scopes (too few scopes).

use super::config::{Project, Requirement};
use crate::fix::LoginFix;
use crate::providers::{AuthType, Flow, Registry};
use crate::vault::{Connection, Status, VaultData};
use std::collections::BTreeSet;

/// Where a requirement stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connected with every required scope.
    Satisfied,
    /// Satisfied by a CI secret in this environment variable (`authsome exec`).
    FromEnv(String),
    /// No such connection in the vault.
    NotLoggedIn,
    /// No connection, and the OAuth app's client credentials were never entered.
    ClientMissing,
    /// Connected, but these required scopes were not granted.
    MissingScopes(Vec<String>),
    /// The token expired and cannot be refreshed.
    Expired,
    /// The token expired; the proxy refreshes it before its first use
    /// (`authsome refresh` does it now).
    Refreshable,
    /// The provider rejected the credential.
    Revoked,
}

impl State {
    /// Whether a run can use the connection.
    pub fn is_met(&self) -> bool {
        matches!(self, State::Satisfied | State::FromEnv(_) | State::Refreshable)
    }
    /// Stable machine word (`--json`).
    pub fn code(&self) -> &'static str {
        match self {
            State::Satisfied => "satisfied",
            State::FromEnv(_) => "from_env",
            State::NotLoggedIn => "not_logged_in",
            State::ClientMissing => "client_credentials_missing",
            State::MissingScopes(_) => "missing_scopes",
            State::Expired | State::Refreshable => "expired",
            State::Revoked => "revoked",
        }
    }
    /// Short human description.
    pub fn describe(&self) -> String {
        match self {
            State::Satisfied => "ok".to_owned(),
            State::FromEnv(v) => format!("ok (from ${v})"),
            State::NotLoggedIn => "not logged in".to_owned(),
            State::ClientMissing => "not logged in (client credentials missing)".to_owned(),
            State::MissingScopes(m) => format!("missing scopes: {}", m.join(", ")),
            State::Expired => "expired".to_owned(),
            State::Refreshable => "expired (refreshed at first use)".to_owned(),
            State::Revoked => "revoked".to_owned(),
        }
    }
}

/// One requirement's evaluation.
#[derive(Debug, Clone)]
pub struct Check {
    /// Index into [`Project::requirements`].
    pub index: usize,
    /// The requirement.
    pub requirement: Requirement,
    /// The connection name it resolves to (the provider's default when unnamed).
    pub connection: String,
    /// Its state.
    pub state: State,
    /// Account identity of the connection, when known.
    pub account: Option<String>,
    /// Scopes the connection was granted.
    pub granted: Vec<String>,
    /// Access token expiry, Unix seconds.
    pub expires_at: Option<u64>,
    /// Scopes a (re-)login must ask for; `None` means the provider's defaults.
    pub login_scopes: Option<Vec<String>>,
    /// The exact command that fixes it; `None` when met.
    pub fix: Option<LoginFix>,
    /// The connection's base URL and login values, which decide its hosts.
    pub binding: crate::providers::Binding,
}

impl Check {
    /// Whether this blocks a run: unmet and not optional.
    pub fn blocks(&self) -> bool {
        !self.state.is_met() && !self.requirement.optional
    }
    /// `github` or `github (work)`: the connection named when it is not the plain default.
    pub fn label(&self) -> String {
        crate::text::connection_label(&self.requirement.provider, self.connection_flag())
    }
    /// The fix command as text (empty when met).
    pub fn fix_text(&self) -> String {
        self.fix.as_ref().map(LoginFix::to_string).unwrap_or_default()
    }
    /// The connection flag a login needs (`None` for the plain `default`).
    pub fn connection_flag(&self) -> Option<&str> {
        if self.requirement.connection.is_some() || self.connection != crate::vault::DEFAULT_CONNECTION {
            Some(&self.connection)
        } else {
            None
        }
    }
    /// A JSON view for `status --json` (no secrets exist here to leak).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "provider": self.requirement.provider,
            "connection": self.connection,
            "optional": self.requirement.optional,
            "state": self.state.code(),
            "met": self.state.is_met(),
            "account": self.account,
            "scopes_required": self.requirement.scopes,
            "scopes_granted": self.granted,
            "scopes_missing": match &self.state { State::MissingScopes(m) => m.clone(), _ => Vec::new() },
            "expires_at": self.expires_at.map(crate::fmt_time),
            "secret_env": self.requirement.secret_env,
            "vars": self.requirement.vars,
            "fix": self.fix.as_ref().map(LoginFix::to_string),
        })
    }
}

/// Where credentials can come from besides the vault: the process environment
/// in `exec` (CI secrets); a closure so tests and `status` can choose.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Evaluate every requirement of `project`. `profile` is added to fix commands
/// when it is not the default one; `now` is Unix seconds.
pub fn evaluate(project: &Project, registry: &Registry, data: &VaultData, env: EnvLookup, profile: &str, now: u64) -> Vec<Check> {
    project.requirements.iter().enumerate().map(|(i, r)| evaluate_one(i, r, registry, data, env, profile, now)).collect()
}

fn evaluate_one(index: usize, r: &Requirement, registry: &Registry, data: &VaultData, env: EnvLookup, profile: &str, now: u64) -> Check {
    let connection = r.connection.clone().unwrap_or_else(|| data.default_connection(&r.provider).to_owned());
    let conn: Option<&Connection> = data.connections.get(&(r.provider.clone(), connection.clone()));
    let provider = registry.get(&r.provider).ok();
    let oauth = provider.is_some_and(|p| p.def.auth_type == AuthType::Oauth2);
    let defaults: Vec<String> = provider.and_then(|p| p.def.oauth.as_ref()).map(|o| o.scopes.clone()).unwrap_or_default();
    let granted: Vec<String> = conn.map(|c| c.scopes.clone()).unwrap_or_default();

    let from_env = r.secret_env.as_ref().filter(|v| env(v).is_some_and(|s| !s.is_empty()));
    let state = if let Some(v) = from_env {
        State::FromEnv(v.clone())
    } else {
        match conn {
            None if oauth && !data.clients.contains_key(&r.provider) && provider.is_some_and(|p| p.def.flow != Flow::DcrPkce) => {
                State::ClientMissing
            }
            None => State::NotLoggedIn,
            Some(c) if c.status == Status::Revoked => State::Revoked,
            Some(c) if c.status == Status::Expired => State::Expired,
            Some(c) if c.expires_at.is_some_and(|t| t <= now) && c.refresh_token.is_none() => State::Expired,
            Some(c) => {
                let have: BTreeSet<&str> = c.scopes.iter().map(String::as_str).collect();
                let missing: Vec<String> = r.scopes.iter().filter(|s| !have.contains(s.as_str())).cloned().collect();
                if !missing.is_empty() {
                    State::MissingScopes(missing)
                } else if c.expires_at.is_some_and(|t| t <= now) {
                    State::Refreshable
                } else {
                    State::Satisfied
                }
            }
        }
    };

    // Scopes a login must request: never fewer than what is granted now (a
    // re-consent must not silently drop access), always every required one.
    let login_scopes = if !oauth {
        None
    } else {
        let base: Vec<String> = if conn.is_some() && !granted.is_empty() { granted.clone() } else { defaults.clone() };
        let mut union: Vec<String> = base.clone();
        for s in &r.scopes {
            if !union.contains(s) {
                union.push(s.clone());
            }
        }
        let same_as_defaults = union.iter().collect::<BTreeSet<_>>() == defaults.iter().collect::<BTreeSet<_>>();
        if same_as_defaults {
            None
        } else {
            Some(union)
        }
    };

    let mut check = Check {
        index,
        requirement: r.clone(),
        connection,
        state,
        account: conn.and_then(|c| c.account.clone()),
        granted,
        expires_at: conn.and_then(|c| c.expires_at),
        login_scopes,
        binding: conn.map(|c| crate::providers::Binding { base_url: c.base_url.clone(), values: c.values.clone() }).unwrap_or_default(),
        fix: None,
    };
    let refreshable = conn.is_some_and(|c| c.refresh_token.is_some());
    let fix = LoginFix::new(&check.requirement.provider, check.connection_flag()).profile(profile);
    check.fix = match check.state {
        // The refresh token still works once the provider answers again.
        State::Refreshable | State::Expired if refreshable => Some(fix.refresh()),
        _ if !check.state.is_met() => Some(fix.scopes(check.login_scopes.clone())),
        _ => None,
    };
    check
}

/// The one-line explanation of an unmet requirement, with its exact fix.
pub fn unmet_line(c: &Check) -> String {
    let mut line = format!("{}: {}; fix: {}", c.label(), c.state.describe(), c.fix_text());
    if let Some(v) = &c.requirement.secret_env {
        line.push_str(&format!(" (or set {v})"));
    }
    line
}

/// Error for a project whose required connections are not all met (exit 4).
pub fn unmet_error(checks: &[Check]) -> Option<crate::error::Error> {
    let lines: Vec<String> = checks.iter().filter(|c| c.blocks()).map(unmet_line).collect();
    (!lines.is_empty()).then(|| crate::error::Error::login(lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Home;
    use crate::vault::{ClientCredentials, Secret};
    use std::path::Path;

    fn setup(text: &str) -> (Project, Registry) {
        let mut reg = Registry::load(&Home::at("/nonexistent-authsome-home", "default")).unwrap();
        let p = super::super::config::parse(text, Path::new("/p/authsome.toml"), &mut reg).unwrap();
        (p, reg)
    }

    fn oauth(provider: &str, name: &str, scopes: &[&str]) -> Connection {
        let mut c = Connection::oauth(provider, name, Secret::new("tok"));
        c.scopes = scopes.iter().map(|s| s.to_string()).collect();
        c.account = Some("octocat".into());
        c
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn each_state_comes_with_its_exact_fix() {
        let (p, reg) = setup(
            "[[providers.github]]\nconnection = \"work\"\nscopes = [\"repo\", \"read:user\", \"workflow\"]\n[providers.openai]\n[providers.discord]\n[providers.linear]\noptional = true\n",
        );
        let mut data = VaultData::default();
        data.put_connection(oauth("github", "work", &["repo", "read:user"]));
        data.clients.insert("github".into(), ClientCredentials { client_id: "id".into(), client_secret: None, registered_at: None });
        let checks = evaluate(&p, &reg, &data, &no_env, "default", 1000);
        let by = |name: &str| checks.iter().find(|c| c.requirement.provider == name).unwrap();

        let gh = by("github");
        assert_eq!(gh.state, State::MissingScopes(vec!["workflow".into()]));
        assert_eq!(
            gh.fix.as_ref().map(LoginFix::to_string).as_deref(),
            Some("authsome login github --connection work --scopes repo,read:user,workflow")
        );
        assert_eq!(gh.account.as_deref(), Some("octocat"));

        assert_eq!(by("openai").state, State::NotLoggedIn);
        assert_eq!(by("openai").fix.as_ref().map(LoginFix::to_string).as_deref(), Some("authsome login openai"));
        assert_eq!(by("discord").state, State::ClientMissing);
        assert_eq!(by("discord").fix.as_ref().map(LoginFix::to_string).as_deref(), Some("authsome login discord"));
        assert!(by("discord").blocks());
        assert!(!by("linear").blocks(), "optional requirements never block");
    }

    #[test]
    fn satisfied_expired_and_refreshable() {
        let (p, reg) = setup("[providers.github]\nscopes = [\"repo\"]\n");
        let mut data = VaultData::default();
        let mut c = oauth("github", "default", &["repo", "read:user"]);
        c.expires_at = Some(500);
        data.put_connection(c.clone());
        let check = &evaluate(&p, &reg, &data, &no_env, "default", 1000)[0];
        assert_eq!(check.state, State::Expired);
        assert_eq!(
            check.fix.as_ref().map(LoginFix::to_string).as_deref(),
            Some("authsome login github"),
            "granted scopes equal the defaults: no --scopes"
        );
        c.refresh_token = Some(Secret::new("r"));
        data.put_connection(c);
        let check = &evaluate(&p, &reg, &data, &no_env, "default", 1000)[0];
        assert_eq!(check.state, State::Refreshable, "expired, but the proxy refreshes it");
        assert!(!check.blocks());
        assert_eq!(check.fix.as_ref().map(LoginFix::to_string).as_deref(), Some("authsome refresh github"));
    }

    #[test]
    fn a_first_login_asks_for_defaults_plus_required() {
        let (p, reg) = setup("[providers.github]\nscopes = [\"workflow\"]\n");
        let mut data = VaultData::default();
        data.clients.insert("github".into(), ClientCredentials { client_id: "id".into(), client_secret: None, registered_at: None });
        let check = &evaluate(&p, &reg, &data, &no_env, "work-profile", 0)[0];
        assert_eq!(check.state, State::NotLoggedIn);
        assert_eq!(
            check.fix.as_ref().map(LoginFix::to_string).as_deref(),
            Some("authsome login github --scopes repo,read:user,workflow --profile work-profile")
        );
    }

    #[test]
    fn an_unnamed_requirement_follows_the_vault_default() {
        let (p, reg) = setup("[providers.openai]\n");
        let mut data = VaultData::default();
        data.defaults.insert("openai".into(), "team".into());
        let check = &evaluate(&p, &reg, &data, &no_env, "default", 0)[0];
        assert_eq!(check.connection, "team");
        assert_eq!(check.fix.as_ref().map(LoginFix::to_string).as_deref(), Some("authsome login openai --connection team"));
        data.put_connection(Connection::api_key("openai", "team", Secret::new("k")));
        assert!(evaluate(&p, &reg, &data, &no_env, "default", 0)[0].state.is_met());
    }

    #[test]
    fn a_ci_secret_satisfies_its_requirement() {
        let (p, reg) = setup("[providers.openai]\nsecret_env = \"CI_OPENAI\"\n");
        let env = |k: &str| (k == "CI_OPENAI").then(|| "sk-ci".to_owned());
        let check = &evaluate(&p, &reg, &VaultData::default(), &env, "default", 0)[0];
        assert_eq!(check.state, State::FromEnv("CI_OPENAI".into()));
        let empty = |_: &str| Some(String::new());
        assert_eq!(evaluate(&p, &reg, &VaultData::default(), &empty, "default", 0)[0].state, State::NotLoggedIn);
    }
}
