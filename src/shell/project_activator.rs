//! The activator of a real project: the launch layer decides (parse, trust,
//! requirements, the plan), the project's background proxy serves, and the
//! shell gets the child environment pointing at it.

use super::activation::{Activation, Activator, Env, Outcome, Request};
use crate::daemon::{spawn, DaemonDir};
use crate::launch::env::child_env;
use crate::launch::plan::{Plan, Serve};
use crate::launch::project::{evaluate, load_trusted, no_env};
use crate::paths::Home;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Activation by project mode.
pub struct ProjectActivator;

impl Activator for ProjectActivator {
    fn watch(&self, home: &Home) -> Vec<PathBuf> {
        vec![home.trust_dir(), home.providers_dir()]
    }

    fn activate(&self, req: &Request) -> Outcome {
        let inactive = |reason: String, watch: Vec<PathBuf>| Outcome { activation: Activation::Inactive { reason }, watch };
        let (project, registry) = match load_trusted(req.home, req.project_file) {
            Ok(p) => p,
            Err(e) => return inactive(e.message, vec![]),
        };
        let mut watch: Vec<PathBuf> = project.definitions.iter().map(|d| d.path.clone()).collect();
        let info = match spawn::ensure_running(req.home, req.project_file, req.shell_pid, req.base_env) {
            Ok(i) => i,
            Err(e) => return inactive(format!("{}: cannot start the project's proxy: {e}", req.project_file.display()), watch),
        };
        // A restarted daemon (stopped, crashed) rewrites this file: re-activate then.
        watch.push(DaemonDir::for_project(req.home, req.project_file).info_file());
        let (checks, notices) = match evaluate(req.home, &project, &registry, &no_env) {
            Ok(checks) => {
                let notices = checks
                    .iter()
                    .filter(|c| !c.state.is_met())
                    .map(|c| match &c.fix {
                        Some(fix) => format!("{}: {}; {} (or `authsome up`)", c.requirement.label(), c.state.describe(), fix.hint()),
                        None => format!("{}: {}", c.requirement.label(), c.state.describe()),
                    })
                    .collect();
                (checks, notices)
            }
            Err(e) => (Vec::new(), vec![format!("cannot read the vault: {e}")]),
        };
        let plan = match Plan::project(req.home, &project, &registry, &checks, Serve::Declared) {
            Ok(p) => p,
            Err(e) => return inactive(e.message, watch),
        };
        let base = |k: &str| req.base_env.get(OsStr::new(k)).and_then(|v| v.to_str()).map(str::to_owned);
        let child = child_env(&plan, &info.proxy_url, &info.ca_bundle, &base);
        let mut env: Env = child.set.into_iter().map(|(k, v)| (k, Some(v))).collect();
        for k in child.unset {
            env.entry(k).or_insert(None);
        }
        Outcome { activation: Activation::Active { env, notices }, watch }
    }

    fn deactivate(&self, home: &Home, project_file: &Path, shell_pid: Option<u32>) {
        if let Some(pid) = shell_pid {
            spawn::release(home, project_file, pid);
        }
    }
}
