//! `authsome up [-- CMD]`: reconcile `authsome.toml` interactively (log in
//! what is missing, re-consent for missing scopes), then run the command
//! behind the proxy with only the declared connections active. While it runs,
//! edits to `authsome.toml` are applied to the running proxy: a newly declared
//! provider is logged in and injected without restarting the command.
//!
//! What differs from `exec` is only the prompting (trust, logins) and that the
//! command is supervised rather than exec'ed; the recipe is `crate::launch`'s.

use super::exec::ProjectRunArgs;
use super::project::trusted_project;
use super::Ctx;
use crate::error::{Error, Result};
use crate::fix::LoginFix;
use crate::launch::credentials::ProjectCredentials;
use crate::launch::plan::{command_argv, Plan, Serve};
use crate::launch::project::{evaluate, process_env};
use crate::launch::reload::{self, Kept, Reloader};
use crate::launch::watch::Watch;
use crate::launch::{self, supervise};
use crate::project::requirements::{unmet_error, unmet_line, Check, State};
use crate::project::Project;
use crate::providers::Registry;
use crate::proxy::ProxyHandle;
use std::sync::Arc;

/// `authsome up`.
pub fn up(ctx: &Ctx, a: ProjectRunArgs) -> Result<i32> {
    let (project, registry) = trusted_project(ctx, true)?;
    ctx.ui.info(format_args!("authsome up: {}", project.file.display()));
    let checks = reconcile_blocking(ctx, &project, &registry)?;
    let argv = command_argv(&project, &a.cmd);
    let program = supervise::resolve_program(&argv[0])?;
    let plan = Plan::project(&ctx.home, &project, &registry, &checks, Serve::Met)?;
    // Single-threaded still: CI secrets leave the environment (and its bytes)
    // before any thread or child exists; reloads find them where they were taken to.
    let credentials = Arc::new(ProjectCredentials::new(&ctx.home, &checks, &crate::fence::process::take));
    let rt = crate::runtime()?;
    let code = rt.block_on(async {
        let launched = launch::start(&ctx.home, &plan, credentials).await?;
        if a.cmd.is_empty() && project.run.command.is_none() {
            ctx.ui.info(format_args!("entering {} with the project's connections; `exit` leaves it", program.display()));
        }
        let fence = launched.fence(&ctx.home, !a.no_fence && !project.run.no_fence, plan.deny_undeclared)?;
        let mut child = supervise::Supervised::spawn(&program, &argv[0], &argv[1..], launched.env, &fence)?;
        let mut live = Live {
            ctx,
            proxy: launched.proxy,
            watch: Watch::new(plan.watch.clone()),
            reloader: Reloader::new(&ctx.home, &project, Serve::Met, &crate::fence::process::secret_var),
            refused: false,
        };
        let code = loop {
            tokio::select! {
                code = child.wait() => break code,
                () = live.watch.changed() => live.reload(),
            }
        };
        live.proxy.shutdown().await;
        code
    });
    rt.shutdown_background();
    code
}

/// Evaluate and fix what can be fixed before anything runs; exit 4 when a
/// required connection is still missing.
fn reconcile_blocking(ctx: &Ctx, project: &Project, registry: &Registry) -> Result<Vec<Check>> {
    let checks = evaluate(&ctx.home, project, registry, &process_env)?;
    let mut fixed_any = false;
    let blocked: Vec<bool> = checks.iter().map(Check::blocks).collect();
    for c in &checks {
        report_line(ctx, c);
        if c.blocks() {
            login(c)?;
            fixed_any = true;
        }
    }
    if !fixed_any {
        return Ok(checks);
    }
    let checks = evaluate(&ctx.home, project, registry, &process_env)?;
    if let Some(e) = unmet_error(&checks) {
        return Err(e);
    }
    // Only the lines that changed: the rest were shown above.
    for (c, _) in checks.iter().zip(&blocked).filter(|(c, was)| **was && c.state.is_met()) {
        report_line(ctx, c);
    }
    Ok(checks)
}

/// One checklist line.
fn report_line(ctx: &Ctx, c: &Check) {
    let label = c.label();
    match &c.state {
        State::Satisfied | State::FromEnv(_) | State::Refreshable => {
            let who = c.account.as_deref().map(|a| format!(" as {a}")).unwrap_or_default();
            let scopes = if c.granted.is_empty() { String::new() } else { format!(" [{}]", c.granted.join(", ")) };
            ctx.ui.success(format_args!("{label:<20} {}{who}{scopes}", c.state.describe()));
        }
        s if c.requirement.optional => {
            ctx.ui.info(format_args!("- {label:<20} {} (optional; `{}` to use it)", s.describe(), c.fix_text()));
        }
        s => ctx.ui.info(format_args!("… {label:<20} {}: running `{}`", s.describe(), c.fix_text())),
    }
}

/// Run the login as its own `authsome login` process on this terminal: the
/// same code path and prompts as typing the fix command by hand.
fn login(c: &Check) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::other(format!("cannot find the authsome binary: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    // Another authsome process: it gets the vault key this one took out of its
    // environment (see `crate::fence::process`).
    if let Some(k) = crate::fence::process::taken(crate::vault::key::ENV_VAR) {
        cmd.env(crate::vault::key::ENV_VAR, k);
    }
    for var in crate::store::select::SECRET_VARS {
        if let Some(v) = crate::fence::process::taken(var) {
            cmd.env(var, v);
        }
    }
    let status = cmd
        .args(c.fix.as_ref().map(LoginFix::argv).unwrap_or_default())
        .status()
        .map_err(|e| Error::other(format!("cannot run the login: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::login(format!("login failed; fix: {}", c.fix_text())))
    }
}

/// The running proxy, kept in line with `authsome.toml` while the command runs.
struct Live<'a> {
    ctx: &'a Ctx,
    proxy: ProxyHandle,
    watch: Watch,
    reloader: Reloader<'a>,
    /// The refusal of the current edit was shown (it waits for `authsome allow`).
    refused: bool,
}

impl Live<'_> {
    /// Apply an edit: log in what a changed project newly needs, then move
    /// the proxy to the new plan. Logins use this terminal, so the async
    /// worker steps aside while they run.
    fn reload(&mut self) {
        let ctx = self.ctx;
        let mut fix = |blocking: &[&Check]| {
            let mut any = false;
            for c in blocking {
                report_line(ctx, c);
                any |= login(c).is_ok();
            }
            any
        };
        let reloaded = match tokio::task::block_in_place(|| self.reloader.reload(&mut fix)) {
            Ok(r) => r,
            Err(kept) => {
                let withdrawn = reload::withdraw(&self.proxy);
                match kept {
                    Kept::Refused(line) if !self.refused => {
                        ctx.ui.warn(format_args!("{line} (injection stopped until it is allowed; the command keeps running)"));
                        self.refused = true;
                    }
                    Kept::Refused(_) => {}
                    Kept::Broken(e) => ctx
                        .ui
                        .warn(format_args!("authsome.toml changed but does not load; injection stopped until it does:\n{}", e.message)),
                }
                if let Err(e) = withdrawn {
                    ctx.ui.warn(format_args!("cannot stop injecting: {}", e.message));
                }
                return;
            }
        };
        self.refused = false;
        if reloaded.changed {
            for c in reloaded.checks.iter().filter(|c| c.blocks()) {
                ctx.ui.warn(unmet_line(c));
            }
        }
        match reload::apply(&self.proxy, &mut self.watch, reloaded.plan) {
            Ok(added) if !added.is_empty() => ctx.ui.success(format_args!("now injecting {} (same process, no restart)", added.join(", "))),
            Ok(_) => {}
            Err(e) => ctx.ui.warn(e.message),
        }
    }
}
