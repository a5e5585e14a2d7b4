//! `login`, `logout`, `get`: creating, removing and showing connections.

use super::Ctx;
use crate::error::{Error, Result};
use crate::providers::{AuthType, Flow, Provider};
use crate::vault::{ClientCredentials, Connection, Secret, VaultData};
use clap::Args;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};

/// Which connection of which provider.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Provider name.
    pub provider: String,
    /// Connection name (default: the provider's default connection).
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
}

/// `authsome get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: ConnectionArgs,
    /// Print one field bare (status, scopes, account, expires_at, obtained_at, token_type, …).
    #[arg(long, value_name = "F")]
    pub field: Option<String>,
    /// Show secret values instead of `<redacted>` (they reach your terminal).
    #[arg(long)]
    pub reveal: bool,
}

/// `authsome login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub target: ConnectionArgs,
    /// Scopes to request instead of the provider's defaults (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "a,b")]
    pub scopes: Option<Vec<String>>,
    /// Login flow: pkce, device_code, dcr_pkce or api_key.
    #[arg(long, value_name = "F")]
    pub flow: Option<Flow>,
    /// Ask for client credentials again and re-consent even if connected.
    #[arg(long)]
    pub force: bool,
    /// Print URLs instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Value for {base_url} in the provider's URLs (e.g. GitHub Enterprise).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// A per-connection value the provider asks for (a Shopify shop, a Zendesk subdomain); repeatable.
    #[arg(long = "value", value_name = "NAME=VALUE")]
    pub values: Vec<String>,
}

impl ConnectionArgs {
    fn name<'a>(&'a self, data: &'a VaultData) -> &'a str {
        self.connection.as_deref().unwrap_or_else(|| data.default_connection(&self.provider))
    }
}

/// The connection a command names, or exit 3 with the command that creates it.
fn find<'a>(data: &'a VaultData, t: &ConnectionArgs) -> Result<&'a Connection> {
    let name = t.name(data);
    data.connection(&t.provider, Some(name)).ok_or_else(|| {
        let fix = crate::fix::LoginFix::new(&t.provider, t.connection.as_deref());
        Error::unknown(format!("no connection {name:?} for {}; {}", t.provider, fix.hint()))
    })
}

fn snapshot(ctx: &Ctx) -> Result<VaultData> {
    crate::store::Store::snapshot(&ctx.home)
}

/// `authsome get PROVIDER [--connection] [--field F]`.
pub fn get(ctx: &Ctx, a: GetArgs) -> Result<i32> {
    ctx.registry()?.get(&a.target.provider)?;
    let data = snapshot(ctx)?;
    let conn = find(&data, &a.target)?;
    let mut view = conn.redacted();
    if a.reveal {
        ctx.ui.warn("--reveal: secrets are printed below");
        for (field, secret) in [("access_token", &conn.access_token), ("refresh_token", &conn.refresh_token), ("api_key", &conn.api_key)] {
            if let Some(s) = secret {
                view[field] = serde_json::Value::String(s.expose().to_owned());
            }
        }
    }
    view["default"] = serde_json::Value::Bool(conn.name == data.default_connection(&conn.provider));
    if let Some(field) = &a.field {
        let key = if field == "name" { "connection" } else { field.as_str() };
        let v = view.get(key).ok_or_else(|| {
            let names: Vec<&str> = view.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
            Error::bad_input(format!("unknown field {field:?}; fields: {}", names.join(", ")))
        })?;
        if ctx.ui.json {
            ctx.ui.print_json(v);
        } else {
            match v {
                serde_json::Value::String(s) => println!("{s}"),
                serde_json::Value::Null => println!(),
                serde_json::Value::Array(items) => {
                    println!(
                        "{}",
                        items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect::<Vec<_>>().join(",")
                    )
                }
                other => println!("{other}"),
            }
        }
        return Ok(0);
    }
    if ctx.ui.json {
        ctx.ui.print_json(&view);
    } else if let Some(obj) = view.as_object() {
        let rows: Vec<Vec<String>> = obj
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let shown = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(a) => a.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>().join(", "),
                    other => other.to_string(),
                };
                vec![format!("{k}:"), shown]
            })
            .collect();
        for r in rows {
            println!("{:<15}{}", r[0], r[1]);
        }
    }
    Ok(0)
}

/// `authsome logout`: revoke when the provider supports it, then delete.
pub fn logout(ctx: &Ctx, a: ConnectionArgs) -> Result<i32> {
    let reg = ctx.registry()?;
    let provider = reg.get(&a.provider)?;
    let vault = ctx.vault()?;
    let data = vault.load()?;
    let conn = find(&data, &a)?.clone();
    revoke(ctx, provider, &conn, data.clients.get(provider.name()));
    vault.update(|d| {
        d.connections.remove(&(conn.provider.clone(), conn.name.clone()));
        if d.defaults.get(&conn.provider) == Some(&conn.name) {
            d.defaults.remove(&conn.provider);
        }
        Ok(())
    })?;
    vault.audit("logout", &conn.provider, &conn.name, None, None);
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"provider": conn.provider, "connection": conn.name, "deleted": true}));
    } else {
        ctx.ui.success(format_args!("logged out of {} ({})", provider.def.title(), conn.name));
    }
    Ok(0)
}

/// Revocation at the provider; failures are reported, never fatal to logout.
fn revoke(ctx: &Ctx, provider: &Provider, conn: &Connection, creds: Option<&ClientCredentials>) {
    let has_endpoint = provider.def.oauth.as_ref().is_some_and(|o| o.revocation_url.is_some());
    if !has_endpoint || (conn.access_token.is_none() && conn.refresh_token.is_none()) {
        return;
    }
    let outcome = crate::runtime().and_then(|rt| {
        let http = crate::oauth::client::OAuthHttp::from_env()?;
        Ok(rt.block_on(crate::oauth::revoke::revoke(&http, provider, creds, conn)))
    });
    match outcome {
        Ok(r) => {
            for p in &r.problems {
                ctx.ui.warn(format_args!("{p}; the local connection is deleted anyway"));
            }
            if !r.revoked.is_empty() {
                ctx.ui.info(format_args!("revoked the {} at {}", r.revoked.join(" and "), provider.def.title()));
            }
        }
        Err(e) => {
            ctx.ui.warn(format_args!("could not revoke at {}: {}; the local connection is deleted anyway", provider.def.title(), e.message))
        }
    }
}

/// `authsome login`.
pub fn login(ctx: &Ctx, a: LoginArgs) -> Result<i32> {
    let reg = ctx.registry()?;
    let provider = reg.get(&a.target.provider)?;
    if let Some(name) = &a.target.connection {
        if !crate::providers::def::valid_name(name) {
            return Err(Error::bad_input(format!("connection name {name:?} must be lower-case letters, digits, '-' or '_'")));
        }
    }
    let flow = a.flow.unwrap_or(provider.def.flow);
    let values = login_values(provider, &a.values)?;
    match provider.def.auth_type {
        AuthType::ApiKey => login_api_key(ctx, provider, &a, values),
        AuthType::Oauth2 => {
            let name = a.target.connection.clone().unwrap_or_else(|| crate::vault::DEFAULT_CONNECTION.to_owned());
            if !a.force {
                let data = snapshot(ctx)?;
                if let Some(c) = data.connection(provider.name(), Some(&name)) {
                    let wanted = a.scopes.clone().unwrap_or_default();
                    let usable = c.refresh_token.is_some() || c.expires_at.is_none_or(|e| e > crate::fsutil::now_unix());
                    if c.status == crate::vault::Status::Connected && usable && wanted.iter().all(|s| c.scopes.contains(s)) {
                        ctx.ui.info(format_args!("{} ({name}) is already connected; pass --force to log in again", provider.def.title()));
                        if ctx.ui.json {
                            ctx.ui.print_json(&serde_json::json!({"provider": c.provider, "connection": c.name, "status": "connected"}));
                        }
                        return Ok(0);
                    }
                }
            }
            let opts = crate::oauth::login::LoginOptions {
                connection: name,
                scopes: a.scopes.clone(),
                flow,
                force: a.force,
                no_browser: a.no_browser,
                base_url: a.base_url.clone(),
                values,
            };
            let conn = crate::oauth::login::run_oauth(&ctx.home, &ctx.ui, provider, &opts)?;
            store_connection(ctx, conn)
        }
    }
}

/// `authsome refresh`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    pub target: ConnectionArgs,
    /// Refresh even if the token is not near expiry.
    #[arg(long)]
    pub force: bool,
}

/// `authsome refresh PROVIDER [--connection NAME] [--force]`: refresh under the
/// shared lock; prints the outcome, never the token.
pub fn refresh(ctx: &Ctx, a: RefreshArgs) -> Result<i32> {
    use crate::oauth::RefreshOutcome;
    let reg = ctx.registry()?;
    let provider = reg.get(&a.target.provider)?;
    let data = snapshot(ctx)?;
    let conn = find(&data, &a.target)?.clone();
    if conn.access_token.is_none() {
        ctx.ui.info(format_args!("{} ({}) uses an API key; there is nothing to refresh", provider.def.title(), conn.name));
        return Ok(0);
    }
    let rt = crate::runtime()?;
    let http = crate::oauth::client::OAuthHttp::from_env()?;
    let (conn, outcome) = rt.block_on(crate::oauth::refresh_connection(&ctx.home, provider, &conn.name, a.force, &http))?;
    let expires = conn.expires_at.map(crate::fmt_time);
    let (word, failed) = match &outcome {
        RefreshOutcome::StillFresh => ("fresh", None),
        RefreshOutcome::Refreshed => ("refreshed", None),
        RefreshOutcome::RefreshedElsewhere => ("refreshed", None),
        RefreshOutcome::NotRefreshable => ("not_refreshable", None),
        RefreshOutcome::FailedStillValid(why) => ("refresh_failed", Some(why.clone())),
    };
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({
            "provider": conn.provider, "connection": conn.name, "status": conn.status.as_str(),
            "result": word, "expires_at": expires, "error": failed,
        }));
    } else {
        let until = expires.as_deref().map(|e| format!(", valid until {e}")).unwrap_or_default();
        let label = format!("{} ({})", provider.def.title(), conn.name);
        match &outcome {
            RefreshOutcome::StillFresh => ctx.ui.success(format_args!("{label}: token is fresh{until}")),
            RefreshOutcome::Refreshed => ctx.ui.success(format_args!("{label}: refreshed{until}")),
            RefreshOutcome::RefreshedElsewhere => ctx.ui.success(format_args!("{label}: refreshed by another authsome process{until}")),
            RefreshOutcome::NotRefreshable => ctx.ui.warn(format_args!("{label}: no refresh token; the token stays valid{until}")),
            RefreshOutcome::FailedStillValid(why) => ctx.ui.warn(format_args!("{label}: {why}; the current token stays valid{until}")),
        }
    }
    Ok(if failed.is_some() { crate::error::exit::LOGIN } else { 0 })
}

/// Store an API key read from piped stdin, entered in the local form when a
/// browser is available, or typed at a hidden prompt.
fn login_api_key(ctx: &Ctx, provider: &Provider, a: &LoginArgs, values: BTreeMap<String, String>) -> Result<i32> {
    let multi = provider.def.api_key.as_ref().is_some_and(|k| !k.parts.is_empty());
    let piped = if std::io::stdin().is_terminal() {
        None
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| Error::bad_input(format!("cannot read the key from standard input: {e}")))?;
        Some(s.trim().to_owned())
    };
    // A key on standard input wins; with nothing piped (e.g. </dev/null) the form or prompt asks.
    let key = match piped {
        _ if multi => multi_part_key(provider, piped.as_deref())?,
        Some(k) if !k.is_empty() || !crate::oauth::browser::Opener::detect(a.no_browser).available() => validate_key(provider, k)?,
        _ => {
            let p = provider.clone();
            let validate: crate::oauth::server::KeyValidator =
                std::sync::Arc::new(move |k: &str| validate_key(&p, k.to_owned()).map_err(|e| e.message));
            crate::oauth::login::api_key_interactive(&ctx.ui, provider, a.no_browser, validate)?
        }
    };
    let mut conn = Connection::api_key(provider.name(), a.target.connection.as_deref().unwrap_or("default"), key);
    conn.values = values;
    store_connection(ctx, conn)
}

/// The provider's `connection_values`: `--value` flags, defaults, else a
/// question at the terminal (never from piped input, which holds the key).
fn login_values(provider: &Provider, given: &[String]) -> Result<BTreeMap<String, String>> {
    let title = provider.def.title().to_owned();
    let mut ask = |name: &str, spec: &crate::providers::def::ConnectionValueDef| -> std::result::Result<String, String> {
        if crate::oauth::input::piped() {
            return Err(format!("{title} needs its {name}: pass --value {name}=VALUE ({})", spec.prompt));
        }
        crate::oauth::input::ask(&format!("{}: ", spec.prompt), false)
            .map_err(|e| format!("cannot read the {name} from the terminal: {e}"))?
            .ok_or_else(|| format!("no {name} given"))
    };
    crate::providers::values::resolve(&provider.def, given, &mut ask).map_err(Error::bad_input)
}

/// Each part of a multi-part credential: one per line of piped input, in the
/// order of the definition, else asked one by one at a hidden prompt.
fn multi_part_key(provider: &Provider, piped: Option<&str>) -> Result<Secret> {
    let title = provider.def.title();
    let parts = provider.def.api_key.as_ref().map(|k| k.effective_parts()).unwrap_or_default();
    let mut lines = piped.map(|p| p.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect::<Vec<_>>());
    let mut out = BTreeMap::new();
    for (i, part) in parts.iter().enumerate() {
        let value = match lines.as_mut() {
            Some(l) => l.get(i).cloned().ok_or_else(|| {
                Error::bad_input(format!("{title} needs {} values on standard input, one per line: {}", parts.len(), prompts(&parts)))
            })?,
            None => crate::oauth::input::ask(&format!("Paste your {title} {} (input hidden): ", part.prompt), true)
                .map_err(|e| Error::login(format!("cannot read the {} from the terminal: {e}", part.prompt)))?
                .ok_or_else(|| Error::login(format!("no {title} {} given", part.prompt)))?
                .trim()
                .to_owned(),
        };
        crate::providers::parts::check(part, title, &value).map_err(Error::bad_input)?;
        out.insert(part.name.clone(), value);
    }
    if let Some(l) = &lines {
        if l.len() > parts.len() {
            return Err(Error::bad_input(format!("{title} takes {} values on standard input: {}", parts.len(), prompts(&parts))));
        }
    }
    Ok(Secret::new(crate::providers::parts::encode(&out)))
}

fn prompts(parts: &[crate::providers::def::KeyPart]) -> String {
    parts.iter().map(|p| p.prompt.as_str()).collect::<Vec<_>>().join(", then ")
}

/// Check a key against the provider's `key_pattern`; the message shows the hint, never the key.
pub fn validate_key(provider: &Provider, key: String) -> Result<Secret> {
    let part = provider.def.api_key.as_ref().map(|k| k.effective_parts().remove(0));
    if let Some(part) = part {
        crate::providers::parts::check(&part, provider.def.title(), &key).map_err(Error::bad_input)?;
    } else if key.is_empty() {
        return Err(Error::bad_input(format!("no {} API key given", provider.def.title())));
    }
    Ok(Secret::new(key))
}

/// Save a new connection; the first connection of a provider becomes its default.
pub fn store_connection(ctx: &Ctx, conn: Connection) -> Result<i32> {
    let vault = ctx.vault()?;
    let (provider, name) = (conn.provider.clone(), conn.name.clone());
    vault.update(|d| {
        let first = d.connections_of(&provider).all(|c| c.name == name);
        if first && name != crate::vault::DEFAULT_CONNECTION {
            d.defaults.insert(provider.clone(), name.clone());
        }
        d.put_connection(conn);
        Ok(())
    })?;
    vault.audit("login", &provider, &name, None, None);
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"provider": provider, "connection": name, "status": "connected"}));
    } else {
        ctx.ui.success(format_args!("{provider} connected ({name})"));
    }
    Ok(0)
}
