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

use super::config::Project;
use crate::error::{Error, Result};
use crate::paths::{ensure_private_dir, Home};
use std::io::IsTerminal;
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
}

impl Trust {
    /// The word used in `status` output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trust::Allowed => "allowed",
            Trust::NotAllowed => "not allowed",
            Trust::Changed => "changed since allowed",
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    path: PathBuf,
    digest: String,
    allowed_at: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// The canonical description of everything that decides what a run can do.
/// Field order is fixed here; maps are sorted; comments and layout never appear.
pub fn canonical(project: &Project) -> serde_json::Value {
    let requirements: Vec<_> = project
        .requirements
        .iter()
        .map(|r| {
            serde_json::json!({
                "provider": r.provider,
                "connection": r.connection,
                "scopes": r.scopes,
                "optional": r.optional,
                "vars": r.vars,
                "placeholder": r.placeholder,
                "secret_env": r.secret_env,
            })
        })
        .collect();
    let definitions: Vec<_> =
        project.definitions.iter().map(|d| serde_json::json!({"name": d.name, "path": d.path, "definition": d.def})).collect();
    let mut v = serde_json::json!({
        "version": 1,
        "requirements": requirements,
        "definitions": definitions,
        "command": project.run.command,
        "env": project.run.env,
        "undeclared_hosts": project.undeclared_hosts.as_str(),
    });
    // Only when present, so files without it keep the digest they were trusted with.
    if let Some(id) = &project.store_id {
        v["store"] = serde_json::json!(id);
    }
    v
}

/// SHA-256 of [`canonical`], hex.
pub fn digest(project: &Project) -> String {
    sha256(canonical(project).to_string().as_bytes())
}

fn record_path(home: &Home, file: &Path) -> PathBuf {
    home.trust_dir().join(format!("{}.json", &sha256(file.as_os_str().as_encoded_bytes())[..32]))
}

fn read_record(home: &Home, file: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(home, file)).ok()?;
    serde_json::from_str::<Record>(&text).ok().filter(|r| r.path == file)
}

/// Whether `project` is allowed as it is now.
pub fn check(home: &Home, project: &Project) -> Trust {
    match read_record(home, &project.file) {
        None => Trust::NotAllowed,
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

/// Revoke trust in the project file `file` (`authsome deny`); works even when
/// the file no longer parses. Returns whether it was trusted before.
pub fn deny(home: &Home, file: &Path) -> Result<bool> {
    match std::fs::remove_file(record_path(home, file)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::other(format!("cannot revoke trust: {e}"))),
    }
}

/// The command that trusts this project, as users should type it.
pub fn allow_command(project: &Project) -> String {
    format!("authsome allow {}", shell_quote(&project.dir.display().to_string()))
}

/// Quote `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-:,=+@%".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The one line shown when an untrusted project is about to be activated.
pub fn refusal(project: &Project, state: &Trust) -> String {
    let why = match state {
        Trust::Changed => "changed since it was allowed",
        _ => "is not allowed yet",
    };
    format!("{} {why}; review it, then run `{}`", project.file.display(), allow_command(project))
}

/// A short human summary of what allowing grants, shown before asking.
pub fn summary(project: &Project) -> String {
    let mut out = String::new();
    for r in &project.requirements {
        let scopes = if r.scopes.is_empty() { String::new() } else { format!(" [{}]", r.scopes.join(", ")) };
        let opt = if r.optional { " (optional)" } else { "" };
        out.push_str(&format!("  provider  {}{scopes}{opt}\n", r.label()));
    }
    for d in &project.definitions {
        out.push_str(&format!("  defines   {} from {}\n", d.name, d.path.display()));
    }
    if let Some(c) = &project.run.command {
        out.push_str(&format!("  command   {}\n", c.display()));
    }
    for k in project.run.env.keys() {
        out.push_str(&format!("  env       {k}\n"));
    }
    out.push_str(&format!("  proxy     undeclared hosts: {}\n", project.undeclared_hosts.as_str()));
    out
}

/// Make sure `project` may be activated. Allowed: fine. Otherwise, on a
/// terminal, show what it asks for and offer to allow it; without one (CI,
/// pipes, `exec`) never prompt: fail with one line naming the command to run.
pub fn require(home: &Home, project: &Project, may_prompt: bool) -> Result<()> {
    let state = check(home, project);
    if state == Trust::Allowed {
        return Ok(());
    }
    let interactive = may_prompt && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive {
        return Err(Error::bad_input(refusal(project, &state)));
    }
    let verb = if state == Trust::Changed { "changed since you allowed it" } else { "is not allowed yet" };
    eprintln!("{} {verb}. It asks for:\n{}", project.file.display(), summary(project));
    let answer = crate::ui::prompt_line("Allow it? [y/N] ").map_err(|e| Error::other(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        allow(home, project)?;
        Ok(())
    } else {
        Err(Error::bad_input(refusal(project, &state)))
    }
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
        assert!(require(&home, &edited, false).unwrap_err().message.contains("authsome allow /p"));
        assert!(deny(&home, &p.file).unwrap());
        assert_eq!(check(&home, &p), Trust::NotAllowed);
        assert!(!deny(&home, &p.file).unwrap());
    }

    #[test]
    fn quoting_is_only_added_when_needed() {
        assert_eq!(shell_quote("/home/me/bot"), "/home/me/bot");
        assert_eq!(shell_quote("/home/me/my bot"), "'/home/me/my bot'");
        assert_eq!(shell_quote("/it's"), "'/it'\\''s'");
    }
}
