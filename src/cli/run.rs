//! `run` (a command behind the injecting proxy) and `log` (the audit log view).

use super::Ctx;
use crate::error::{Error, Result};
use crate::launch::credentials::VaultCredentials;
use crate::launch::plan::Plan;
use crate::launch::{self, supervise};
use clap::Args;
use std::ffi::OsString;
use std::sync::Arc;

/// `authsome run [--] CMD...`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run the command without the fence (it could then read the authsome home
    /// and signal authsome; see SECURITY.md).
    #[arg(long)]
    pub no_fence: bool,
    /// Refuse connections to undeclared hosts (403), and limit the command's
    /// TCP connections to the proxy where the kernel can fence them.
    #[arg(long)]
    pub deny_undeclared: bool,
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
    /// Show the team store's audit rows (every machine's logins, refreshes and traffic).
    #[arg(long)]
    pub store: bool,
    /// With --store: only rows written by this host (prefix of host/pid).
    #[arg(long, requires = "store", value_name = "HOST")]
    pub host: Option<String>,
    /// With --store: only rows about this provider.
    #[arg(long, requires = "store", value_name = "PROVIDER")]
    pub provider: Option<String>,
}

/// `authsome run`: proxy for every connected provider's default connection, then CMD.
pub fn run(ctx: &Ctx, a: RunArgs) -> Result<i32> {
    let program = supervise::resolve_program(&a.cmd[0])?;
    if let Some(file) = crate::project::find(std::path::Path::new(".")) {
        // `run` is the project-less mode: say so rather than silently ignore the file.
        ctx.ui.warn(format_args!(
            "`run` ignores {} and injects every connected provider; `authsome up` (or `exec`) applies it",
            file.display()
        ));
    }
    let mut plan = if crate::store::Store::in_use(&ctx.home)? {
        let data = ctx.vault()?.load()?;
        // Only the providers the vault holds connections for can be routes.
        Plan::vault_defaults(&ctx.registry_named(|name| data.connection(name, None).is_some())?, &data)
    } else {
        Plan::default()
    };
    plan.deny_undeclared = a.deny_undeclared;
    if plan.routes.is_empty() {
        ctx.ui.warn("no provider is connected; running without injection (`authsome login PROVIDER` connects one)");
    }
    for note in crate::proxy::uninterceptable(&plan.routes) {
        ctx.ui.warn(note);
    }
    let credentials = Arc::new(VaultCredentials::new(&ctx.home));
    let rt = crate::runtime()?;
    let code = rt.block_on(async {
        let launched = launch::start(&ctx.home, &plan, credentials).await?;
        let fence = launched.fence(&ctx.home, !a.no_fence, plan.deny_undeclared);
        let launch::Launched { proxy, env } = launched;
        let code = match fence {
            Ok(fence) => supervise::spawn_and_wait(&program, &a.cmd[0], &a.cmd[1..], env, &fence).await,
            Err(e) => Err(e),
        };
        proxy.shutdown().await;
        code
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
    let recent = crate::audit::read_last(&path, a.lines).map_err(|e| Error::other(format!("cannot read {}: {e}", path.display())))?;
    let recent = &recent[..];
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
            let action = e.action.as_str();
            vec![
                e.time.clone(),
                action.into(),
                who,
                e.method.clone(),
                format!("{}{}", e.host, e.path),
                e.status.to_string(),
                match e.repeated {
                    Some(n) => format!("{} (and {n} more like it)", e.reason.as_deref().unwrap_or("")),
                    None => e.reason.clone().unwrap_or_default(),
                },
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
