//! Helpers shared by the black-box tests, one file per area; a test binary
//! uses what it needs.
#![allow(dead_code)]

pub mod cli;
pub mod echo;
pub mod fake_as;
pub mod login_env;
pub mod proxy;
pub mod proxy_client;
pub mod shell;
