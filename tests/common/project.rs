//! Helpers for project-mode black-box tests: a temp home with a vault key, a
//! project directory, and the real binary run inside it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temp AUTHSOME_HOME plus a project directory, isolated per test.
pub struct Sandbox {
    /// Keeps both directories alive.
    pub tmp: tempfile::TempDir,
    /// AUTHSOME_HOME.
    pub home: PathBuf,
    /// The project directory (cwd of every command).
    pub dir: PathBuf,
    /// base64 vault key.
    pub key: String,
}

impl Sandbox {
    /// Fresh home and project dir.
    pub fn new() -> Sandbox {
        super::process_env();
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let dir = tmp.path().join("proj");
        std::fs::create_dir_all(&dir).unwrap();
        let raw: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(3)).collect();
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD.encode(raw);
        Sandbox { tmp, home, dir: std::fs::canonicalize(&dir).unwrap(), key }
    }

    /// Write the project's authsome.toml.
    pub fn write_toml(&self, text: &str) -> PathBuf {
        let f = self.dir.join("authsome.toml");
        std::fs::write(&f, text).unwrap();
        f
    }

    /// `authsome ARGS` in the project dir, with a clean, isolated environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(super::bin());
        c.args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path())
            .env("AUTHSOME_HOME", &self.home)
            .env("AUTHSOME_VAULT_KEY", &self.key)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        c
    }

    /// Run and collect output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Store an API key connection via the real `login` (piped stdin).
    pub fn login_key(&self, provider: &str, connection: Option<&str>, key: &str) {
        let mut args = vec!["login", provider];
        if let Some(c) = connection {
            args.extend(["--connection", c]);
        }
        let mut child = self
            .cmd(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(key.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "login {provider}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// stdout and stderr as text.
pub fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The repository root (for examples/ and schema/).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
