//! `authsome exec [-- CMD]`: project mode for CI. Never prompts; an unmet
//! requirement exits 4 with one line per requirement naming the exact fix.
//! CI secrets named by `secret_env` go to the proxy and leave the command's
//! environment. The command replaces authsome (see [`crate::launch::helper`]).

use super::project::trusted_project;
use super::Ctx;
use crate::error::Result;
use crate::launch::credentials::ProjectCredentials;
use crate::launch::env::child_env;
use crate::launch::helper;
use crate::launch::options::{proxy_options, BundleIn};
use crate::launch::plan::{command_argv, Plan, Serve};
use crate::launch::project::{evaluate, process_env};
use crate::project::requirements::unmet_error;
use clap::Args;
use std::ffi::OsString;
use std::sync::Arc;

/// Arguments of `up` and `exec`.
#[derive(Debug, Args)]
pub struct ProjectRunArgs {
    /// Run the command without the fence (it could then read the authsome home
    /// and signal authsome; see SECURITY.md).
    #[arg(long)]
    pub no_fence: bool,
    /// The command (default: `[run] command`; `up` falls back to your $SHELL, `exec` refuses).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

/// `authsome exec`.
pub fn exec(ctx: &Ctx, a: ProjectRunArgs) -> Result<i32> {
    let (project, registry) = trusted_project(ctx, false)?;
    // CI must not go green because a job forgot its command (no interactive shell here).
    if a.cmd.is_empty() && project.run.command.is_none() {
        return Err(crate::error::Error::bad_input(format!(
            "nothing to run: pass `authsome exec -- CMD` or set [run] command in {}",
            project.file.display()
        )));
    }
    let checks = evaluate(&ctx.home, &project, &registry, &process_env)?;
    if let Some(e) = unmet_error(&checks) {
        let unmet: Vec<_> = checks.iter().filter(|c| c.blocks()).map(|c| c.to_json()).collect();
        return Err(e.with_details(serde_json::json!({ "unmet": unmet })));
    }
    let argv = command_argv(&project, &a.cmd);
    let program = crate::launch::supervise::resolve_program(&argv[0])?;
    let plan = Plan::project(&ctx.home, &project, &registry, &checks, Serve::Met)?;
    for note in crate::proxy::uninterceptable(&plan.routes) {
        ctx.ui.warn(note);
    }
    // Still single-threaded: CI secrets leave the environment (and its bytes)
    // before the proxy helper is forked or the command exists.
    let credentials = Arc::new(ProjectCredentials::new(&ctx.home, &checks, &crate::fence::process::take).fixed(&plan));
    let started = helper::start(proxy_options(&ctx.home, &plan, credentials, BundleIn::RunDir)?)?;
    let env = child_env(&plan, &started.url, &started.bundle, &process_env).applied_to(std::env::vars_os());
    let fence = if a.no_fence || project.run.no_fence {
        crate::fence::Fence::none()
    } else {
        let port = url::Url::parse(&started.url).ok().and_then(|u| u.port()).unwrap_or(0);
        crate::fence::for_child(ctx.home.root(), &started.bundle, port, plan.deny_undeclared)?
    };
    Err(helper::exec(&program, &argv, &env, &fence))
}
