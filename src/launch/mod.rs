//! The launch layer: the one recipe from "a project (or the vault's defaults)"
//! to "a child runs behind a proxy that injects the real credentials".
//!
//! project or vault defaults → requirement checks → [`plan::Plan`] (routes,
//! placeholders, policy, watched files) → credential source
//! ([`credentials`]) → proxy options for this machine ([`options`]) → child
//! environment ([`env`]) → reload on edits ([`watch`], [`reload`]).
//!
//! The entrances (`run`, `up`, `exec` in `crate::cli`, the shell hook in
//! `crate::shell`, the daemon in `crate::daemon`) differ only in what they
//! really differ in: prompting, exec versus supervise, foreground versus
//! background. Everything else is here, once.
//!
//! - [`project`]: finding and reading the project, its trust, the vault's state;
//! - [`plan`]: what is served and what the child sees;
//! - [`credentials`]: the vault and CI secrets as the proxy's credential source;
//! - [`options`]: the proxy's options on this machine (run id, CA bundle, audit log);
//! - [`env`]: the child's environment;
//! - [`supervise`]: a child supervised by authsome (`run`, `up`);
//! - [`helper`]: `exec`'s proxy in a helper process, so the command keeps authsome's PID;
//! - [`watch`], [`reload`]: noticing edits and applying them to a running proxy.

pub mod credentials;
pub mod env;
pub mod helper;
pub mod options;
pub mod plan;
pub mod project;
pub mod reload;
pub mod supervise;
pub mod watch;

use crate::error::{Error, Result};
use crate::paths::Home;
use crate::proxy::{CredentialSource, ProxyHandle};
use plan::Plan;
use std::ffi::OsString;
use std::sync::Arc;

/// A proxy serving a plan, and the full environment of a child behind it.
pub struct Launched {
    /// The running proxy.
    pub proxy: ProxyHandle,
    /// The child's environment: this process's, with the plan's changes applied.
    pub env: Vec<(OsString, OsString)>,
}

impl Launched {
    /// The fence for the child behind this proxy (see [`crate::fence`]):
    /// nothing when `enabled` is false (`--no-fence`, `[run] fence = false`),
    /// its TCP limited to the proxy when `deny_undeclared`.
    pub fn fence(&self, home: &Home, enabled: bool, deny_undeclared: bool) -> Result<crate::fence::Fence> {
        let bundle = self.proxy.bundle_path().ok_or_else(|| Error::other("the proxy has no CA bundle file"))?;
        if !enabled {
            return Ok(crate::fence::Fence::none());
        }
        crate::fence::for_child(home.root(), bundle, self.proxy.addr().port(), deny_undeclared)
    }
}

/// Start the proxy of `plan` (inside a tokio runtime) and compute the
/// environment of a child behind it.
pub async fn start(home: &Home, plan: &Plan, credentials: Arc<dyn CredentialSource>) -> Result<Launched> {
    let proxy = crate::proxy::start(options::proxy_options(home, plan, credentials, options::BundleIn::RunDir)?).await?;
    let bundle = proxy.bundle_path().map(|p| p.to_owned()).ok_or_else(|| Error::other("the proxy has no CA bundle file"))?;
    let env = env::child_env(plan, &proxy.url(), &bundle, &project::process_env).applied_to(std::env::vars_os());
    Ok(Launched { proxy, env })
}
