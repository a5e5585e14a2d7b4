//! `authsome daemon serve FILE`: the background proxy of one project, shared
//! by every shell activated in it.
//!
//! It serves the project's routes (reloaded by `crate::launch::reload` when
//! `authsome.toml`, the trust store, provider overrides or the vault change),
//! reads credentials from the vault at each injection
//! (so new logins and refreshed tokens apply at once), and exits when no
//! registered shell has been alive for the linger period, or on SIGTERM.

use super::{shells, DaemonDir, Info};
use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::launch::credentials::VaultCredentials;
use crate::launch::options::{proxy_options, BundleIn};
use crate::launch::plan::{Plan, Serve};
use crate::launch::project::{evaluate, load_trusted, no_env};
use crate::launch::reload::{self, Kept, Reloader};
use crate::launch::watch::Watch;
use crate::paths::Home;
use crate::proxy::ProxyOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the daemon outlives its last shell, so leaving and re-entering a
/// project (or replacing the shell with `exec`) reuses it. Override with
/// `AUTHSOME_DAEMON_LINGER` (seconds).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(10);

/// How often shells' liveness is checked.
const TICK: Duration = Duration::from_millis(250);

fn linger() -> Duration {
    std::env::var("AUTHSOME_DAEMON_LINGER").ok().and_then(|s| s.parse::<f64>().ok()).map(Duration::from_secs_f64).unwrap_or(DEFAULT_LINGER)
}

/// Run the daemon for `project_file` until it is no longer needed. It serves
/// every declared requirement with the vault as credential source.
pub fn serve(home: &Home, project_file: &Path) -> Result<i32> {
    let dd = DaemonDir::for_project(home, project_file);
    dd.create().map_err(|e| Error::other(format!("cannot create {}: {e}", dd.path().display())))?;
    let (project, registry) = load_trusted(home, project_file)?;
    let checks = evaluate(home, &project, &registry, &no_env)?;
    let plan = Plan::project(home, &project, &registry, &checks, Serve::Declared)?;
    for note in crate::proxy::uninterceptable(&plan.routes) {
        eprintln!("authsome daemon: {note}");
    }
    // The bundle lives with the daemon's other files, removed together.
    let options = proxy_options(home, &plan, Arc::new(VaultCredentials::new(home)), BundleIn::Dir(dd.path()))?;
    let reloader = Reloader::new(home, &project, Serve::Declared, &no_env);
    let rt = crate::runtime()?;
    let result = rt.block_on(run(project_file, &dd, reloader, plan.watch, options));
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn run(project_file: &Path, dd: &DaemonDir, mut reloader: Reloader<'_>, watched: Vec<PathBuf>, options: ProxyOptions) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let run_id = options.run_id.clone();
    let handle = crate::proxy::start(options).await?;
    let pid = std::process::id();
    let info = Info {
        pid,
        pid_start: shells::start_time(pid),
        project: project_file.to_owned(),
        proxy_url: handle.url(),
        port: handle.addr().port(),
        ca_bundle: handle.bundle_path().map(Path::to_owned).unwrap_or_default(),
        run_id,
        started_at: crate::fsutil::now_unix(),
    };
    let body = serde_json::to_vec_pretty(&info).expect("info serialises");
    crate::fsutil::atomic_write(&dd.info_file(), &body, 0o600)?;

    let mut watch = Watch::new(watched);
    let mut tick = tokio::time::interval(TICK);
    let linger = linger();
    let mut empty_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {}
            () = watch.changed() => match reloader.reload(&mut |_| false) {
                Ok(r) => {
                    if let Err(e) = reload::apply(&handle, &mut watch, r.plan) {
                        eprintln!("authsome daemon: reload failed: {e}");
                    }
                }
                Err(Kept::Refused(line)) => eprintln!("authsome daemon: keeping the previous routes: {line}"),
                Err(Kept::Broken(e)) => eprintln!("authsome daemon: keeping the previous routes: {e}"),
            },
            _ = tick.tick() => {
                if done(dd, &info, &mut empty_since, linger) {
                    break;
                }
            }
        }
    }
    drop(watch);
    remove_info(dd, &info);
    handle.shutdown().await;
    Ok(0)
}

/// Whether no shell has been alive for `linger`; when so, `daemon.json` is
/// removed under the lock, so no shell can pick up a daemon that is leaving.
fn done(dd: &DaemonDir, info: &Info, empty_since: &mut Option<Instant>, linger: Duration) -> bool {
    // Our directory or record is gone (home deleted, `daemon.json` replaced):
    // no shell can reach us any more.
    // Never recreate the lock: while the directory is being deleted that
    // would leave a file behind and make the deletion fail.
    let Ok(_lock) = FileLock::acquire_existing(&dd.lock_file()) else { return true };
    if !is_ours(dd, info) {
        return true;
    }
    if !shells::live(&dd.shells_dir()).is_empty() {
        *empty_since = None;
        return false;
    }
    let since = *empty_since.get_or_insert_with(Instant::now);
    if since.elapsed() < linger {
        return false;
    }
    remove_info(dd, info);
    true
}

/// Whether `daemon.json` still names this process.
fn is_ours(dd: &DaemonDir, info: &Info) -> bool {
    std::fs::read(dd.info_file()).ok().and_then(|b| serde_json::from_slice::<Info>(&b).ok()).is_some_and(|i| i.pid == info.pid)
}

/// Remove `daemon.json` if it is still ours.
fn remove_info(dd: &DaemonDir, info: &Info) {
    if is_ours(dd, info) {
        let _ = std::fs::remove_file(dd.info_file());
    }
}
