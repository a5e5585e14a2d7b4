//! Supervising a child behind a proxy (`run`, `up`; `exec` replaces itself
//! with the command instead, see [`super::helper`]).
//!
//! The child keeps the terminal (same process group, inherited stdio), so
//! Ctrl-C reaches it directly; authsome ignores the terminal's SIGINT/SIGQUIT
//! while it waits, and forwards SIGTERM and SIGHUP sent to it. The exit code is
//! the child's, `128+N` when it died of signal N.

use crate::error::{Error, Result};
use crate::fence::Fence;
use std::ffi::OsString;
use std::path::PathBuf;

/// Resolve `program` on `PATH` (or as a path) before anything else starts,
/// so "command not found" is a clear error, not a proxy start-up then failure.
pub fn resolve_program(program: &OsString) -> Result<PathBuf> {
    which::which(program).map_err(|_| Error::not_found(format!("command not found: {}", program.to_string_lossy())))
}

/// A child whose signals are supervised: SIGTERM and SIGHUP sent to authsome
/// are forwarded to it; the terminal's SIGINT and SIGQUIT reach it directly
/// (same process group), so authsome only swallows its own copy.
pub struct Supervised {
    child: tokio::process::Child,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl Supervised {
    /// Spawn `program` (`argv[0]` kept as `arg0`, as the user typed it) with
    /// `args` and exactly `envs`, inside `fence`. Must run inside a tokio runtime.
    pub fn spawn(
        program: &std::path::Path,
        arg0: &OsString,
        args: &[OsString],
        envs: Vec<(OsString, OsString)>,
        fence: &Fence,
    ) -> Result<Supervised> {
        use tokio::signal::unix::{signal, SignalKind};
        // Handlers first: from here on these signals cannot kill authsome. They
        // are caught (not ignored), so the child starts with default dispositions.
        let term = signal(SignalKind::terminate())?;
        let hup = signal(SignalKind::hangup())?;
        let int = signal(SignalKind::interrupt())?;
        let quit = signal(SignalKind::quit())?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg0(arg0).args(args).env_clear().envs(envs);
        crate::proxy::limits::restore_in_child(&mut cmd);
        // SAFETY: the hook only makes two async-signal-safe syscalls.
        unsafe {
            cmd.pre_exec(fence.pre_exec_hook());
        }
        let child = cmd.spawn().map_err(|e| Error::other(format!("cannot start {}: {e}", program.display())))?;
        Ok(Supervised { child, term, hup, int, quit })
    }

    /// Wait for the child, forwarding signals meanwhile, and return its exit
    /// code. Cancel-safe, so callers may `select!` it against their own events
    /// (`up` reloads its project file) and call it again.
    pub async fn wait(&mut self) -> Result<i32> {
        let pid = self.child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
        let forward = |sig: nix::sys::signal::Signal| {
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        };
        loop {
            tokio::select! {
                status = self.child.wait() => return Ok(exit_code(status?)),
                _ = self.term.recv() => forward(nix::sys::signal::Signal::SIGTERM),
                _ = self.hup.recv() => forward(nix::sys::signal::Signal::SIGHUP),
                _ = self.int.recv() => {}
                _ = self.quit.recv() => {}
            }
        }
    }
}

/// Spawn a supervised child inside `fence` and wait for its exit code.
pub async fn spawn_and_wait(
    program: &std::path::Path,
    arg0: &OsString,
    args: &[OsString],
    envs: Vec<(OsString, OsString)>,
    fence: &Fence,
) -> Result<i32> {
    Supervised::spawn(program, arg0, args, envs, fence)?.wait().await
}

/// The shell convention: the exit code, or `128+N` for death by signal N.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| crate::error::exit::SIGNAL_BASE + s)).unwrap_or(crate::error::exit::UNEXPECTED)
}
