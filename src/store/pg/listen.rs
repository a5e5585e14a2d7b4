//! Live updates: a long-running proxy keeps the decrypted records in memory
//! and a `LISTEN` connection drops that copy the moment any host commits a
//! change to the store. Notifications are not replayed to a listener that was
//! disconnected, so the copy is used only while the listener is up, and never
//! for longer than `AUTHSOME_STORE_CACHE_SECS` (default 5) even then.

use super::{raw_connect, schema, PgStore};
use crate::vault::VaultData;
use std::future::Future as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared between the store and its listener task.
#[derive(Default)]
pub struct Live {
    generation: AtomicU64,
    listening: AtomicBool,
    started: AtomicBool,
    cache: Mutex<Option<(Instant, u64, VaultData)>>,
    notifications: AtomicU64,
}

fn cache_ttl() -> Duration {
    let secs = std::env::var("AUTHSOME_STORE_CACHE_SECS").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(5.0);
    Duration::from_secs_f64(secs.clamp(0.0, 3600.0))
}

impl Live {
    /// The current generation (bumped by every notification and reconnect).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The cached records, when a listener vouches for them and they are young enough.
    pub fn cached(&self) -> Option<VaultData> {
        if !self.listening.load(Ordering::SeqCst) {
            return None;
        }
        let guard = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (at, generation, data) = guard.as_ref()?;
        (*generation == self.generation() && at.elapsed() < cache_ttl()).then(|| data.clone())
    }

    /// Keep `data`, read when the generation was `generation` (a notification
    /// that arrived during the read makes it stale at once).
    pub fn remember(&self, generation: u64, data: &VaultData) {
        if self.listening.load(Ordering::SeqCst) {
            *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), generation, data.clone()));
        }
    }

    /// Forget the copy (after this process wrote).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// How many notifications for this store arrived (tests and `doctor`).
    pub fn notifications(&self) -> u64 {
        self.notifications.load(Ordering::SeqCst)
    }
}

impl PgStore {
    /// Start listening for changes made by any host (idempotent). Until the
    /// listener is connected, and whenever it is not, reads go to the database.
    pub fn watch(&self) {
        if self.live.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let (cfg, live) = (self.cfg.clone(), self.live.clone());
        let rt = self.rt.as_ref().expect("the runtime lives as long as the store");
        rt.spawn(listen_forever(cfg, live));
    }

    /// Notifications received so far.
    pub fn notifications(&self) -> u64 {
        self.live.notifications()
    }
}

async fn listen_forever(cfg: crate::store::select::PgConfig, live: Arc<Live>) {
    loop {
        if let Ok((client, mut conn)) = raw_connect(&cfg).await {
            let sql = format!("LISTEN {}", schema::CHANNEL);
            // The LISTEN travels over `conn`, which must be polled while we wait for it.
            let ok = {
                let mut listen = std::pin::pin!(client.batch_execute(&sql));
                std::future::poll_fn(|cx| {
                    if let std::task::Poll::Ready(r) = listen.as_mut().poll(cx) {
                        return std::task::Poll::Ready(r.is_ok());
                    }
                    match conn.poll_message(cx) {
                        std::task::Poll::Ready(None) | std::task::Poll::Ready(Some(Err(_))) => std::task::Poll::Ready(false),
                        _ => std::task::Poll::Pending,
                    }
                })
                .await
            };
            if ok {
                live.invalidate();
                live.listening.store(true, Ordering::SeqCst);
                loop {
                    match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                        Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                            let ours =
                                serde_json::from_str::<serde_json::Value>(n.payload()).ok().is_some_and(|v| v["s"] == cfg.id.as_str());
                            if ours {
                                live.notifications.fetch_add(1, Ordering::SeqCst);
                                live.invalidate();
                            }
                        }
                        Some(Ok(_)) => {}
                        None | Some(Err(_)) => break,
                    }
                }
                live.listening.store(false, Ordering::SeqCst);
                live.invalidate();
            }
            drop(client);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
