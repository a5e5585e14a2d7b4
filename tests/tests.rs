//! The integration tests: one binary (ripgrep's pattern), so the shared
//! helpers in `common` compile once and the compiler reports any helper no
//! test uses. Each module is one concern; every test drives the real binary
//! or the library against real servers on loopback.

mod common;

mod adversarial;
mod catalogue;
mod first_day;
mod foundation;
mod hostile_child;
mod oauth_chromium;
mod oauth_login;
mod oauth_refresh;
mod project_cli;
mod project_exec;
mod project_schema;
mod project_up;
mod provider_schema;
mod proxy_lib;
mod proxy_scale;
mod run_proxy;
mod run_refresh;
mod shell_daemon;
mod shell_export;
mod shell_interactive;
mod team_store;
mod terminal_prompts;
