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
    let mut plan =
        if ctx.home.vault_file().exists() { Plan::vault_defaults(&ctx.registry()?, &ctx.vault()?.load()?) } else { Plan::default() };
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
