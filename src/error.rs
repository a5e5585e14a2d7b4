//! One error type for the whole binary, carrying the exit code of SPEC §2.
//!
//! Commands return `Result<T>`; `main` prints the message once and exits with the
//! code, so no module needs to know how errors are shown.

use std::fmt;

/// Exit codes fixed by SPEC §2, kept in one place so scripts can rely on them.
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
}

/// An error with the exit code the process should end with.
///
/// The message is meant for humans and must never contain a secret: every
/// constructor takes already-redacted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Process exit code (see [`exit`]).
    pub code: i32,
    /// One-line, secret-free description.
    pub message: String,
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Unexpected failure (exit 1).
    pub fn other(message: impl Into<String>) -> Self {
        Error { code: exit::UNEXPECTED, message: message.into() }
    }
    /// Bad input such as a malformed file or flag (exit 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error { code: exit::BAD_INPUT, message: message.into() }
    }
    /// Unknown provider or connection (exit 3).
    pub fn unknown(message: impl Into<String>) -> Self {
        Error { code: exit::UNKNOWN, message: message.into() }
    }
    /// Login required or failed (exit 4).
    pub fn login(message: impl Into<String>) -> Self {
        Error { code: exit::LOGIN, message: message.into() }
    }
    /// Prefix the message with context, keeping the exit code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
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
