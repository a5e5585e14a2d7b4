//! Starting or reusing a project's daemon from the hook's slow path.
//!
//! Under the daemon directory's lock: register the shell first (so a fresh
//! daemon never sees zero shells), reuse a live daemon, or start a detached
//! one (own session, no inherited terminal or pipes, stderr to its log) and
//! wait until it publishes `daemon.json`.

use super::{shells, DaemonDir, Info};
use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::paths::Home;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting daemon may take to publish `daemon.json`.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The running daemon for `project_file`, started with environment `env` if
/// none is running, with `shell_pid` registered as one of its shells.
pub fn ensure_running(home: &Home, project_file: &Path, shell_pid: Option<u32>, env: &BTreeMap<OsString, OsString>) -> Result<Info> {
    let dd = DaemonDir::for_project(home, project_file);
    dd.create().map_err(|e| Error::other(format!("cannot create {}: {e}", dd.path().display())))?;
    let _lock = FileLock::acquire(&dd.lock_file()).map_err(|e| Error::other(format!("cannot lock {}: {e}", dd.lock_file().display())))?;
    if let Some(pid) = shell_pid {
        shells::register(&dd.shells_dir(), pid).map_err(|e| Error::other(format!("cannot register the shell: {e}")))?;
    }
    if let Some(info) = dd.running().filter(|i| i.project == project_file) {
        return Ok(info);
    }
    let _ = std::fs::remove_file(dd.info_file());
    let exe = std::env::current_exe().map_err(|e| Error::other(format!("cannot locate the authsome binary: {e}")))?;
    // A fresh log per start (it only ever holds the latest daemon's messages).
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(dd.log_file())
        .map_err(|e| Error::other(format!("cannot open {}: {e}", dd.log_file().display())))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--profile")
        .arg(home.profile())
        .arg("daemon")
        .arg("serve")
        .arg(project_file)
        .env_clear()
        .envs(env)
        .envs(crate::fence::process::taken(crate::vault::key::ENV_VAR).map(|k| (crate::vault::key::ENV_VAR, k)))
        .envs(crate::store::select::SECRET_VARS.iter().filter_map(|v| crate::fence::process::taken(v).map(|k| (*v, k))))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
    }
    let mut child = cmd.spawn().map_err(|e| Error::other(format!("cannot start the project's proxy: {e}")))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(info) = dd.running().filter(|i| i.pid == child.id()) {
            return Ok(info);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let last = std::fs::read_to_string(dd.log_file()).ok().and_then(|l| l.lines().last().map(str::to_owned)).unwrap_or_default();
            return Err(Error::other(format!("the project's proxy exited ({status}) at start: {last}")));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(Error::other(format!("the project's proxy did not start; see {}", dd.log_file().display())));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Drop `shell_pid`'s registration with the daemon of `project_file`.
pub fn release(home: &Home, project_file: &Path, shell_pid: u32) {
    let dd = DaemonDir::for_project(home, project_file);
    if let Ok(_lock) = FileLock::acquire(&dd.lock_file()) {
        shells::unregister(&dd.shells_dir(), shell_pid);
    }
}
