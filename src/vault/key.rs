//! Where the vault's master key comes from: `AUTHSOME_VAULT_KEY`, then an
//! existing 0600 key file under the home (made when no keyring answered, so
//! it is the remembered source), then the OS keyring when one answers
//! quickly, and on first use the keyring or, failing that, a new key file.
//!
//! The keyring is reached through the platform's own command-line client
//! (`secret-tool` for the freedesktop Secret Service, `security` on macOS) with
//! a short timeout, so a missing or hung keyring daemon costs at most that
//! timeout and never a D-Bus dependency in the binary.

use super::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::paths::Home;
use base64::Engine as _;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Which source supplied the key (`doctor` reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `AUTHSOME_VAULT_KEY`.
    Env,
    /// The OS keyring, through the named client.
    Keyring(&'static str),
    /// The key file at this path.
    File(std::path::PathBuf),
}

impl KeySource {
    /// A short, secret-free tag recorded in the vault so a later failure can
    /// say which source sealed it.
    pub fn tag(&self) -> String {
        match self {
            KeySource::Env => "AUTHSOME_VAULT_KEY".into(),
            KeySource::Keyring(tool) => format!("the OS keyring ({tool})"),
            KeySource::File(_) => "the key file".into(),
        }
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => f.write_str("AUTHSOME_VAULT_KEY environment variable"),
            KeySource::Keyring(tool) => write!(f, "OS keyring (via {tool})"),
            KeySource::File(p) => write!(f, "key file {}", p.display()),
        }
    }
}

/// The variable that may hold the key (taken out of the environment at start;
/// see [`crate::fence::process`]).
pub const ENV_VAR: &str = "AUTHSOME_VAULT_KEY";

const KEYRING_TIMEOUT: Duration = Duration::from_millis(800);

/// Decode a base64 32-byte key.
pub fn decode_key(b64: &str) -> Result<MasterKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| Error::bad_input("AUTHSOME_VAULT_KEY is not valid base64"))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::bad_input("AUTHSOME_VAULT_KEY must decode to exactly 32 bytes (try `head -c32 /dev/urandom | base64`)"))?;
    Ok(MasterKey(arr))
}

/// Base64 of a key, the form every key source holds.
pub fn encode_key(k: &MasterKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(k.0)
}

/// Find (or, on first use, create) the master key for `home`.
///
/// A key is only ever created when no vault exists yet: inventing one beside
/// an existing vault (keyring unreachable over SSH, an empty
/// `AUTHSOME_VAULT_KEY` in a CI fork) would only make the vault look tampered
/// with, so that case is an error naming the source that sealed it and why
/// that source is out of reach.
pub fn resolve(home: &Home) -> Result<(MasterKey, KeySource)> {
    home.check()?;
    let env = crate::fence::process::secret_var(ENV_VAR);
    if let Some(v) = &env {
        if !v.is_empty() {
            return Ok((decode_key(v)?, KeySource::Env));
        }
    }
    // A key file exists only when the keyring was not usable when the key was
    // made: it is the source, remembered, and a slow or absent keyring is not
    // asked again on every command.
    let path = home.key_file();
    if let Ok(text) = crate::fsutil::read_private(&path) {
        check_key_file_mode(&path)?;
        return Ok((decode_key(&text).map_err(|e| e.context(path.display()))?, KeySource::File(path)));
    }
    let keyring = Keyring::detect();
    let account = home.root().display().to_string();
    if let Ok(kr) = &keyring {
        if let Some(k) = kr.lookup(&account) {
            return Ok((decode_key(&k).map_err(|e| e.context("OS keyring entry"))?, KeySource::Keyring(kr.tool)));
        }
    }
    if let Some(vault) = super::existing_vault(home) {
        let env_why = match env {
            Some(_) => "AUTHSOME_VAULT_KEY is set but empty",
            None => "AUTHSOME_VAULT_KEY is not set",
        };
        let keyring_why = match &keyring {
            Ok(kr) => format!("the OS keyring ({}) has no authsome entry for {account} or did not answer within 800 ms", kr.tool),
            Err(why) => format!("the OS keyring is not reachable ({why})"),
        };
        let sealed = super::sealed_by(&vault)
            .map(|s| format!("it was sealed with the key from {s}"))
            .unwrap_or_else(|| "it was sealed with a key from AUTHSOME_VAULT_KEY or the OS keyring".to_owned());
        return Err(Error::login(format!(
            "vault {} exists but its key is not reachable: {sealed}, and {env_why}, {keyring_why}, and there is no key file {}. \
             No new key was created; make that key source available and retry",
            vault.display(),
            path.display()
        )));
    }
    // First use: prefer the keyring, fall back to a private file.
    let key = MasterKey::generate();
    if let Ok(kr) = &keyring {
        if kr.store(&account, &encode_key(&key)) {
            if let Some(k) = kr.lookup(&account) {
                return Ok((decode_key(&k)?, KeySource::Keyring(kr.tool)));
            }
        }
    }
    home.create_root().map_err(|e| Error::other(format!("cannot create {}: {e}", home.root().display())))?;
    let created = crate::fsutil::create_exclusive(&path, encode_key(&key).as_bytes(), 0o600)
        .map_err(|e| Error::other(format!("cannot create key file {}: {e}", path.display())))?;
    if created {
        return Ok((key, KeySource::File(path)));
    }
    // Another process created it between our read and our create: use theirs.
    let text = crate::fsutil::read_private(&path)?;
    Ok((decode_key(&text)?, KeySource::File(path)))
}

/// Refuse a key file others can read: the key is the whole vault.
fn check_key_file_mode(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::other(format!(
            "key file {} is readable by others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

/// A keyring client that is installed and has a session to talk to.
struct Keyring {
    tool: &'static str,
}

impl Keyring {
    /// The keyring client to use, or why there is none.
    fn detect() -> std::result::Result<Keyring, &'static str> {
        if std::env::var_os("AUTHSOME_NO_KEYRING").is_some() {
            return Err("AUTHSOME_NO_KEYRING is set");
        }
        if cfg!(target_os = "macos") {
            return which::which("security").map(|_| Keyring { tool: "security" }).map_err(|_| "`security` is not installed");
        }
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            return Err("no D-Bus session: DBUS_SESSION_BUS_ADDRESS is not set, as over SSH");
        }
        which::which("secret-tool").map(|_| Keyring { tool: "secret-tool" }).map_err(|_| "`secret-tool` is not installed")
    }

    fn lookup(&self, account: &str) -> Option<String> {
        let mut cmd = if self.tool == "security" {
            let mut c = Command::new("security");
            c.args(["find-generic-password", "-s", "authsome", "-a", account, "-w"]);
            c
        } else {
            let mut c = Command::new("secret-tool");
            c.args(["lookup", "service", "authsome", "home", account]);
            c
        };
        let out = run_with_timeout(&mut cmd, None)?;
        let s = String::from_utf8(out).ok()?.trim().to_owned();
        (!s.is_empty()).then_some(s)
    }

    fn store(&self, account: &str, secret: &str) -> bool {
        if self.tool == "security" {
            // `-w` takes the secret as an argument on macOS; `security` offers no stdin form.
            let mut c = Command::new("security");
            c.args(["add-generic-password", "-s", "authsome", "-a", account, "-w", secret]);
            return run_with_timeout(&mut c, None).is_some();
        }
        let mut c = Command::new("secret-tool");
        c.args(["store", "--label=authsome vault key", "service", "authsome", "home", account]);
        run_with_timeout(&mut c, Some(secret)).is_some()
    }
}

/// Run a keyring client, giving up after [`KEYRING_TIMEOUT`]. `None` on any failure.
fn run_with_timeout(cmd: &mut Command, stdin: Option<&str>) -> Option<Vec<u8>> {
    let mut child = cmd
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(data.as_bytes());
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    return None;
                }
                let mut out = Vec::new();
                std::io::Read::read_to_end(child.stdout.as_mut()?, &mut out).ok()?;
                return Some(out);
            }
            Ok(None) if start.elapsed() < KEYRING_TIMEOUT => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
