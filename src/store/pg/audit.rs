//! Audit rows in the team store: refresh activity across machines is exactly
//! what an operator needs to reconstruct. A row that cannot be written (the
//! database is unreachable) goes to the local `audit.log` instead, and the
//! caller never waits for more than one attempt. Rows carry names, hosts and
//! outcomes, never a secret.

use super::PgStore;
use crate::error::Result;
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// One store event.
#[derive(Debug, Clone, Serialize)]
pub struct StoreEvent {
    /// `refresh`, `refresh_failed`, `refresh_discarded`, `lease_expired_takeover`, …
    pub action: String,
    /// Provider concerned.
    pub provider: String,
    /// Connection concerned.
    pub connection: String,
    /// A short secret-free explanation.
    pub reason: Option<String>,
    /// The lease epoch the event happened under.
    pub lease_epoch: Option<i64>,
}

/// One row as `authsome log --store` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    /// RFC 3339 time by the database clock.
    pub time: String,
    /// Who (host/pid).
    pub host: Option<String>,
    /// What.
    pub action: String,
    /// Provider.
    pub provider: Option<String>,
    /// Connection.
    pub connection: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Fencing token.
    pub lease_epoch: Option<i64>,
    /// For proxy events: `METHOD host/path STATUS` (no query string).
    pub request: Option<String>,
}

impl PgStore {
    /// Record `ev` in the store, or in the local audit log when the store cannot take it.
    pub fn audit(&self, ev: &StoreEvent) {
        let written = self.retry_once(|| self.audit_once(ev));
        if let Err(e) = written {
            eprintln!("authsome: team store audit unavailable ({}); recorded in the local audit log", e.message);
            self.audit_locally(ev);
        }
    }

    fn audit_once(&self, ev: &StoreEvent) -> Result<u64> {
        self.client().and_then(|guard| {
            let c = guard.as_ref().expect("connected");
            self.block_db(async {
                c.execute(
                    "INSERT INTO authsome_audit (store_id, host, action, provider, connection, reason, lease_epoch) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&self.cfg.id, &self.me, &ev.action, &ev.provider, &ev.connection, &ev.reason, &ev.lease_epoch],
                )
                .await
                .map_err(|e| self.db_error(e))
            })
        })
    }

    fn audit_locally(&self, ev: &StoreEvent) {
        let path = self.home().audit_log();
        let line = serde_json::json!({"time": crate::fmt_time(crate::fsutil::now_unix()), "store": self.cfg.id, "host": self.me, "store_event": ev});
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                crate::fsutil::ensure_private_dir(dir)?;
            }
            let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
            f.write_all(format!("{line}\n").as_bytes())
        };
        if let Err(e) = write() {
            eprintln!("authsome: cannot write audit log {}: {e}", path.display());
        }
    }

    /// Record proxy events (injections, refusals) of run `run_id`, in one transaction.
    pub fn audit_traffic(&self, events: &[crate::audit::Event]) -> Result<()> {
        self.retry_once(|| {
            let guard = self.client()?;
            let c = guard.as_ref().expect("connected");
            self.block_db(async {
                let db = |e| self.db_error(e);
                c.batch_execute("BEGIN").await.map_err(db)?;
                for e in events {
                    let action = e.action.as_str();
                    let status = i32::from(e.status);
                    let inserted = c
                        .execute(
                            "INSERT INTO authsome_audit (store_id, host, run_id, action, provider, connection, method, target_host, path, status, reason) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                            &[&self.cfg.id, &self.me, &e.run_id, &action, &e.provider, &e.connection, &e.method, &e.host, &e.path, &status, &e.reason],
                        )
                        .await;
                    if let Err(err) = inserted {
                        let _ = c.batch_execute("ROLLBACK").await;
                        return Err(db(err));
                    }
                }
                c.batch_execute("COMMIT").await.map_err(db)
            })
        })
    }

    /// The most recent `n` audit rows, oldest first, optionally for one provider or host.
    pub fn audit_rows(&self, n: i64, provider: Option<&str>, host: Option<&str>) -> Result<Vec<AuditRow>> {
        self.retry_once(|| self.audit_rows_once(n, provider, host))
    }

    fn audit_rows_once(&self, n: i64, provider: Option<&str>, host: Option<&str>) -> Result<Vec<AuditRow>> {
        let guard = self.client()?;
        let c = guard.as_ref().expect("connected");
        let rows = self.block_db(async {
            c.query(
                "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), host, action, provider, connection, reason, lease_epoch, \
                        coalesce(method || ' ' || target_host || path || ' ' || status, '') \
                 FROM authsome_audit WHERE store_id = $1 AND ($2::text IS NULL OR provider = $2) AND ($3::text IS NULL OR host LIKE $3 || '%') \
                 ORDER BY id DESC LIMIT $4",
                &[&self.cfg.id, &provider, &host, &n],
            )
            .await
            .map_err(|e| self.db_error(e))
        })?;
        let mut out: Vec<AuditRow> = rows
            .iter()
            .map(|r| AuditRow {
                time: r.get(0),
                host: r.get(1),
                action: r.get(2),
                provider: r.get(3),
                connection: r.get(4),
                reason: r.get(5),
                lease_epoch: r.get(6),
                request: Some(r.get::<_, String>(7)).filter(|s| !s.is_empty()),
            })
            .collect();
        out.reverse();
        Ok(out)
    }
}
