//! authsome: programs get authenticated API access without ever holding the secret.
//!
//! The crate is split by concern, one module each, so a newcomer can find a
//! thing from the folder names alone (ARCHITECTURE.md draws the layers):
//!
//! - [`providers`]: provider definitions (bundled, custom, project) and validation;
//! - [`store`]: which store a profile uses (its vault file or a team store on PostgreSQL);
//! - [`vault`], [`secret`]: the encrypted per-profile credential store and the type secrets travel in;
//! - [`oauth`]: login flows, token refresh and revocation;
//! - [`net`]: outbound connections (resolve overrides, upstream trust, HTTPS client);
//! - [`proxy`], [`audit`]: the injecting proxy engine and its audit log;
//! - [`project`]: `authsome.toml`, trust and requirements (the model);
//! - [`launch`]: the one recipe from a project or the vault's defaults to a child behind the proxy;
//! - [`fence`]: what keeps a hostile child away from secrets (Landlock, a hardened authsome process);
//! - [`shell`], [`daemon`]: the `cd` hook and the per-project background proxy behind it;
//! - [`cli`]: argument parsing and the commands users type;
//! - [`fix`]: the one rendering of every `authsome login …` hint;
//! - [`paths`], [`fsutil`], [`text`], [`child_vars`], [`error`], [`ui`]: shared plumbing.

#![warn(missing_docs)]

pub mod audit;
pub(crate) mod child_vars;
pub mod cli;
pub(crate) mod daemon;
pub mod error;
pub mod fence;
pub mod fix;
pub mod fsutil;
pub(crate) mod launch;
pub mod net;
pub mod oauth;
pub mod paths;
pub mod project;
pub mod providers;
pub mod proxy;
pub mod secret;
pub(crate) mod shell;
pub mod store;
pub(crate) mod text;
pub mod ui;
pub mod vault;

pub use error::{Error, Result};

/// The async runtime of one command. `main` is synchronous so the fast paths
/// (`--version`, `hook`, no-op `export`) never pay for one; commands that do
/// network I/O build this: two workers, enough for a proxy and a child's traffic.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::other(format!("cannot start the async runtime: {e}")))
}

/// RFC 3339 UTC rendering of a Unix time, the one format used in output and logs.
pub fn fmt_time(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix)).to_string()
}
