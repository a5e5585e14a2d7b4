//! The boundary between the shell hook and project mode: given a project file,
//! what environment does it want?
//!
//! The hook only moves variables; deciding *which* variables (trust, parsing
//! `authsome.toml`, starting the project's proxy) belongs to project mode. The
//! [`Activator`] trait is that seam; [`super::project_activator`] implements it.

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

/// The activator this build uses: project mode.
pub fn current() -> Box<dyn Activator> {
    Box::new(super::project_activator::ProjectActivator)
}
