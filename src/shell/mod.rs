//! Shell auto-activation on `cd`, direnv-style (`authsome hook`, `authsome export`).
//!
//! - [`hook`]: the rc-file snippets for bash, zsh and fish;
//! - [`export`]: the statements moving the shell to the environment the current
//!   directory wants, and the no-op check run before every prompt;
//! - [`state`]: the encoded record the shell keeps of what authsome changed;
//! - [`quote`]: per-shell quoting;
//! - [`activation`]: the seam to project mode (which environment a project wants);
//! - [`project_activator`]: project mode behind that seam, with the project's background proxy.
//!
//! Both commands run from [`fast_main`], before argument parsing and any other
//! initialisation, because they run on every prompt.

pub mod activation;
pub mod export;
pub mod hook;
pub mod project_activator;
pub mod quote;
pub mod state;

use crate::paths::Home;
use std::ffi::OsString;

/// Output dialect of `hook` and `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// GNU bash (3.2 and later).
    Bash,
    /// zsh.
    Zsh,
    /// fish 3.
    Fish,
    /// A JSON object of changes, for other tools (`export` only).
    Json,
}

impl Shell {
    /// Parse a shell name as typed on the command line.
    pub fn parse(name: &str) -> Option<Shell> {
        match name {
            "bash" => Some(Shell::Bash),
            "zsh" => Some(Shell::Zsh),
            "fish" => Some(Shell::Fish),
            "json" => Some(Shell::Json),
            _ => None,
        }
    }
}

/// Handle `authsome hook SHELL` and `authsome export SHELL [--pid N]` straight
/// from the raw arguments, skipping clap and everything else `main` sets up.
/// Returns `None` for anything else (including unknown shells, `--help` and
/// odd spellings of these commands, which then go through the full parser
/// and its help and error messages).
pub fn fast_main(args: &[OsString]) -> Option<i32> {
    let args: Vec<&str> = args.iter().skip(1).map(|a| a.to_str()).collect::<Option<_>>()?;
    match args.as_slice() {
        ["hook", shell] => Some(hook_command(Shell::parse(shell).filter(|s| *s != Shell::Json)?)),
        ["export", shell] => Some(export::run(&Home::from_env(None), Shell::parse(shell)?, None)),
        ["export", shell, "--pid", pid] => Some(export::run(&Home::from_env(None), Shell::parse(shell)?, Some(pid.parse().ok()?))),
        _ => None,
    }
}

/// `authsome hook SHELL`: print the snippet.
pub fn hook_command(shell: Shell) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("authsome: error: cannot locate the authsome binary: {e}");
            return crate::error::exit::UNEXPECTED;
        }
    };
    match hook::snippet(shell, &exe) {
        Some(s) => {
            print!("{s}");
            0
        }
        None => {
            eprintln!("authsome: error: `hook` supports bash, zsh and fish");
            crate::error::exit::BAD_INPUT
        }
    }
}
