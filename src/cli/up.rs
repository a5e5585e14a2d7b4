//! `authsome up [-- CMD]`: reconcile `authsome.toml` interactively (log in
//! what is missing, re-consent for missing scopes), then run the command
//! behind the proxy with only the declared connections active. While it runs,
//! edits to `authsome.toml` are applied to the running proxy: a newly declared
//! provider is logged in and injected without restarting the command.

use super::exec::ProjectRunArgs;
use super::project::evaluate;
use super::Ctx;
use crate::error::{Error, Result};
use crate::project::requirements::{Check, State};
use crate::project::routes::{self, ProjectCredentials};
use crate::project::watch::FileWatch;
use crate::project::{trust, Project};
use crate::providers::Registry;
use crate::proxy::{self, ProxyHandle, ProxyOptions};
use std::sync::Arc;

/// `authsome up`.
pub fn up(ctx: &Ctx, a: ProjectRunArgs) -> Result<i32> {
    let (project, registry) = super::project::current_project(ctx, None)?;
    trust::require(&ctx.home, &project, true)?;
    crate::store::require(&ctx.home, project.store_id.as_deref())?;
    ctx.ui.info(format_args!("authsome up: {}", project.file.display()));
    let checks = reconcile_blocking(ctx, &project, &registry)?;
    let argv = routes::command_argv(&project, &a.cmd);
    let program = crate::runner::resolve_program(&argv[0])?;
    let rt = crate::runtime()?;
    let code = rt.block_on(async move {
        let env_lookup = |k: &str| std::env::var(k).ok();
        let ci = routes::ci_secrets(&checks, &env_lookup);
        let credentials = Arc::new(ProjectCredentials::new(&ctx.home, ci, true)?);
        let deny = project.undeclared_hosts == crate::project::UndeclaredHosts::Deny;
        let handle = proxy::start(ProxyOptions::for_run(&ctx.home, routes::routes(&registry, &checks)?, deny, credentials)?).await?;
        let bundle = handle.bundle_path().map(|p| p.to_owned()).ok_or_else(|| Error::other("the proxy has no CA bundle file"))?;
        let active = routes::active(&project, &checks);
        let current = |k: &str| std::env::var(k).ok();
        let env = crate::project::env::child_env_active(&project, &registry, &active, &handle.url(), &bundle, &current)
            .applied_to(std::env::vars_os());
        if a.cmd.is_empty() && project.run.command.is_none() {
            ctx.ui.info(format_args!("entering {} with the project's connections; `exit` leaves it", program.display()));
        }
        let session = Session { ctx, digest: trust::digest(&project), project, handle, pending: false };
        session.run(&program, &argv, env).await
    });
    rt.shutdown_background();
    code
}

/// Evaluate and fix what can be fixed before anything runs; exit 4 when a
/// required connection is still missing.
fn reconcile_blocking(ctx: &Ctx, project: &Project, registry: &Registry) -> Result<Vec<Check>> {
    let checks = evaluate(ctx, project, registry)?;
    let mut fixed_any = false;
    for c in &checks {
        report_line(ctx, c);
        if c.blocks() {
            login(ctx, c)?;
            fixed_any = true;
        }
    }
    if !fixed_any {
        return Ok(checks);
    }
    let checks = evaluate(ctx, project, registry)?;
    if let Some(e) = routes::unmet_error(&checks) {
        return Err(e);
    }
    for c in checks.iter().filter(|c| c.state.is_met()) {
        report_line(ctx, c);
    }
    Ok(checks)
}

/// One checklist line.
fn report_line(ctx: &Ctx, c: &Check) {
    let mut label = c.requirement.provider.clone();
    if c.connection_flag().is_some() {
        label.push_str(&format!(" ({})", c.connection));
    }
    match &c.state {
        State::Satisfied | State::FromEnv(_) => {
            let who = c.account.as_deref().map(|a| format!(" as {a}")).unwrap_or_default();
            let scopes = if c.granted.is_empty() { String::new() } else { format!(" [{}]", c.granted.join(", ")) };
            ctx.ui.success(format_args!("{label:<20} {}{who}{scopes}", c.state.describe()));
        }
        s if c.requirement.optional => {
            ctx.ui.info(format_args!("- {label:<20} {} (optional; `{}` to use it)", s.describe(), c.fix.clone().unwrap_or_default()));
        }
        s => ctx.ui.info(format_args!("… {label:<20} {}: running `{}`", s.describe(), c.fix.clone().unwrap_or_default())),
    }
}

/// `authsome login` arguments that fix `c`.
fn login_args(ctx: &Ctx, c: &Check) -> Vec<String> {
    let mut args = vec!["login".to_owned(), c.requirement.provider.clone()];
    if let Some(conn) = c.connection_flag() {
        args.extend(["--connection".to_owned(), conn.to_owned()]);
    }
    if let Some(s) = &c.login_scopes {
        args.extend(["--scopes".to_owned(), s.join(",")]);
    }
    if ctx.home.profile() != crate::paths::DEFAULT_PROFILE {
        args.extend(["--profile".to_owned(), ctx.home.profile().to_owned()]);
    }
    args
}

/// Run the login as its own `authsome login` process on this terminal: the
/// same code path and prompts as typing the fix command by hand.
fn login(ctx: &Ctx, c: &Check) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::other(format!("cannot find the authsome binary: {e}")))?;
    let status = std::process::Command::new(exe)
        .args(login_args(ctx, c))
        .status()
        .map_err(|e| Error::other(format!("cannot run the login: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::login(format!("login failed; fix: {}", c.fix.clone().unwrap_or_default())))
    }
}

/// Async variant for logins while the command runs.
async fn login_async(ctx: &Ctx, c: &Check) -> bool {
    let Ok(exe) = std::env::current_exe() else { return false };
    tokio::process::Command::new(exe).args(login_args(ctx, c)).status().await.is_ok_and(|s| s.success())
}

/// The running command and proxy, kept in line with `authsome.toml`.
struct Session<'a> {
    ctx: &'a Ctx,
    project: Project,
    digest: String,
    handle: ProxyHandle,
    /// A change is waiting for `authsome allow`.
    pending: bool,
}

impl Session<'_> {
    async fn run(
        mut self,
        program: &std::path::Path,
        argv: &[std::ffi::OsString],
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<i32> {
        let mut watch = FileWatch::new(&self.project.file);
        let mut child = crate::runner::Supervised::spawn(program, &argv[0], &argv[1..], env)?;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let code = loop {
            tokio::select! {
                code = child.wait() => break code?,
                Some(()) = watch.changed() => self.reload().await,
                _ = tick.tick(), if self.pending => self.reload().await,
            }
        };
        self.handle.shutdown().await;
        Ok(code)
    }

    /// Re-read `authsome.toml`; when its meaning changed and it is allowed,
    /// log in what is new and update the proxy's routes in place.
    async fn reload(&mut self) {
        let ctx = self.ctx;
        let mut registry = match ctx.registry() {
            Ok(r) => r,
            Err(e) => return ctx.ui.warn(e.message),
        };
        let project = match Project::load(&self.project.file, &mut registry) {
            Ok(p) => p,
            Err(e) => {
                ctx.ui.warn(format_args!("authsome.toml changed but does not load; keeping the previous version:\n{}", e.message));
                return;
            }
        };
        let digest = trust::digest(&project);
        if digest == self.digest {
            self.pending = false;
            return;
        }
        let state = trust::check(&ctx.home, &project);
        if state != trust::Trust::Allowed {
            if !self.pending {
                ctx.ui.warn(format_args!("{} (the running command keeps its current connections)", trust::refusal(&project, &state)));
                self.pending = true;
            }
            return;
        }
        self.pending = false;
        let mut checks = match evaluate(ctx, &project, &registry) {
            Ok(c) => c,
            Err(e) => return ctx.ui.warn(e.message),
        };
        let mut logged_in = false;
        for c in checks.iter().filter(|c| c.blocks()) {
            report_line(ctx, c);
            logged_in |= login_async(ctx, c).await;
        }
        if logged_in {
            match evaluate(ctx, &project, &registry) {
                Ok(c) => checks = c,
                Err(e) => return ctx.ui.warn(e.message),
            }
        }
        for c in checks.iter().filter(|c| c.blocks()) {
            ctx.ui.warn(routes::unmet_line(c));
        }
        let before: Vec<String> = self.handle.routes().iter().map(|r| format!("{}/{}", r.provider.name(), r.connection)).collect();
        let new_routes = match routes::routes(&registry, &checks) {
            Ok(r) => r,
            Err(e) => return ctx.ui.warn(e.message),
        };
        let added: Vec<String> =
            new_routes.iter().map(|r| format!("{}/{}", r.provider.name(), r.connection)).filter(|r| !before.contains(r)).collect();
        if let Err(e) = self.handle.set_routes(new_routes) {
            return ctx.ui.warn(e.message);
        }
        if !added.is_empty() {
            ctx.ui.success(format_args!("now injecting {} (same process, no restart)", added.join(", ")));
        }
        self.project = project;
        self.digest = digest;
    }
}
