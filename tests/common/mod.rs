//! Helpers shared by the black-box tests, one file per area.
#![allow(dead_code)]

pub mod shell;
