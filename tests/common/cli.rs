//! Run the real `authsome` binary against a private, throw-away home.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary authsome home with a fixed vault key, isolated from the user's.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub key: String,
}

/// Captured result of one command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    /// Panic with the output unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
    /// Panic unless it succeeded.
    pub fn ok(self) -> Run {
        self.expect_code(0)
    }
}

use super::bin;

impl Home {
    /// A fresh home with a random AUTHSOME_VAULT_KEY.
    pub fn new() -> Home {
        super::process_env();
        use base64::Engine as _;
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(std::process::id() as u8));
        Home { dir: tempfile::tempdir().unwrap(), key: base64::engine::general_purpose::STANDARD.encode(key) }
    }

    /// A fresh home that uses the key file instead of AUTHSOME_VAULT_KEY.
    pub fn with_key_file() -> Home {
        super::process_env();
        Home { dir: tempfile::tempdir().unwrap(), key: String::new() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command with this home, no keyring, no colour, and no inherited seams.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("AUTHSOME_HOME", self.path())
            .env("AUTHSOME_NO_KEYRING", "1")
            .env("NO_COLOR", "1")
            .env_remove("AUTHSOME_PROFILE")
            .env_remove("AUTHSOME_RESOLVE")
            .env_remove("AUTHSOME_UPSTREAM_CA")
            .stdin(Stdio::null());
        if self.key.is_empty() {
            c.env_remove("AUTHSOME_VAULT_KEY");
        } else {
            c.env("AUTHSOME_VAULT_KEY", &self.key);
        }
        c
    }

    /// Run with no stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().unwrap())
    }

    /// Run with `input` piped to stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    /// Every regular file under the home, recursively.
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.path(), &mut out);
        out
    }
}
