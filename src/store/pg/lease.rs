//! Refresh leases: at most one host at a time may spend a connection's
//! refresh token. A lease row is granted with an epoch (a fencing token, +1
//! per grant) and an expiry judged by the database clock only; the holder
//! learns how long it has as a duration and counts it down on its monotonic
//! clock, so no two machines' wall clocks are ever compared. Release is fenced
//! by the epoch, so a late holder can never free its successor's lease.

use super::PgStore;
use crate::error::Result;
use std::time::{Duration, Instant};

/// A granted lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Provider and connection it covers.
    pub provider: String,
    /// Connection name.
    pub connection: String,
    /// The fencing token of this grant.
    pub epoch: i64,
    /// When it lapses, on this process's monotonic clock (never overestimated:
    /// measured from before the grant was asked for).
    pub until: Instant,
    /// Length of the grant.
    pub length: Duration,
    /// The lapsed holder this grant took over from, with its unfinished
    /// attempt (`None` when the previous holder released properly).
    pub took_over: Option<String>,
}

impl Lease {
    /// Time left before the lease lapses.
    pub fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }
}

/// Result of one attempt at the lease.
#[derive(Debug, Clone)]
pub enum LeaseTry {
    /// Ours.
    Granted(Lease),
    /// Someone else holds it (who, for messages).
    Busy(String),
}

impl PgStore {
    /// Try once to take the refresh lease of `provider`/`connection` for `length`.
    pub fn try_lease(&self, provider: &str, connection: &str, length: Duration) -> Result<LeaseTry> {
        self.retry_once(|| self.try_lease_once(provider, connection, length))
    }

    fn try_lease_once(&self, provider: &str, connection: &str, length: Duration) -> Result<LeaseTry> {
        let guard = self.client()?;
        let c = guard.as_ref().expect("connected");
        let asked_at = Instant::now();
        let (id, me, secs) = (&self.cfg.id, &self.me, length.as_secs_f64());
        let row = self.block_db(async {
            let db = |e| self.db_error(e);
            c.execute(
                "INSERT INTO authsome_refresh_leases (store_id, provider, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[id, &provider, &connection],
            )
            .await
            .map_err(db)?;
            let granted = c
                .query_opt(
                    "WITH old AS (SELECT holder, last_attempt FROM authsome_refresh_leases \
                                  WHERE store_id = $1 AND provider = $2 AND name = $3 FOR UPDATE) \
                     UPDATE authsome_refresh_leases l SET epoch = l.epoch + 1, holder = $4, \
                            expires_at = now() + $5::float8 * interval '1 second', \
                            last_attempt = jsonb_build_object('epoch', l.epoch + 1, 'holder', $4::text, 'started_at', now()) \
                     FROM old \
                     WHERE l.store_id = $1 AND l.provider = $2 AND l.name = $3 \
                       AND (l.holder IS NULL OR l.expires_at < now()) \
                     RETURNING l.epoch, EXTRACT(EPOCH FROM l.expires_at - now())::float8, old.holder, \
                               old.last_attempt->>'started_at', old.last_attempt->>'outcome'",
                    &[id, &provider, &connection, me, &secs],
                )
                .await
                .map_err(db)?;
            if let Some(row) = granted {
                return Ok(Ok(row));
            }
            let busy = c
                .query_opt(
                    "SELECT holder, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM authsome_refresh_leases \
                     WHERE store_id = $1 AND provider = $2 AND name = $3",
                    &[id, &provider, &connection],
                )
                .await
                .map_err(db)?;
            Ok::<_, crate::error::Error>(Err(busy))
        })?;
        match row {
            Ok(r) => {
                let left: f64 = r.get(1);
                let old_holder: Option<String> = r.get(2);
                let started: Option<String> = r.get(3);
                let outcome: Option<String> = r.get(4);
                let took_over = old_holder.map(|h| match outcome {
                    Some(o) => format!("{h} (started {}, {o})", started.unwrap_or_default()),
                    None => format!("{h}, whose refresh started {} never finished", started.unwrap_or_default()),
                });
                let left = Duration::from_secs_f64(left.clamp(0.0, secs));
                Ok(LeaseTry::Granted(Lease {
                    provider: provider.to_owned(),
                    connection: connection.to_owned(),
                    epoch: r.get(0),
                    until: asked_at + left,
                    length,
                    took_over,
                }))
            }
            Err(busy) => {
                let who = busy.map(|r| {
                    let h: Option<String> = r.get(0);
                    let left: Option<f64> = r.get(1);
                    format!("{} for {:.0} s more", h.unwrap_or_else(|| "nobody".into()), left.unwrap_or(0.0).max(0.0))
                });
                Ok(LeaseTry::Busy(who.unwrap_or_else(|| "unknown".into())))
            }
        }
    }

    /// Release `lease` with `outcome` (`ok`, `failed`, `unknown`, `not_started`),
    /// only if it is still this grant (fenced by its epoch).
    pub fn release(&self, lease: &Lease, outcome: &str) -> Result<bool> {
        self.retry_once(|| self.release_once(lease, outcome))
    }

    fn release_once(&self, lease: &Lease, outcome: &str) -> Result<bool> {
        let guard = self.client()?;
        let c = guard.as_ref().expect("connected");
        let n = self.block_db(async {
            c.execute(
                "UPDATE authsome_refresh_leases SET holder = NULL, expires_at = NULL, \
                        last_attempt = last_attempt || jsonb_build_object('outcome', $5::text, 'ended_at', now()) \
                 WHERE store_id = $1 AND provider = $2 AND name = $3 AND epoch = $4",
                &[&self.cfg.id, &lease.provider, &lease.connection, &lease.epoch, &outcome],
            )
            .await
            .map_err(|e| self.db_error(e))
        })?;
        Ok(n == 1)
    }
}
