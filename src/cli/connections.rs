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
    /// Make this connection the provider's default (what `run` and `get` use without --connection).
    #[arg(long)]
    pub default: bool,
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
pub fn get(ctx: &Ctx, mut a: GetArgs) -> Result<i32> {
    a.target.provider = ctx.registry_here()?.get(&a.target.provider)?.name().to_owned();
    let data = snapshot(ctx)?;
    if a.field.as_deref() == Some("status") && data.connection(&a.target.provider, a.target.connection.as_deref()).is_none() {
        // Scripts ask `get X --field status` to decide whether to log in.
        if ctx.ui.json {
            ctx.ui.print_json(&serde_json::json!("not_connected"));
        } else {
            println!("not_connected");
        }
        return Ok(0);
    }
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
            println!("{:<15}{}", r[0], crate::text::printable(&r[1]));
        }
    }
    Ok(0)
}

/// `authsome logout`: revoke when the provider supports it, then delete.
pub fn logout(ctx: &Ctx, mut a: ConnectionArgs) -> Result<i32> {
    let reg = ctx.registry_here()?;
    // A connection whose definition is gone can still be deleted (not revoked).
    let provider = match reg.get(&a.provider) {
        Ok(p) => Some(p),
        Err(e) if snapshot(ctx)?.connections_of(&a.provider).next().is_none() => return Err(e),
        Err(_) => None,
    };
    if let Some(p) = provider {
        a.provider = p.name().to_owned();
    }
    let data = snapshot(ctx)?;
    let conn = match find(&data, &a) {
        Ok(c) => c.clone(),
        Err(_) => {
            let name = a.name(&data);
            let others: Vec<&str> = data.connections_of(&a.provider).map(|c| c.name.as_str()).collect();
            let known = if others.is_empty() { "it has none".to_owned() } else { format!("its connections: {}", others.join(", ")) };
            return Err(Error::unknown(format!("{} has no connection {name:?} to log out of ({known})", a.provider)));
        }
    };
    if let Some(p) = provider {
        revoke(ctx, p, &conn, data.clients.get(p.name()));
    }
    let vault = ctx.vault()?;
    let promoted = vault.update(|d| {
        d.connections.remove(&(conn.provider.clone(), conn.name.clone()));
        if d.defaults.get(&conn.provider) == Some(&conn.name) {
            d.defaults.remove(&conn.provider);
        }
        // The default went away: another connection takes its place, said out loud.
        let was_default = data.default_connection(&conn.provider) == conn.name;
        let next = d.connections_of(&conn.provider).map(|c| c.name.clone()).next();
        if let (true, Some(next)) = (was_default, &next) {
            if next != crate::vault::DEFAULT_CONNECTION {
                d.defaults.insert(conn.provider.clone(), next.clone());
            }
        }
        Ok(next.filter(|_| was_default))
    })?;
    vault.audit("logout", &conn.provider, &conn.name, None, None);
    if ctx.ui.json {
        ctx.ui
            .print_json(&serde_json::json!({"provider": conn.provider, "connection": conn.name, "deleted": true, "new_default": promoted}));
    } else {
        let title = provider.map_or(conn.provider.as_str(), |p| p.def.title());
        ctx.ui.success(format_args!("logged out of {title} ({})", conn.name));
        if let Some(next) = promoted {
            ctx.ui.info(format_args!("{} is now the default connection of {}", next, conn.provider));
        }
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
pub fn login(ctx: &Ctx, mut a: LoginArgs) -> Result<i32> {
    let reg = ctx.registry_here()?;
    let provider = reg.get(&a.target.provider)?;
    a.target.provider = provider.name().to_owned();
    if let Some(name) = &a.target.connection {
        if !crate::providers::def::valid_name(name) {
            return Err(Error::bad_input(format!("connection name {name:?} must be lower-case letters, digits, '-' or '_'")));
        }
    }
    let flow = a.flow.unwrap_or_else(|| default_flow(ctx, provider, a.no_browser));
    if provider.def.auth_type == AuthType::ApiKey && flow != Flow::ApiKey {
        return Err(Error::bad_input(format!("{} uses an API key; --flow {} does not apply to it", provider.name(), flow.as_str())));
    }
    if let Some(scopes) = &mut a.scopes {
        // `--scopes "read, write"` means read and write.
        scopes.iter_mut().for_each(|s| *s = s.trim().to_owned());
        scopes.retain(|s| !s.is_empty());
        if scopes.is_empty() {
            return Err(Error::bad_input("--scopes needs at least one scope (omit it for the provider's defaults)"));
        }
    }
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
                        if a.default {
                            set_default(ctx, provider.name(), &name)?;
                        }
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
                seams: None,
            };
            let conn = crate::oauth::login::run_oauth(&ctx.home, &ctx.ui, provider, &opts)?;
            store_connection(ctx, conn, a.default)
        }
    }
}

/// The provider's flow, except that without a browser a provider that
/// supports the device flow uses it (nothing to paste back).
fn default_flow(ctx: &Ctx, provider: &Provider, no_browser: bool) -> Flow {
    let flow = provider.def.flow;
    let device = provider.def.oauth.as_ref().is_some_and(|o| o.supports_device_code && o.device_authorization_url.is_some());
    if flow == Flow::Pkce && device {
        if let crate::oauth::browser::Opener::Print(why) = crate::oauth::browser::Opener::detect(no_browser) {
            ctx.ui.info(format_args!("No browser here ({why}): using the device flow (`--flow pkce` to paste the redirect URL instead)."));
            return Flow::DeviceCode;
        }
    }
    flow
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
pub fn refresh(ctx: &Ctx, mut a: RefreshArgs) -> Result<i32> {
    use crate::oauth::RefreshOutcome;
    let reg = ctx.registry_here()?;
    let provider = reg.get(&a.target.provider)?;
    a.target.provider = provider.name().to_owned();
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
/// browser is available, or typed at a hidden prompt. An existing key is
/// replaced only with `--force`, as an OAuth connection is.
fn login_api_key(ctx: &Ctx, provider: &Provider, a: &LoginArgs, values: BTreeMap<String, String>) -> Result<i32> {
    let multi = provider.def.api_key.as_ref().is_some_and(|k| !k.parts.is_empty());
    let name = a.target.connection.clone().unwrap_or_else(|| crate::vault::DEFAULT_CONNECTION.to_owned());
    let existing = snapshot(ctx)?.connection(provider.name(), Some(&name)).and_then(|c| c.api_key.clone());
    let piped = if std::io::stdin().is_terminal() {
        None
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| Error::bad_input(format!("cannot read the key from standard input: {e}")))?;
        Some(s.trim().to_owned())
    };
    let already = format!("{} ({name}) already has an API key", provider.def.title());
    let given = piped.as_ref().is_some_and(|k| !k.is_empty());
    if !given && existing.is_some() && !a.force {
        ctx.ui.info(format_args!("{already}; pass --force to replace it"));
        if a.default {
            set_default(ctx, provider.name(), &name)?;
        }
        return Ok(0);
    }
    // A key on standard input wins; with nothing piped (e.g. </dev/null) the form or prompt asks.
    let key = match piped {
        _ if multi => multi_part_key(provider, piped.as_deref())?,
        Some(k) if given || !crate::oauth::browser::Opener::detect(a.no_browser).available() => {
            let key = validate_key(provider, k)?;
            match &existing {
                Some(old) if *old == key => {
                    ctx.ui.info(format_args!("{already}; it is the same key"));
                    if a.default {
                        set_default(ctx, provider.name(), &name)?;
                    }
                    return Ok(0);
                }
                Some(_) if !a.force => return Err(Error::bad_input(format!("{already}; pass --force to replace it"))),
                _ => key,
            }
        }
        _ => {
            let p = provider.clone();
            let validate: crate::oauth::server::KeyValidator =
                std::sync::Arc::new(move |k: &str| validate_key(&p, k.to_owned()).map_err(|e| e.message));
            crate::oauth::login::api_key_interactive(&ctx.ui, provider, a.no_browser, validate)?
        }
    };
    let mut conn = Connection::api_key(provider.name(), &name, key);
    conn.values = values;
    store_connection(ctx, conn, a.default)
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

/// Save a new connection; the first connection of a provider (or one logged
/// in with `--default`) becomes its default.
pub fn store_connection(ctx: &Ctx, conn: Connection, make_default: bool) -> Result<i32> {
    ctx.home.ensure().map_err(|e| Error::other(format!("cannot create {}: {e}", ctx.home.root().display())))?;
    let vault = ctx.vault()?;
    let (provider, name) = (conn.provider.clone(), conn.name.clone());
    let is_default = vault.update(|d| {
        let first = d.connections_of(&provider).all(|c| c.name == name);
        d.put_connection(conn);
        if first || make_default {
            mark_default(d, &provider, &name);
        }
        Ok(d.default_connection(&provider) == name)
    })?;
    vault.audit("login", &provider, &name, None, None);
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"provider": provider, "connection": name, "status": "connected", "default": is_default}));
    } else {
        let role = if is_default && name != crate::vault::DEFAULT_CONNECTION { ", now the default" } else { "" };
        ctx.ui.success(format_args!("{provider} connected ({name}{role})"));
    }
    Ok(0)
}

/// Record `name` as the default connection of `provider`.
fn mark_default(d: &mut VaultData, provider: &str, name: &str) {
    if name == crate::vault::DEFAULT_CONNECTION {
        d.defaults.remove(provider);
    } else {
        d.defaults.insert(provider.to_owned(), name.to_owned());
    }
}

/// `login --default` on a connection that needs no new login.
fn set_default(ctx: &Ctx, provider: &str, name: &str) -> Result<()> {
    ctx.vault()?.update(|d| {
        mark_default(d, provider, name);
        Ok(())
    })?;
    ctx.ui.success(format_args!("{name} is now the default connection of {provider}"));
    Ok(())
}
