//! Shared test helpers, one file per area.
pub mod echo;
pub mod proxy;
pub mod proxy_client;
