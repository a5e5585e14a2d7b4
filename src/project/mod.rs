//! Project mode: a directory's `authsome.toml` declares which connections a
//! program needs, authsome checks them against the vault and runs the program
//! with exactly those connections active, the way direnv or nix-shell
//! reconcile an environment.
//!
//! - [`config`]: finding and parsing the file into a checked [`Project`];
//! - [`trust`]: the file is inert until `authsome allow` (bound to path + content);
//! - [`requirements`]: each requirement against the vault, with the exact fix;
//! - [`env`]: the environment a child of an active project sees;
//! - [`routes`]: what the proxy serves for a project, CI secrets included;
//! - [`helper`]: `exec`'s proxy in a helper process, so the command keeps authsome's PID;
//! - [`watch`]: noticing edits to `authsome.toml` while `up` runs.

pub mod config;
pub mod env;
pub mod helper;
pub mod requirements;
pub mod routes;
pub mod trust;
pub mod watch;

pub use config::{find, Project, Requirement, RunCommand, UndeclaredHosts, FILE_NAME};
