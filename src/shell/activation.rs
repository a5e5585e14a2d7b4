//! The boundary between the shell hook and project mode: given a project file,
//! what environment does it want?
//!
//! The hook only moves variables; deciding *which* variables (trust, parsing
//! `authsome.toml`, starting the project's proxy) belongs to project mode. The
//! [`Activator`] trait is that seam. Until project mode is wired in, the
//! [`StandIn`] implementation answers from a JSON file named by
//! `AUTHSOME_SHELL_STANDIN`, which lets the hook mechanics be tested end to end.

use crate::paths::Home;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Variable name → desired value; `None` means the variable must be unset.
pub type Env = BTreeMap<String, Option<String>>;

/// What the slow path knows when it asks for an activation.
pub struct Request<'a> {
    /// The authsome home and profile.
    pub home: &'a Home,
    /// The project file found from the shell's directory.
    pub project_file: &'a Path,
    /// PID of the shell being activated (given by the hook), if known.
    pub shell_pid: Option<u32>,
    /// The shell's environment as it was before any activation (prior values
    /// restored, the state variable removed): what a project's `NO_PROXY`
    /// filtering starts from and what a background process should inherit.
    pub base_env: &'a BTreeMap<OsString, OsString>,
}

/// What a project asks of the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// Trusted and usable: set these variables. `notices` are printed once
    /// (for example which `authsome login …` is still missing).
    Active {
        /// Variable name → value (`None`: unset it).
        env: Env,
        /// Short lines for stderr.
        notices: Vec<String>,
    },
    /// Untrusted or broken: activate nothing and say why, in one short line.
    Inactive {
        /// The line printed (once) to stderr.
        reason: String,
    },
}

/// An activation and the files it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What to do.
    pub activation: Activation,
    /// Files besides the project file whose change must re-evaluate the project
    /// (trust store, provider overrides, project-local provider files). They are
    /// recorded in the shell state and only `stat`-ed on later prompts.
    pub watch: Vec<PathBuf>,
}

/// Decides the environment of a project. Implemented by project mode; the hook
/// calls it only on the slow path (something changed), never on a no-op prompt.
pub trait Activator {
    /// Files that decide activation whatever the project says (trust store,
    /// provider overrides). Stat'ed before [`Activator::activate`] reads them.
    fn watch(&self, home: &Home) -> Vec<PathBuf>;
    /// The environment the project wants for the requesting shell.
    /// Must never prompt: the hook runs before every prompt.
    fn activate(&self, req: &Request) -> Outcome;
    /// The shell `shell_pid` left the project (or it stopped being active).
    fn deactivate(&self, home: &Home, project_file: &Path, shell_pid: Option<u32>);
}

/// Environment variable naming the stand-in's JSON file.
pub const STANDIN_VAR: &str = "AUTHSOME_SHELL_STANDIN";

/// Stand-in activator used until project mode lands.
///
/// `$AUTHSOME_SHELL_STANDIN` names a JSON object keyed by project file path;
/// each entry is `{"env": {...}, "notices": [...]}` (trusted), `{"untrusted": true}`
/// or `{"error": "..."}` (broken). Projects not listed are reported as not
/// activatable. The file itself is watched, so editing it re-evaluates.
pub struct StandIn;

impl StandIn {
    fn entry(path: &Path, project_file: &Path) -> Result<Option<serde_json::Value>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let all: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(all.get(project_file.to_string_lossy().as_ref()).cloned())
    }
}

impl Activator for StandIn {
    fn watch(&self, _home: &Home) -> Vec<PathBuf> {
        std::env::var_os(STANDIN_VAR).map(PathBuf::from).into_iter().collect()
    }

    fn activate(&self, req: &Request) -> Outcome {
        let project_file = req.project_file;
        let shown = project_file.display();
        let Some(file) = std::env::var_os(STANDIN_VAR).map(PathBuf::from) else {
            let reason = format!("{shown}: project activation is not available in this build");
            return Outcome { activation: Activation::Inactive { reason }, watch: vec![] };
        };
        let activation = match StandIn::entry(&file, project_file) {
            Err(e) => Activation::Inactive { reason: e },
            Ok(None) | Ok(Some(serde_json::Value::Null)) => {
                Activation::Inactive { reason: format!("{shown} is not trusted; run `authsome allow` to activate it") }
            }
            Ok(Some(v)) if v.get("untrusted").is_some() => {
                Activation::Inactive { reason: format!("{shown} is not trusted; run `authsome allow` to activate it") }
            }
            Ok(Some(v)) if v.get("error").is_some() => {
                Activation::Inactive { reason: v["error"].as_str().unwrap_or("invalid project file").to_owned() }
            }
            Ok(Some(v)) => {
                let env = v
                    .get("env")
                    .and_then(|e| e.as_object())
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned))).collect())
                    .unwrap_or_default();
                let notices = v
                    .get("notices")
                    .and_then(|n| n.as_array())
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                Activation::Active { env, notices }
            }
        };
        Outcome { activation, watch: vec![] }
    }

    fn deactivate(&self, _home: &Home, _project_file: &Path, _shell_pid: Option<u32>) {}
}

/// The activator this build uses.
pub fn current() -> Box<dyn Activator> {
    Box::new(StandIn)
}
