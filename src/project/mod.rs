//! Project mode: a directory's `authsome.toml` declares which connections a
//! program needs, authsome checks them against the vault and runs the program
//! with exactly those connections active, the way direnv or nix-shell
//! reconcile an environment.
//!
//! - [`config`]: finding and parsing the file into a checked [`Project`];
//! - [`trust`]: the file is inert until `authsome allow` (bound to path + content);
//! - [`requirements`]: each requirement against the vault, with the exact fix;
//! - [`env`]: the environment a child of an active project sees.

pub mod config;
pub mod env;
pub mod requirements;
pub mod trust;

pub use config::{find, Project, Requirement, RunCommand, UndeclaredHosts, FILE_NAME};
