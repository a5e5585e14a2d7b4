//! Reading what a launch starts from: the project file (one finder for every
//! command, so they all agree about symlinks), the registry it extends, its
//! trust, and its requirements against the vault's state.

use crate::error::{Error, Result};
use crate::paths::Home;
use crate::project::requirements::{self, Check, EnvLookup};
use crate::project::trust::{self, Trust};
use crate::project::Project;
use crate::providers::Registry;
use std::path::Path;

/// The project file `file`, parsed and checked, with the registry it extends.
pub fn load(home: &Home, file: &Path) -> Result<(Project, Registry)> {
    let mut registry = Registry::load(home)?;
    let project = Project::load(file, &mut registry)?;
    Ok((project, registry))
}

/// [`load`], refusing (exit 2, naming `authsome allow`) a project that is
/// not allowed as it is now.
pub fn load_trusted(home: &Home, file: &Path) -> Result<(Project, Registry)> {
    let (project, registry) = load(home, file)?;
    match trust::check(home, &project) {
        // A project that requires a team store is never served from another store.
        Trust::Allowed => crate::store::require(home, project.store_id.as_deref()).map(|()| (project, registry)),
        t => Err(Error::bad_input(trust::refusal(&project, &t))),
    }
}

/// Every requirement of `project` against the vault as it is now; `env`
/// supplies CI secrets (`secret_env`), or nothing where they do not apply.
pub fn evaluate(home: &Home, project: &Project, registry: &Registry, env: EnvLookup) -> Result<Vec<Check>> {
    let data = crate::store::Store::snapshot(home)?;
    Ok(requirements::evaluate(project, registry, &data, env, home.profile(), crate::fsutil::now_unix()))
}

/// The process environment, where CI secrets come from in `up` and `exec`.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// No CI secrets: a shell and its daemon use the vault only (`secret_env` is for `up` and `exec`).
pub fn no_env(_: &str) -> Option<String> {
    None
}
