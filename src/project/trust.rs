//! Trust: a project file is inert until `authsome allow`, like `direnv allow`,
//! but less annoying.
//!
//! Trust is bound to where the file takes effect and to a digest of its
//! *security-relevant meaning*, computed from the parsed model in a canonical
//! order rather than from the bytes: editing a comment, reflowing a table or
//! reordering keys keeps trust, while adding a provider, changing a connection,
//! a scope, a variable, a custom definition (including the referenced JSON
//! file's content), the command, its environment or the proxy policy drops it.
//!
//! The path is the file's directory where it takes effect (symbolic links
//! resolved) joined with its own name (`config::in_place`): a linked or
//! hard-linked `authsome.toml` elsewhere is a project of its own, allowed on
//! its own. Nothing a file names is opened before this directory's record
//! allows exactly those files ([`may_read`]).
//!
//! A record also names the bundled or user definitions the project's own
//! definitions took the place of when it was allowed (confirmed with
//! `allow --replace`). One that appears later (the user adds their own
//! definition of that name, a release bundles one) was never confirmed: the
//! user's credentials of that name would silently follow the project's
//! definition, so trust drops ([`Trust::Replaces`]) until `allow --replace`.
//!
//! Records live in `<home>/trust/<sha256(path)>.json`; `deny` replaces the
//! record with a denial.

use super::config::{Declared, Definition, Project, Replaced, Requirement, Run};
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
    /// Allowed as it is, but these of its definitions now take the place of a
    /// bundled or user definition they did not replace when it was allowed.
    Replaces(Vec<Replaced>),
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
            Trust::Replaces(_) => "replacing a definition since allowed",
            Trust::Denied => "blocked",
        }
    }
    /// Stable machine word (`--json`).
    pub fn code(&self) -> &'static str {
        match self {
            Trust::Allowed => "allowed",
            Trust::NotAllowed => "not_allowed",
            Trust::Changed => "changed",
            Trust::Replaces(_) => "replaces",
            Trust::Denied => "denied",
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    path: PathBuf,
    digest: String,
    allowed_at: u64,
    /// The `[definitions]` entries allowed to be read. Absent in records
    /// written before it existed: those projects' definitions are read (as
    /// small regular files inside the project) and the digest decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    definitions: Option<Vec<Declared>>,
    /// The definitions the project's own replaced when it was allowed (none
    /// in records written before it existed, which therefore hold only for
    /// projects that replace nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    replaces: Vec<Replaced>,
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
    let Project { file: _, dir: _, requirements, definitions, unread, run, undeclared_hosts, store_id } = project;
    let requirements: Vec<_> = requirements.iter().map(canonical_requirement).collect();
    let definitions: Vec<_> = definitions
        .iter()
        .map(|d| {
            // `declared` is `path` as written: the absolute path decides.
            // What it replaces is not the file's meaning but the home's:
            // `check` compares it with the record on its own.
            let Definition { name, path, declared: _, def, replaces: _ } = d;
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
    // A project whose definitions were not read is not the project anyone
    // allowed: its digest matches no record.
    if !unread.is_empty() {
        v["unread"] = serde_json::json!(unread);
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

/// Whether the files `declared` (a project's `[definitions]`, as written)
/// of the project file `file` may be opened: only when this directory's
/// record allows exactly these entries. A file never allowed here, denied,
/// or naming other files than were allowed opens nothing.
pub fn may_read(home: &Home, file: &Path, declared: &[Declared]) -> bool {
    match read_record(home, file) {
        Some(r) if r.digest != DENIED => r.definitions.as_deref().is_none_or(|allowed| allowed == declared),
        _ => false,
    }
}

/// The bundled or user definitions `project`'s definitions replace here and now.
fn replacing(project: &Project) -> impl Iterator<Item = &Replaced> {
    project.definitions.iter().filter_map(|d| d.replaces.as_ref())
}

/// Whether `project` is allowed as it is now, replacing no definition it
/// did not replace when it was allowed.
pub fn check(home: &Home, project: &Project) -> Trust {
    match read_record(home, &project.file) {
        None => Trust::NotAllowed,
        Some(r) if r.digest == DENIED => Trust::Denied,
        Some(r) if r.digest == digest(project) => {
            let new: Vec<Replaced> = replacing(project).filter(|x| !r.replaces.contains(x)).cloned().collect();
            if new.is_empty() {
                Trust::Allowed
            } else {
                Trust::Replaces(new)
            }
        }
        Some(_) => Trust::Changed,
    }
}

/// Trust `project` as it is now (`authsome allow`).
pub fn allow(home: &Home, project: &Project) -> Result<()> {
    if !project.unread.is_empty() {
        return Err(Error::other(format!("cannot allow {}: its definitions were not read", project.file.display())));
    }
    let dir = home.trust_dir();
    ensure_private_dir(&dir).map_err(|e| Error::other(format!("cannot create {}: {e}", dir.display())))?;
    let read = project.definitions.iter().map(|d| Declared { name: d.name.clone(), path: d.declared.clone() }).collect();
    let rec = Record {
        path: project.file.clone(),
        digest: digest(project),
        allowed_at: crate::fsutil::now_unix(),
        definitions: Some(read),
        replaces: replacing(project).cloned().collect(),
    };
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
    let rec = Record {
        path: file.to_owned(),
        digest: DENIED.to_owned(),
        allowed_at: crate::fsutil::now_unix(),
        definitions: None,
        replaces: Vec::new(),
    };
    let body = serde_json::to_vec_pretty(&rec).expect("record serializes");
    crate::fsutil::atomic_write(&record_path(home, file), &body, 0o600).map_err(|e| Error::other(format!("cannot revoke trust: {e}")))?;
    Ok(was)
}

/// The command that trusts this project, as users should type it.
pub fn allow_command(project: &Project) -> String {
    allow_replacing(project, &[])
}

/// The same, confirming that the project's definitions of `names` take the
/// place of the bundled or user ones (`--replace NAME` each).
pub fn allow_replacing(project: &Project, names: &[&str]) -> String {
    let flags: String = names.iter().map(|n| format!(" --replace {}", crate::text::shell_quote(n))).collect();
    format!("authsome allow{flags} {}", crate::text::shell_quote(&project.dir.display().to_string()))
}

/// The command that makes a project in `state` allowed: with `--replace` for
/// every definition it replaces when only a new replacement stands in the way.
pub fn fix_command(project: &Project, state: &Trust) -> String {
    match state {
        Trust::Replaces(_) => allow_replacing(project, &replacing(project).map(|r| r.name.as_str()).collect::<Vec<_>>()),
        _ => allow_command(project),
    }
}

/// The one line shown when an untrusted project is about to be activated.
pub fn refusal(project: &Project, state: &Trust) -> String {
    let clash;
    let why = match state {
        Trust::Changed => "changed since it was allowed",
        Trust::Denied => "is blocked (`authsome deny`)",
        Trust::Replaces(new) => {
            let what: Vec<String> = new.iter().map(|r| format!("its definition of {} has come to replace {}", r.name, r.whose())).collect();
            let names: Vec<&str> = new.iter().map(|r| r.name.as_str()).collect();
            clash = format!(
                "was allowed, but since then {}: your {} credentials would follow the project's definition",
                what.join(" and "),
                names.join(", ")
            );
            &clash
        }
        _ => "is not allowed yet",
    };
    let mut line = format!("{} {why}; review it, then run `{}`", project.file.display(), fix_command(project, state));
    if !project.unread.is_empty() {
        let files: Vec<&str> = project.unread.iter().map(|d| d.path.as_str()).collect();
        line.push_str(&format!(" (allowing it reads {})", files.join(", ")));
    }
    line
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
    fn records_say_which_definitions_may_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path(), "default");
        let p = project(BASE);
        let acme = [Declared { name: "acme".into(), path: "acme.json".into() }];
        assert!(!may_read(&home, &p.file, &[]), "never allowed here: nothing is opened");
        allow(&home, &p).unwrap();
        assert!(may_read(&home, &p.file, &[]));
        assert!(!may_read(&home, &p.file, &acme), "a file naming other definitions than were allowed opens nothing");
        deny(&home, &p.file).unwrap();
        assert!(!may_read(&home, &p.file, &[]));
        let mut unread = p.clone();
        unread.unread = acme.to_vec();
        assert!(allow(&home, &unread).is_err(), "a project whose definitions were not read cannot be allowed");
    }

    #[test]
    fn records_written_before_definitions_were_recorded_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path(), "default");
        let p = project(BASE);
        ensure_private_dir(&home.trust_dir()).unwrap();
        let old = serde_json::json!({"path": p.file, "digest": digest(&p), "allowed_at": 1});
        crate::fsutil::atomic_write(&record_path(&home, &p.file), old.to_string().as_bytes(), 0o600).unwrap();
        assert!(may_read(&home, &p.file, &[Declared { name: "acme".into(), path: "acme.json".into() }]));
        assert_eq!(check(&home, &p), Trust::Allowed);
    }

    /// A home and a project directory beside it defining `inhouse` and `openai`.
    fn home_and_defs() -> (tempfile::TempDir, Home, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::at(tmp.path().join("home"), "default");
        let dir = tmp.path().join("p");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["inhouse", "openai"] {
            let def = format!(
                r#"{{"name": "{name}", "auth_type": "api_key", "flow": "api_key", "api_url": "api.{name}.test", "api_key": {{"env_var": "K"}}}}"#
            );
            std::fs::write(dir.join(format!("{name}.json")), def).unwrap();
        }
        (tmp, home, dir)
    }

    /// `text` as `dir`'s project file, read into `home`'s registry as it is now.
    fn project_in(home: &Home, dir: &Path, text: &str) -> Project {
        let mut reg = Registry::load(home).unwrap();
        super::super::config::parse(text, &dir.join("authsome.toml"), &mut reg).unwrap()
    }

    /// Install `<home>/providers/NAME.json` (a user definition).
    fn user_definition(home: &Home, name: &str) {
        std::fs::create_dir_all(home.providers_dir()).unwrap();
        let def = format!(
            r#"{{"name": "{name}", "auth_type": "api_key", "flow": "api_key", "api_url": "users-own.{name}.test", "api_key": {{"env_var": "K"}}}}"#
        );
        std::fs::write(home.providers_dir().join(format!("{name}.json")), def).unwrap();
    }

    #[test]
    fn a_replacement_that_appears_after_allow_drops_trust_until_allowed_with_it() {
        let (_tmp, home, dir) = home_and_defs();
        let text = "[definitions]\ninhouse = \"inhouse.json\"\n[providers.inhouse]\n";
        allow(&home, &project_in(&home, &dir, text)).unwrap();
        assert_eq!(check(&home, &project_in(&home, &dir, text)), Trust::Allowed);
        user_definition(&home, "inhouse");
        let now = project_in(&home, &dir, text);
        let Trust::Replaces(new) = check(&home, &now) else { panic!("{:?}", check(&home, &now)) };
        assert_eq!(
            (new.len(), new[0].whose()),
            (1, format!("your definition of inhouse ({})", home.providers_dir().join("inhouse.json").display()))
        );
        let said = refusal(&now, &Trust::Replaces(new));
        assert!(
            said.contains("has come to replace your definition of inhouse") && said.contains("`authsome allow --replace inhouse "),
            "{said}"
        );
        allow(&home, &now).unwrap();
        assert_eq!(check(&home, &now), Trust::Allowed, "allowed as it replaces now");
    }

    #[test]
    fn a_replaced_bundled_definition_becoming_the_users_own_drops_trust() {
        let (_tmp, home, dir) = home_and_defs();
        let text = "[definitions]\nopenai = \"openai.json\"\n[providers.openai]\n";
        allow(&home, &project_in(&home, &dir, text)).unwrap();
        assert_eq!(check(&home, &project_in(&home, &dir, text)), Trust::Allowed, "replacing the bundled openai was confirmed");
        user_definition(&home, "openai");
        let now = project_in(&home, &dir, text);
        assert!(matches!(check(&home, &now), Trust::Replaces(ref r) if r[0].path.is_some()), "{:?}", check(&home, &now));
        assert!(fix_command(&now, &check(&home, &now)).starts_with("authsome allow --replace openai "));
    }

    #[test]
    fn old_records_hold_for_definitions_replacing_nothing_only() {
        let (_tmp, home, dir) = home_and_defs();
        ensure_private_dir(&home.trust_dir()).unwrap();
        for (name, expected) in [("inhouse", Trust::Allowed), ("openai", Trust::Replaces(Vec::new()))] {
            let p = project_in(&home, &dir, &format!("[definitions]\n{name} = \"{name}.json\"\n[providers.{name}]\n"));
            let old = serde_json::json!({"path": p.file, "digest": digest(&p), "allowed_at": 1});
            crate::fsutil::atomic_write(&record_path(&home, &p.file), old.to_string().as_bytes(), 0o600).unwrap();
            assert_eq!(std::mem::discriminant(&check(&home, &p)), std::mem::discriminant(&expected), "{name}");
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
