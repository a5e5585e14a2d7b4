//! `authsome exec [-- CMD]`: project mode for CI. Never prompts; an unmet
//! requirement exits 4 with one line per requirement naming the exact fix.
//! CI secrets named by `secret_env` go to the proxy and leave the command's
//! environment. The command replaces authsome (see [`crate::project::helper`]).

use super::project::{current_project, evaluate};
use super::Ctx;
use crate::error::{exit, Result};
use crate::project::routes::{self, ProjectCredentials};
use crate::project::{helper, trust};
use crate::proxy::{self, ProxyOptions};
use clap::Args;
use std::ffi::OsString;
use std::sync::Arc;

/// Arguments of `up` and `exec`.
#[derive(Debug, Args)]
pub struct ProjectRunArgs {
    /// The command (default: `[run] command`, else your $SHELL).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

/// `authsome exec`.
pub fn exec(ctx: &Ctx, a: ProjectRunArgs) -> Result<i32> {
    let (project, registry) = current_project(ctx, None)?;
    trust::require(&ctx.home, &project, false)?;
    crate::store::require(&ctx.home, project.store_id.as_deref())?;
    let checks = evaluate(ctx, &project, &registry)?;
    let blocking: Vec<_> = checks.iter().filter(|c| c.blocks()).collect();
    if !blocking.is_empty() {
        if ctx.ui.json {
            let v: Vec<_> = blocking.iter().map(|c| c.to_json()).collect();
            eprintln!("{}", serde_json::json!({"error": {"code": exit::LOGIN, "unmet": v}}));
        } else {
            for c in blocking {
                eprintln!("authsome: {}", routes::unmet_line(c));
            }
        }
        return Ok(exit::LOGIN);
    }
    let argv = routes::command_argv(&project, &a.cmd);
    let program = crate::runner::resolve_program(&argv[0])?;
    let routes = routes::routes(&registry, &checks)?;
    for note in proxy::uninterceptable(&routes) {
        ctx.ui.warn(note);
    }
    let env_lookup = |k: &str| std::env::var(k).ok();
    let ci = routes::ci_secrets(&checks, &env_lookup);
    let need_vault = !ProjectCredentials::covers(&ci, &routes);
    let credentials = Arc::new(ProjectCredentials::new(&ctx.home, ci, need_vault)?);
    let deny = project.undeclared_hosts == crate::project::UndeclaredHosts::Deny;
    let options = ProxyOptions::for_run(&ctx.home, routes, deny, credentials)?;
    let started = helper::start(options)?;
    let active = routes::active(&project, &checks);
    let current = |k: &str| std::env::var(k).ok();
    let changes = crate::project::env::child_env_active(&project, &registry, &active, &started.url, &started.bundle, &current);
    let env = changes.applied_to(std::env::vars_os());
    Err(helper::exec(&program, &argv, &env))
}
