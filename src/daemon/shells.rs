//! Shells register with their project's daemon by PID; the daemon checks
//! their liveness and exits when none remains.
//!
//! A registration is the file `shells/<pid>` holding the process start time,
//! so a recycled PID is not mistaken for the shell that registered.

use std::path::Path;

/// Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22),
/// where `/proc` exists.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` exists and, when `start` is known, is the same process.
pub fn alive(pid: u32, start: Option<u64>) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    if raw <= 0 {
        return false;
    }
    let exists = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    };
    exists && (start.is_none() || start_time(pid).is_none() || start_time(pid) == start)
}

/// Record that shell `pid` uses the daemon whose shells live in `dir`.
pub fn register(dir: &Path, pid: u32) -> std::io::Result<()> {
    let start = start_time(pid).map(|s| s.to_string()).unwrap_or_default();
    crate::fsutil::atomic_write(&dir.join(pid.to_string()), start.as_bytes(), 0o600)
}

/// Drop the registration of shell `pid` (it left the project).
pub fn unregister(dir: &Path, pid: u32) {
    let _ = std::fs::remove_file(dir.join(pid.to_string()));
}

/// The registered shells that are still alive; registrations of dead ones are removed.
pub fn live(dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let start = std::fs::read_to_string(entry.path()).ok().and_then(|s| s.trim().parse().ok());
        if alive(pid, start) {
            out.push(pid);
        } else {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_shells_and_dead_ones() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        register(dir.path(), me).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        register(dir.path(), dead).unwrap();
        // A registration whose start time does not match is a recycled PID.
        std::fs::write(dir.path().join("1"), "999999999999").unwrap();
        assert_eq!(live(dir.path()), vec![me]);
        assert!(!dir.path().join(dead.to_string()).exists());
        assert!(!dir.path().join("1").exists());
        unregister(dir.path(), me);
        assert!(live(dir.path()).is_empty());
    }

    #[test]
    fn start_time_of_self() {
        assert!(start_time(std::process::id()).is_some());
        assert!(alive(std::process::id(), start_time(std::process::id())));
        assert!(!alive(0, None));
    }
}
