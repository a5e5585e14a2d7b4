//! Project-mode runs (`up`, `exec`) against the proxy test world: a project
//! directory inside the world's home, connections written through the
//! library, and helpers to read what the child saw.

use super::proxy::World;
use std::path::PathBuf;

/// A proxy test world plus a project directory.
pub struct ProjectWorld {
    pub world: World,
    pub dir: PathBuf,
}

impl ProjectWorld {
    /// World (acme + octo + github connected) with an empty project directory.
    pub fn new() -> ProjectWorld {
        let world = World::new();
        let dir = world.outside.path().join("proj");
        std::fs::create_dir_all(&dir).unwrap();
        let dir = std::fs::canonicalize(dir).unwrap();
        ProjectWorld { world, dir }
    }

    /// Write `authsome.toml`.
    pub fn write_toml(&self, text: &str) {
        std::fs::write(self.dir.join("authsome.toml"), text).unwrap();
    }

    /// `authsome ARGS` in the project directory.
    pub fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = self.world.cmd(args);
        c.current_dir(&self.dir);
        c.env_remove("CI");
        c
    }

    /// Run to completion.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd(args).output().unwrap()
    }

    /// `authsome allow` the current file.
    pub fn allow(&self) {
        let out = self.run(&["allow"]);
        assert!(out.status.success(), "{}", super::proxy::text(&out));
    }

    /// Store an OAuth connection `name` of `provider` holding `token`.
    pub fn store_connection(&self, provider: &str, name: &str, token: &str) {
        let home = authsome::paths::Home::at(self.world.home.path(), "default");
        let vault = authsome::vault::Vault::open(&home).unwrap();
        vault
            .update(|d| {
                d.put_connection(authsome::vault::Connection::oauth(provider, name, authsome::secret::Secret::new(token)));
                Ok(())
            })
            .unwrap();
    }
}

/// A `curl` through the run's proxy to `url`, sending `Authorization: Bearer $VAR`.
pub fn curl_with(var: &str, url: &str) -> String {
    format!("curl -sS -f -o /dev/null -H \"Authorization: Bearer ${var}\" {url}")
}

/// A process running on a fresh pseudo-terminal, its output collected.
pub struct Pty {
    pub child: std::process::Child,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    master: std::fs::File,
}

impl Pty {
    /// Spawn `cmd` as the session leader of a new pty (so it has a
    /// controlling terminal and `isatty` is true on all three streams).
    pub fn spawn(mut cmd: std::process::Command) -> Pty {
        use std::os::unix::process::CommandExt;
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = std::fs::File::from(pty.slave);
        cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave.try_clone().unwrap());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(slave);
        let master = std::fs::File::from(pty.master);
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().unwrap(), output.clone());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { child, output, master }
    }

    /// Everything written to the terminal so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Type `s` on the terminal.
    pub fn send(&mut self, s: &str) {
        use std::io::Write;
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// Wait (up to a generous safety deadline) until the output contains `needle`.
    pub fn expect(&self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !self.output().contains(needle) {
            assert!(std::time::Instant::now() < deadline, "never saw {needle:?} in:\n{}", self.output());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Wait for the process to exit; its exit code.
    pub fn wait(&mut self) -> i32 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(std::time::Duration::from_millis(100));
                return s.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("timed out; output:\n{}", self.output());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Wait (up to a generous safety deadline) until `path` exists.
pub fn wait_for_file(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
