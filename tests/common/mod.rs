//! Shared test helpers, one file per area.
pub mod fake_as;
pub mod login_env;
