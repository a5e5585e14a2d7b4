//! The environment a child of an active project sees (SPEC §4): placeholders
//! for every declared connection, the project's plain variables, the proxy and
//! CA variables, and nothing that could bypass the proxy or reveal a secret.
//!
//! This is a pure function of the project, the proxy URL and the CA bundle
//! path, so `up`, `exec` and the shell hook (which must stay cheap: no vault,
//! no network) compute the very same environment.

use super::config::Project;
use crate::providers::{HostPattern, Registry};
use crate::runner::env::proxy_env;
pub use crate::runner::env::{ChildEnv, CA_VARS, PROXY_VARS};
use std::path::Path;

/// Marks a process (or shell) as running inside an activated project; its value is the project directory.
pub const ACTIVE_VAR: &str = "AUTHSOME_ACTIVE";

/// The desired environment changes for a child of `project`, given the proxy
/// URL (with its per-run credential) and the combined CA bundle. `current`
/// reads the inherited environment (for `NO_PROXY`, which is filtered, never
/// replaced). CI secret variables (`secret_env`) are always removed.
pub fn child_env(
    project: &Project,
    registry: &Registry,
    proxy_url: &str,
    ca_bundle: &Path,
    current: &dyn Fn(&str) -> Option<String>,
) -> ChildEnv {
    child_env_active(project, registry, &vec![true; project.requirements.len()], proxy_url, ca_bundle, current)
}

/// [`child_env`] with placeholders only for the requirements marked in
/// `active` (by index): an optional provider that is not logged in gets no
/// variable. CI secret variables are removed whatever their requirement's state.
pub fn child_env_active(
    project: &Project,
    registry: &Registry,
    active: &[bool],
    proxy_url: &str,
    ca_bundle: &Path,
    current: &dyn Fn(&str) -> Option<String>,
) -> ChildEnv {
    let placeholders = project
        .requirements
        .iter()
        .zip(active.iter().copied().chain(std::iter::repeat(false)))
        .filter(|(_, on)| *on)
        .flat_map(|(r, _)| r.vars.iter().map(move |v| (v.clone(), r.placeholder.clone())));
    let hosts: Vec<HostPattern> =
        project.requirements.iter().filter_map(|r| registry.get(&r.provider).ok()).flat_map(|p| p.hosts.clone()).collect();
    let mut env = proxy_env(placeholders, &hosts, proxy_url, ca_bundle, current);
    // Plain project variables never override what keeps the child behind the proxy.
    for (k, v) in &project.run.env {
        if !env.set.contains_key(k) && !env.unset.contains(k) {
            env.set.insert(k.clone(), v.clone());
        }
    }
    for r in &project.requirements {
        if let Some(s) = r.secret_env.as_ref().filter(|s| !env.set.contains_key(*s)) {
            env.unset.insert(s.clone());
        }
    }
    env.set.insert(ACTIVE_VAR.to_owned(), project.dir.display().to_string());
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Home;

    #[test]
    fn a_child_gets_placeholders_proxy_and_ca_but_no_secret_or_bypass() {
        let mut reg = Registry::load(&Home::at("/nonexistent-authsome-home", "default")).unwrap();
        let p = super::super::config::parse(
            "[[providers.github]]\n[[providers.github]]\nconnection = \"work\"\n[providers.openai]\nsecret_env = \"CI_OPENAI\"\n[run.env]\nMODE = \"dev\"\n",
            Path::new("/proj/authsome.toml"),
            &mut reg,
        )
        .unwrap();
        let current = |k: &str| (k == "NO_PROXY").then(|| "localhost,.github.com,127.0.0.1,api.openai.com:443,example.org".to_owned());
        let env = child_env(&p, &reg, "http://u:p@127.0.0.1:1", Path::new("/run/ca.pem"), &current);
        assert_eq!(env.set["GH_TOKEN"], "authsome-proxy-managed");
        assert_eq!(env.set["GH_TOKEN_WORK"], "authsome-proxy-managed-work");
        assert_eq!(env.set["OPENAI_API_KEY"], "authsome-proxy-managed");
        assert_eq!(env.set["MODE"], "dev");
        assert_eq!(env.set["HTTPS_PROXY"], "http://u:p@127.0.0.1:1");
        assert_eq!(env.set["NODE_EXTRA_CA_CERTS"], "/run/ca.pem");
        assert_eq!(env.set["NO_PROXY"], "localhost,127.0.0.1,example.org");
        assert_eq!(env.set[ACTIVE_VAR], "/proj");
        assert!(
            env.unset.contains("CI_OPENAI")
                && env.unset.contains("SSL_CERT_DIR")
                && env.unset.contains("AUTHSOME_VAULT_KEY")
                && env.unset.contains("no_proxy")
        );
    }
}
