//! The environment a child of an active project sees (SPEC §4): placeholders
//! for every declared connection, the project's plain variables, the proxy and
//! CA variables, and nothing that could bypass the proxy or reveal a secret.
//!
//! This is a pure function of the project, the proxy URL and the CA bundle
//! path, so `up`, `exec` and the shell hook (which must stay cheap: no vault,
//! no network) compute the very same environment.

use super::config::Project;
use crate::providers::{HostPattern, Registry};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Variables pointed at the proxy.
pub const PROXY_VARS: &[&str] = &["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];

/// Variables common clients read a CA bundle from (SPEC §4).
pub const CA_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "AWS_CA_BUNDLE",
    "PIP_CERT",
    "DENO_CERT",
];

/// Marks a process (or shell) as running inside an activated project; its value is the project directory.
pub const ACTIVE_VAR: &str = "AUTHSOME_ACTIVE";

/// What to change in an inherited environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildEnv {
    /// Variables to set (overriding inherited values).
    pub set: BTreeMap<String, String>,
    /// Variables to remove.
    pub unset: BTreeSet<String>,
}

impl ChildEnv {
    /// The full environment of a child: `inherited` with these changes applied.
    pub fn applied_to(
        &self,
        inherited: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        let mut out: BTreeMap<std::ffi::OsString, std::ffi::OsString> =
            inherited.into_iter().filter(|(k, _)| k.to_str().is_none_or(|k| !self.unset.contains(k))).collect();
        for (k, v) in &self.set {
            out.insert(k.into(), v.into());
        }
        out.into_iter().collect()
    }

    /// Apply to a `std::process::Command`.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        for k in &self.unset {
            cmd.env_remove(k);
        }
        for (k, v) in &self.set {
            cmd.env(k, v);
        }
    }
}

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
    let mut env = ChildEnv::default();
    for (k, v) in &project.run.env {
        env.set.insert(k.clone(), v.clone());
    }
    for r in &project.requirements {
        if let Some(s) = &r.secret_env {
            env.unset.insert(s.clone());
        }
    }
    for (i, r) in project.requirements.iter().enumerate() {
        if !active.get(i).copied().unwrap_or(false) {
            continue;
        }
        for var in &r.vars {
            env.unset.remove(var);
            env.set.insert(var.clone(), r.placeholder.clone());
        }
    }
    for k in PROXY_VARS {
        env.set.insert((*k).to_owned(), proxy_url.to_owned());
    }
    let bundle = ca_bundle.display().to_string();
    for k in CA_VARS {
        env.set.insert((*k).to_owned(), bundle.clone());
    }
    env.unset.insert("SSL_CERT_DIR".to_owned());
    env.unset.insert("AUTHSOME_VAULT_KEY".to_owned());
    env.unset.insert("ALL_PROXY".to_owned());
    env.unset.insert("all_proxy".to_owned());
    let hosts: Vec<HostPattern> =
        project.requirements.iter().filter_map(|r| registry.get(&r.provider).ok()).flat_map(|p| p.hosts.clone()).collect();
    for k in ["NO_PROXY", "no_proxy"] {
        match current(k).map(|v| filter_no_proxy(&v, &hosts)) {
            Some(v) if !v.is_empty() => {
                env.set.insert(k.to_owned(), v);
            }
            _ => {
                env.unset.insert(k.to_owned());
            }
        }
    }
    env.set.insert(ACTIVE_VAR.to_owned(), project.dir.display().to_string());
    env
}

/// `NO_PROXY` without any entry that would let a declared host bypass the proxy.
pub fn filter_no_proxy(value: &str, hosts: &[HostPattern]) -> String {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter(|entry| !hosts.iter().any(|h| bypasses(entry, h)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether the `NO_PROXY` entry would exempt some host of `pattern`.
fn bypasses(entry: &str, pattern: &HostPattern) -> bool {
    if entry == "*" {
        return true;
    }
    let e = entry.trim_start_matches("*.").trim_start_matches('.');
    let e = match e.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => e,
    };
    let e = e.to_ascii_lowercase();
    let under = |host: &str| host == e || host.ends_with(&format!(".{e}"));
    match pattern {
        HostPattern::Host { host, .. } | HostPattern::Prefix { host, .. } => under(host),
        HostPattern::Regex { re, .. } => match pattern.dns_constraint() {
            Some(s) => under(&s) || e.ends_with(&format!(".{s}")) || re.is_match(&e),
            // Unconstrained: keep only loopback entries it does not match.
            None => re.is_match(&e) || !crate::providers::hosts::is_loopback_host(&e),
        },
    }
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

    #[test]
    fn wildcards_and_unconstrained_regexes_are_dropped() {
        let hosts = vec![HostPattern::parse(r"regex:[a-z0-9]+\.api\.mailchimp\.com").unwrap()];
        assert_eq!(filter_no_proxy("*,mailchimp.com,us1.api.mailchimp.com,other.net", &hosts), "other.net");
        let any = vec![HostPattern::parse("regex:.*googleapis.*").unwrap()];
        assert_eq!(filter_no_proxy("other.net,localhost,127.0.0.1", &any), "localhost,127.0.0.1");
    }
}
