//! One error type for the whole binary, carrying its exit code; the exit
//! codes themselves, in one place; and the one printer every failure of every
//! command leaves through ([`Error::print`]).
//!
//! Commands return `Result<T>`; `main` prints the error once and exits with
//! its code, so no module needs to know how errors are shown.

use std::fmt;

/// Exit codes scripts rely on (README.md), kept in one place.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Anything unexpected (I/O, corrupted vault, bugs).
    pub const UNEXPECTED: i32 = 1;
    /// Bad input: usage, config, provider file.
    pub const BAD_INPUT: i32 = 2;
    /// Unknown provider or connection.
    pub const UNKNOWN: i32 = 3;
    /// Login required or failed.
    pub const LOGIN: i32 = 4;
    /// The command was found but could not be executed (as shells say).
    pub const CANNOT_EXECUTE: i32 = 126;
    /// The command was not found (as shells, `env` and `timeout` say).
    pub const NOT_FOUND: i32 = 127;
    /// A child that died of signal N exits `SIGNAL_BASE + N`.
    pub const SIGNAL_BASE: i32 = 128;
}

/// An error with the exit code the process should end with.
///
/// The message is meant for humans and must never contain a secret: every
/// constructor takes already-redacted text.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// Process exit code (see [`exit`]).
    pub code: i32,
    /// One-line (or one line per problem), secret-free description.
    pub message: String,
    /// Machine-readable detail for `--json` (for example each unmet requirement).
    pub details: Option<serde_json::Value>,
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(code: i32, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), details: None }
    }
    /// Unexpected failure (exit 1).
    pub fn other(message: impl Into<String>) -> Self {
        Error::new(exit::UNEXPECTED, message)
    }
    /// Bad input such as a malformed file or flag (exit 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::new(exit::BAD_INPUT, message)
    }
    /// Unknown provider or connection (exit 3).
    pub fn unknown(message: impl Into<String>) -> Self {
        Error::new(exit::UNKNOWN, message)
    }
    /// Login required or failed (exit 4).
    pub fn login(message: impl Into<String>) -> Self {
        Error::new(exit::LOGIN, message)
    }
    /// The command to run does not exist (exit 127).
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(exit::NOT_FOUND, message)
    }
    /// The command to run exists but cannot be executed (exit 126).
    pub fn cannot_execute(message: impl Into<String>) -> Self {
        Error::new(exit::CANNOT_EXECUTE, message)
    }
    /// Attach machine-readable detail, shown under `--json`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
    /// Prefix the message with context, keeping the exit code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The stable word `--json` reports for this error's exit code.
    pub fn kind(&self) -> &'static str {
        match self.code {
            exit::BAD_INPUT => "bad_input",
            exit::UNKNOWN => "unknown",
            exit::LOGIN => "login_required",
            exit::CANNOT_EXECUTE => "cannot_execute",
            exit::NOT_FOUND => "command_not_found",
            _ => "unexpected",
        }
    }

    /// `{"error": KIND, "message": …, "exit_code": N}` plus the details.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"error": self.kind(), "message": self.message, "exit_code": self.code});
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) = (&self.details, v.as_object_mut()) {
            for (k, val) in extra {
                obj.entry(k.clone()).or_insert_with(|| val.clone());
            }
        }
        v
    }

    /// Print the error once on stderr, as JSON under `--json`, and return its
    /// exit code: the one way every command's failure leaves the process.
    pub fn print(&self, ui: &crate::ui::Ui) -> i32 {
        if ui.json {
            eprintln!("{}", self.to_json());
        } else {
            // Every line carries the prefix, so a multi-line error still reads as authsome's.
            let mut lines = self.message.lines();
            eprintln!("{} {}", ui.paint("authsome: error:", "31"), lines.next().unwrap_or_default());
            for line in lines {
                eprintln!("authsome: {line}");
            }
        }
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::other(e.to_string())
    }
}

/// Attach a human description to I/O and similar errors.
pub trait Context<T> {
    /// Wrap the error as exit-1 with `what` in front of it.
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::other(format!("{what}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_the_kind_the_message_and_the_details() {
        let e = Error::login("github: not logged in").with_details(serde_json::json!({"unmet": [1]}));
        assert_eq!(
            e.to_json(),
            serde_json::json!({"error": "login_required", "message": "github: not logged in", "exit_code": 4, "unmet": [1]})
        );
        assert_eq!(Error::not_found("x").to_json()["error"], "command_not_found");
        assert_eq!(Error { code: 9, message: "m".into(), details: None }.kind(), "unexpected");
    }
}
