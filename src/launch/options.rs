//! The proxy options of this machine's user: a fresh run id, the CA bundle in
//! a private directory, the home's audit log, and upstream trust and name
//! overrides from the environment. The proxy engine takes them ready-made.

use super::plan::Plan;
use crate::error::{Error, Result};
use crate::paths::Home;
use crate::proxy::{CredentialSource, Limits, ProxyOptions, UpstreamSettings};
use std::path::Path;
use std::sync::Arc;

/// Where a proxy keeps its CA bundle.
#[derive(Debug, Clone, Copy)]
pub enum BundleIn<'a> {
    /// `<home>/run/<run id>.<pid>/ca.pem`, a directory of its own so a fenced
    /// child can be let read it across atomic rewrites (a new file each time);
    /// bundles of runs killed outright are swept.
    RunDir,
    /// `<dir>/ca-<run id>.pem` (the daemon keeps it with its other files).
    Dir(&'a Path),
}

/// Options for a proxy serving `plan` with `credentials`.
pub fn proxy_options(home: &Home, plan: &Plan, credentials: Arc<dyn CredentialSource>, bundle: BundleIn) -> Result<ProxyOptions> {
    let run_id = crate::proxy::new_run_id();
    // The system roots for the bundle, from the home's cache when it is current.
    crate::net::roots::system_pem(Some(&home.root().join("cache")));
    let bundle_path = match bundle {
        BundleIn::RunDir => {
            let run_dir = home.run_dir();
            crate::fsutil::ensure_private_dir(&run_dir).map_err(|e| Error::other(format!("cannot create {}: {e}", run_dir.display())))?;
            sweep_stale_bundles(&run_dir);
            run_dir.join(format!("{run_id}.{}", std::process::id())).join("ca.pem")
        }
        BundleIn::Dir(dir) => dir.join(format!("ca-{run_id}.pem")),
    };
    Ok(ProxyOptions {
        routes: plan.routes.clone(),
        deny_undeclared: plan.deny_undeclared,
        bundle_path: Some(bundle_path),
        run_id,
        audit: crate::store::audit_sink(home),
        credentials,
        upstream: UpstreamSettings::from_env()?,
        limits: Limits::default(),
    })
}

/// Remove the bundles of runs whose process is gone. A run removes its own
/// bundle when it ends; only a run killed outright (SIGKILL, power loss)
/// leaves one, in a directory named `<run id>.<pid>` (or, from older
/// versions, a file `<run id>.<pid>.ca.pem`), which the next run cleans up.
fn sweep_stale_bundles(run_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((_, pid)) = name.strip_suffix(".ca.pem").unwrap_or(name).rsplit_once('.') else { continue };
        let Ok(pid) = pid.parse::<i32>() else { continue };
        let gone = matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH));
        if gone {
            let p = entry.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
        }
    }
}
