//! Where authsome keeps its files (README.md lists them), resolved once from the environment.

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

    /// Create the home (mode 0700) and `providers/` in it, so the documented
    /// `authsome inspect discord > ~/.authsome/providers/discord.json` works
    /// once authsome has been used.
    /// The home itself may be a link (only it); [`Home::check`] judges it.
    pub fn ensure(&self) -> std::io::Result<()> {
        self.create_root()?;
        crate::fsutil::ensure_private_dir(&self.providers_dir())
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
    /// Per-home settings (`[store]`, `[profiles.NAME.store]`): which team store a profile uses.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// The team key of a team store when `AUTHSOME_STORE_KEY` does not give it (mode 0600).
    pub fn store_key_file(&self) -> PathBuf {
        self.root.join("store.key")
    }
    /// Audit log of injections and refusals, JSON lines.
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.log")
    }
    /// Trusted project files (`authsome allow`).
    pub fn trust_dir(&self) -> PathBuf {
        self.root.join("trust")
    }
    /// Private per-run files (CA bundles of `run`/`up`/`exec`, the daemons' directories); mode 0700.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    /// One directory per project daemon (the shell hook's background proxies).
    pub fn daemons_dir(&self) -> PathBuf {
        self.run_dir().join("daemons")
    }
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
    /// [`crate::fsutil::unsafe_reason`]): the first offending path, with the fix.
    pub fn check(&self) -> crate::error::Result<()> {
        for (path, follow) in self.checked_paths() {
            if let Some(why) = crate::fsutil::unsafe_reason(&path, follow) {
                return Err(unsafe_error(&path, &why));
            }
        }
        Ok(())
    }
}

/// The error for a path [`crate::fsutil::unsafe_reason`] refused, naming it and the fix.
pub fn unsafe_error(path: &Path, reason: &str) -> crate::error::Error {
    crate::error::Error::other(crate::fsutil::unsafe_message(path, reason))
}
