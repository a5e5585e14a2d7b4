//! Resource limits that keep one proxy serving when clients misbehave: the
//! time a client may take before it proves it holds the proxy credential, the
//! time an intercepted connection may sit idle, how many not-yet-authenticated
//! connections may be open at once, and the process's file-descriptor limit.
//!
//! Every connection starts unauthenticated. A legitimate client sends its
//! `CONNECT` with the credential at once; one that sends nothing, or half a
//! request head, is either broken or trying to starve the proxy. Such
//! connections are closed after [`Limits::header_read`], and when more than
//! [`Limits::max_unauthenticated`] of them are open the oldest is closed to make
//! room, so another local user can never keep a run's own client out.

use std::sync::OnceLock;
use std::time::Duration;

/// Timeouts and bounds of one proxy (see the module documentation).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a client has to send a complete request head: the first one on a
    /// proxy connection and every one on an intercepted HTTP/1 connection
    /// (where it is also the keep-alive idle timeout).
    pub header_read: Duration,
    /// Time a client has to complete the TLS handshake of an intercepted CONNECT.
    pub tls_handshake: Duration,
    /// An intercepted connection with no request in flight for this long is closed.
    pub idle: Duration,
    /// At most this many connections may be open without having sent the proxy
    /// credential; beyond it the oldest is closed.
    pub max_unauthenticated: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(10),
            tls_handshake: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            max_unauthenticated: unauthenticated_cap(hard_fd_limit()),
        }
    }
}

/// A quarter of the descriptors, between 16 and 1024: enough for any burst of
/// legitimate clients, and leaves three quarters for authenticated traffic.
fn unauthenticated_cap(fds: u64) -> usize {
    (fds / 4).clamp(16, 1024) as usize
}

/// The soft `RLIMIT_NOFILE` the process started with, recorded by [`raise_fd_limit`].
static ORIGINAL: OnceLock<Option<(u64, u64)>> = OnceLock::new();

/// Raise the soft file-descriptor limit to the hard one, once per process.
/// A proxy holds two descriptors per intercepted connection (client and
/// upstream), so the default soft limit of 1024 is far too low under load.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    ORIGINAL.get_or_init(|| {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        if soft < hard {
            setrlimit(Resource::RLIMIT_NOFILE, hard, hard).ok()?;
        }
        Some((soft, hard))
    });
}

/// The hard file-descriptor limit, which [`raise_fd_limit`] makes the soft one
/// (1024 when it cannot be read).
fn hard_fd_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(1024, |(_, hard)| hard)
}

/// Give a child the soft limit authsome started with: programs that still use
/// `select(2)` break with descriptors above 1024, so the raised limit is the
/// proxy's alone.
pub fn restore_in_child(cmd: &mut tokio::process::Command) {
    if let Some(Some((soft, hard))) = ORIGINAL.get().copied() {
        // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, soft, hard);
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unauthenticated_cap_follows_the_descriptor_limit() {
        assert_eq!(unauthenticated_cap(256), 64);
        assert_eq!(unauthenticated_cap(20), 16);
        assert_eq!(unauthenticated_cap(1 << 20), 1024);
    }
}
