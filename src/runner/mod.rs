//! Running a child behind a proxy: `authsome run` (and later `up`/`exec`).
//!
//! The child keeps the terminal (same process group, inherited stdio), so
//! Ctrl-C reaches it directly; authsome ignores the terminal's SIGINT/SIGQUIT
//! while it waits, and forwards SIGTERM and SIGHUP sent to it. The exit code is
//! the child's, `128+N` when it died of signal N.

pub mod env;

use crate::error::{Error, Result};
use crate::proxy::ProxyHandle;
use std::ffi::OsString;
use std::path::PathBuf;

/// Exit code when CMD cannot be found (as shells, `env` and `timeout` do).
pub const NOT_FOUND: i32 = 127;

/// Resolve `program` on `PATH` (or as a path) before anything else starts,
/// so "command not found" is a clear error, not a proxy start-up then failure.
pub fn resolve_program(program: &OsString) -> Result<PathBuf> {
    which::which(program).map_err(|_| Error { code: NOT_FOUND, message: format!("command not found: {}", program.to_string_lossy()) })
}

/// Spawn `program` (argv[0] kept as `arg0`, as the user typed it) with `args`
/// and exactly `envs`, wait for it while forwarding signals, and return its
/// exit code. Must run inside a tokio runtime.
pub async fn spawn_and_wait(program: &std::path::Path, arg0: &OsString, args: &[OsString], envs: Vec<(OsString, OsString)>) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    // Handlers first: from here on these signals cannot kill authsome. They are
    // caught (not ignored), so the child starts with default dispositions.
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut child = tokio::process::Command::new(program)
        .arg0(arg0)
        .args(args)
        .env_clear()
        .envs(envs)
        .spawn()
        .map_err(|e| Error::other(format!("cannot start {}: {e}", program.display())))?;
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let forward = |sig: nix::sys::signal::Signal| {
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = term.recv() => forward(nix::sys::signal::Signal::SIGTERM),
            _ = hup.recv() => forward(nix::sys::signal::Signal::SIGHUP),
            // The terminal delivers these to the whole foreground group, child included.
            _ = int.recv() => {}
            _ = quit.recv() => {}
        }
    };
    Ok(exit_code(status))
}

/// The shell convention: the exit code, or `128+N` for death by signal N.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

/// Run `cmd` (whose program was resolved to `program`) behind `proxy` and stop
/// the proxy afterwards, removing its bundle file whatever happened.
pub async fn run_behind(proxy: ProxyHandle, program: &std::path::Path, cmd: &[OsString]) -> Result<i32> {
    let bundle = proxy.bundle_path().map(|p| p.to_owned()).ok_or_else(|| Error::other("the proxy has no CA bundle file"))?;
    let envs = env::child_env(&proxy.routes(), &proxy.url(), &bundle, &|k| std::env::var(k).ok()).applied_to(std::env::vars_os());
    let result = spawn_and_wait(program, &cmd[0], &cmd[1..], envs).await;
    proxy.shutdown().await;
    result
}
