//! Helpers for the shell-hook tests: a sandbox (temp home, real projects, an
//! echo upstream standing in for the providers' APIs) and real interactive
//! shells driven through tmux, each on its own `tmux -L` server so tests run
//! in parallel.

use super::echo::Echo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::bin;

/// A value exercising every quoting hazard: both quotes, `$`, backquote,
/// backslash, newline, tab, unicode, a leading dash and a trailing newline.
pub const TRICKY: &str = "-x it's \"q\" $HOME `id` $(id) \\n\\ \\\\ back\\slash\nline2\ttab é ✓ 🎉 ;&|<>*?[]{}~#!%\n";

/// Fixed test vault key (base64 of 32 bytes).
/// The Discord OAuth access token stored in the vault.
pub const DISCORD_TOKEN: &str = "discord-real-token-0123456789";
/// The API key `authsome login acme` stores (from "another terminal").
pub const ACME_KEY: &str = "acme-real-key-9876543210";
/// An in-house API-key provider, installed as a custom definition.
const ACME: &str = r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":"api.acme.test",
 "api_key":{"header_name":"Authorization","header_prefix":"Bearer","env_var":"ACME_API_KEY"},"export":{"ACME_API_KEY":"API_KEY"}}"#;
/// Hosts the echo upstream answers for.
pub const HOSTS: [&str; 2] = ["discord.com", "api.acme.test"];

/// `s` as a TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A temp directory with an authsome home (custom `acme` provider, a Discord
/// token in the vault), an echo upstream for the providers' hosts, and projects:
/// `proj` (discord + acme, `WEIRD_VALUE` in `[run.env]`, allowed),
/// `proj/nested` (allowed, only `NESTED_ONLY`), `untrusted` (never allowed)
/// and `broken` (a TOML error).
pub struct Sandbox {
    /// Keeps the directory alive.
    _dir: tempfile::TempDir,
    /// Canonical root of the sandbox.
    pub root: PathBuf,
    /// The providers' APIs.
    pub echo: Echo,
}

impl Sandbox {
    /// Build the sandbox.
    pub fn new() -> Sandbox {
        super::process_env();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for d in ["home", "authsome-home/providers", "proj/sub", "proj/nested", "untrusted", "broken"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("authsome-home/providers/acme.json"), ACME).unwrap();
        let sb = Sandbox { _dir: dir, root, echo: Echo::start(&HOSTS) };
        sb.write_project("proj", &format!("[providers.discord]\n\n[providers.acme]\n\n[run.env]\nWEIRD_VALUE = {}\n", toml_str(TRICKY)));
        sb.write_project("proj/nested", "[run.env]\nNESTED_ONLY = \"n\"\n");
        sb.write_project("untrusted", "[providers.discord]\n");
        std::fs::write(sb.path("broken/authsome.toml"), "[providers.discord\n").unwrap();
        for p in ["proj", "proj/nested"] {
            sb.allow(p);
        }
        sb.store_discord_token();
        sb
    }

    /// Write `rel/authsome.toml`.
    pub fn write_project(&self, rel: &str, toml: &str) {
        std::fs::write(self.path(rel).join("authsome.toml"), toml).unwrap();
    }

    /// `authsome allow rel`.
    pub fn allow(&self, rel: &str) {
        let o = self.authsome(&["allow", &self.path(rel).to_string_lossy()]);
        assert!(o.status.success(), "allow {rel}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// Store the Discord OAuth connection through the library, as a login would.
    pub fn store_discord_token(&self) {
        let home = authsome::paths::Home::at(self.path("authsome-home"), "default");
        let vault = authsome::vault::Vault::open(&home).unwrap();
        vault
            .update(|d| {
                d.put_connection(authsome::vault::Connection::oauth("discord", "default", authsome::secret::Secret::new(DISCORD_TOKEN)));
                Ok(())
            })
            .unwrap();
    }

    /// `authsome login acme` in a separate process (another terminal), key on stdin.
    pub fn login_acme(&self) {
        use std::io::Write;
        let mut child = self.cmd(&["login", "acme"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(ACME_KEY.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "login acme: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// A path inside the sandbox.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The base environment every shell and command of a test starts from.
    pub fn base_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let mut put = |k: &str, v: String| env.insert(k.to_owned(), v);
        put("HOME", self.path("home").to_string_lossy().into_owned());
        put("PATH", "/usr/local/bin:/usr/bin:/bin".into());
        put("LANG", "C.UTF-8".into());
        put("TERM", "xterm-256color".into());
        put("AUTHSOME_HOME", self.path("authsome-home").to_string_lossy().into_owned());
        put("AUTHSOME_VAULT_KEY", super::VAULT_KEY.into());
        put("AUTHSOME_NO_KEYRING", "1".into());
        put("AUTHSOME_RESOLVE", HOSTS.iter().map(|h| self.echo.resolve(h)).collect::<Vec<_>>().join(","));
        put("AUTHSOME_UPSTREAM_CA", self.echo.ca_path.to_string_lossy().into_owned());
        put("AUTHSOME_DAEMON_LINGER", "0.2".into());
        put("NO_COLOR", "1".into());
        env
    }

    /// The binary with exactly the base environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).env_clear().envs(self.base_env()).stdin(Stdio::null());
        c
    }

    /// Run the binary with the base environment.
    pub fn authsome(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run `authsome export <shell>` in `cwd` with exactly `env`, as shell `pid`.
    pub fn export(&self, shell: &str, cwd: &Path, env: &BTreeMap<String, String>) -> Output {
        Command::new(bin()).args(["export", shell]).current_dir(cwd).env_clear().envs(env).output().unwrap()
    }

    /// `authsome daemon status --json`.
    pub fn daemons(&self) -> Vec<serde_json::Value> {
        let o = self.authsome(&["daemon", "status", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap().as_array().unwrap().clone()
    }

    /// Wait until `cond` holds (a liveness bound, not a timing assertion).
    pub fn eventually(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
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
