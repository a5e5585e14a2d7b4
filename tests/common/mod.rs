//! Shared test helpers, one file per area.
#![allow(dead_code)]

pub mod project;
