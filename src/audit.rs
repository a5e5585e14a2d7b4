//! The audit log (README.md): one JSON line per injection and per refusal in
//! `<home>/audit.log` (mode 0600). Events carry what a human needs to answer
//! "which program used which credential where" — never a secret and never a
//! query string, which often carries keys of its own.
//!
//! The log is bounded: when it reaches [`MAX_BYTES`] it is renamed to
//! `audit.log.1` (older generations shift up to `audit.log.`[`GENERATIONS`]),
//! and [`read_last`] reads across them. Fields a client chooses (path, host,
//! method) are cut to a few hundred characters, and refusals of clients without
//! the proxy credential (anyone on the machine can send them) are aggregated:
//! the first of a burst is written, and the rest become one line carrying a
//! `repeated` count. So a flood cannot fill the disk or bury the real events.
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Size at which the log is rotated.
pub const MAX_BYTES: u64 = 8 << 20;
/// Rotated generations kept (`audit.log.1` … `audit.log.N`).
pub const GENERATIONS: u32 = 3;
/// Longest path, host or reason written (in characters); longer ones are cut and end in `…`.
pub const MAX_FIELD_CHARS: usize = 256;
/// Refusals without the proxy credential within this window are one line.
pub const AGGREGATE_WINDOW: Duration = Duration::from_secs(10);

/// Whether the proxy added a credential or declined to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The real credential was added to the request.
    Inject,
    /// The proxy refused the request or declined to add a credential.
    Refuse,
    /// No answer came back from the upstream (unreachable, failed TLS
    /// handshake); whatever was decided, nothing was delivered.
    Failed,
}

impl Action {
    /// The word shown by `authsome log` and stored in the team store (the
    /// same spelling as in the JSON lines).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Inject => "inject",
            Action::Refuse => "refuse",
            Action::Failed => "failed",
        }
    }
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
    /// This line stands for this many further refusals like it (same run,
    /// status and reason; the method, host and path shown are the last one's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeated: Option<u64>,
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
            method: cap(method, 16),
            host: cap(host, MAX_FIELD_CHARS),
            path: cap(strip_query(path), MAX_FIELD_CHARS),
            status,
            reason: None,
            repeated: None,
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
        self.reason = Some(cap(&reason.into(), MAX_FIELD_CHARS));
        self
    }

    /// Refusals that are aggregated: those answered 407 (no proxy credential).
    /// Keyed by run and reason only, since the rest is the sender's choice.
    fn aggregation_key(&self) -> Option<(String, u16, Option<String>)> {
        (self.action == Action::Refuse && self.status == 407).then(|| (self.run_id.clone(), self.status, self.reason.clone()))
    }
}

/// `s` cut to at most `max` characters, ending in `…` when cut.
fn cap(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if s[i..].chars().count() > 1 => format!("{}…", &s[..i]),
        _ => s.to_owned(),
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
/// concurrent authsome processes whole), rotating it by size.
pub struct FileAudit {
    path: PathBuf,
    max_bytes: u64,
    state: Mutex<SinkState>,
}

#[derive(Default)]
struct SinkState {
    file: Option<std::fs::File>,
    /// Bytes this sink appended since it last looked at the file's size.
    unchecked: u64,
    /// Refusals being aggregated: the last one seen, how many were held back,
    /// and when its window closes.
    bursts: HashMap<(String, u16, Option<String>), Burst>,
}

struct Burst {
    last: Event,
    held: u64,
    until: Instant,
}

impl FileAudit {
    /// A sink writing to `path` (usually `home.audit_log()`), created 0600 on first event.
    pub fn new(path: PathBuf) -> FileAudit {
        FileAudit::rotating_at(path, MAX_BYTES)
    }

    /// A sink that rotates at `max_bytes` instead of [`MAX_BYTES`] (tests).
    pub fn rotating_at(path: PathBuf, max_bytes: u64) -> FileAudit {
        FileAudit { path, max_bytes, state: Mutex::new(SinkState::default()) }
    }

    fn open(&self) -> std::io::Result<std::fs::File> {
        if let Some(dir) = self.path.parent() {
            if !dir.exists() {
                crate::fsutil::ensure_private_dir(dir)?;
            }
        }
        // Never through a link: another file must not receive the log.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&self.path)
    }

    /// Append `line`, rotating first when the file reached the size limit.
    /// The size is looked at (one `fstat`) after every sixteenth of the limit
    /// this sink wrote, not at every line; other processes appending to the
    /// same file can take it past the limit by as much each.
    fn append(&self, state: &mut SinkState, line: &[u8]) -> std::io::Result<()> {
        if let Some(f) = &state.file {
            if state.unchecked >= self.max_bytes / 16 {
                state.unchecked = 0;
                if f.metadata()?.len() >= self.max_bytes {
                    self.rotate(f)?;
                    state.file = None;
                }
            }
        }
        if state.file.is_none() {
            let f = self.open()?;
            state.unchecked = f.metadata()?.len();
            state.file = Some(f);
        }
        state.unchecked += line.len() as u64;
        state.file.as_mut().expect("opened above").write_all(line)
    }

    /// Rotate the full file `ours` (the one this sink writes to). Under its
    /// lock, and only if it is still the current log: another process may
    /// have rotated it already, and then reopening is all that is needed.
    fn rotate(&self, ours: &std::fs::File) -> std::io::Result<()> {
        let lock =
            nix::fcntl::Flock::lock(ours.try_clone()?, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))?;
        let current = std::fs::metadata(&self.path).ok();
        let meta = lock.metadata()?;
        if current.is_some_and(|c| c.ino() == meta.ino() && c.dev() == meta.dev()) {
            for n in (1..GENERATIONS).rev() {
                let _ = std::fs::rename(generation(&self.path, n), generation(&self.path, n + 1));
            }
            std::fs::rename(&self.path, generation(&self.path, 1))?;
        }
        Ok(())
    }

    fn write_event(&self, state: &mut SinkState, event: &Event) {
        let mut line = serde_json::to_vec(event).expect("events serialize");
        line.push(b'\n');
        if let Err(e) = self.append(state, &line) {
            crate::ui::say(format_args!("authsome: cannot write audit log {}: {e}", self.path.display()));
        }
    }

    /// Write the summary of every burst whose window closed (all with `all`).
    fn flush_bursts(&self, state: &mut SinkState, all: bool) {
        let now = Instant::now();
        let closed: Vec<_> = state.bursts.iter().filter(|(_, b)| all || b.until <= now).map(|(k, _)| k.clone()).collect();
        for key in closed {
            let burst = state.bursts.remove(&key).expect("listed above");
            if burst.held > 0 {
                let summary = Event { time: crate::fmt_time(crate::fsutil::now_unix()), repeated: Some(burst.held), ..burst.last };
                self.write_event(state, &summary);
            }
        }
    }
}

/// The path of rotated generation `n` of `log` (`audit.log.1`, …).
fn generation(log: &Path, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl AuditSink for FileAudit {
    fn record(&self, event: &Event) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.flush_bursts(&mut state, false);
        if let Some(key) = event.aggregation_key() {
            if let Some(burst) = state.bursts.get_mut(&key) {
                burst.last = event.clone();
                burst.held += 1;
                return;
            }
            state.bursts.insert(key, Burst { last: event.clone(), held: 0, until: Instant::now() + AGGREGATE_WINDOW });
        }
        self.write_event(&mut state, event);
    }
}

impl Drop for FileAudit {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.flush_bursts(&mut state, true);
    }
}

/// The last `n` parseable events of the log at `path`, across its rotated
/// generations, oldest first (missing files: none).
pub fn read_last(path: &Path, n: usize) -> std::io::Result<Vec<Event>> {
    let mut newest_first: Vec<Event> = Vec::new();
    for g in 0..=GENERATIONS {
        let file = if g == 0 { path.to_owned() } else { generation(path, g) };
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        newest_first.extend(text.lines().rev().filter_map(|l| serde_json::from_str(l).ok()).take(n - newest_first.len()));
        if newest_first.len() >= n {
            break;
        }
    }
    newest_first.reverse();
    Ok(newest_first)
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
        let events = read_last(&path, 10).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].path, "/x");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn client_chosen_fields_are_capped() {
        let long = format!("/{}", "a".repeat(65_000));
        let e = Event::new("r1", Action::Refuse, &"X".repeat(100), &"h".repeat(1000), &long, 407).reason("r".repeat(10_000));
        assert_eq!(e.path.chars().count(), MAX_FIELD_CHARS);
        assert!(e.path.ends_with('…') && e.path.starts_with("/aaa"));
        assert_eq!(e.host.chars().count(), MAX_FIELD_CHARS);
        assert_eq!(e.method.chars().count(), 16);
        assert_eq!(e.reason.as_ref().unwrap().chars().count(), MAX_FIELD_CHARS);
        assert_eq!(cap("é".repeat(5).as_str(), 5), "ééééé", "a field at the limit is kept whole");
        assert_eq!(cap("ééééééé", 5), "éééé…");
    }

    #[test]
    fn a_flood_of_unauthenticated_refusals_is_one_line_and_a_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = FileAudit::new(path.clone());
        for i in 0..1000 {
            sink.record(&Event::new("r1", Action::Refuse, "CONNECT", &format!("h{i}.test"), "", 407).reason("proxy credential missing"));
        }
        sink.record(&Event::new("r1", Action::Inject, "GET", "api.test", "/x", 200).route("p", "default"));
        let events = read_last(&path, 100).unwrap();
        assert_eq!(events.len(), 2, "the first refusal and the injection: {events:?}");
        assert_eq!((events[0].status, events[0].repeated), (407, None));
        assert_eq!(events[1].action, Action::Inject);
        drop(sink);
        let events = read_last(&path, 100).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].repeated, Some(999), "the held-back refusals are counted when the sink closes");
        assert_eq!(events[2].host, "h999.test");
    }

    #[test]
    fn the_log_rotates_by_size_and_is_read_across_generations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        // Two sinks on one file, as two authsome processes would have.
        let (a, b) = (FileAudit::rotating_at(path.clone(), 2_000), FileAudit::rotating_at(path.clone(), 2_000));
        for i in 0..200 {
            let sink = if i % 2 == 0 { &a } else { &b };
            sink.record(&Event::new("r1", Action::Inject, "GET", "api.test", &format!("/{i}"), 200));
        }
        for g in 1..=GENERATIONS {
            assert!(generation(&path, g).exists(), "generation {g} missing");
        }
        assert!(!generation(&path, GENERATIONS + 1).exists(), "only {GENERATIONS} generations are kept");
        let total: u64 =
            (0..=GENERATIONS).map(|g| std::fs::metadata(if g == 0 { path.clone() } else { generation(&path, g) }).unwrap().len()).sum();
        assert!(total < 2_000 * u64::from(GENERATIONS + 1) + 1_000, "the log is bounded: {total} bytes");
        let last = read_last(&path, 40).unwrap();
        assert_eq!(last.len(), 40, "read across generations");
        let paths: Vec<u32> = last.iter().map(|e| e.path[1..].parse().unwrap()).collect();
        assert_eq!(paths, (160..200).collect::<Vec<_>>(), "the newest events, oldest first, none lost or repeated");
    }
}
