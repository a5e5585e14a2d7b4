//! The activator of a real project: project mode decides (parse, trust,
//! requirements), the project's background proxy serves, and the shell gets
//! the environment of SPEC §4 pointing at it.

use super::activation::{Activation, Activator, Env, Outcome, Request};
use crate::daemon::serve::Loaded;
use crate::daemon::{spawn, DaemonDir};
use crate::error::Result;
use crate::paths::Home;
use crate::project::requirements::{self, Check};
use crate::project::trust::{self, Trust};
use crate::project::{Project, UndeclaredHosts};
use crate::providers::Registry;
use crate::proxy::Route;
use crate::vault::VaultData;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Activation by project mode.
pub struct ProjectActivator;

/// The vault's content, without creating a key or a vault when there is none.
fn vault_data(home: &Home) -> Result<VaultData> {
    crate::store::Store::snapshot(home)
}

/// The project, parsed and trusted, with the registry it extends.
fn trusted(home: &Home, file: &Path) -> std::result::Result<(Project, Registry), String> {
    let mut registry = Registry::load(home).map_err(|e| e.message)?;
    let project = Project::load(file, &mut registry).map_err(|e| e.message)?;
    match trust::check(home, &project) {
        Trust::Allowed => {
            // A project that requires a team store is never served from another store.
            crate::store::require(home, project.store_id.as_deref()).map_err(|e| e.message)?;
            Ok((project, registry))
        }
        t => Err(trust::refusal(&project, &t)),
    }
}

fn checks(home: &Home, project: &Project, registry: &Registry) -> Result<Vec<Check>> {
    let data = vault_data(home)?;
    // CI secrets (`secret_env`) are for `authsome exec`; a shell uses the vault.
    Ok(requirements::evaluate(project, registry, &data, &|_| None, home.profile(), crate::fsutil::now_unix()))
}

/// What the project's daemon serves now (its [`crate::daemon::serve::Loader`]).
pub fn load_for_daemon(home: &Home, file: &Path) -> Result<Loaded> {
    let (project, registry) = trusted(home, file).map_err(crate::Error::bad_input)?;
    let checks = checks(home, &project, &registry)?;
    let mut watch = vec![file.to_owned(), home.trust_dir(), home.providers_dir(), home.vault_file()];
    watch.extend(project.definitions.iter().map(|d| d.path.clone()));
    Ok(Loaded { routes: shell_routes(&registry, &checks)?, deny_undeclared: project.undeclared_hosts == UndeclaredHosts::Deny, watch })
}

/// One route per declared requirement, met or not: the proxy reads the vault
/// at each injection, so a login made while shells are active applies to the
/// very next request (unlike `up`/`exec`, a shell outlives many logins).
fn shell_routes(registry: &Registry, checks: &[Check]) -> Result<Vec<Route>> {
    checks
        .iter()
        .map(|c| {
            Ok(Route {
                provider: Arc::new(registry.get(&c.requirement.provider)?.clone()),
                connection: c.connection.clone(),
                placeholder: c.requirement.placeholder.clone(),
                is_default: c.requirement.primary,
            })
        })
        .collect()
}

impl Activator for ProjectActivator {
    fn watch(&self, home: &Home) -> Vec<PathBuf> {
        vec![home.trust_dir(), home.providers_dir()]
    }

    fn activate(&self, req: &Request) -> Outcome {
        let inactive = |reason: String, watch: Vec<PathBuf>| Outcome { activation: Activation::Inactive { reason }, watch };
        let (project, registry) = match trusted(req.home, req.project_file) {
            Ok(p) => p,
            Err(reason) => return inactive(reason, vec![]),
        };
        let mut watch: Vec<PathBuf> = project.definitions.iter().map(|d| d.path.clone()).collect();
        let info = match spawn::ensure_running(req.home, req.project_file, req.shell_pid, req.base_env) {
            Ok(i) => i,
            Err(e) => return inactive(format!("{}: cannot start the project's proxy: {e}", req.project_file.display()), watch),
        };
        // A restarted daemon (stopped, crashed) rewrites this file: re-activate then.
        watch.push(DaemonDir::for_project(req.home, req.project_file).info_file());
        let base = |k: &str| req.base_env.get(OsStr::new(k)).and_then(|v| v.to_str()).map(str::to_owned);
        let child = crate::project::env::child_env(&project, &registry, &info.proxy_url, &info.ca_bundle, &base);
        let mut env: Env = child.set.into_iter().map(|(k, v)| (k, Some(v))).collect();
        for k in child.unset {
            env.entry(k).or_insert(None);
        }
        let notices = match checks(req.home, &project, &registry) {
            Ok(checks) => checks
                .iter()
                .filter(|c| !c.state.is_met())
                .map(|c| match &c.fix {
                    Some(fix) => format!("{}: {}; run `{fix}` (or `authsome up`)", c.requirement.label(), c.state.describe()),
                    None => format!("{}: {}", c.requirement.label(), c.state.describe()),
                })
                .collect(),
            Err(e) => vec![format!("cannot read the vault: {e}")],
        };
        Outcome { activation: Activation::Active { env, notices }, watch }
    }

    fn deactivate(&self, home: &Home, project_file: &Path, shell_pid: Option<u32>) {
        if let Some(pid) = shell_pid {
            spawn::release(home, project_file, pid);
        }
    }
}
