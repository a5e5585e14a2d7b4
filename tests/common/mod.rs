//! Helpers shared by the integration tests, one concern per file.

pub mod cli;
pub mod connect_proxy;
pub mod echo;
pub mod fake_as;
pub mod hosts;
pub mod login_env;
pub mod pg;
pub mod project;
pub mod project_run;
pub mod proxy;
pub mod proxy_client;
pub mod shell;

/// The binary under test.
pub const fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_authsome")
}

/// The vault key (base64 of 32 bytes) of every harness but `cli::Home`, which
/// makes its own.
pub const VAULT_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// The suite's one environment policy. The tests' own library calls (writing
/// a vault, reading it back) read `AUTHSOME_VAULT_KEY` and
/// `AUTHSOME_NO_KEYRING` from this process, and every binary a test starts
/// inherits them unless the test says otherwise (`cli::Home` passes its own
/// key, or none; the keyring tests remove `AUTHSOME_NO_KEYRING`). Every
/// harness calls this first, so all tests share one process environment and
/// no test changes it afterwards.
pub fn process_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AUTHSOME_VAULT_KEY", VAULT_KEY);
        std::env::set_var("AUTHSOME_NO_KEYRING", "1");
    });
}
