//! `authsome exec`'s process model: the command *becomes* authsome (a real
//! `execve`, same PID), and the proxy lives in a small helper process that
//! exits when that PID does — aws-vault's server mode, without a server.
//!
//! Why not spawn-and-forward like `run`: with a true exec the command receives
//! every signal directly (from the terminal, from `kill`, from a CI runner's
//! timeout), its exit status is its own (including death by signal, which a
//! forwarding parent can only imitate), and tools that track the PID they
//! started (CI runners, supervisors, `timeout`) see the real command.
//!
//! The helper is double-forked so it is not the command's child (a command
//! calling `wait()` never reaps it unexpectedly), leaves the terminal's session
//! (Ctrl-C goes to the command only), and watches the command's PID through a
//! pidfd (polling `kill(pid, 0)` where pidfds are unavailable). It reports the
//! proxy URL and CA bundle over a close-on-exec pipe, so nothing leaks into the
//! command but its environment.

use crate::error::{Error, Result};
use crate::proxy::ProxyOptions;
use nix::unistd::{ForkResult, Pid};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// A running helper: what the command's environment must point at.
#[derive(Debug)]
pub struct Helper {
    /// `HTTPS_PROXY` value, with the per-run credential.
    pub url: String,
    /// The combined CA bundle file.
    pub bundle: PathBuf,
}

/// Start the proxy for `options` in a helper process that lives as long as
/// this process (or whatever it `execve`s into). Must be called while the
/// process is single-threaded (before any async runtime exists).
pub fn start(options: ProxyOptions) -> Result<Helper> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::other(format!("cannot create a pipe: {e}")))?;
    let target = nix::unistd::getpid();
    // SAFETY: the process is single-threaded here (no runtime has been built),
    // so the child may run arbitrary code.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::other(format!("cannot fork the proxy helper: {e}")))? {
        ForkResult::Child => {
            drop(read_end);
            // SAFETY: still single-threaded (we are the fresh child).
            match unsafe { nix::unistd::fork() } {
                Ok(ForkResult::Child) => serve(options, target, write_end),
                // The intermediate process exits at once, so the helper is re-parented away from the command.
                _ => unsafe { nix::libc::_exit(0) },
            }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            drop(options);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut report = String::new();
            std::fs::File::from(read_end).read_to_string(&mut report).map_err(|e| Error::other(format!("proxy helper: {e}")))?;
            let mut lines = report.lines();
            match (lines.next(), lines.next(), lines.next()) {
                (Some("ok"), Some(url), Some(bundle)) => Ok(Helper { url: url.to_owned(), bundle: PathBuf::from(bundle) }),
                (Some("err"), Some(msg), _) => Err(Error::other(format!("the proxy did not start: {msg}"))),
                _ => Err(Error::other("the proxy helper exited before it was ready")),
            }
        }
    }
}

/// The helper's whole life; never returns.
fn serve(options: ProxyOptions, target: Pid, report: OwnedFd) -> ! {
    let _ = nix::unistd::setsid();
    redirect_to_null(&[0, 1]);
    let mut report = Some(std::fs::File::from(report));
    let pidfd = pidfd_open(target);
    let result = crate::runtime().and_then(|rt| {
        rt.block_on(async {
            let handle = crate::proxy::start(options).await?;
            let bundle = handle.bundle_path().map(|p| p.display().to_string()).unwrap_or_default();
            if let Some(mut r) = report.take() {
                let _ = write!(r, "ok\n{}\n{bundle}\n", handle.url());
            }
            redirect_to_null(&[2]);
            wait_for_exit(target, pidfd).await;
            handle.shutdown().await;
            Ok(())
        })
    });
    match result {
        Ok(()) => {
            crate::store::traffic_audit::flush_all();
            std::process::exit(0)
        }
        Err(e) => {
            if let Some(mut r) = report.take() {
                let _ = write!(r, "err\n{}\n", e.message.replace('\n', " "));
            }
            std::process::exit(1)
        }
    }
}

fn redirect_to_null(fds: &[i32]) {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in fds {
            let _ = nix::unistd::dup2(null.as_raw_fd(), *fd);
        }
    }
}

/// A pidfd for `pid` (Linux 5.3+); `None` where unsupported.
fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is a new descriptor we own.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid.as_raw(), 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Resolve once `target` has exited.
async fn wait_for_exit(target: Pid, pidfd: Option<OwnedFd>) {
    if let Some(fd) = pidfd {
        // SAFETY: we own `fd` (an OwnedFd moved in), so it stays open while registered.
        if let Ok(afd) = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
            let _ = afd.readable().await;
            return;
        }
    }
    while nix::sys::signal::kill(target, None).is_ok() {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Replace this process with `argv` (resolved `program`) and `env`, as the
/// command would run alone: default SIGPIPE (Rust ignores it), no handlers,
/// inside `fence`. Returns only on failure.
pub fn exec(
    program: &std::path::Path,
    argv: &[std::ffi::OsString],
    env: &[(std::ffi::OsString, std::ffi::OsString)],
    fence: &crate::fence::Fence,
) -> Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |b: &[u8]| CString::new(b).map_err(|_| Error::bad_input("arguments and variables cannot contain NUL bytes"));
    let prepared = (|| -> Result<(CString, Vec<CString>, Vec<CString>)> {
        let prog = c(program.as_os_str().as_bytes())?;
        let args = argv.iter().map(|a| c(a.as_bytes())).collect::<Result<Vec<_>>>()?;
        let vars = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                c(&kv)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((prog, args, vars))
    })();
    let (prog, args, vars) = match prepared {
        Ok(p) => p,
        Err(e) => return e,
    };
    // SAFETY: restoring the default disposition is always sound.
    unsafe {
        let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl);
    }
    if let Err(e) = fence.enter() {
        return Error::other(format!("cannot fence {}: {e}", program.display()));
    }
    let err = nix::unistd::execve(&prog, &args, &vars).unwrap_err();
    Error::cannot_execute(format!("cannot execute {}: {err}", program.display()))
}
