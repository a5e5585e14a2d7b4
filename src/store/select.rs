//! Which store a profile uses, and the team key of a team store.
//!
//! Precedence: `AUTHSOME_STORE` (a `postgres://` URL), then `[profiles.NAME.store]`
//! or `[store]` of `<home>/config.toml`, then the file vault. The URL only ever
//! comes from the user's own environment or home, never from a project's
//! `authsome.toml`, so an untrusted repository cannot redirect where logins are
//! written. Nothing here is read on the fast paths: only commands that open
//! the store call [`select`].

use crate::error::{Error, Result};
use crate::paths::Home;
use crate::vault::crypto::MasterKey;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a team store lives and which one it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://user@host:port/db?sslmode=…` (a password is better given in `AUTHSOME_STORE_PASSWORD`).
    pub url: String,
    /// The team vault inside the database (`store_id`).
    pub id: String,
    /// PEM file of the CA that signed the server's certificate; else the system roots.
    pub ca: Option<PathBuf>,
}

/// The store a command opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `<home>/vaults/<profile>.vault`.
    File,
    /// A team store on PostgreSQL.
    Pg(PgConfig),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    url: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    ca: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSection {
    #[serde(default)]
    store: Option<StoreSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    store: Option<StoreSection>,
    #[serde(default)]
    profiles: BTreeMap<String, ProfileSection>,
}

/// The team store's secrets: taken out of the process environment at start
/// (like the vault key) and read with [`crate::fence::process::secret_var`].
pub const SECRET_VARS: [&str; 3] = ["AUTHSOME_STORE", "AUTHSOME_STORE_PASSWORD", "AUTHSOME_STORE_KEY"];

/// The default `store_id` when none is configured.
pub const DEFAULT_STORE_ID: &str = "default";

/// Decide which store the profile of `home` uses.
pub fn select(home: &Home) -> Result<Selection> {
    if let Some(url) = crate::fence::process::secret_var("AUTHSOME_STORE").filter(|v| !v.trim().is_empty()) {
        let id = std::env::var("AUTHSOME_STORE_ID").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_STORE_ID.to_owned());
        let ca = std::env::var_os("AUTHSOME_STORE_CA").filter(|v| !v.is_empty()).map(PathBuf::from);
        return checked(PgConfig { url: url.trim().to_owned(), id, ca }, "AUTHSOME_STORE");
    }
    let path = home.config_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Selection::File),
        Err(e) => return Err(Error::other(format!("cannot read {}: {e}", path.display()))),
    };
    let file: ConfigFile = toml::from_str(&text).map_err(|e| Error::bad_input(toml_error(&path, &text, &e)))?;
    let section = file.profiles.get(home.profile()).and_then(|p| p.store.as_ref()).or(file.store.as_ref());
    match section {
        None => Ok(Selection::File),
        Some(s) => checked(
            PgConfig { url: s.url.clone(), id: s.id.clone().unwrap_or_else(|| DEFAULT_STORE_ID.to_owned()), ca: s.ca.clone() },
            &path.display().to_string(),
        ),
    }
}

/// `file:line:column: message` for a TOML error.
fn toml_error(path: &std::path::Path, text: &str, e: &toml::de::Error) -> String {
    let (line, col) = e.span().map_or((1, 1), |s| {
        let before = &text[..s.start.min(text.len())];
        (before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1)
    });
    format!("{}:{line}:{col}: {}", path.display(), e.message())
}

fn checked(cfg: PgConfig, origin: &str) -> Result<Selection> {
    if !(cfg.url.starts_with("postgres://") || cfg.url.starts_with("postgresql://")) {
        return Err(Error::bad_input(format!("{origin}: the team store URL must start with postgres:// (got {})", redact_url(&cfg.url))));
    }
    if !crate::providers::def::valid_name(&cfg.id) {
        return Err(Error::bad_input(format!("{origin}: store id {:?} must be lower-case letters, digits, '-' or '_'", cfg.id)));
    }
    Ok(Selection::Pg(cfg))
}

/// The URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Where the team key came from (`store status` says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamKeySource {
    /// `AUTHSOME_STORE_KEY`.
    Env,
    /// `<home>/store.key`.
    File(PathBuf),
}

impl std::fmt::Display for TeamKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TeamKeySource::Env => f.write_str("AUTHSOME_STORE_KEY environment variable"),
            TeamKeySource::File(p) => write!(f, "key file {}", p.display()),
        }
    }
}

/// The team key: `AUTHSOME_STORE_KEY`, else `<home>/store.key` (must be 0600). `None` when neither exists.
pub fn team_key(home: &Home) -> Result<Option<(MasterKey, TeamKeySource)>> {
    if let Some(v) = crate::fence::process::secret_var("AUTHSOME_STORE_KEY").filter(|v| !v.trim().is_empty()) {
        let k = crate::vault::key::decode_key(&v)
            .map_err(|e| Error::bad_input(e.message.replace("AUTHSOME_VAULT_KEY", "AUTHSOME_STORE_KEY")))?;
        return Ok(Some((k, TeamKeySource::Env)));
    }
    let path = home.store_key_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(Error::other(format!(
                    "team key file {} is readable by others; run `chmod 600 {}`",
                    path.display(),
                    path.display()
                )));
            }
            let k = crate::vault::key::decode_key(&text).map_err(|e| e.context(path.display()))?;
            Ok(Some((k, TeamKeySource::File(path))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::other(format!("cannot read {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://u:hunter2@db:5432/a"), "postgres://u:REDACTED@db:5432/a");
        assert!(!redact_url("not a url hunter2").contains("hunter2"));
    }

    #[test]
    fn config_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path(), "default");
        std::fs::write(home.config_file(), "[store]\nurl = \"postgres://db/a\"\nidd = \"x\"\n").unwrap();
        let e = select(&home).unwrap_err();
        assert!(e.message.contains("config.toml:3:1"), "{}", e.message);
        std::fs::write(home.config_file(), "[profiles.work.store]\nurl = \"postgres://db/a\"\nid = \"acme\"\n").unwrap();
        assert_eq!(select(&home).unwrap(), Selection::File, "another profile's store is not this one's");
        let work = Home::at(dir.path(), "work");
        assert_eq!(select(&work).unwrap(), Selection::Pg(PgConfig { url: "postgres://db/a".into(), id: "acme".into(), ca: None }));
    }
}
