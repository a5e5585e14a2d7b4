//! The plan of one launch: what the proxy serves (routes, policy), what the
//! child sees (placeholders, plain variables, hidden CI secrets), and which
//! files decide it (watched for reloads). Built from a trusted project and
//! the vault's state, or from the vault's defaults for plain `run`; every
//! entrance (`run`, `up`, `exec`, the shell hook, the daemon) launches from one.

use crate::paths::Home;
use crate::project::requirements::Check;
use crate::project::{Project, UndeclaredHosts};
use crate::providers::{HostPattern, Provider, Registry, PLACEHOLDER};
use crate::proxy::Route;
use crate::vault::{Status, VaultData};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

/// Which requirements of a project get a route and a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// Only the met ones (`up`, `exec`: a run starts with what works).
    Met,
    /// Every declared one, met or not: the proxy reads the vault at each
    /// injection, so a login made while shells are active applies to the very
    /// next request (the hook and its daemon, which outlive many logins).
    Declared,
}

/// Everything a launch needs to know, computed once.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The connections the proxy may inject.
    pub routes: Vec<Route>,
    /// Refuse undeclared hosts instead of tunnelling them.
    pub deny_undeclared: bool,
    /// Variable → placeholder, for the child.
    pub placeholders: Vec<(String, String)>,
    /// Every declared host: no `NO_PROXY` entry may exempt one.
    pub hosts: Vec<HostPattern>,
    /// Plain, non-secret variables (`[run.env]`); never override the above.
    pub plain_env: BTreeMap<String, String>,
    /// CI secret variables (`secret_env`), removed from the child.
    pub hidden: BTreeSet<String>,
    /// The active project's directory (`AUTHSOME_ACTIVE`), if any.
    pub project_dir: Option<PathBuf>,
    /// Files whose change calls for a reload (project file, trust store,
    /// provider overrides, the vault, project-local provider files).
    pub watch: Vec<PathBuf>,
}

/// The one constructor of a [`Route`].
pub fn route(provider: &Provider, connection: &str, placeholder: &str, is_default: bool) -> Route {
    Route { provider: Arc::new(provider.clone()), connection: connection.to_owned(), placeholder: placeholder.to_owned(), is_default }
}

impl Plan {
    /// `authsome run`: every provider's default connection that holds a
    /// usable credential, each exported variable holding the placeholder.
    pub fn vault_defaults(registry: &Registry, data: &VaultData) -> Plan {
        let routes: Vec<Route> = registry
            .iter()
            .filter_map(|p| {
                let conn = data.connection(p.name(), None)?;
                let bound = p.bound(conn.base_url.as_deref(), &conn.values);
                (conn.status != Status::Revoked && conn.credential().is_some()).then(|| route(&bound, &conn.name, PLACEHOLDER, true))
            })
            .collect();
        let placeholders = routes.iter().flat_map(route_placeholders).collect();
        let hosts = routes.iter().flat_map(|r| r.provider.hosts.iter().cloned()).collect();
        Plan { routes, placeholders, hosts, ..Plan::default() }
    }

    /// A trusted project as `checks` (its evaluation against the vault) find it.
    pub fn project(home: &Home, project: &Project, registry: &Registry, checks: &[Check], serve: Serve) -> crate::Result<Plan> {
        let served: Vec<&Check> = checks.iter().filter(|c| serve == Serve::Declared || c.state.is_met()).collect();
        let mut routes = Vec::new();
        for c in &served {
            let r = &c.requirement;
            let provider = registry.get(&r.provider)?.bound(c.binding.base_url.as_deref(), &c.binding.values);
            routes.push(route(&provider, &c.connection, &r.placeholder, r.primary));
        }
        // Placeholders do not depend on the vault when every requirement is
        // served, so the hook can show them even when the vault is unreadable.
        let placeholders = project
            .requirements
            .iter()
            .enumerate()
            .filter(|(i, _)| serve == Serve::Declared || served.iter().any(|c| c.index == *i))
            .flat_map(|(_, r)| r.vars.iter().map(move |v| (v.clone(), r.placeholder.clone())))
            .collect();
        // Hosts a connection's login values produce count too (a Shopify shop).
        let declared = project.requirements.iter().filter_map(|r| registry.get(&r.provider).ok()).flat_map(|p| p.hosts.clone());
        let hosts = declared.chain(routes.iter().flat_map(|r| r.provider.hosts.clone())).collect();
        let mut watch = vec![project.file.clone(), home.trust_dir(), home.providers_dir(), home.vault_file()];
        watch.extend(project.definitions.iter().map(|d| d.path.clone()));
        Ok(Plan {
            routes,
            deny_undeclared: project.undeclared_hosts == UndeclaredHosts::Deny,
            placeholders,
            hosts,
            plain_env: project.run.env.clone(),
            hidden: project.requirements.iter().filter_map(|r| r.secret_env.clone()).collect(),
            project_dir: Some(project.dir.clone()),
            watch,
        })
    }

    /// `provider/connection` of every route, for messages about what changed.
    pub fn route_labels(routes: &[Route]) -> Vec<String> {
        routes.iter().map(|r| format!("{}/{}", r.provider.name(), r.connection)).collect()
    }
}

/// Placeholder variables of one route: the provider's exported variables and
/// its API-key `env_var`, each holding the route's placeholder.
fn route_placeholders(route: &Route) -> impl Iterator<Item = (String, String)> + '_ {
    let key_var = route.provider.def.api_key.as_ref().and_then(|k| k.env_var.as_deref());
    route.provider.def.exported_vars().chain(key_var).map(move |v| (v.to_owned(), route.placeholder.clone()))
}

/// The argv a project runs: CMD when given, else `[run] command`, else the
/// user's interactive `$SHELL`.
pub fn command_argv(project: &Project, cmd: &[OsString]) -> Vec<OsString> {
    let shell = std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".to_owned());
    if !cmd.is_empty() {
        return cmd.to_vec();
    }
    match &project.run.command {
        Some(c) => c.argv(&shell).into_iter().map(Into::into).collect(),
        None => vec![shell.into()],
    }
}
