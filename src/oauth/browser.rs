//! Reaching the user's browser: the `BROWSER` command when set (the URL is its
//! last argument), else the platform opener; nothing over SSH, without a
//! display, or with `--no-browser` — then URLs are printed instead.

use std::process::{Command, Stdio};

/// How URLs reach the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opener {
    /// Run this command with the URL appended.
    Command(Vec<String>),
    /// Print URLs; the reason is shown once so the user knows why.
    Print(String),
}

impl Opener {
    /// Decide from the flag and the environment. An explicit `BROWSER` wins over
    /// the SSH/display heuristics (the user asked for it); `--no-browser` wins over all.
    pub fn detect(no_browser: bool) -> Opener {
        if no_browser {
            return Opener::Print("--no-browser".into());
        }
        if let Some(cmd) = std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()) {
            return Opener::Command(cmd.split_whitespace().map(str::to_owned).collect());
        }
        if std::env::var_os("SSH_CONNECTION").is_some() || std::env::var_os("SSH_TTY").is_some() {
            return Opener::Print("this is an SSH session".into());
        }
        if cfg!(target_os = "macos") {
            return Opener::Command(vec!["open".into()]);
        }
        let display = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if !display {
            return Opener::Print("no graphical display".into());
        }
        match which::which("xdg-open") {
            Ok(_) => Opener::Command(vec!["xdg-open".into()]),
            Err(_) => Opener::Print("xdg-open is not installed".into()),
        }
    }

    /// Whether a browser can be opened at all.
    pub fn available(&self) -> bool {
        matches!(self, Opener::Command(_))
    }

    /// Open `url`; `Err` explains why it could not (the caller then prints the URL).
    /// The browser never inherits authsome's vault key. A command that fails
    /// at once (exit status non-zero within [`FAILURE_WINDOW`], as `xdg-open`
    /// does without a browser) is an error too; one still running after it is
    /// taken to be the browser itself and left alone.
    pub fn open(&self, url: &str) -> Result<(), String> {
        let Opener::Command(argv) = self else {
            return Err("no browser available".into());
        };
        let (prog, args) = argv.split_first().ok_or("BROWSER is empty")?;
        let mut child = Command::new(prog)
            .args(args)
            .arg(url)
            .env_remove("AUTHSOME_VAULT_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {prog}: {e}"))?;
        let started = std::time::Instant::now();
        while started.elapsed() < FAILURE_WINDOW {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("{prog} failed ({status})")),
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => return Err(format!("cannot wait for {prog}: {e}")),
            }
        }
        // Reap it whenever it ends; browsers may outlive the login.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(())
    }

    /// [`Opener::open`] off the async runtime's threads (it may wait up to
    /// [`FAILURE_WINDOW`], while the login server must keep answering).
    pub async fn open_async(&self, url: &str) -> Result<(), String> {
        let (me, url) = (self.clone(), url.to_owned());
        tokio::task::spawn_blocking(move || me.open(&url)).await.unwrap_or_else(|e| Err(e.to_string()))
    }
}

/// How long a browser command may take to fail before it counts as opened.
pub const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_millis(1500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_browser_flag_wins() {
        assert!(!Opener::detect(true).available());
    }
}
