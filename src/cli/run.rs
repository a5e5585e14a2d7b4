//! `run` (a command behind the injecting proxy) and `log` (the audit log view).

use super::Ctx;
use crate::error::{Error, Result};
use crate::providers::PLACEHOLDER;
use crate::proxy::{self, ProxyOptions, Route, VaultCredentials};
use crate::vault::Status;
use clap::Args;
use std::ffi::OsString;
use std::sync::Arc;

/// `authsome run [--] CMD...`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

/// `authsome log [-n N]`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// How many of the most recent events to show.
    #[arg(short = 'n', long = "lines", default_value_t = 20, value_name = "N")]
    pub lines: usize,
    /// Show the team store's audit rows (refreshes, leases) instead of the local log.
    #[arg(long)]
    pub store: bool,
    /// With --store: only rows written by this host (prefix of host/pid).
    #[arg(long, requires = "store", value_name = "HOST")]
    pub host: Option<String>,
    /// With --store: only rows about this provider.
    #[arg(long, requires = "store", value_name = "PROVIDER")]
    pub provider: Option<String>,
}

/// Routes for every provider's default connection that holds a credential.
fn default_routes(ctx: &Ctx) -> Result<Vec<Route>> {
    let data = crate::store::Store::snapshot(&ctx.home)?;
    if data == crate::vault::VaultData::default() {
        return Ok(Vec::new());
    }
    let reg = ctx.registry()?;
    Ok(reg
        .iter()
        .filter_map(|p| {
            let conn = data.connection(p.name(), None)?;
            (conn.status != Status::Revoked && conn.credential().is_some()).then(|| Route {
                provider: Arc::new(p.clone()),
                connection: conn.name.clone(),
                placeholder: PLACEHOLDER.to_owned(),
                is_default: true,
            })
        })
        .collect())
}

/// `authsome run`: proxy for every connected provider, then CMD.
pub fn run(ctx: &Ctx, a: RunArgs) -> Result<i32> {
    let program = crate::runner::resolve_program(&a.cmd[0])?;
    let routes = default_routes(ctx)?;
    if routes.is_empty() {
        ctx.ui.warn("no provider is connected; running without injection (`authsome login PROVIDER` connects one)");
    }
    for note in proxy::uninterceptable(&routes) {
        ctx.ui.warn(note);
    }
    let credentials = Arc::new(VaultCredentials::new(&ctx.home));
    let rt = crate::runtime()?;
    let options = ProxyOptions::for_run(&ctx.home, routes, false, credentials)?;
    let code = rt.block_on(async {
        let handle = proxy::start(options).await?;
        crate::runner::run_behind(handle, &program, &a.cmd).await
    });
    rt.shutdown_background();
    code
}

/// `authsome log`: the last N audit events.
pub fn log(ctx: &Ctx, a: LogArgs) -> Result<i32> {
    if a.store {
        return store_log(ctx, &a);
    }
    let path = ctx.home.audit_log();
    let events = crate::audit::read(&path).map_err(|e| Error::other(format!("cannot read {}: {e}", path.display())))?;
    let recent = &events[events.len().saturating_sub(a.lines)..];
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::to_value(recent).expect("events serialize"));
        return Ok(0);
    }
    if recent.is_empty() {
        ctx.ui.info("the audit log is empty");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = recent
        .iter()
        .map(|e| {
            let who = match (&e.provider, &e.connection) {
                (Some(p), Some(c)) => format!("{p}/{c}"),
                _ => "-".into(),
            };
            let action = match e.action {
                crate::audit::Action::Inject => "inject",
                crate::audit::Action::Refuse => "refuse",
            };
            vec![
                e.time.clone(),
                action.into(),
                who,
                e.method.clone(),
                format!("{}{}", e.host, e.path),
                e.status.to_string(),
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!("{}", crate::ui::table(&["TIME", "ACTION", "CONNECTION", "METHOD", "URL", "STATUS", "REASON"], &rows));
    Ok(0)
}

/// `authsome log --store`: the team store's audit rows.
fn store_log(ctx: &Ctx, a: &LogArgs) -> Result<i32> {
    let crate::store::select::Selection::Pg(cfg) = crate::store::select::select(&ctx.home)? else {
        return Err(Error::bad_input("no team store is configured (AUTHSOME_STORE or [store] in <home>/config.toml)"));
    };
    let store = crate::store::pg::PgStore::open(&ctx.home, cfg)?;
    let n = i64::try_from(a.lines).unwrap_or(i64::MAX);
    let rows = store.audit_rows(n, a.provider.as_deref(), a.host.as_deref())?;
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::to_value(&rows).expect("rows serialize"));
        return Ok(0);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.time.clone(),
                r.host.clone().unwrap_or_default(),
                r.action.clone(),
                format!("{}/{}", r.provider.clone().unwrap_or_default(), r.connection.clone().unwrap_or_default()),
                r.lease_epoch.map(|e| e.to_string()).unwrap_or_default(),
                r.request.clone().unwrap_or_default(),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!("{}", crate::ui::table(&["TIME", "HOST", "ACTION", "CONNECTION", "EPOCH", "REQUEST", "REASON"], &table));
    Ok(0)
}
