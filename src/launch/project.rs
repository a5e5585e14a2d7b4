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

/// The project file `file`, parsed and checked with every definition read,
/// with the registry it extends: what `allow` trusts. Everything else uses [`open`].
pub fn load(home: &Home, file: &Path) -> Result<(Project, Registry)> {
    let mut registry = Registry::load(home)?;
    let project = Project::load(file, &mut registry)?;
    Ok((project, registry))
}

/// The project file `file` parsed as far as its trust lets it be read, with
/// the registry it extends and its trust. The files its `[definitions]` name
/// are opened only when this directory's record allows exactly them;
/// otherwise they are left unread (`Project::unread`) and it is not allowed.
pub fn open(home: &Home, file: &Path) -> Result<(Project, Registry, Trust)> {
    let mut registry = Registry::load(home)?;
    let place = crate::project::config::in_place(file);
    let project = Project::load_gated(&place, &mut registry, &|declared| trust::may_read(home, &place, declared))?;
    let state = trust::check(home, &project);
    Ok((project, registry, state))
}

/// [`open`], refusing (exit 2, naming `authsome allow`) a project that is
/// not allowed as it is now.
pub fn load_trusted(home: &Home, file: &Path) -> Result<(Project, Registry)> {
    match open(home, file)? {
        // A project that requires a team store is never served from another store.
        (project, registry, Trust::Allowed) => crate::store::require(home, project.store_id.as_deref()).map(|()| (project, registry)),
        (project, _, t) => Err(Error::bad_input(trust::refusal(&project, &t))),
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
