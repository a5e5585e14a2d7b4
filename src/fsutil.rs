//! File primitives every store shares: atomic private writes, cross-process
//! locks, and file identities (what `stat` says changed).
//!
//! Kept in one place so the vault, trust store, provider overrides and refresh
//! locks all get the same guarantees (mode 0600, fsync before rename, flock).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The identity of a file as `stat` sees it: any edit, replacement (rename over
/// it) or `touch` changes at least one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
}

impl FileId {
    /// Identity of `path` (following symlinks), `None` when it does not exist.
    pub fn of(path: &Path) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|m| FileId::from_metadata(&m))
    }

    /// Identity of the file `m` describes (`File::metadata` of an open file).
    pub fn from_metadata(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        }
    }

    /// The modification time it records.
    pub fn modified(&self) -> std::time::SystemTime {
        let since_epoch =
            std::time::Duration::from_secs(self.mtime.max(0) as u64) + std::time::Duration::from_nanos(self.mtime_ns.max(0) as u64);
        std::time::SystemTime::UNIX_EPOCH + since_epoch
    }
}

/// Write `data` to `path` atomically: a private temp file in the same directory,
/// fsync, rename over the target, fsync the directory. Readers see the old or
/// the new content, never a mix; a crash leaves at worst a stray temp file.
pub fn atomic_write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, data, mode, true)
}

/// [`atomic_write`] without the two fsyncs, for files that need not survive a
/// crash (a run's CA bundle, a cache): readers still never see a mix, and a
/// busy disk cannot make a command wait for its flushes (tens of milliseconds).
pub fn atomic_write_volatile(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, data, mode, false)
}

fn replace(path: &Path, data: &[u8], mode: u32, durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}.{}", std::process::id(), nonce()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Open a file under the home for reading without following a symbolic link
/// in its last component: another user's link must never be read through.
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC).open(path)
}

/// Read a whole text file under the home without following a link ([`open_nofollow`]).
pub fn read_private(path: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut open_nofollow(path)?, &mut s)?;
    Ok(s)
}

/// The most a file a repository names is read up to (`authsome.toml`, a
/// project's provider definitions): any real one is a few KiB, and a huge
/// or endless one must not eat memory.
pub const MAX_PROJECT_FILE: u64 = 256 * 1024;

/// Read a text file a repository put there, as nothing but a small regular
/// file: opened without blocking (a FIFO never waits for a writer), `fstat`-ed
/// before any byte is read (a device, FIFO, socket or directory is refused,
/// so a terminal is never read), and refused beyond `cap` bytes. With
/// `follow` false a symbolic link in the last component is refused too.
pub fn read_small_regular(path: &Path, follow: bool, cap: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::FileTypeExt;
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC;
    if !follow {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(|e| match e.raw_os_error() {
        Some(nix::libc::ELOOP) if !follow => Error::new(ErrorKind::InvalidInput, "is a symbolic link"),
        _ => e,
    })?;
    let meta = file.metadata()?;
    let t = meta.file_type();
    let kind = if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    };
    if let Some(kind) = kind {
        return Err(Error::new(ErrorKind::InvalidInput, format!("is {kind}, not a regular file")));
    }
    let too_large = || Error::new(ErrorKind::InvalidData, format!("is larger than {} KiB", cap / 1024));
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // It may grow while read: never more than the cap plus one byte.
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| Error::new(ErrorKind::InvalidData, "is not UTF-8 text"))
}

/// Create `path` with `data` only if it does not exist yet, atomically: the
/// content is complete before the name appears. Returns `false` when another
/// process got there first (its file is kept).
pub fn create_exclusive(path: &Path, data: &[u8], mode: u32) -> std::io::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".create.tmp.{}.{}", std::process::id(), nonce()));
    let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    let linked = f.write_all(data).and_then(|_| f.sync_all()).and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn nonce() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// An exclusive advisory lock (flock) held until dropped. Shared by every
/// authsome process on the machine, so it serialises vault writers and token
/// refreshes across processes, not just threads.
pub struct FileLock {
    _lock: nix::fcntl::Flock<File>,
}

impl FileLock {
    /// Block until the lock on `path` (created if missing, mode 0600) is ours.
    /// A link at `path` is refused, never followed.
    pub fn acquire(path: &Path) -> std::io::Result<FileLock> {
        FileLock::open(path, true)
    }

    /// Like [`FileLock::acquire`], but fails (`NotFound`) instead of creating
    /// the file: for a process that must notice its directory was deleted
    /// rather than recreate files in it.
    pub fn acquire_existing(path: &Path) -> std::io::Result<FileLock> {
        FileLock::open(path, false)
    }

    fn open(path: &Path, create: bool) -> std::io::Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))?;
        Ok(FileLock { _lock: lock })
    }
}

/// Unix time in seconds, the unit of every stored timestamp.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Why `path` must not be used, like ssh's StrictModes: a symbolic link
/// (unless `follow`), owned by another user, or writable by group or others.
/// `None` when it is missing or fine. Another user who can write a file or
/// directory under the home could plant a provider definition or a link.
pub fn unsafe_reason(path: &Path, follow: bool) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    let meta = if meta.file_type().is_symlink() {
        if !follow {
            return Some("is a symbolic link (authsome follows no links under its home)".into());
        }
        std::fs::metadata(path).ok()?
    } else {
        meta
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Some(format!("is owned by uid {}, not by you (uid {me})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!("is writable by other users (mode {:o})", meta.mode() & 0o7777));
    }
    None
}

/// The message for a path [`unsafe_reason`] refused, naming it and the fix.
pub fn unsafe_message(path: &Path, reason: &str) -> String {
    let fix = if reason.contains("symbolic link") {
        "remove the link and let authsome create a real one".to_owned()
    } else if reason.contains("owned by") {
        format!("remove it, or `chown` it to yourself after checking its contents ({})", path.display())
    } else {
        format!("check its contents, then run `chmod go-w {}` (or `authsome doctor --fix`)", path.display())
    };
    format!("refusing to use {}: it {reason}, so another user could have planted files or links in it; {fix}", path.display())
}

/// Create `dir` (and parents) with mode 0700 if missing. An existing `dir`
/// must be a real directory of ours that nobody else can write (see
/// [`unsafe_reason`]); if others can merely read it, it is tightened.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    if let Some(why) = unsafe_reason(dir, false) {
        return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, unsafe_message(dir, &why)));
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a directory", dir.display())));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read_and_nothing_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No writer: a blocking open would never return.
        let err = read_small_regular(&fifo, true, 1024).unwrap_err();
        assert!(err.to_string().contains("is a FIFO, not a regular file"), "{err}");
        let err = read_small_regular(Path::new("/dev/zero"), true, 1024).unwrap_err();
        assert!(err.to_string().contains("is a character device"), "{err}");
        let err = read_small_regular(dir.path(), true, 1024).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");

        let file = dir.path().join("f");
        std::fs::write(&file, "x".repeat(2048)).unwrap();
        assert_eq!(read_small_regular(&file, true, 2048).unwrap().len(), 2048);
        let err = read_small_regular(&file, true, 2047).unwrap_err();
        assert!(err.to_string().contains("is larger than 1 KiB"), "{err}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_small_regular(&link, true, 4096).is_ok());
        let err = read_small_regular(&link, false, 4096).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
    }
}
