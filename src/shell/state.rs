//! The shell's own record of what authsome changed (base64url of JSON), kept
//! in the shell variable [`SHELL_VAR`], which is *not* exported: prior values
//! may be secrets (a token the user had exported, a corporate proxy password,
//! the vault key), and the children of an activated shell must never see them.
//! The hook hands it to `authsome export` as [`STATE_VAR`] for that one call.
//!
//! It holds the project file that is (or was refused as) active, the identity
//! (`stat` fields) of every file whose change must trigger a re-evaluation, and
//! the prior value of every variable authsome set, `None` meaning "was unset".
//! Leaving a project restores exactly those values; deciding that nothing
//! changed needs only `stat` calls against the recorded identities.

use crate::fsutil::FileId;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How `authsome export` receives the encoded [`State`] (and the key of the
/// state in `export json` output, for tools that keep it themselves).
pub const STATE_VAR: &str = "AUTHSOME_SHELL_STATE";

/// The unexported shell variable the hooks keep the state in.
pub const SHELL_VAR: &str = "__authsome_state";

/// Format version; a state of another version is discarded (and its saved values with it).
const VERSION: u32 = 1;

/// A watched path and its identity when the state was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    /// The path stat'ed.
    pub path: PathBuf,
    /// Its identity then (`None`: it did not exist).
    pub id: Option<FileId>,
}

impl Watched {
    /// Record `path` as it is now.
    pub fn now(path: PathBuf) -> Watched {
        let id = FileId::of(&path);
        Watched { path, id }
    }
    /// Whether the path still has the recorded identity.
    pub fn unchanged(&self) -> bool {
        FileId::of(&self.path) == self.id
    }
}

/// What the shell looks like from authsome's side after the last export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub v: u32,
    /// The authsome home the state was computed with (a different home re-evaluates).
    pub home: PathBuf,
    /// The profile the state was computed with.
    pub profile: String,
    /// The project file found from the directory (active or refused).
    pub project: PathBuf,
    /// Whether the project was activated (false: untrusted or broken, already reported).
    pub active: bool,
    /// Files whose identity decides "nothing changed"; the project file comes first.
    pub watched: Vec<Watched>,
    /// Prior value of every variable authsome set (`None`: it was unset).
    pub saved: BTreeMap<String, Option<String>>,
}

impl State {
    /// A new state for `project`.
    pub fn new(
        home: PathBuf,
        profile: String,
        project: PathBuf,
        active: bool,
        watched: Vec<Watched>,
        saved: BTreeMap<String, Option<String>>,
    ) -> State {
        State { v: VERSION, home, profile, project, active, watched, saved }
    }

    /// The value stored in [`STATE_VAR`].
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("state serialises");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Parse a [`STATE_VAR`] value; `None` for anything malformed or of another version.
    pub fn decode(s: &str) -> Option<State> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim()).ok()?;
        let state: State = serde_json::from_slice(&json).ok()?;
        (state.v == VERSION).then_some(state)
    }

    /// True when the state still describes `project` under `home` and no watched file changed.
    pub fn still_current(&self, home: &Path, project: &Path) -> bool {
        self.home == home && self.project == project && self.watched.iter().all(Watched::unchanged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let mut saved = BTreeMap::new();
        saved.insert("A".to_owned(), None);
        saved.insert("B".to_owned(), Some("x'\n$é".to_owned()));
        let s =
            State::new("/h".into(), "default".into(), "/p/authsome.toml".into(), true, vec![Watched::now("/nonexistent".into())], saved);
        assert_eq!(State::decode(&s.encode()), Some(s));
        assert_eq!(State::decode("not base64!"), None);
        assert_eq!(State::decode("e30"), None); // "{}"
    }

    #[test]
    fn file_id_changes_on_edit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "a").unwrap();
        let w = Watched::now(f.clone());
        assert!(w.unchanged());
        std::fs::write(&f, "ab").unwrap();
        assert!(!w.unchanged());
        let gone = Watched::now(dir.path().join("missing"));
        assert!(gone.unchanged());
        std::fs::write(dir.path().join("missing"), "").unwrap();
        assert!(!gone.unchanged());
    }
}
