//! From evaluated requirements to what the proxy serves: one [`Route`] per
//! met requirement (only declared connections are active), and a credential
//! source that prefers CI secrets taken from the environment over the vault.

use super::config::Project;
use super::requirements::{Check, State};
use crate::error::{Error, Result};
use crate::paths::Home;
use crate::providers::{Provider, Registry};
use crate::proxy::{BoxFuture, CredentialSource, Route, VaultCredentials};
use crate::vault::Secret;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Routes for every met requirement: the connection it resolved to, its
/// placeholder, and whether it is the provider's default (primary) one.
pub fn routes(registry: &Registry, checks: &[Check]) -> Result<Vec<Route>> {
    let mut out = Vec::new();
    for c in checks.iter().filter(|c| c.state.is_met()) {
        let provider = registry.get(&c.requirement.provider)?;
        out.push(Route {
            provider: Arc::new(provider.bound(c.binding.base_url.as_deref(), &c.binding.values)),
            connection: c.connection.clone(),
            placeholder: c.requirement.placeholder.clone(),
            is_default: c.requirement.primary,
        });
    }
    Ok(out)
}

/// Which requirements are active (met), by index into [`Project::requirements`].
pub fn active(project: &Project, checks: &[Check]) -> Vec<bool> {
    let mut v = vec![false; project.requirements.len()];
    for c in checks.iter().filter(|c| c.state.is_met()) {
        v[c.index] = true;
    }
    v
}

/// CI secrets for the requirements satisfied from the environment, keyed by
/// (provider, connection). The values are read once and live only in memory.
pub fn ci_secrets(checks: &[Check], env: &dyn Fn(&str) -> Option<String>) -> BTreeMap<(String, String), Secret> {
    let mut out = BTreeMap::new();
    for c in checks {
        if let State::FromEnv(var) = &c.state {
            if let Some(v) = env(var) {
                out.insert((c.requirement.provider.clone(), c.connection.clone()), Secret::new(v.trim()));
            }
        }
    }
    out
}

/// Credentials for a project run: CI secrets first, then the vault (read at
/// every injection, so logins made while the run lasts are picked up).
pub struct ProjectCredentials {
    ci: BTreeMap<(String, String), Secret>,
    vault: Option<VaultCredentials>,
}

impl ProjectCredentials {
    /// `vault` is opened only when some route needs it (a CI job with every
    /// secret in the environment needs neither a vault nor a key).
    pub fn new(home: &Home, ci: BTreeMap<(String, String), Secret>, need_vault: bool) -> Result<ProjectCredentials> {
        let vault = if need_vault { Some(VaultCredentials::new(home)) } else { None };
        Ok(ProjectCredentials { ci, vault })
    }

    /// Whether every route can be served from CI secrets alone.
    pub fn covers(ci: &BTreeMap<(String, String), Secret>, routes: &[Route]) -> bool {
        routes.iter().all(|r| ci.contains_key(&(r.provider.name().to_owned(), r.connection.clone())))
    }
}

impl CredentialSource for ProjectCredentials {
    fn credential<'a>(&'a self, provider: &'a Provider, connection: &'a str) -> BoxFuture<'a, std::result::Result<Option<Secret>, String>> {
        Box::pin(async move {
            if let Some(s) = self.ci.get(&(provider.name().to_owned(), connection.to_owned())) {
                return Ok(Some(s.clone()));
            }
            match &self.vault {
                Some(v) => v.credential(provider, connection).await,
                None => Ok(None),
            }
        })
    }
}

/// The argv to run: CMD when given, else `[run] command`, else the user's
/// interactive `$SHELL`.
pub fn command_argv(project: &Project, cmd: &[std::ffi::OsString]) -> Vec<std::ffi::OsString> {
    let shell = std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".to_owned());
    if !cmd.is_empty() {
        return cmd.to_vec();
    }
    match &project.run.command {
        Some(c) => c.argv(&shell).into_iter().map(Into::into).collect(),
        None => vec![shell.into()],
    }
}

/// The one-line explanation of an unmet requirement, with its exact fix.
pub fn unmet_line(c: &Check) -> String {
    let mut label = c.requirement.provider.clone();
    if c.connection_flag().is_some() {
        label.push_str(&format!(" ({})", c.connection));
    }
    let mut line = format!("{label}: {}; fix: {}", c.state.describe(), c.fix.clone().unwrap_or_default());
    if let Some(v) = &c.requirement.secret_env {
        line.push_str(&format!(" (or set {v})"));
    }
    line
}

/// Error for a project whose required connections are not all met (exit 4).
pub fn unmet_error(checks: &[Check]) -> Option<Error> {
    let lines: Vec<String> = checks.iter().filter(|c| c.blocks()).map(unmet_line).collect();
    (!lines.is_empty()).then(|| Error::login(lines.join("\n")))
}
