//! The bound on connections that have not yet sent the proxy credential.
//!
//! Every accepted connection is admitted as pending; the first request that
//! carries the credential takes it out of the set. When more than the cap are
//! pending, the oldest is told to close, provided it had [`GRACE`] to send its
//! first request: a legitimate client authenticates at once, so the
//! connections that linger are the ones that send nothing, or a half request,
//! on purpose, while a burst of new legitimate connections is not cut short.
//! Another local user can therefore hold about the cap of descriptors, and
//! never keep a run's client out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a new connection has to send its first request before it may be
/// evicted to make room.
pub(crate) const GRACE: Duration = Duration::from_millis(500);

/// The set of pending (unauthenticated) connections of one proxy.
pub(crate) struct Admission {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    pending: BTreeMap<u64, (Instant, oneshot::Sender<()>)>,
}

/// One pending connection; dropping it (or [`Pending::authenticated`]) takes
/// it out of the set.
pub(crate) struct Pending {
    admission: Arc<Admission>,
    id: u64,
}

impl Admission {
    /// A set that keeps at most `cap` connections pending.
    pub(crate) fn new(cap: usize) -> Arc<Admission> {
        Arc::new(Admission { cap: cap.max(1), inner: Mutex::new(Inner::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admit a new connection, evicting the oldest pending ones beyond the cap.
    /// The receiver completes with `Ok` when this connection must close.
    pub(crate) fn admit(self: &Arc<Self>) -> (Arc<Pending>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        let now = Instant::now();
        inner.pending.insert(id, (now, tx));
        while inner.pending.len() > self.cap && inner.pending.first_key_value().is_some_and(|(_, (since, _))| *since + GRACE <= now) {
            if let Some((_, (_, oldest))) = inner.pending.pop_first() {
                let _ = oldest.send(());
            }
        }
        (Arc::new(Pending { admission: self.clone(), id }), rx)
    }

    /// Close the oldest pending connection, however young (to free a
    /// descriptor); whether there was one.
    pub(crate) fn evict_oldest(&self) -> bool {
        self.lock().pending.pop_first().map(|(_, (_, tx))| tx.send(())).is_some()
    }

    /// How many connections are pending.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().pending.len()
    }
}

impl Pending {
    /// The connection sent the credential: it no longer counts against the cap.
    pub(crate) fn authenticated(&self) {
        self.admission.lock().pending.remove(&self.id);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.authenticated();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pending_connection_is_evicted_and_authenticated_ones_never_are() {
        let a = Admission::new(2);
        let (first, mut first_rx) = a.admit();
        let (second, mut second_rx) = a.admit();
        second.authenticated();
        let (_third, mut third_rx) = a.admit();
        let (_fourth, mut fourth_rx) = a.admit();
        assert!(first_rx.try_recv().is_err(), "a connection in its grace period is not evicted");
        std::thread::sleep(GRACE);
        let (_fifth, mut fifth_rx) = a.admit();
        assert_eq!(first_rx.try_recv(), Ok(()), "the oldest pending connection is told to close");
        assert!(second_rx.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Closed), "an authenticated one is left alone");
        assert_eq!(third_rx.try_recv(), Ok(()), "down to the cap");
        assert!(fourth_rx.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Empty));
        assert!(fifth_rx.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Empty));
        assert_eq!(a.len(), 2);
        assert!(a.evict_oldest());
        assert_eq!(fourth_rx.try_recv(), Ok(()));
        drop(first);
        assert_eq!(a.len(), 1);
    }
}
