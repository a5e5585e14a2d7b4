//! The environment of a child (SPEC §4): the one place that knows which
//! variables a proxied process gets.
//!
//! Everything is computed as a [`ChildEnv`] (variables to set, variables to
//! remove) from the placeholders, the proxy URL and the CA bundle, so `run`,
//! `up`, `exec` and the shell hook (which exports the same changes into an
//! interactive shell) agree exactly: placeholders for exported variables,
//! proxy variables with the per-run credential, `NO_PROXY` stripped of
//! declared hosts, one CA bundle in every CA variable, and no authsome secret
//! (the vault key) passed on.

use crate::providers::HostPattern;
use crate::proxy::Route;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Variables common clients read for a CA bundle; all get the run's bundle.
pub const CA_VARS: [&str; 8] = [
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "AWS_CA_BUNDLE",
    "PIP_CERT",
    "DENO_CERT",
];

/// Proxy variables, upper and lower case (clients disagree on which they read).
pub const PROXY_VARS: [&str; 4] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];

/// Variables never passed to a child: authsome's own secrets (the vault key,
/// the team store's URL, password and key), a CA directory that would let a
/// client look elsewhere, and SOCKS proxies that would route around ours.
pub const REMOVED_VARS: [&str; 7] =
    ["AUTHSOME_VAULT_KEY", "AUTHSOME_STORE", "AUTHSOME_STORE_PASSWORD", "AUTHSOME_STORE_KEY", "SSL_CERT_DIR", "ALL_PROXY", "all_proxy"];

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

/// The changes every proxied child gets: `placeholders` (variable, value),
/// the proxy and CA variables, the removals of [`REMOVED_VARS`], and `NO_PROXY`
/// (read through `current`) filtered so no declared host bypasses the proxy.
pub fn proxy_env(
    placeholders: impl IntoIterator<Item = (String, String)>,
    hosts: &[HostPattern],
    proxy_url: &str,
    bundle: &Path,
    current: &dyn Fn(&str) -> Option<String>,
) -> ChildEnv {
    let mut env = ChildEnv::default();
    env.unset.extend(REMOVED_VARS.iter().map(|v| (*v).to_owned()));
    env.set.extend(placeholders);
    for var in PROXY_VARS {
        env.set.insert(var.to_owned(), proxy_url.to_owned());
    }
    let bundle = bundle.display().to_string();
    for var in CA_VARS {
        env.set.insert(var.to_owned(), bundle.clone());
    }
    for var in ["NO_PROXY", "no_proxy"] {
        match current(var).map(|v| filter_no_proxy(&v, hosts)) {
            Some(v) if !v.is_empty() => {
                env.set.insert(var.to_owned(), v);
            }
            _ => {
                env.unset.insert(var.to_owned());
            }
        }
    }
    env
}

/// Placeholder variables of one route: the provider's exported variables and
/// its API-key `env_var`, each holding the route's placeholder.
pub fn route_placeholders(route: &Route) -> impl Iterator<Item = (String, String)> + '_ {
    let key_var = route.provider.def.api_key.as_ref().and_then(|k| k.env_var.as_deref());
    route.provider.def.exported_vars().chain(key_var).map(move |v| (v.to_owned(), route.placeholder.clone()))
}

/// The environment changes for `authsome run`: every route's placeholders.
pub fn child_env(routes: &[Route], proxy_url: &str, bundle: &Path, current: &dyn Fn(&str) -> Option<String>) -> ChildEnv {
    let hosts: Vec<HostPattern> = routes.iter().flat_map(|r| r.provider.hosts.iter().cloned()).collect();
    proxy_env(routes.iter().flat_map(route_placeholders), &hosts, proxy_url, bundle, current)
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
    use crate::providers::{Registry, PLACEHOLDER};
    use std::ffi::{OsStr, OsString};
    use std::sync::Arc;

    fn routes() -> Vec<Route> {
        let reg = Registry::load(&crate::paths::Home::at("/nonexistent-authsome-home", "default")).unwrap();
        ["github", "openai"]
            .iter()
            .map(|n| Route {
                provider: Arc::new(reg.get(n).unwrap().clone()),
                connection: "default".into(),
                placeholder: PLACEHOLDER.into(),
                is_default: true,
            })
            .collect()
    }

    #[test]
    fn child_env_follows_spec_section_4() {
        let inherited = [
            ("GH_TOKEN", "ghp_real"),
            ("AUTHSOME_VAULT_KEY", "a2V5"),
            ("SSL_CERT_FILE", "/elsewhere.pem"),
            ("SSL_CERT_DIR", "/etc/ssl/certs"),
            ("ALL_PROXY", "socks5://elsewhere:1080"),
            ("NO_PROXY", "localhost,.github.com,api.openai.com,internal.corp"),
            ("no_proxy", "*"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let current = |k: &str| inherited.iter().find(|(n, _)| n == k).map(|(_, v)| v.to_str().unwrap().to_owned());
        let changes = child_env(&routes(), "http://u:p@127.0.0.1:1", Path::new("/run/b.pem"), &current);
        let env: BTreeMap<_, _> = changes.applied_to(inherited.clone()).into_iter().collect();
        let get = |k: &str| env.get(OsStr::new(k)).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("GH_TOKEN").unwrap(), PLACEHOLDER);
        assert_eq!(get("GITHUB_ACCESS_TOKEN").unwrap(), PLACEHOLDER);
        assert_eq!(get("OPENAI_API_KEY").unwrap(), PLACEHOLDER);
        assert_eq!(get("AUTHSOME_VAULT_KEY"), None);
        assert_eq!(get("SSL_CERT_DIR"), None);
        assert_eq!(get("ALL_PROXY"), None);
        for v in CA_VARS {
            assert_eq!(get(v).unwrap(), "/run/b.pem");
        }
        for v in PROXY_VARS {
            assert_eq!(get(v).unwrap(), "http://u:p@127.0.0.1:1");
        }
        assert_eq!(get("NO_PROXY").unwrap(), "localhost,internal.corp");
        assert_eq!(get("no_proxy"), None);
        assert_eq!(get("PATH").unwrap(), "/bin");
    }

    #[test]
    fn wildcards_and_unconstrained_regexes_are_dropped_from_no_proxy() {
        let hosts = vec![HostPattern::parse(r"regex:[a-z0-9]+\.api\.mailchimp\.com").unwrap()];
        assert_eq!(filter_no_proxy("*,mailchimp.com,us1.api.mailchimp.com,other.net", &hosts), "other.net");
        let any = vec![HostPattern::parse("regex:.*googleapis.*").unwrap()];
        assert_eq!(filter_no_proxy("other.net,localhost,127.0.0.1", &any), "localhost,127.0.0.1");
    }
}
