//! The names of the variables authsome itself manages in a child: one list,
//! read by the child environment (`crate::launch::env`, which sets or removes
//! them) and by `authsome.toml` validation (which refuses to let a project
//! set them).

/// Variables common clients read for a CA bundle; all get the run's bundle.
pub const CA_VARS: [&str; 12] = [
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "AWS_CA_BUNDLE",
    "PIP_CERT",
    "DENO_CERT",
    "HTTPLIB2_CA_CERTS",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "NIX_SSL_CERT_FILE",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
];

/// Fixed values every proxied child gets: Node (22.21+, 24) ignores the proxy
/// variables in its own `fetch` and `https` unless told to honour them.
pub const FIXED_VARS: [(&str, &str); 1] = [("NODE_USE_ENV_PROXY", "1")];

/// Proxy variables, upper and lower case (clients disagree on which they read).
pub const PROXY_VARS: [&str; 4] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];

/// `NO_PROXY` in both cases: filtered (never replaced) so no declared host bypasses the proxy.
pub const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// Variables never passed to a child: authsome's own secret, a CA directory
/// that would let a client look elsewhere, and SOCKS proxies that would route
/// around ours.
pub const REMOVED_VARS: [&str; 7] =
    ["AUTHSOME_VAULT_KEY", "AUTHSOME_STORE", "AUTHSOME_STORE_PASSWORD", "AUTHSOME_STORE_KEY", "SSL_CERT_DIR", "ALL_PROXY", "all_proxy"];

/// Marks a process (or shell) as running inside an activated project; its value is the project directory.
pub const ACTIVE_VAR: &str = "AUTHSOME_ACTIVE";

/// The dynamic loader's and shells' start-up hooks: a project setting one
/// could run code in every child (or in the user's shell once activated).
pub const LOADER_AND_SHELL_VARS: [&str; 8] =
    ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV", "PROMPT_COMMAND", "ZDOTDIR", "IFS"];

/// Prefixes of names authsome owns (`AUTHSOME_*`, the hook's `__authsome_state`)
/// and of the macOS loader's hooks: a project setting the hook's state could
/// hand every child of the shell the user's earlier values.
pub const RESERVED_PREFIXES: [&str; 3] = ["AUTHSOME_", "__authsome", "DYLD_"];

/// Whether authsome manages `var` in a child, or it is a name a project must
/// not set, so `[run.env]` and `export` may not set it.
pub fn is_reserved(var: &str) -> bool {
    PROXY_VARS.contains(&var)
        || CA_VARS.contains(&var)
        || FIXED_VARS.iter().any(|(k, _)| *k == var)
        || REMOVED_VARS.contains(&var)
        || NO_PROXY_VARS.contains(&var)
        || var == ACTIVE_VAR
        || LOADER_AND_SHELL_VARS.contains(&var)
        || RESERVED_PREFIXES.iter().any(|p| var.starts_with(p))
}
