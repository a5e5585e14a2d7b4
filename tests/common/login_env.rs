//! Running the real binary against a fake authorization server: a private
//! home, a free callback port, a BROWSER stand-in, and output checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A finished run.
#[derive(Debug, Clone)]
pub struct Out {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Both streams, for messages.
    pub fn all(&self) -> String {
        format!("exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// A private authsome home plus the environment every run gets.
pub struct LoginEnv {
    /// Temporary directory holding the home and helper files.
    pub dir: tempfile::TempDir,
    /// Where the login server listens in this test.
    pub callback: SocketAddr,
    /// Extra variables for every run.
    pub vars: Vec<(String, String)>,
}

/// A free loopback port for a server the code under test binds later.
///
/// Taken below the kernel's ephemeral range (32768 and up on Linux), so an
/// outgoing connection of a parallel test cannot grab it between this check
/// and the real bind; a per-process counter keeps parallel tests apart, and
/// each candidate is bound once to skip ports another process holds.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 2_000;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap();
        }
    }
}

/// Path of a helper under tests/support.
pub fn support(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("support").join(name)
}

impl LoginEnv {
    /// A fresh home; the vault key lives in `<home>/vault.key` so the test can read the vault too.
    pub fn new() -> LoginEnv {
        super::process_env();
        LoginEnv { dir: tempfile::tempdir().unwrap(), callback: free_addr(), vars: Vec::new() }
    }

    /// The authsome home.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Install a provider file under `<home>/providers`.
    pub fn install_provider(&self, def: &serde_json::Value) {
        let dir = self.home().join("providers");
        std::fs::create_dir_all(&dir).unwrap();
        let name = def["name"].as_str().unwrap();
        std::fs::write(dir.join(format!("{name}.json")), serde_json::to_string_pretty(def).unwrap()).unwrap();
    }

    /// Use `tests/support/fake_browser.py` as BROWSER: it fills the local forms
    /// from `answers` (JSON: client_id, client_secret, api_key) and follows
    /// authorization URLs to the callback. Its log is [`LoginEnv::browser_log`].
    pub fn use_fake_browser(&mut self, answers: serde_json::Value) {
        let creds = self.dir.path().join("browser-answers.json");
        std::fs::write(&creds, answers.to_string()).unwrap();
        self.set("BROWSER", &support("fake_browser.py").display().to_string());
        self.set("FAKE_BROWSER_ANSWERS", &creds.display().to_string());
        self.set("FAKE_BROWSER_LOG", &self.dir.path().join("browser.log").display().to_string());
    }

    /// What the BROWSER stand-in did, one JSON object per visit.
    pub fn browser_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("browser.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The browser log once it holds at least `n` visits: the BROWSER helper
    /// writes its entry after the page arrived, possibly after authsome exited.
    pub fn wait_browser_log(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.browser_log();
            if log.len() >= n || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A fresh home with `fake`'s Discord-shaped provider installed and the
    /// BROWSER stand-in answering its client form with `fake`'s credentials.
    pub fn with_discord(fake: &super::fake_as::FakeAs) -> LoginEnv {
        let mut env = LoginEnv::new();
        env.install_provider(&fake.discord_provider());
        let c = fake.config();
        env.use_fake_browser(serde_json::json!({"client_id": c.client_id, "client_secret": c.client_secret.unwrap_or_default()}));
        env
    }

    /// Send later runs' connections to `host:443` to `echo`, trusting its CA.
    pub fn upstream(&mut self, echo: &super::echo::Echo, host: &str) {
        self.set("AUTHSOME_RESOLVE", &echo.resolve(host));
        self.set("AUTHSOME_UPSTREAM_CA", &echo.ca_path.display().to_string());
    }

    /// Set a variable for every later run.
    pub fn set(&mut self, k: &str, v: &str) {
        self.vars.retain(|(n, _)| n != k);
        self.vars.push((k.to_owned(), v.to_owned()));
    }

    /// The binary with a clean environment: PATH, HOME, this home, the suite's
    /// vault key (what [`LoginEnv::vault`] reads with, see `common::process_env`),
    /// the callback address.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(super::bin());
        c.args(args).env_clear();
        for k in ["PATH", "HOME", "LANG"] {
            if let Some(v) = std::env::var_os(k) {
                c.env(k, v);
            }
        }
        c.env("AUTHSOME_HOME", self.home())
            .env("AUTHSOME_CALLBACK_ADDR", self.callback.to_string())
            .env("AUTHSOME_VAULT_KEY", super::VAULT_KEY)
            .env("AUTHSOME_NO_KEYRING", "1")
            .env("NO_COLOR", "1");
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// Run to completion with stdin from `/dev/null` (or `input` when given).
    pub fn run(&self, args: &[&str], input: Option<&str>) -> Out {
        run_with(self.cmd(args), input)
    }

    /// The decrypted vault of the default profile.
    pub fn vault(&self) -> authsome::vault::VaultData {
        let home = authsome::paths::Home::at(self.home(), "default");
        authsome::vault::Vault::open(&home).unwrap().load().unwrap()
    }
}

/// Run `c` to completion with stdin from `/dev/null` (or `input` when given).
pub fn run_with(mut c: Command, input: Option<&str>) -> Out {
    c.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(i) = input {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(i.as_bytes()).unwrap();
    }
    finish(child)
}

/// Wait for a child (killing it after a generous safety deadline) and collect its output.
pub fn finish(mut child: Child) -> Out {
    use std::io::Read;
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out { code: status.code().unwrap_or(-1), stdout: o.join().unwrap(), stderr: e.join().unwrap() }
}

/// Assert that no secret value appears in any output.
pub fn assert_no_secrets(secrets: &[String], outs: &[&Out]) {
    assert!(!secrets.is_empty(), "no secrets to look for");
    for out in outs {
        for s in secrets {
            assert!(!out.stdout.contains(s.as_str()) && !out.stderr.contains(s.as_str()), "a secret leaked into output:\n{}", out.all());
        }
    }
}
