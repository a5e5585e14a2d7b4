//! Idle detection for intercepted connections.
//!
//! hyper closes an idle HTTP/1 connection through its header-read timeout,
//! but nothing closes an HTTP/2 connection with no stream open, or a TLS
//! connection that never sends its first request. [`Activity`] counts the
//! requests in flight (a request stays in flight until its response body is
//! finished or dropped, so a long download or a slow upload is never "idle")
//! and [`Activity::idle`] completes once none has been for the given time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Requests in flight on one connection and when the last one ended.
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

/// Marks one request in flight until dropped.
pub(crate) struct InFlight(Arc<Activity>);

impl Activity {
    /// A connection that just opened (its idle time starts now).
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity { in_flight: AtomicUsize::new(0), last: Mutex::new(Instant::now()) })
    }

    /// A request starts; it ends when the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes when no request has been in flight for `timeout`.
    pub(crate) async fn idle(&self, timeout: Duration) {
        loop {
            let deadline = if self.in_flight.load(Ordering::SeqCst) > 0 { Instant::now() + timeout } else { self.last() + timeout };
            tokio::time::sleep_until(deadline).await;
            if self.in_flight.load(Ordering::SeqCst) == 0 && self.last() + timeout <= Instant::now() {
                return;
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_is_idle_only_with_nothing_in_flight() {
        let a = Activity::new();
        let guard = a.begin();
        let waited = tokio::time::timeout(Duration::from_millis(300), a.idle(Duration::from_millis(50))).await;
        assert!(waited.is_err(), "a request in flight keeps the connection busy");
        drop(guard);
        let start = Instant::now();
        a.idle(Duration::from_millis(50)).await;
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
}
