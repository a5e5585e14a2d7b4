//! The per-project background proxy the shell hook activates.
//!
//! One detached `authsome daemon serve FILE` process per project file serves
//! every shell activated in that project. Its files live in a private
//! directory under `<home>/run/daemons/<hash of profile and project path>/`:
//!
//! - `daemon.json`: who it is and where it listens ([`Info`]); present only
//!   while it serves, so its `stat` identity tells shells it was restarted;
//! - `shells/<pid>`: one file per activated shell ([`shells`]); the daemon
//!   drops dead ones and exits once none remains (after a short linger);
//! - `lock`: serialises starting, registering and deciding to exit;
//! - `ca-<run id>.pem`: the combined CA bundle its clients trust;
//! - `daemon.log`: its stderr.
//!
//! [`spawn`] starts or reuses it (the hook's slow path), [`serve`] is the
//! daemon itself.

pub mod serve;
pub mod shells;
pub mod spawn;

use crate::paths::Home;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The files of the daemon serving one project.
#[derive(Debug, Clone)]
pub struct DaemonDir {
    dir: PathBuf,
}

impl DaemonDir {
    /// The directory for `project_file` (an absolute path) under `home`, per
    /// profile (each profile's vault gets its own proxy).
    pub fn for_project(home: &Home, project_file: &Path) -> DaemonDir {
        let mut key = home.profile().as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(project_file.as_os_str().as_encoded_bytes());
        let digest = ring::digest::digest(&ring::digest::SHA256, &key);
        let name = crate::text::hex(&digest.as_ref()[..10]);
        DaemonDir { dir: home.daemons_dir().join(name) }
    }
    /// An existing daemon directory.
    pub fn at(dir: PathBuf) -> DaemonDir {
        DaemonDir { dir }
    }
    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// `daemon.json`.
    pub fn info_file(&self) -> PathBuf {
        self.dir.join("daemon.json")
    }
    /// Registered shells, one file per PID.
    pub fn shells_dir(&self) -> PathBuf {
        self.dir.join("shells")
    }
    /// The start/register/exit lock.
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("lock")
    }
    /// The daemon's stderr.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }
    /// Create the directory tree, private.
    pub fn create(&self) -> std::io::Result<()> {
        crate::fsutil::ensure_private_dir(&self.dir)?;
        crate::fsutil::ensure_private_dir(&self.shells_dir())
    }
    /// The running daemon's record, if it is alive.
    pub fn running(&self) -> Option<Info> {
        let info: Info = serde_json::from_slice(&std::fs::read(self.info_file()).ok()?).ok()?;
        shells::alive(info.pid, info.pid_start).then_some(info)
    }
}

/// What a running daemon publishes in `daemon.json` (mode 0600: the proxy URL
/// carries the per-run credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The daemon's PID.
    pub pid: u32,
    /// Its process start time (guards against PID reuse).
    pub pid_start: Option<u64>,
    /// The project file it serves.
    pub project: PathBuf,
    /// `http://authsome:<secret>@127.0.0.1:<port>`.
    pub proxy_url: String,
    /// The loopback port (for display; the URL is the secret part).
    pub port: u16,
    /// The CA bundle clients must trust.
    pub ca_bundle: PathBuf,
    /// Audit-log run id.
    pub run_id: String,
    /// Unix time it started.
    pub started_at: u64,
}

/// Every daemon directory under `home` (running or not).
pub fn all(home: &Home) -> Vec<DaemonDir> {
    let mut dirs: Vec<DaemonDir> = std::fs::read_dir(home.daemons_dir())
        .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).map(|e| DaemonDir::at(e.path())).collect())
        .unwrap_or_default();
    dirs.sort_by(|a, b| a.dir.cmp(&b.dir));
    dirs
}
