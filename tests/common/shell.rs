//! Helpers for the shell-hook tests: a sandbox (temp home, projects, stand-in
//! activation file) and real interactive shells driven through tmux, each on
//! its own `tmux -L` server so tests run in parallel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_authsome")
}

/// A value exercising every quoting hazard: both quotes, `$`, backquote,
/// backslash, newline, tab, unicode, a leading dash and a trailing newline.
pub const TRICKY: &str = "-x it's \"q\" $HOME `id` $(id) \\n\\ \\\\ back\\slash\nline2\ttab é ✓ 🎉 ;&|<>*?[]{}~#!%\n";

/// A temp directory with an authsome home, a trusted project, an untrusted one,
/// and the stand-in activation file describing them.
pub struct Sandbox {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// Canonical root of the sandbox.
    pub root: PathBuf,
}

impl Sandbox {
    /// Build the sandbox; `proj` wants `wanted` (and `SSL_CERT_DIR` unset),
    /// `proj/nested` wants other values, `untrusted` is not trusted, `broken` has an error.
    pub fn new(wanted: &BTreeMap<&str, &str>) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for d in ["home", "authsome-home", "proj/sub", "untrusted", "broken", "proj/nested"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for p in ["proj", "untrusted", "broken", "proj/nested"] {
            std::fs::write(root.join(p).join("authsome.toml"), "# stand-in project\n").unwrap();
        }
        let sb = Sandbox { dir, root };
        sb.set_wanted(wanted);
        sb
    }

    /// Rewrite the stand-in file so `proj` wants `wanted`.
    pub fn set_wanted(&self, wanted: &BTreeMap<&str, &str>) {
        let key = |p: &str| self.root.join(p).join("authsome.toml").to_string_lossy().into_owned();
        let mut all = serde_json::Map::new();
        let mut env = serde_json::to_value(wanted).unwrap();
        env["SSL_CERT_DIR"] = serde_json::Value::Null; // the project unsets it
        all.insert(key("proj"), serde_json::json!({"env": env, "notices": ["missing login: run `authsome login discord`"]}));
        all.insert(key("proj/nested"), serde_json::json!({"env": {"NESTED_ONLY": "n", "HTTPS_PROXY": "http://nested:1"}}));
        all.insert(key("untrusted"), serde_json::json!({"untrusted": true}));
        all.insert(key("broken"), serde_json::json!({"error": "authsome.toml:1:1: expected a table"}));
        std::fs::write(self.standin(), serde_json::to_vec_pretty(&serde_json::Value::Object(all)).unwrap()).unwrap();
    }

    /// The stand-in activation file.
    pub fn standin(&self) -> PathBuf {
        self.root.join("standin.json")
    }

    /// A path inside the sandbox.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The base environment every shell and command of a test starts from.
    pub fn base_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("HOME".into(), self.path("home").to_string_lossy().into_owned());
        env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
        env.insert("LANG".into(), "C.UTF-8".into());
        env.insert("TERM".into(), "xterm-256color".into());
        env.insert("AUTHSOME_HOME".into(), self.path("authsome-home").to_string_lossy().into_owned());
        env.insert("AUTHSOME_SHELL_STANDIN".into(), self.standin().to_string_lossy().into_owned());
        env
    }

    /// Run `authsome export <shell>` in `cwd` with exactly `env`.
    pub fn export(&self, shell: &str, cwd: &Path, env: &BTreeMap<String, String>) -> Output {
        Command::new(bin()).args(["export", shell]).current_dir(cwd).env_clear().envs(env).output().unwrap()
    }
}

/// Apply a `authsome export json` output to `env`.
pub fn apply_json(env: &mut BTreeMap<String, String>, stdout: &[u8]) {
    if stdout.is_empty() {
        return;
    }
    let v: serde_json::Value = serde_json::from_slice(stdout).expect("export json prints JSON");
    for (k, v) in v.as_object().unwrap() {
        match v.as_str() {
            Some(s) => env.insert(k.clone(), s.to_owned()),
            None => env.remove(k),
        };
    }
}

/// Parse the output of `env -0`.
pub fn parse_env0(bytes: &[u8]) -> BTreeMap<String, String> {
    bytes
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let s = String::from_utf8_lossy(e);
            let (k, v) = s.split_once('=').unwrap_or((&s, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Which interactive shell to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// bash with a string PROMPT_COMMAND already set by the user.
    BashString,
    /// bash with an array PROMPT_COMMAND (bash ≥ 5.1).
    BashArray,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

impl Kind {
    /// How to read the last status in this shell.
    pub fn status_var(self) -> &'static str {
        if self == Kind::Fish {
            "$status"
        } else {
            "$?"
        }
    }
}

/// A real interactive shell inside its own tmux server.
pub struct Tmux {
    socket: String,
    /// Directory for the rc files and the files commands write.
    pub work: PathBuf,
    seq: u32,
}

impl Tmux {
    /// Start `kind` in `cwd` with exactly `env`, the authsome hook installed from its rc file.
    pub fn start(kind: Kind, root: &Path, cwd: &Path, env: &BTreeMap<String, String>) -> Tmux {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("authsome-test-{}-{n}", std::process::id());
        let work = root.join(format!("tmux-{n}"));
        std::fs::create_dir_all(&work).unwrap();
        let ready = work.join("ready");
        let exe = bin();
        let shell_cmd = match kind {
            Kind::BashString | Kind::BashArray => {
                let user_pc = if kind == Kind::BashArray { "PROMPT_COMMAND=(_user_pc)" } else { "PROMPT_COMMAND='_user_pc'" };
                let rc = format!(
                    "PS1='$ '\n_user_pc() {{ echo x >> '{w}/user_pc'; }}\n{user_pc}\neval \"$('{exe}' hook bash)\"\neval \"$('{exe}' hook bash)\"\ntouch '{r}'\n",
                    w = work.display(),
                    r = ready.display()
                );
                std::fs::write(work.join("rc"), rc).unwrap();
                format!("bash --noprofile --rcfile '{}' -i", work.join("rc").display())
            }
            Kind::Zsh => {
                let rc = format!("PS1='%% '\neval \"$('{exe}' hook zsh)\"\neval \"$('{exe}' hook zsh)\"\ntouch '{}'\n", ready.display());
                std::fs::write(work.join(".zshrc"), rc).unwrap();
                format!("env ZDOTDIR='{}' zsh -i", work.display())
            }
            Kind::Fish => {
                let rc = format!(
                    "function fish_prompt; echo -n '> '; end\nfunction fish_greeting; end\n'{exe}' hook fish | source\n'{exe}' hook fish | source\ntouch '{}'\n",
                    ready.display()
                );
                std::fs::write(work.join("rc.fish"), rc).unwrap();
                format!("fish --no-config --interactive --init-command 'source {}'", work.join("rc.fish").display())
            }
        };
        let mut script = String::from("exec env -i");
        for (k, v) in env {
            script.push_str(&format!(" {k}='{}'", v.replace('\'', "'\\''")));
        }
        script.push_str(&format!(" sh -c \"cd '{}' && exec {}\"", cwd.display(), shell_cmd.replace('"', "\\\"")));
        std::fs::write(work.join("start.sh"), &script).unwrap();
        let st = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-x", "250", "-y", "50", "-s", "t"])
            .arg(format!("sh '{}'", work.join("start.sh").display()))
            .status()
            .expect("tmux is installed");
        assert!(st.success(), "tmux new-session failed");
        let t = Tmux { socket, work, seq: 0 };
        t.wait_for(&ready);
        t
    }

    /// Type `line` and press Enter.
    pub fn send(&self, line: &str) {
        let st = Command::new("tmux").args(["-L", &self.socket, "send-keys", "-t", "t", "-l", line]).status().unwrap();
        assert!(st.success());
        let st = Command::new("tmux").args(["-L", &self.socket, "send-keys", "-t", "t", "Enter"]).status().unwrap();
        assert!(st.success());
    }

    /// Type `cmd` redirected into a fresh file and wait for its content (written
    /// to a temp name then renamed, so it is complete when it appears).
    pub fn capture(&mut self, cmd: &str) -> Vec<u8> {
        self.seq += 1;
        let out = self.work.join(format!("out{}", self.seq));
        let tmp = self.work.join(format!("out{}.tmp", self.seq));
        self.send(&format!("{cmd} > '{}' && mv '{}' '{}'", tmp.display(), tmp.display(), out.display()));
        self.wait_for(&out);
        std::fs::read(&out).unwrap()
    }

    /// The exported environment of the shell right now.
    pub fn env(&mut self) -> BTreeMap<String, String> {
        parse_env0(&self.capture("env -0"))
    }

    /// Everything shown in the pane, scrollback included.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-J", "-S", "-", "-t", "t"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait for `path` to exist; panics with the pane content after a generous bound.
    pub fn wait_for(&self, path: &Path) {
        let start = Instant::now();
        while !path.exists() {
            if start.elapsed() > Duration::from_secs(60) {
                panic!("timed out waiting for {}; screen:\n{}", path.display(), self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}
