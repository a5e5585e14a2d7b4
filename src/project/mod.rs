//! Project mode: a directory's `authsome.toml` declares which connections a
//! program needs, authsome checks them against the vault and runs the program
//! with exactly those connections active, the way direnv or nix-shell
//! reconcile an environment.
//!
//! - [`config`]: finding and parsing the file into a checked [`Project`];
//! - [`trust`]: the file is inert until `authsome allow` (bound to where it takes effect + meaning);
//! - [`grants`]: what allowing it grants, shown in full before it is trusted;
//! - [`requirements`]: each requirement against the vault, with the exact fix;
//!
//! What a run of a project serves and shows its child is the launch layer's
//! business (`crate::launch`); this module is the model it starts from.

pub mod config;
pub(crate) mod grants;
pub(crate) mod requirements;
pub(crate) mod trust;

pub use config::{find, locate, Project, Requirement, RunCommand, UndeclaredHosts, FILE_NAME};
