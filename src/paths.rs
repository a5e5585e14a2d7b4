//! Where authsome keeps its files (SPEC §1), resolved once from the environment.

use std::path::{Path, PathBuf};

/// Name of the profile used when neither `--profile` nor `AUTHSOME_PROFILE` is given.
pub const DEFAULT_PROFILE: &str = "default";

/// The authsome home directory and everything under it.
///
/// Holding the paths in one value keeps the layout in a single place: a new file
/// under the home gets a method here, never an ad-hoc `join` elsewhere.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    profile: String,
}

impl Home {
    /// `$AUTHSOME_HOME`, else `~/.authsome`; profile from the argument, else
    /// `$AUTHSOME_PROFILE`, else `default`.
    pub fn from_env(profile: Option<&str>) -> Home {
        let root = match std::env::var_os("AUTHSOME_HOME") {
            Some(h) if !h.is_empty() => PathBuf::from(h),
            _ => {
                let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
                home.join(".authsome")
            }
        };
        let profile = profile
            .map(str::to_owned)
            .or_else(|| std::env::var("AUTHSOME_PROFILE").ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
        Home { root, profile }
    }

    /// Build a home at an explicit place (tests, tools).
    pub fn at(root: impl Into<PathBuf>, profile: &str) -> Home {
        Home { root: root.into(), profile: profile.to_owned() }
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The active profile name.
    pub fn profile(&self) -> &str {
        &self.profile
    }
    /// User provider overrides; a file here wins over the bundled one.
    pub fn providers_dir(&self) -> PathBuf {
        self.root.join("providers")
    }
    /// Encrypted vault of the active profile.
    pub fn vault_file(&self) -> PathBuf {
        self.root.join("vaults").join(format!("{}.vault", self.profile))
    }
    /// Lock file serialising vault writers of the active profile.
    pub fn vault_lock_file(&self) -> PathBuf {
        self.root.join("vaults").join(format!("{}.lock", self.profile))
    }
    /// Lock files that serialise token refreshes across processes.
    pub fn refresh_lock_dir(&self) -> PathBuf {
        self.root.join("locks")
    }
    /// Fallback vault key when neither the environment nor a keyring provides one.
    pub fn key_file(&self) -> PathBuf {
        self.root.join("vault.key")
    }
    /// Audit log of injections and refusals, JSON lines.
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.log")
    }
    /// Trusted project files (`authsome allow`).
    pub fn trust_dir(&self) -> PathBuf {
        self.root.join("trust")
    }
    /// Private per-run files (CA bundles, daemon sockets); mode 0700.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    /// One directory per project daemon (the shell hook's background proxies).
    pub fn daemons_dir(&self) -> PathBuf {
        self.run_dir().join("daemons")
    }
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

/// The error for a path [`unsafe_reason`] refused, naming it and the fix.
pub fn unsafe_error(path: &Path, reason: &str) -> crate::error::Error {
    let fix = if reason.contains("symbolic link") {
        "remove the link and let authsome create a real one".to_owned()
    } else if reason.contains("owned by") {
        format!("remove it, or `chown` it to yourself after checking its contents ({})", path.display())
    } else {
        format!("check its contents, then run `chmod go-w {}` (or `authsome doctor --fix`)", path.display())
    };
    crate::error::Error::other(format!(
        "refusing to use {}: it {reason}, so another user could have planted files or links in it; {fix}",
        path.display()
    ))
}

impl Home {
    /// Everything under the home authsome reads or writes, with whether a
    /// link may be followed there (only the home itself may be a link).
    pub fn checked_paths(&self) -> Vec<(PathBuf, bool)> {
        let mut out = vec![(self.root.clone(), true)];
        for p in [
            self.providers_dir(),
            self.root.join("vaults"),
            self.vault_file(),
            self.vault_lock_file(),
            self.key_file(),
            self.audit_log(),
            self.trust_dir(),
            self.run_dir(),
            self.daemons_dir(),
            self.refresh_lock_dir(),
        ] {
            out.push((p, false));
        }
        out
    }

    /// Create the home (mode 0700) if it does not exist yet; an existing one
    /// is left as it is ([`Home::check`] judges it).
    pub fn create_root(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if std::fs::metadata(&self.root).is_err() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.root)?;
        }
        Ok(())
    }

    /// Refuse a home that another user could have written to (see
    /// [`unsafe_reason`]): the first offending path, with the fix.
    pub fn check(&self) -> crate::error::Result<()> {
        for (path, follow) in self.checked_paths() {
            if let Some(why) = unsafe_reason(&path, follow) {
                return Err(unsafe_error(&path, &why));
            }
        }
        Ok(())
    }
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
        return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, unsafe_error(dir, &why).message));
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
