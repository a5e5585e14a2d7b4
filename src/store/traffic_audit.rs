//! The proxy's audit sink for a team store: injections and refusals become
//! rows in the store, so an operator sees every machine's traffic in one
//! place (`authsome log --store`). Traffic never waits for the database: events
//! go through a bounded queue to a writer thread that inserts them in batches,
//! and whatever cannot be queued or written lands in the local `audit.log`.
//! [`flush_all`] (called once a command is done) waits briefly for the queue.

use crate::audit::{AuditSink, Event, FileAudit};
use crate::paths::Home;
use crate::store::pg::PgStore;
use crate::store::select::PgConfig;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Queue length: beyond it events go straight to the local log.
const QUEUE: usize = 1000;
/// Events per insert transaction.
const BATCH: usize = 100;

/// What the writer thread receives.
enum Msg {
    Event(Box<Event>),
    /// Answer once everything queued before it is written.
    Flush(SyncSender<()>),
}

/// Audit sink writing to the team store, falling back to the local log.
pub struct StoreAudit {
    home: Home,
    cfg: PgConfig,
    queue: OnceLock<Mutex<SyncSender<Msg>>>,
    local: Arc<FileAudit>,
}

/// Every writer of this process, so [`flush_all`] can reach them.
static WRITERS: Mutex<Vec<SyncSender<Msg>>> = Mutex::new(Vec::new());

/// Wait (at most two seconds in all) until every queued event is written:
/// a command calls this before it exits, so the last events are not lost.
pub fn flush_all() {
    let writers: Vec<SyncSender<Msg>> = WRITERS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for w in writers {
        let (ack_tx, ack_rx) = sync_channel(1);
        if w.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
        }
    }
}

impl StoreAudit {
    /// A sink for `home`'s team store `cfg`. The writer thread starts with the
    /// first event, in the process that serves traffic (the proxy of `exec`
    /// runs in a forked helper, and threads do not survive a fork), and it
    /// opens the store itself, so a missing key or an unreachable database
    /// costs the proxy nothing.
    pub fn new(home: &Home, cfg: PgConfig) -> StoreAudit {
        StoreAudit { home: home.clone(), cfg, queue: OnceLock::new(), local: Arc::new(FileAudit::new(home.audit_log())) }
    }

    fn queue(&self) -> &Mutex<SyncSender<Msg>> {
        self.queue.get_or_init(|| {
            let (tx, rx) = sync_channel(QUEUE);
            WRITERS.lock().unwrap_or_else(|e| e.into_inner()).push(tx.clone());
            let (home, cfg, local) = (self.home.clone(), self.cfg.clone(), self.local.clone());
            std::thread::Builder::new()
                .name("authsome-audit".into())
                .spawn(move || write_loop(&home, cfg, &rx, &local))
                .expect("spawning the audit writer");
            Mutex::new(tx)
        })
    }
}

impl AuditSink for StoreAudit {
    fn record(&self, event: &Event) {
        let sent = self.queue().lock().unwrap_or_else(|e| e.into_inner()).try_send(Msg::Event(Box::new(event.clone())));
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sent {
            self.local.record(event);
        }
    }
}

fn write_loop(home: &Home, cfg: PgConfig, rx: &Receiver<Msg>, local: &FileAudit) {
    let store = match PgStore::open(home, cfg) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("authsome: team store audit unavailable ({}); recording in the local audit log", e.message);
            None
        }
    };
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        // Gather what arrives within a moment, so a burst is one transaction.
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(*e),
                Msg::Flush(ack) => acks.push(ack),
            }
            if batch.len() < BATCH && acks.is_empty() {
                next = rx.recv_timeout(Duration::from_millis(20)).ok();
            }
        }
        if !batch.is_empty() {
            let written = store.as_ref().map(|s| s.audit_traffic(&batch));
            if !matches!(written, Some(Ok(()))) {
                if let Some(Err(e)) = written {
                    eprintln!("authsome: team store audit unavailable ({}); recorded in the local audit log", e.message);
                }
                for e in &batch {
                    local.record(e);
                }
            }
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}
