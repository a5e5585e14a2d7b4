//! The audit log (README.md): one JSON line per injection and per refusal in
//! `<home>/audit.log` (mode 0600). Events carry what a human needs to answer
//! "which program used which credential where" — never a secret and never a
//! query string, which often carries keys of its own.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// Whether the proxy added a credential or declined to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The real credential was added to the request.
    Inject,
    /// The proxy refused the request or declined to add a credential.
    Refuse,
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 UTC time.
    pub time: String,
    /// The run (proxy instance) that handled the request.
    pub run_id: String,
    /// Injection or refusal.
    pub action: Action,
    /// Provider concerned, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Connection concerned, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// HTTP method (`CONNECT` for refused tunnels).
    pub method: String,
    /// Target host (with `:port` when not 443).
    pub host: String,
    /// Request path, query removed.
    pub path: String,
    /// HTTP status returned to the client.
    pub status: u16,
    /// Why a refusal happened (or a short note on an injection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event {
    /// An event stamped with the current time; `path` is cut at the query.
    pub fn new(run_id: &str, action: Action, method: &str, host: &str, path: &str, status: u16) -> Event {
        Event {
            time: crate::fmt_time(crate::fsutil::now_unix()),
            run_id: run_id.to_owned(),
            action,
            provider: None,
            connection: None,
            method: method.to_owned(),
            host: host.to_owned(),
            path: strip_query(path).to_owned(),
            status,
            reason: None,
        }
    }

    /// Attach the provider and connection.
    pub fn route(mut self, provider: &str, connection: &str) -> Event {
        self.provider = Some(provider.to_owned());
        self.connection = Some(connection.to_owned());
        self
    }

    /// Attach a reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Event {
        self.reason = Some(reason.into());
        self
    }
}

/// The part of a request target before `?` (and `#`).
pub fn strip_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or("")
}

/// Where audit events go. The proxy depends on this trait only, so a daemon
/// (or a test) can route events elsewhere.
pub trait AuditSink: Send + Sync {
    /// Record one event; failures are reported on stderr, never fatal to traffic.
    fn record(&self, event: &Event);
}

/// Appends events to a file, one `write` per line (O_APPEND keeps lines from
/// concurrent authsome processes whole).
pub struct FileAudit {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl FileAudit {
    /// A sink writing to `path` (usually `home.audit_log()`), created 0600 on first event.
    pub fn new(path: PathBuf) -> FileAudit {
        FileAudit { path, file: Mutex::new(None) }
    }

    fn open(&self) -> std::io::Result<std::fs::File> {
        if let Some(dir) = self.path.parent() {
            if !dir.exists() {
                crate::fsutil::ensure_private_dir(dir)?;
            }
        }
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)
    }
}

impl AuditSink for FileAudit {
    fn record(&self, event: &Event) {
        let mut line = serde_json::to_vec(event).expect("events serialize");
        line.push(b'\n');
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            match self.open() {
                Ok(f) => *guard = Some(f),
                Err(e) => {
                    eprintln!("authsome: cannot open audit log {}: {e}", self.path.display());
                    return;
                }
            }
        }
        if let Some(f) = guard.as_mut() {
            if let Err(e) = f.write_all(&line) {
                eprintln!("authsome: cannot write audit log {}: {e}", self.path.display());
            }
        }
    }
}

/// Read every parseable event of a log file (missing file: none).
pub fn read(path: &std::path::Path) -> std::io::Result<Vec<Event>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_private_and_carry_no_query() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = FileAudit::new(path.clone());
        sink.record(&Event::new("r1", Action::Inject, "GET", "api.test", "/x?key=secret", 200).route("p", "default"));
        sink.record(&Event::new("r1", Action::Refuse, "CONNECT", "api.test", "", 407).reason("proxy credential missing"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret"));
        let events = read(&path).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].path, "/x");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
