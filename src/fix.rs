//! [`LoginFix`]: the one way to say "run `authsome login …`" (or `authsome
//! refresh …` when that is enough). Every hint in
//! every message (requirements, the proxy's refusals, refresh failures, the
//! CLI) and the argv `up` runs come from it, so they follow one rule for each
//! flag: `--connection` unless it is the default connection, `--scopes` when
//! they differ from the provider's defaults, `--profile` unless it is the
//! default profile, `--force` when the stored credential must be replaced.

use crate::paths::DEFAULT_PROFILE;
use crate::vault::DEFAULT_CONNECTION;
use std::fmt;

/// An `authsome login` command that fixes a missing, expired or revoked connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFix {
    /// Provider name.
    pub provider: String,
    /// Connection name (`None` or `default`: no flag).
    pub connection: Option<String>,
    /// Scopes to ask for (`None`: the provider's defaults).
    pub scopes: Option<Vec<String>>,
    /// Vault profile (`None` or `default`: no flag).
    pub profile: Option<String>,
    /// Replace what is stored (a revoked credential).
    pub force: bool,
    /// `authsome refresh` instead: an expired token whose refresh token still
    /// works needs no new login once the provider answers again.
    pub refresh: bool,
}

impl LoginFix {
    /// `authsome login PROVIDER` for `connection` of `provider`.
    pub fn new(provider: &str, connection: Option<&str>) -> LoginFix {
        LoginFix { provider: provider.to_owned(), connection: connection.map(str::to_owned), ..LoginFix::default() }
    }

    /// With `--scopes`.
    pub fn scopes(mut self, scopes: Option<Vec<String>>) -> LoginFix {
        self.scopes = scopes;
        self
    }

    /// With `--profile` (omitted for the default profile).
    pub fn profile(mut self, profile: &str) -> LoginFix {
        self.profile = Some(profile.to_owned());
        self
    }

    /// With `--force`.
    pub fn force(mut self) -> LoginFix {
        self.force = true;
        self
    }

    /// As `authsome refresh` (scopes and `--force` do not apply).
    pub fn refresh(mut self) -> LoginFix {
        self.refresh = true;
        self
    }

    /// The arguments after `authsome`, as `up` runs them.
    pub fn argv(&self) -> Vec<String> {
        let verb = if self.refresh { "refresh" } else { "login" };
        let mut args = vec![verb.to_owned(), self.provider.clone()];
        if let Some(c) = self.connection.as_deref().filter(|c| *c != DEFAULT_CONNECTION) {
            args.extend(["--connection".to_owned(), c.to_owned()]);
        }
        if let Some(s) = self.scopes.as_ref().filter(|_| !self.refresh) {
            args.extend(["--scopes".to_owned(), s.join(",")]);
        }
        if let Some(p) = self.profile.as_deref().filter(|p| *p != DEFAULT_PROFILE) {
            args.extend(["--profile".to_owned(), p.to_owned()]);
        }
        if self.force && !self.refresh {
            args.push("--force".to_owned());
        }
        args
    }

    /// "run `authsome login …`", for the end of a message.
    pub fn hint(&self) -> String {
        format!("run `{self}`")
    }
}

/// The command as users type it, quoted for a POSIX shell where needed.
impl fmt::Display for LoginFix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("authsome")?;
        for a in self.argv() {
            write!(f, " {}", crate::text::shell_quote(&a))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_per_flag() {
        assert_eq!(LoginFix::new("github", None).to_string(), "authsome login github");
        assert_eq!(LoginFix::new("github", Some("default")).to_string(), "authsome login github");
        assert_eq!(
            LoginFix::new("github", Some("work")).scopes(Some(vec!["repo".into(), "read:user".into()])).profile("ci").force().to_string(),
            "authsome login github --connection work --scopes repo,read:user --profile ci --force"
        );
        assert_eq!(LoginFix::new("github", None).profile("default").argv(), ["login", "github"]);
        assert_eq!(LoginFix::new("x", Some("my team")).hint(), "run `authsome login x --connection 'my team'`");
        assert_eq!(
            LoginFix::new("github", Some("work")).profile("ci").refresh().to_string(),
            "authsome refresh github --connection work --profile ci"
        );
    }
}
