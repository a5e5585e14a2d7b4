//! The environment of a child: the one place that knows which variables a
//! proxied process gets.
//!
//! Everything is computed as a [`ChildEnv`] (variables to set, variables to
//! remove) from a [`Plan`], the proxy URL and the CA bundle, so `run`, `up`,
//! `exec` and the shell hook (which exports the same changes into an
//! interactive shell) agree exactly: placeholders for exported variables,
//! proxy variables with the per-run credential, `NO_PROXY` stripped of
//! declared hosts, one CA bundle in every CA variable, no authsome secret (the
//! vault key) and no CI secret passed on. It is a pure function, so the hook
//! (no vault, no network) computes the very same environment.

use super::plan::Plan;
use crate::child_vars::{ACTIVE_VAR, CA_VARS, FIXED_VARS, NO_PROXY_VARS, PROXY_VARS, REMOVED_VARS};
use crate::providers::HostPattern;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
}

/// The changes for a child of `plan` behind the proxy at `proxy_url` (with
/// its per-run credential) trusting `bundle`. `current` reads the inherited
/// environment, for `NO_PROXY`, which is filtered, never replaced.
pub fn child_env(plan: &Plan, proxy_url: &str, bundle: &Path, current: &dyn Fn(&str) -> Option<String>) -> ChildEnv {
    let mut env = ChildEnv::default();
    env.unset.extend(REMOVED_VARS.iter().map(|v| (*v).to_owned()));
    env.set.extend(plan.placeholders.iter().cloned());
    for var in PROXY_VARS {
        env.set.insert(var.to_owned(), proxy_url.to_owned());
    }
    for (var, value) in FIXED_VARS {
        env.set.insert(var.to_owned(), value.to_owned());
    }
    let bundle = bundle.display().to_string();
    for var in CA_VARS {
        env.set.insert(var.to_owned(), bundle.clone());
    }
    for var in NO_PROXY_VARS {
        match current(var).map(|v| filter_no_proxy(&v, &plan.hosts)) {
            Some(v) if !v.is_empty() => {
                env.set.insert(var.to_owned(), v);
            }
            _ => {
                env.unset.insert(var.to_owned());
            }
        }
    }
    // Plain project variables never override what keeps the child behind the proxy.
    for (k, v) in &plan.plain_env {
        if !env.set.contains_key(k) && !env.unset.contains(k) {
            env.set.insert(k.clone(), v.clone());
        }
    }
    for s in plan.hidden.iter().filter(|s| !env.set.contains_key(*s)) {
        env.unset.insert(s.clone());
    }
    if let Some(dir) = &plan.project_dir {
        env.set.insert(ACTIVE_VAR.to_owned(), dir.display().to_string());
    }
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

/// Whether the `NO_PROXY` entry would exempt some host of `pattern`. Entries
/// are compared the way clients match them: case-insensitively, without a
/// port, leading `*.` or dots, and without trailing dots (`API.OpenAI.com.`
/// and `*.openai.com` both name `api.openai.com`).
fn bypasses(entry: &str, pattern: &HostPattern) -> bool {
    let e = entry.trim().to_ascii_lowercase();
    let e = match e.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h.to_owned(),
        _ => e,
    };
    let e = e.trim_start_matches(['*', '.']).trim_end_matches('.').to_owned();
    if e.is_empty() {
        // `*`, `.`, `*.`: every host.
        return true;
    }
    let under = |host: &str| host == e || host.ends_with(&format!(".{e}"));
    match pattern {
        HostPattern::Host { host, .. } | HostPattern::Prefix { host, .. } => under(host),
        HostPattern::Regex { re, .. } => match pattern.dns_constraint() {
            Some(s) => under(&s) || e.ends_with(&format!(".{s}")) || re.is_match(&e),
            // Unconstrained: keep only loopback entries it does not match.
            None => re.is_match(&e) || !crate::text::is_loopback_host(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Registry, PLACEHOLDER};
    use std::ffi::{OsStr, OsString};

    fn plan() -> Plan {
        let reg = Registry::bundled().unwrap();
        let mut data = crate::vault::VaultData::default();
        for p in ["github", "openai"] {
            data.put_connection(crate::vault::Connection::api_key(p, "default", crate::secret::Secret::new("x")));
        }
        Plan::vault_defaults(&reg, &data)
    }

    #[test]
    fn a_run_child_gets_placeholders_proxy_and_ca_but_no_secret_or_bypass() {
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
        let changes = child_env(&plan(), "http://u:p@127.0.0.1:1", Path::new("/run/b.pem"), &current);
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

    #[test]
    fn no_proxy_spellings_of_a_declared_host_are_all_dropped() {
        let hosts = vec![HostPattern::parse("api.openai.com").unwrap()];
        let spellings = "api.openai.com.,API.OPENAI.COM,.api.openai.com,..api.openai.com..,*.openai.com,*.openai.com.,openai.com.,\
                         api.openai.com.:443, Api.OpenAI.Com ,*.,.,*.com,com.";
        assert_eq!(filter_no_proxy(&format!("{spellings},internal.corp,10.0.0.1"), &hosts), "internal.corp,10.0.0.1");
    }

    #[test]
    fn a_project_child_gets_its_placeholders_and_plain_env_but_no_ci_secret() {
        let mut reg = Registry::bundled().unwrap();
        let p = crate::project::config::parse(
            "[[providers.github]]\n[[providers.github]]\nconnection = \"work\"\n[providers.openai]\nsecret_env = \"CI_OPENAI\"\n[run.env]\nMODE = \"dev\"\n",
            Path::new("/proj/authsome.toml"),
            &mut reg,
        )
        .unwrap();
        let current = |k: &str| (k == "NO_PROXY").then(|| "localhost,.github.com,127.0.0.1,api.openai.com:443,example.org".to_owned());
        let home = crate::paths::Home::at("/nonexistent-authsome-home", "default");
        let checks = crate::project::requirements::evaluate(&p, &reg, &Default::default(), &|_| None, "default", 0);
        let plan = Plan::project(&home, &p, &reg, &checks, super::super::plan::Serve::Declared).unwrap();
        let env = child_env(&plan, "http://u:p@127.0.0.1:1", Path::new("/run/ca.pem"), &current);
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
