//! `authsome daemon serve FILE`: the background proxy of one project, shared
//! by every shell activated in it.
//!
//! It serves the project's routes (reloaded when `authsome.toml`, the trust
//! store, provider overrides or the vault change: inotify via `notify`, with a
//! stat poll as fallback), reads credentials from the vault at each injection
//! (so new logins and refreshed tokens apply at once), and exits when no
//! registered shell has been alive for the linger period, or on SIGTERM.

use super::{shells, DaemonDir, Info};
use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::paths::Home;
use crate::proxy::{self, CredentialSource, ProxyOptions, Route};
use crate::shell::state::Watched;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the daemon outlives its last shell, so leaving and re-entering a
/// project (or replacing the shell with `exec`) reuses it. Override with
/// `AUTHSOME_DAEMON_LINGER` (seconds).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(10);

/// How often shells' liveness (and, as a fallback, the watched files) is checked.
const TICK: Duration = Duration::from_millis(250);

/// Let file events settle (editors write in several steps) before reloading.
const DEBOUNCE: Duration = Duration::from_millis(150);

fn linger() -> Duration {
    std::env::var("AUTHSOME_DAEMON_LINGER").ok().and_then(|s| s.parse::<f64>().ok()).map(Duration::from_secs_f64).unwrap_or(DEFAULT_LINGER)
}

/// What the proxy must serve for a project as it is now.
pub struct Loaded {
    /// One route per usable requirement.
    pub routes: Vec<Route>,
    /// Refuse undeclared hosts instead of tunnelling them.
    pub deny_undeclared: bool,
    /// Files whose change calls for a reload (project file, trust store,
    /// provider overrides, the vault, project-local provider files).
    pub watch: Vec<PathBuf>,
}

/// Reads the project: an error when it is broken or no longer trusted (the
/// running routes are then kept, since they were trusted).
pub type Loader<'a> = &'a (dyn Fn() -> Result<Loaded> + Sync);

/// Run the daemon for `project_file` until it is no longer needed.
pub fn serve(home: &Home, project_file: &Path, load: Loader, credentials: Arc<dyn CredentialSource>) -> Result<i32> {
    let dd = DaemonDir::for_project(home, project_file);
    dd.create().map_err(|e| Error::other(format!("cannot create {}: {e}", dd.path().display())))?;
    let Loaded { routes, deny_undeclared, watch: watched } = load()?;
    for note in proxy::uninterceptable(&routes) {
        eprintln!("authsome daemon: {note}");
    }
    let mut options = ProxyOptions::for_run(home, routes, deny_undeclared, credentials)?;
    // The bundle lives with the daemon's other files, removed together.
    options.bundle_path = Some(dd.path().join(format!("ca-{}.pem", options.run_id)));
    let rt = crate::runtime()?;
    let result = rt.block_on(run(project_file, &dd, load, watched, options));
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn run(project_file: &Path, dd: &DaemonDir, load: Loader<'_>, watched: Vec<PathBuf>, options: ProxyOptions) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let run_id = options.run_id.clone();
    let handle = proxy::start(options).await?;
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

    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut paths = watched;
    let mut watcher = watch(&paths, tx.clone());
    let mut ids: Vec<Watched> = paths.iter().cloned().map(Watched::now).collect();
    let mut tick = tokio::time::interval(TICK);
    let linger = linger();
    let mut empty_since: Option<Instant> = None;
    let mut reload_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {}
            Some(()) = events.recv() => { reload_at.get_or_insert(Instant::now() + DEBOUNCE); }
            _ = tick.tick() => {
                let now = Instant::now();
                if !ids.iter().all(Watched::unchanged) {
                    reload_at.get_or_insert(now);
                }
                if reload_at.is_some_and(|t| now >= t) {
                    reload_at = None;
                    ids = paths.iter().cloned().map(Watched::now).collect();
                    match load() {
                        Ok(l) => {
                            if let Err(e) = handle.set_routes(l.routes) {
                                eprintln!("authsome daemon: reload failed: {e}");
                            }
                            if l.watch != paths {
                                paths = l.watch;
                                watcher = watch(&paths, tx.clone());
                                ids = paths.iter().cloned().map(Watched::now).collect();
                            }
                        }
                        Err(e) => eprintln!("authsome daemon: keeping the previous routes: {e}"),
                    }
                }
                if done(dd, &info, &mut empty_since, linger) {
                    break;
                }
            }
        }
    }
    drop(watcher);
    remove_info(dd, &info);
    handle.shutdown().await;
    Ok(0)
}

/// Whether no shell has been alive for `linger`; when so, `daemon.json` is
/// removed under the lock, so no shell can pick up a daemon that is leaving.
fn done(dd: &DaemonDir, info: &Info, empty_since: &mut Option<Instant>, linger: Duration) -> bool {
    // Our directory or record is gone (home deleted, `daemon.json` replaced):
    // no shell can reach us any more.
    let Ok(_lock) = FileLock::acquire(&dd.lock_file()) else { return true };
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

/// Watch the directories holding `paths` (files are often replaced by rename,
/// which only the directory sees); `None` when inotify is unavailable, in which
/// case the stat poll alone notices changes.
fn watch(paths: &[PathBuf], tx: tokio::sync::mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let wanted = paths.to_vec();
    // Only events about a watched file (or inside a watched directory) count:
    // saving some other file of the project directory must not reload.
    let relevant = move |p: &Path| wanted.iter().any(|w| p == w || p.parent() == Some(w.as_path()));
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !matches!(ev.kind, notify::EventKind::Access(_)) && ev.paths.iter().any(|p| relevant(p)) {
                let _ = tx.send(());
            }
        }
    })
    .ok()?;
    let mut dirs: Vec<&Path> = paths.iter().filter_map(|p| if p.is_dir() { Some(p.as_path()) } else { p.parent() }).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        let _ = w.watch(d, notify::RecursiveMode::NonRecursive);
    }
    Some(w)
}
