//! `login`, `logout`, `get`: creating, removing and showing connections.

use super::Ctx;
use crate::error::{Error, Result};
use crate::providers::{AuthType, Flow, Provider};
use crate::vault::{Connection, Secret, VaultData};
use clap::Args;
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
    pub flow: Option<String>,
    /// Ask for client credentials again and re-consent even if connected.
    #[arg(long)]
    pub force: bool,
    /// Print URLs instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Value for {base_url} in the provider's URLs (e.g. GitHub Enterprise).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
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
        let flag = t.connection.as_ref().map(|c| format!(" --connection {c}")).unwrap_or_default();
        Error::unknown(format!("no connection {name:?} for {}; run `authsome login {}{flag}`", t.provider, t.provider))
    })
}

fn snapshot(ctx: &Ctx) -> Result<VaultData> {
    if ctx.home.vault_file().exists() {
        ctx.vault()?.load()
    } else {
        Ok(VaultData::default())
    }
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
    revoke(ctx, provider, &conn);
    vault.update(|d| {
        d.connections.remove(&(conn.provider.clone(), conn.name.clone()));
        if d.defaults.get(&conn.provider) == Some(&conn.name) {
            d.defaults.remove(&conn.provider);
        }
        Ok(())
    })?;
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"provider": conn.provider, "connection": conn.name, "deleted": true}));
    } else {
        ctx.ui.success(format_args!("logged out of {} ({})", provider.def.title(), conn.name));
    }
    Ok(0)
}

/// Revocation at the provider; failures are reported, never fatal to logout.
fn revoke(_ctx: &Ctx, _provider: &Provider, _conn: &Connection) {}

/// `authsome login`.
pub fn login(ctx: &Ctx, a: LoginArgs) -> Result<i32> {
    let reg = ctx.registry()?;
    let provider = reg.get(&a.target.provider)?;
    if let Some(name) = &a.target.connection {
        if !crate::providers::def::valid_name(name) {
            return Err(Error::bad_input(format!("connection name {name:?} must be lower-case letters, digits, '-' or '_'")));
        }
    }
    let flow = match &a.flow {
        Some(f) => {
            Flow::parse(f).ok_or_else(|| Error::bad_input(format!("unknown flow {f:?}; use pkce, device_code, dcr_pkce or api_key")))?
        }
        None => provider.def.flow,
    };
    match provider.def.auth_type {
        AuthType::ApiKey => login_api_key(ctx, provider, &a),
        AuthType::Oauth2 => {
            Err(Error::login(format!("{} login via flow {} is not available in this build", provider.def.title(), flow.as_str())))
        }
    }
}

/// Store an API key read from piped stdin, or typed at a hidden prompt.
fn login_api_key(ctx: &Ctx, provider: &Provider, a: &LoginArgs) -> Result<i32> {
    let key = if !std::io::stdin().is_terminal() {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| Error::bad_input(format!("cannot read the key from standard input: {e}")))?;
        s.trim().to_owned()
    } else {
        crate::ui::prompt_secret(&format!("Paste your {} API key (input hidden): ", provider.def.title()))
            .map_err(|e| Error::login(format!("cannot read the key from the terminal: {e}")))?
            .trim()
            .to_owned()
    };
    let key = validate_key(provider, key)?;
    store_connection(ctx, Connection::api_key(provider.name(), a.target.connection.as_deref().unwrap_or("default"), key))
}

/// Check a key against the provider's `key_pattern`; the message shows the hint, never the key.
pub fn validate_key(provider: &Provider, key: String) -> Result<Secret> {
    if key.is_empty() {
        return Err(Error::bad_input(format!("no {} API key given", provider.def.title())));
    }
    if key.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::bad_input(format!("the {} API key contains spaces or control characters", provider.def.title())));
    }
    let spec = provider.def.api_key.as_ref();
    if let Some(pattern) = spec.and_then(|k| k.key_pattern.as_deref()) {
        let re = regex_lite::Regex::new(pattern).map_err(|e| Error::bad_input(format!("invalid key_pattern: {e}")))?;
        if !re.is_match(&key) {
            let hint = spec.and_then(|k| k.key_pattern_hint.clone()).unwrap_or_else(|| format!("expected a key matching {pattern}"));
            return Err(Error::bad_input(format!("that does not look like a {} API key: {hint}", provider.def.title())));
        }
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
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"provider": provider, "connection": name, "status": "connected"}));
    } else {
        ctx.ui.success(format_args!("{provider} connected ({name})"));
    }
    Ok(0)
}
