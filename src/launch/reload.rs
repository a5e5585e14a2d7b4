//! The one reload, used by `up` and the daemon: when a watched file changes,
//! re-read the project and move the running proxy to the new plan in place.
//! A project that is no longer allowed (`authsome deny`, a change of meaning)
//! or no longer loads gets no injection at all until it is fixed
//! ([`withdraw`]): the previous routes were granted to a file that is gone.

use super::plan::{Plan, Serve};
use super::project::{evaluate, open};
use super::watch::Watch;
use crate::error::{Error, Result};
use crate::paths::Home;
use crate::project::requirements::{Check, EnvLookup};
use crate::project::trust::{self, Trust};
use crate::project::Project;
use crate::proxy::ProxyHandle;
use std::path::PathBuf;

/// Why a reload produced no plan (the caller then [`withdraw`]s the routes).
#[derive(Debug)]
pub enum Kept {
    /// The file changed its meaning and is not allowed as it is now: the line naming `authsome allow`.
    Refused(String),
    /// The file (or a provider file) does not load, or the vault cannot be read.
    Broken(Error),
}

/// A reload's result: the new plan and the evaluation it came from.
pub struct Reloaded {
    /// What to serve now.
    pub plan: Plan,
    /// Every requirement's state (callers report the unmet ones).
    pub checks: Vec<Check>,
    /// Whether the project's meaning changed since the last plan (not only
    /// the vault or a provider file).
    pub changed: bool,
}

/// Re-reads one project for a running launch.
pub struct Reloader<'a> {
    home: &'a Home,
    file: PathBuf,
    serve: Serve,
    env: EnvLookup<'a>,
    digest: String,
}

impl<'a> Reloader<'a> {
    /// A reloader for `project` as it was launched.
    pub fn new(home: &'a Home, project: &Project, serve: Serve, env: EnvLookup<'a>) -> Reloader<'a> {
        Reloader { home, file: project.file.clone(), serve, env, digest: trust::digest(project) }
    }

    /// Read the project again. When its meaning changed since the last plan,
    /// `fix` is offered the requirements that block (`up` logs them in) and
    /// says whether it changed the vault.
    pub fn reload(&mut self, fix: &mut dyn FnMut(&[&Check]) -> bool) -> std::result::Result<Reloaded, Kept> {
        let (project, registry, state) = open(self.home, &self.file).map_err(Kept::Broken)?;
        if state != Trust::Allowed {
            return Err(Kept::Refused(trust::refusal(&project, &state)));
        }
        let mut checks = evaluate(self.home, &project, &registry, self.env).map_err(Kept::Broken)?;
        let digest = trust::digest(&project);
        let changed = digest != self.digest;
        if changed {
            let blocking: Vec<&Check> = checks.iter().filter(|c| c.blocks()).collect();
            if !blocking.is_empty() && fix(&blocking) {
                checks = evaluate(self.home, &project, &registry, self.env).map_err(Kept::Broken)?;
            }
        }
        let plan = Plan::project(self.home, &project, &registry, &checks, self.serve).map_err(Kept::Broken)?;
        self.digest = digest;
        Ok(Reloaded { plan, checks, changed })
    }
}

/// Stop injecting at once: the proxy keeps running (the command's
/// connections still work, blind) but no request gets a credential until a
/// later reload brings an allowed plan back.
pub fn withdraw(handle: &ProxyHandle) -> Result<()> {
    handle.set_routes(Vec::new())
}

/// Move the running proxy and the watch to `plan`; returns the
/// `provider/connection` of every route it did not serve before.
pub fn apply(handle: &ProxyHandle, watch: &mut Watch, plan: Plan) -> Result<Vec<String>> {
    let before = Plan::route_labels(&handle.routes());
    let added: Vec<String> = Plan::route_labels(&plan.routes).into_iter().filter(|r| !before.contains(r)).collect();
    handle.set_routes(plan.routes)?;
    if watch.paths() != plan.watch.as_slice() {
        watch.set_paths(plan.watch);
    }
    Ok(added)
}
