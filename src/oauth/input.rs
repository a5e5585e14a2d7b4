//! Questions at the terminal. Piped standard input wins (scripts, CI, tests);
//! otherwise the controlling terminal is used, with echo off for secrets.

use std::io::{BufRead, IsTerminal};

/// Whether answers come from a pipe rather than a person.
pub fn piped() -> bool {
    !std::io::stdin().is_terminal()
}

/// Ask one line. From a pipe the prompt goes to stderr and one line is read;
/// `None` at end of input.
pub fn ask(prompt: &str, hidden: bool) -> std::io::Result<Option<String>> {
    if piped() {
        eprint!("{prompt}");
        let mut line = String::new();
        let n = std::io::stdin().lock().read_line(&mut line)?;
        eprintln!();
        return Ok((n > 0).then(|| line.trim_end_matches(['\r', '\n']).to_owned()));
    }
    let answer = if hidden { crate::ui::prompt_secret(prompt)? } else { crate::ui::prompt_line(prompt)? };
    Ok(Some(answer))
}

/// Read one line from the user without a prompt (pasted redirect URLs, Enter
/// presses). Blocking: call from a blocking thread.
pub fn read_line() -> std::io::Result<Option<String>> {
    let mut line = String::new();
    let n = if piped() {
        std::io::stdin().lock().read_line(&mut line)?
    } else {
        let tty = std::fs::File::open("/dev/tty")?;
        std::io::BufReader::new(tty).read_line(&mut line)?
    };
    Ok((n > 0).then(|| line.trim().to_owned()))
}
