//! The environment of a child (SPEC §4), computed from the inherited one.
//!
//! Pure function of its inputs so every rule is unit-tested: placeholders for
//! exported variables, proxy variables with the per-run credential, `NO_PROXY`
//! stripped of declared hosts, one CA bundle in every CA variable, and no
//! authsome secret (the vault key) passed on.

use crate::proxy::Route;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
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

/// Variables never passed to a child: authsome's own secrets and a CA
/// directory that would let a client look elsewhere.
pub const REMOVED_VARS: [&str; 2] = ["AUTHSOME_VAULT_KEY", "SSL_CERT_DIR"];

/// Build the child's environment from `inherited`.
pub fn child_env<I>(inherited: I, routes: &[Route], proxy_url: &str, bundle: &Path) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut env: BTreeMap<OsString, OsString> = inherited.into_iter().collect();
    for var in REMOVED_VARS {
        env.remove(OsStr::new(var));
    }
    for route in routes {
        for var in route.provider.def.exported_vars() {
            env.insert(var.into(), route.placeholder.clone().into());
        }
        if let Some(var) = route.provider.def.api_key.as_ref().and_then(|k| k.env_var.as_deref()) {
            env.insert(var.into(), route.placeholder.clone().into());
        }
    }
    for var in PROXY_VARS {
        env.insert(var.into(), proxy_url.into());
    }
    for var in CA_VARS {
        env.insert(var.into(), bundle.as_os_str().to_owned());
    }
    for var in ["NO_PROXY", "no_proxy"] {
        if let Some(v) = env.get(OsStr::new(var)).and_then(|v| v.to_str()).map(str::to_owned) {
            let kept = strip_declared(&v, routes);
            if kept.is_empty() {
                env.remove(OsStr::new(var));
            } else {
                env.insert(var.into(), kept.into());
            }
        }
    }
    env.into_iter().collect()
}

/// Drop every `NO_PROXY` entry that would exempt a declared host from the
/// proxy (`*`, the host itself, or a parent domain of it).
pub fn strip_declared(no_proxy: &str, routes: &[Route]) -> String {
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter(|entry| {
            if *entry == "*" {
                return routes.is_empty();
            }
            let bare = entry.trim_start_matches("*.").trim_start_matches('.');
            let bare = bare.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(bare, |(h, _)| h).to_ascii_lowercase();
            !routes.iter().any(|r| {
                r.provider.hosts.iter().any(|h| match h.dns_constraint() {
                    Some(c) => c == bare || c.ends_with(&format!(".{bare}")) || bare.ends_with(&format!(".{c}")),
                    None => false,
                })
            })
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Registry, PLACEHOLDER};
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
            ("NO_PROXY", "localhost,.github.com,api.openai.com,internal.corp"),
            ("no_proxy", "*"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env: BTreeMap<_, _> = child_env(inherited, &routes(), "http://u:p@127.0.0.1:1", Path::new("/run/b.pem")).into_iter().collect();
        let get = |k: &str| env.get(OsStr::new(k)).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("GH_TOKEN").unwrap(), PLACEHOLDER);
        assert_eq!(get("GITHUB_ACCESS_TOKEN").unwrap(), PLACEHOLDER);
        assert_eq!(get("OPENAI_API_KEY").unwrap(), PLACEHOLDER);
        assert_eq!(get("AUTHSOME_VAULT_KEY"), None);
        assert_eq!(get("SSL_CERT_DIR"), None);
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
}
