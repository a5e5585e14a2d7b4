//! How results reach the user: human tables or stable `--json`, colour rules
//! (`--no-color`, `NO_COLOR`, not a terminal), and `--quiet`.

use std::io::IsTerminal;

/// Output settings derived from the global flags once per process.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// Machine output requested.
    pub json: bool,
    /// Suppress informational messages (results and errors still print).
    pub quiet: bool,
    /// Colour allowed on stderr.
    pub color: bool,
}

impl Ui {
    /// Settings from the global flags and the environment.
    pub fn new(json: bool, quiet: bool, no_color: bool) -> Ui {
        let color = !no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal();
        Ui { json, quiet, color }
    }

    /// An informational line on stderr, unless `--quiet`.
    pub fn info(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// A success line (green check when colour is on) on stderr, unless `--quiet`.
    pub fn success(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{} {msg}", self.paint("✓", "32"));
        }
    }

    /// A warning line on stderr, unless `--quiet` (which keeps only results and errors).
    pub fn warn(&self, msg: impl std::fmt::Display) {
        if self.quiet {
            return;
        }
        eprintln!("{} {msg}", self.paint("!", "33"));
    }

    /// Wrap `s` in an ANSI colour when colour is on.
    pub fn paint(&self, s: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    /// Print a JSON value to stdout, pretty, with a trailing newline.
    pub fn print_json(&self, v: &serde_json::Value) {
        println!("{}", serde_json::to_string_pretty(v).expect("JSON value serializes"));
    }
}

/// A name with its indefinite article: "a GitHub", "an OpenAI".
pub fn with_article(title: &str) -> String {
    let vowel = title.chars().next().is_some_and(|c| "AEIOUaeiou".contains(c));
    format!("{} {title}", if vowel { "an" } else { "a" })
}

/// Render rows as aligned columns under a header (plain text, no colour).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i != last {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Ask for a secret on the controlling terminal with echo off (like `ssh`'s
/// password prompt). The value never appears on screen or in scrollback.
pub fn prompt_secret(prompt: &str) -> std::io::Result<String> {
    use nix::sys::termios::{self, LocalFlags, SetArg};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let mut out = tty.try_clone()?;
    // Echo goes off before the prompt shows: whatever is typed (or pasted)
    // the moment the prompt appears is already hidden.
    let saved = termios::tcgetattr(&tty).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    termios::tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
    let shown = write!(out, "{prompt}").and_then(|()| out.flush());
    if let Err(e) = shown {
        let _ = termios::tcsetattr(&tty, SetArg::TCSANOW, &saved);
        return Err(e);
    }
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = termios::tcsetattr(&tty, SetArg::TCSANOW, &saved);
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Ask a visible question on the controlling terminal.
pub fn prompt_line(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let mut out = tty.try_clone()?;
    write!(out, "{prompt}")?;
    out.flush()?;
    let mut line = String::new();
    std::io::BufReader::new(&tty).read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
