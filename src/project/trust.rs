//! Trust: a project file is inert until `authsome allow`, like `direnv allow`,
//! but less annoying.
//!
//! Trust is bound to the file's canonical path and to a digest of its
//! *security-relevant meaning*, computed from the parsed model in a canonical
//! order rather than from the bytes: editing a comment, reflowing a table or
//! reordering keys keeps trust, while adding a provider, changing a connection,
//! a scope, a variable, a custom definition (including the referenced JSON
//! file's content), the command, its environment or the proxy policy drops it.
//!
//! Records live in `<home>/trust/<sha256(path)>.json`; `deny` deletes the record.

use super::config::{Definition, Project, Requirement, Run};
use crate::error::{Error, Result};
use crate::fsutil::ensure_private_dir;
use crate::paths::Home;
use std::path::{Path, PathBuf};

/// Whether a project may be activated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Allowed, and the content still matches.
    Allowed,
    /// Never allowed (or denied since).
    NotAllowed,
    /// Allowed once, but its security-relevant content changed since.
    Changed,
    /// Blocked with `authsome deny` (until `authsome allow`).
    Denied,
}

impl Trust {
    /// The word used in `status` output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trust::Allowed => "allowed",
            Trust::NotAllowed => "not allowed",
            Trust::Changed => "changed since allowed",
            Trust::Denied => "blocked",
        }
    }
    /// Stable machine word (`--json`).
    pub fn code(&self) -> &'static str {
        match self {
            Trust::Allowed => "allowed",
            Trust::NotAllowed => "not_allowed",
            Trust::Changed => "changed",
            Trust::Denied => "denied",
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    path: PathBuf,
    digest: String,
    allowed_at: u64,
}

fn sha256(data: &[u8]) -> String {
    crate::text::hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// The canonical description of everything that decides what a run can do.
/// Field order is fixed here; maps are sorted; comments and layout never appear.
///
/// Every struct is destructured without `..`, so a field added to the model
/// does not compile until it is either part of the digest or named here as
/// not deciding anything.
pub fn canonical(project: &Project) -> serde_json::Value {
    // Where the file is decides nothing beyond the path trust is bound to.
    let Project { file: _, dir: _, requirements, definitions, run, undeclared_hosts, store_id } = project;
    let requirements: Vec<_> = requirements.iter().map(canonical_requirement).collect();
    let definitions: Vec<_> = definitions
        .iter()
        .map(|d| {
            let Definition { name, path, def } = d;
            serde_json::json!({"name": name, "path": path, "definition": def})
        })
        .collect();
    let Run { command, env, no_fence } = run;
    let mut v = serde_json::json!({
        "version": 1,
        "requirements": requirements,
        "definitions": definitions,
        "command": command,
        "env": env,
        "undeclared_hosts": undeclared_hosts.as_str(),
    });
    // Only present when turned off, so files allowed before it existed keep their trust.
    if *no_fence {
        v["fence"] = serde_json::Value::Bool(false);
    }
    // Likewise only when present: the team store the project requires.
    if let Some(id) = store_id {
        v["store"] = serde_json::json!(id);
    }
    v
}

fn canonical_requirement(r: &Requirement) -> serde_json::Value {
    // `primary` and `location` follow from the order and layout of the file:
    // the placeholders they decide are part of the digest themselves.
    let Requirement { provider, connection, scopes, optional, vars, placeholder, secret_env, primary: _, location: _ } = r;
    serde_json::json!({
        "provider": provider,
        "connection": connection,
        "scopes": scopes,
        "optional": optional,
        "vars": vars,
        "placeholder": placeholder,
        "secret_env": secret_env,
    })
}

/// SHA-256 of [`canonical`], hex.
pub fn digest(project: &Project) -> String {
    sha256(canonical(project).to_string().as_bytes())
}

fn record_path(home: &Home, file: &Path) -> PathBuf {
    home.trust_dir().join(format!("{}.json", &sha256(file.as_os_str().as_encoded_bytes())[..32]))
}

fn read_record(home: &Home, file: &Path) -> Option<Record> {
    let text = crate::fsutil::read_private(&record_path(home, file)).ok()?;
    serde_json::from_str::<Record>(&text).ok().filter(|r| r.path == file)
}

/// Whether `project` is allowed as it is now.
pub fn check(home: &Home, project: &Project) -> Trust {
    match read_record(home, &project.file) {
        None => Trust::NotAllowed,
        Some(r) if r.digest == DENIED => Trust::Denied,
        Some(r) if r.digest == digest(project) => Trust::Allowed,
        Some(_) => Trust::Changed,
    }
}

/// Trust `project` as it is now (`authsome allow`).
pub fn allow(home: &Home, project: &Project) -> Result<()> {
    let dir = home.trust_dir();
    ensure_private_dir(&dir).map_err(|e| Error::other(format!("cannot create {}: {e}", dir.display())))?;
    let rec = Record { path: project.file.clone(), digest: digest(project), allowed_at: crate::fsutil::now_unix() };
    let body = serde_json::to_vec_pretty(&rec).expect("record serializes");
    crate::fsutil::atomic_write(&record_path(home, &project.file), &body, 0o600)
        .map_err(|e| Error::other(format!("cannot record trust in {}: {e}", dir.display())))
}

/// The digest recorded by `deny`: never the digest of a real project.
const DENIED: &str = "denied";

/// Revoke trust in the project file `file` (`authsome deny`); works even when
/// the file no longer parses. The denial is remembered, so the hook says
/// "blocked" rather than "not allowed yet". Returns whether it was trusted before.
pub fn deny(home: &Home, file: &Path) -> Result<bool> {
    let was = read_record(home, file).is_some_and(|r| r.digest != DENIED);
    let dir = home.trust_dir();
    ensure_private_dir(&dir).map_err(|e| Error::other(format!("cannot create {}: {e}", dir.display())))?;
    let rec = Record { path: file.to_owned(), digest: DENIED.to_owned(), allowed_at: crate::fsutil::now_unix() };
    let body = serde_json::to_vec_pretty(&rec).expect("record serializes");
    crate::fsutil::atomic_write(&record_path(home, file), &body, 0o600).map_err(|e| Error::other(format!("cannot revoke trust: {e}")))?;
    Ok(was)
}

/// The command that trusts this project, as users should type it.
pub fn allow_command(project: &Project) -> String {
    format!("authsome allow {}", crate::text::shell_quote(&project.dir.display().to_string()))
}

/// The one line shown when an untrusted project is about to be activated.
pub fn refusal(project: &Project, state: &Trust) -> String {
    let why = match state {
        Trust::Changed => "changed since it was allowed",
        Trust::Denied => "is blocked (`authsome deny`)",
        _ => "is not allowed yet",
    };
    format!("{} {why}; review it, then run `{}`", project.file.display(), allow_command(project))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Registry;

    fn project(text: &str) -> Project {
        let mut reg = Registry::load(&Home::at("/nonexistent-authsome-home", "default")).unwrap();
        super::super::config::parse(text, Path::new("/p/authsome.toml"), &mut reg).unwrap()
    }

    const BASE: &str = "[providers.github]\nscopes = [\"repo\", \"read:user\"]\n[providers.openai]\n[run]\ncommand = \"make\"\nenv = { A = \"1\", B = \"2\" }\n";

    #[test]
    fn layout_comments_and_key_order_keep_the_digest() {
        let reordered = "# my project\n[run]\nenv = { B = \"2\", A = \"1\" } # plain env\ncommand = \"make\"\n\n[providers.openai]\n[providers.github]\nscopes = [ \"read:user\", \"repo\" ]\n";
        assert_eq!(digest(&project(BASE)), digest(&project(reordered)));
    }

    #[test]
    fn security_relevant_changes_change_the_digest() {
        let base = digest(&project(BASE));
        for changed in [
            BASE.replace("[providers.openai]", "[providers.openai]\n[providers.discord]"),
            BASE.replace("\"repo\", ", ""),
            BASE.replace("make", "make deploy"),
            BASE.replace("B = \"2\"", "B = \"3\""),
            BASE.replace("[providers.openai]", "[providers.openai]\nconnection = \"work\""),
            BASE.replace("[providers.openai]", "[providers.openai]\nexport = [\"KEY\"]"),
            BASE.replace("[providers.openai]", "[providers.openai]\nsecret_env = \"CI_KEY\""),
            format!("{BASE}[proxy]\nundeclared_hosts = \"deny\"\n"),
        ] {
            assert_ne!(digest(&project(&changed)), base, "{changed}");
        }
    }

    #[test]
    fn allow_check_deny_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path(), "default");
        let p = project(BASE);
        assert_eq!(check(&home, &p), Trust::NotAllowed);
        allow(&home, &p).unwrap();
        assert_eq!(check(&home, &p), Trust::Allowed);
        let edited = project(&BASE.replace("make", "make clean"));
        assert_eq!(check(&home, &edited), Trust::Changed);
        assert!(refusal(&edited, &check(&home, &edited)).contains("changed since it was allowed; review it, then run `authsome allow /p`"));
        assert!(deny(&home, &p.file).unwrap());
        assert_eq!(check(&home, &p), Trust::Denied);
        assert!(refusal(&p, &check(&home, &p)).contains("is blocked"));
        assert!(!deny(&home, &p.file).unwrap());
        allow(&home, &p).unwrap();
        assert_eq!(check(&home, &p), Trust::Allowed);
    }
}
