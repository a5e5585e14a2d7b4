//! Helpers shared by the black-box tests. Each file is one concern; a test
//! binary uses what it needs.
#![allow(dead_code)]

pub mod cli;
pub mod echo;
pub mod fake_as;
pub mod login_env;
pub mod pg;
pub mod project;
pub mod project_run;
pub mod proxy;
pub mod proxy_client;
pub mod shell;
