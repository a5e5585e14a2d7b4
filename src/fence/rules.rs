//! The Landlock ruleset of a [`super::Policy`]: every right everywhere except
//! under the denied paths, built from the directories around them.

use super::Policy;
use landlock::{Access, AccessFs, AccessNet, NetPort, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, ABI};
use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The newest ABI this code knows; older kernels get the subset they have.
const ABI_MAX: ABI = ABI::V9;

/// Rights that make sense on a file (the rest only apply to directories).
fn file_rights() -> landlock::BitFlags<AccessFs> {
    AccessFs::from_file(ABI_MAX)
}

/// Build the ruleset; its descriptor is what the child enters.
pub fn build(policy: &Policy) -> Result<OwnedFd, String> {
    let all = AccessFs::from_all(ABI_MAX);
    let mut attr = Ruleset::default().handle_access(all).map_err(|e| e.to_string())?;
    if policy.tcp_only_to.is_some() {
        attr = attr.handle_access(AccessNet::ConnectTcp).map_err(|e| e.to_string())?;
    }
    attr = attr.scope(Scope::Signal | Scope::AbstractUnixSocket).map_err(|e| e.to_string())?;
    let mut created = attr.create().map_err(|e| e.to_string())?;
    let denied: Vec<PathBuf> = policy.denied.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
    let ancestors: BTreeSet<PathBuf> = denied.iter().flat_map(|d| d.ancestors().skip(1).map(Path::to_path_buf)).collect();
    for dir in &ancestors {
        let Ok(dirfd) = open_path(dir, true) else { continue };
        created = created.add_rule(PathBeneath::new(dirfd.as_fd(), AccessFs::ReadDir)).map_err(|e| e.to_string())?;
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            // A symlink is skipped: its target is covered where it lives, and
            // following one could grant the home itself.
            if kind.is_symlink() || denied.contains(&path) || ancestors.contains(&path) {
                continue;
            }
            let Ok(fd) = open_at(&dirfd, &entry.file_name()) else { continue };
            let rights = if kind.is_dir() { all } else { file_rights() };
            created = created.add_rule(PathBeneath::new(fd.as_fd(), rights)).map_err(|e| e.to_string())?;
        }
    }
    for path in &policy.readable {
        if let Ok(fd) = open_path(path, false) {
            created = created.add_rule(PathBeneath::new(fd.as_fd(), AccessFs::ReadFile)).map_err(|e| e.to_string())?;
        }
    }
    if let Some(port) = policy.tcp_only_to {
        created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp)).map_err(|e| e.to_string())?;
    }
    Option::<OwnedFd>::from(created).ok_or_else(|| "Landlock refused to create a ruleset".to_owned())
}

fn open_path(p: &Path, dir: bool) -> nix::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    if dir {
        flags |= OFlag::O_DIRECTORY;
    }
    nix::fcntl::open(p, flags, nix::sys::stat::Mode::empty()).map(|fd| {
        // SAFETY: `open` returned a fresh descriptor we now own.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    })
}

fn open_at(dir: &OwnedFd, name: &std::ffi::OsStr) -> nix::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    use std::os::fd::AsRawFd;
    nix::fcntl::openat(Some(dir.as_raw_fd()), name, OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, nix::sys::stat::Mode::empty())
        .map(|fd| {
            // SAFETY: `openat` returned a fresh descriptor we now own.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        })
}
