//! The fence around a child of `run`, `exec` and `up` (see SECURITY.md): on
//! Linux with Landlock, the child cannot open, create or list anything under
//! the authsome home (vault, key file, trust store, providers, locks, audit
//! log) except the run's CA bundle, cannot signal or ptrace authsome (nor read
//! its `/proc` files), cannot reach abstract Unix sockets outside its own
//! process tree, and — with `undeclared_hosts = "deny"` — can open TCP
//! connections only to the proxy's port.
//!
//! Everything is prepared in the parent ([`prepare`]: directory walks, file
//! descriptors, allocations); the child only calls [`Fence::enter`] between
//! `fork` and `exec`, two async-signal-safe syscalls.
//!
//! Landlock only grants; it cannot carve a hole out of a granted tree. So the
//! home is fenced by granting everything *around* it: each directory on the
//! path from `/` to the home gets only the right to be listed, and every other
//! entry of those directories gets every right. The price: the child cannot
//! create or delete entries directly in those ancestor directories (with the
//! default home, directly in `~`), nor see entries created there after it
//! started.

pub mod process;
mod rules;

use crate::error::{Error, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What to fence a child from.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Directories (and files) the child may not touch at all.
    pub denied: Vec<PathBuf>,
    /// Files (or directories whose files) inside `denied` the child may
    /// still read: the CA bundle's own directory.
    pub readable: Vec<PathBuf>,
    /// When set, outgoing TCP is allowed to this port only (the proxy's).
    pub tcp_only_to: Option<u16>,
}

impl Policy {
    /// The fence of a child of the proxy on `home`, reading `bundle` (from
    /// its own directory, which the proxy rewrites atomically when it adds a
    /// CA), with outgoing TCP restricted to `proxy_port` when the project
    /// denies undeclared hosts.
    pub fn for_child(home: &Path, bundle: &Path, proxy_port: Option<u16>) -> Policy {
        let mut denied = vec![home.to_path_buf()];
        if Abi::current().fences_path_sockets() {
            denied.extend(session_bus_socket());
        }
        let readable = bundle.parent().filter(|d| *d != home && d.starts_with(home)).unwrap_or(bundle);
        Policy { denied, readable: vec![readable.to_path_buf()], tcp_only_to: proxy_port }
    }
}

/// A prepared fence: a Landlock ruleset ready to be entered by a child.
#[derive(Debug)]
pub struct Fence {
    ruleset: Option<OwnedFd>,
}

impl Fence {
    /// No fence (`--no-fence`, `[run] fence = false`, or no Landlock).
    pub fn none() -> Fence {
        Fence { ruleset: None }
    }

    /// Whether entering it restricts anything.
    pub fn is_active(&self) -> bool {
        self.ruleset.is_some()
    }

    /// A closure for `pre_exec`: enters the fence in the forked child. Keep
    /// `self` alive until the child has been spawned.
    pub fn pre_exec_hook(&self) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
        let fd = self.ruleset.as_ref().map(|f| f.as_raw_fd());
        move || enter(fd)
    }

    /// Enter the fence in the calling (single-threaded) process, just before
    /// it `execve`s the child (`exec`).
    pub fn enter(&self) -> std::io::Result<()> {
        enter(self.ruleset.as_ref().map(|f| f.as_raw_fd()))
    }
}

/// `PR_SET_NO_NEW_PRIVS` then `landlock_restrict_self`: async-signal-safe.
fn enter(fd: Option<i32>) -> std::io::Result<()> {
    let Some(fd) = fd else { return Ok(()) };
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        if nix::libc::prctl(nix::libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if nix::libc::syscall(nix::libc::SYS_landlock_restrict_self, fd, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The fence of a child of the proxy on `proxy_port` whose CA bundle is
/// `bundle`, fenced from `home`; its TCP limited to the proxy when
/// `deny_undeclared`. Says once on stderr when the kernel cannot fence.
pub fn for_child(home: &Path, bundle: &Path, proxy_port: u16, deny_undeclared: bool) -> Result<Fence> {
    if let Some(notice) = unavailable_notice() {
        eprintln!("authsome: {notice}");
        return Ok(Fence::none());
    }
    prepare(&Policy::for_child(home, bundle, deny_undeclared.then_some(proxy_port)))
}

/// Build the ruleset for `policy` (in the parent). Without Landlock this is
/// [`Fence::none`]; callers say so once with [`unavailable_notice`].
pub fn prepare(policy: &Policy) -> Result<Fence> {
    if !Abi::current().available() {
        return Ok(Fence::none());
    }
    rules::build(policy).map(|fd| Fence { ruleset: Some(fd) }).map_err(|e| Error::other(format!("cannot prepare the fence: {e}")))
}

/// The Landlock ABI version of the running kernel (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Abi(pub i32);

impl Abi {
    /// Ask the kernel (`landlock_create_ruleset` with the version flag).
    pub fn current() -> Abi {
        static ABI: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
        Abi(*ABI.get_or_init(|| {
            // SAFETY: the documented version query: NULL attributes, size 0, flag 1.
            let v = unsafe { nix::libc::syscall(nix::libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
            v.max(0) as i32
        }))
    }
    /// Files under the home are fenced (ABI 1).
    pub fn available(self) -> bool {
        self.0 >= 1
    }
    /// Outgoing TCP can be restricted to the proxy's port (ABI 4).
    pub fn fences_tcp(self) -> bool {
        self.0 >= 4
    }
    /// Signals to authsome and abstract Unix sockets outside the child are fenced (ABI 6).
    pub fn fences_signals(self) -> bool {
        self.0 >= 6
    }
    /// Connecting to a pathname Unix socket (the session bus) is fenced (ABI 9).
    pub fn fences_path_sockets(self) -> bool {
        self.0 >= 9
    }
}

/// The session bus socket (`DBUS_SESSION_BUS_ADDRESS` `unix:path=`, else
/// `$XDG_RUNTIME_DIR/bus`): the OS keyring's door.
fn session_bus_socket() -> Option<PathBuf> {
    let from_addr = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok().and_then(|a| {
        a.split(';').find_map(|part| {
            let rest = part.strip_prefix("unix:")?;
            rest.split(',').find_map(|kv| kv.strip_prefix("path=")).map(PathBuf::from)
        })
    });
    from_addr.or_else(|| std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("bus"))).filter(|p| p.exists())
}

/// What the fence covers on this machine, one line (`doctor`, the notice).
pub fn describe(abi: Abi) -> String {
    if !abi.available() {
        return "unavailable: this kernel has no Landlock; a child can read the authsome home and signal authsome".into();
    }
    let mut s = format!("Landlock ABI {}: the child cannot open the authsome home", abi.0);
    s.push_str(if abi.fences_signals() {
        ", signal authsome or reach abstract sockets"
    } else {
        " (signals and abstract sockets not fenced: ABI < 6)"
    });
    s.push_str(if abi.fences_tcp() { "; `deny` limits its TCP to the proxy" } else { "; `deny` cannot limit its TCP (ABI < 4)" });
    s.push_str(if abi.fences_path_sockets() {
        "; the keyring's session bus is fenced"
    } else {
        "; the keyring's session bus is not (ABI < 9): prefer the key file or AUTHSOME_VAULT_KEY"
    });
    s
}

/// The one-line stderr notice when the fence cannot be applied, `None` when it can.
pub fn unavailable_notice() -> Option<String> {
    let abi = Abi::current();
    (!abi.available()).then(|| format!("warning: the child runs unfenced: {} (see `authsome doctor`)", describe(abi)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_directory_is_readable_and_the_home_is_not() {
        let p = Policy::for_child(Path::new("/h/.authsome"), Path::new("/h/.authsome/run/abc.1/ca.pem"), Some(8080));
        assert_eq!(p.denied[0], Path::new("/h/.authsome"));
        assert_eq!(p.readable, vec![PathBuf::from("/h/.authsome/run/abc.1")]);
        assert_eq!(p.tcp_only_to, Some(8080));
        // A bundle directly in the home: only the file.
        let p = Policy::for_child(Path::new("/h/.authsome"), Path::new("/h/.authsome/ca.pem"), None);
        assert_eq!(p.readable, vec![PathBuf::from("/h/.authsome/ca.pem")]);
    }

    #[test]
    fn a_kernel_without_landlock_is_named_never_silent() {
        assert!(describe(Abi(0)).starts_with("unavailable"));
        assert!(describe(Abi(5)).contains("not fenced: ABI < 6"));
        assert!(describe(Abi(9)).contains("session bus is fenced"));
    }
}
