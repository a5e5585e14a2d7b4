//! The team store on PostgreSQL: every authsome process talks to the database
//! directly (no authsome server), and the database never sees a secret.
//!
//! The store owns a small runtime of its own (one worker) that drives its
//! connections, so the synchronous API the CLI uses works the same from plain
//! threads and from inside the proxy's runtime. Writes are one transaction
//! under a transaction-scoped advisory lock per store (the file vault's flock,
//! across hosts), and every changed row is a compare-and-set on its version.

mod audit;
mod clock;
mod lease;
mod listen;
pub mod records;
pub mod schema;

pub use audit::{AuditRow, StoreEvent};
pub use lease::{Lease, LeaseTry};

use super::select::{redact_url, PgConfig, TeamKeySource};
use crate::error::{Error, Result};
use crate::paths::Home;
use crate::vault::crypto::{MasterKey, Sealer};
use crate::vault::VaultData;
use records::{RecordKey, Row};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// How long a command keeps trying to reach the database before it fails
/// with a clear error (a restart of the server fits in it).
const CONNECT_PATIENCE: Duration = Duration::from_secs(8);

/// How long one round trip on an open connection may take before the
/// connection is taken for dead (queries are milliseconds; a writer may wait
/// a moment for the store's lock).
const ANSWER_PATIENCE: Duration = Duration::from_secs(10);

/// A team store handle; cheap to share behind an `Arc`.
pub struct PgStore {
    cfg: PgConfig,
    home: Home,
    sealer: Sealer,
    key_source: TeamKeySource,
    rt: Option<tokio::runtime::Runtime>,
    client: Mutex<Option<Client>>,
    epoch: OnceLock<i32>,
    /// Seconds from this host's clock to the database's (measured at the key check).
    clock_offset: OnceLock<i64>,
    live: Arc<listen::Live>,
    me: String,
    /// Set when an error said the connection is gone ([`PgStore::connection_lost`]).
    lost: std::sync::atomic::AtomicBool,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The store may be dropped inside another runtime, where a blocking shutdown would panic.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Who is writing, for humans reading `updated_by`, leases and audit rows: host and pid.
pub fn holder_label() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "unknown-host".into());
    format!("{host}/pid {}", std::process::id())
}

/// What `store init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Tables and the store row were created.
    Created,
    /// The store existed and the key opens its key check.
    AlreadyThere,
}

impl PgStore {
    /// A handle on the team store `cfg` with the team key of `home`; nothing
    /// is contacted until the first read or write.
    pub fn open(home: &Home, cfg: PgConfig) -> Result<PgStore> {
        let (key, source) = super::select::team_key(home)?.ok_or_else(|| {
            Error::login(format!(
                "no team key for team store {}: set AUTHSOME_STORE_KEY or put the key `authsome store init` printed in {} (mode 0600)",
                cfg.id,
                home.store_key_file().display()
            ))
        })?;
        Self::with_key(home, cfg, &key, source)
    }

    /// A handle using a team key given as base64 (tools and tests that hold the key themselves).
    pub fn with_team_key(home: &Home, cfg: PgConfig, key_b64: &str) -> Result<PgStore> {
        let key = crate::vault::key::decode_key(key_b64)?;
        Self::with_key(home, cfg, &key, TeamKeySource::Env)
    }

    /// A handle using an explicit key (`store init` with a freshly made key).
    pub fn with_key(home: &Home, cfg: PgConfig, key: &MasterKey, key_source: TeamKeySource) -> Result<PgStore> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("authsome-store")
            .enable_all()
            .build()
            .map_err(|e| Error::other(format!("cannot start the team store runtime: {e}")))?;
        Ok(PgStore {
            cfg,
            home: home.clone(),
            sealer: Sealer::new(key),
            key_source,
            rt: Some(rt),
            client: Mutex::new(None),
            epoch: OnceLock::new(),
            clock_offset: OnceLock::new(),
            live: Arc::default(),
            me: holder_label(),
            lost: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The store id.
    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    /// The URL, password removed.
    pub fn url_for_humans(&self) -> String {
        redact_url(&self.cfg.url)
    }

    /// Where the team key came from.
    pub fn key_source(&self) -> &TeamKeySource {
        &self.key_source
    }

    /// Run `fut` on the store's runtime and wait for it. From inside another
    /// runtime the wait happens on a scoped thread, so neither runtime's
    /// rules are broken.
    fn block<F: Future + Send>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        let rt = self.rt.as_ref().expect("the runtime lives as long as the store");
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join().expect("team store thread panicked"))
        } else {
            rt.block_on(fut)
        }
    }

    /// [`PgStore::block`] for a database round trip on an open connection:
    /// one that does not answer within [`ANSWER_PATIENCE`] (a link gone dead
    /// under it) counts as lost, so the caller reconnects or fails clearly
    /// instead of waiting for TCP to give up.
    fn block_db<T: Send>(&self, fut: impl Future<Output = Result<T>> + Send) -> Result<T> {
        self.block(async {
            match tokio::time::timeout(ANSWER_PATIENCE, fut).await {
                Ok(r) => r,
                Err(_) => {
                    self.lost.store(true, std::sync::atomic::Ordering::SeqCst);
                    Err(Error::other(format!(
                        "team store {} at {}: no answer within {} s",
                        self.cfg.id,
                        self.url_for_humans(),
                        ANSWER_PATIENCE.as_secs()
                    )))
                }
            }
        })
    }

    /// Run `op`, and once more on a new connection if it failed because the
    /// connection died under it (a server restart, a dropped link). Only for
    /// operations that are safe to repeat.
    fn retry_once<T>(&self, op: impl Fn() -> Result<T>) -> Result<T> {
        match op() {
            Err(_) if self.connection_lost() => op(),
            r => r,
        }
    }

    /// Whether the current connection is gone (closed, or the server said it
    /// is shutting down); if so it is dropped, so the next call reconnects.
    fn connection_lost(&self) -> bool {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let lost = self.lost.swap(false, std::sync::atomic::Ordering::SeqCst) || guard.as_ref().is_some_and(closed_soon);
        if lost {
            *guard = None;
        }
        lost
    }

    fn db_error(&self, e: tokio_postgres::Error) -> Error {
        // Shutdown, crash recovery, "cannot connect now" and connection exceptions: the connection is done for.
        let gone = e.is_closed() || e.code().is_some_and(|c| matches!(c.code(), "57P01" | "57P02" | "57P03") || c.code().starts_with("08"));
        if gone {
            self.lost.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let what = match (e.as_db_error(), std::error::Error::source(&e)) {
            (Some(db), _) => format!("{} {}", db.severity(), db.message()),
            (None, Some(cause)) if cause.to_string().contains("password missing") => {
                format!("{e}: the role needs a password; set AUTHSOME_STORE_PASSWORD")
            }
            (None, Some(cause)) if !e.to_string().contains(&cause.to_string()) => format!("{e}: {cause}"),
            (None, _) => e.to_string(),
        };
        Error::other(format!("team store {} at {}: {what}", self.cfg.id, self.url_for_humans()))
    }

    /// A connected client (reconnecting when the previous connection died),
    /// the key check done.
    fn client(&self) -> Result<MutexGuard<'_, Option<Client>>> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if guard.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(guard);
        }
        *guard = None;
        let client = self.block(self.connect_patiently())?;
        if self.epoch.get().is_none() {
            let epoch = self.block_db(self.key_check(&client))?;
            let _ = self.epoch.set(epoch);
        }
        *guard = Some(client);
        Ok(guard)
    }

    async fn connect_patiently(&self) -> Result<Client> {
        let start = Instant::now();
        loop {
            match connect(&self.cfg).await {
                Ok(c) => return Ok(c),
                Err(e) if !worth_retrying(&e) => return Err(self.db_error(e).context("cannot connect to the team store")),
                Err(_) if start.elapsed() < CONNECT_PATIENCE => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => return Err(self.db_error(e).context("cannot reach the team store")),
            }
        }
    }

    /// Stop a machine with the wrong key before it writes anything.
    async fn key_check(&self, c: &Client) -> Result<i32> {
        let local = clock::local_now();
        let row = c
            .query_opt(
                "SELECT key_epoch, key_check, EXTRACT(EPOCH FROM clock_timestamp())::float8 FROM authsome_store WHERE store_id = $1",
                &[&self.cfg.id],
            )
            .await
            .map_err(|e| self.not_initialised(e))?;
        let Some(row) = row else { return Err(self.not_initialised_msg()) };
        let (epoch, check, db_now): (i32, Vec<u8>, f64) = (row.get(0), row.get(1), row.get(2));
        // The database read its clock about half-way through the round trip.
        let _ = self.clock_offset.set(clock::offset(db_now, (local + clock::local_now()) / 2.0));
        match self.sealer.open(&records::key_check_aad(&self.cfg.id, epoch), &check) {
            Ok(p) if p == records::KEY_CHECK => Ok(epoch),
            _ => Err(Error::login(format!(
                "the team key ({}) does not open team store {} (key check failed): this machine has another store's key; nothing was read or written",
                self.key_source, self.cfg.id
            ))),
        }
    }

    fn not_initialised_msg(&self) -> Error {
        Error::login(format!("team store {} is not initialised at {}; run `authsome store init`", self.cfg.id, self.url_for_humans()))
    }

    fn not_initialised(&self, e: tokio_postgres::Error) -> Error {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
            self.not_initialised_msg()
        } else {
            self.db_error(e)
        }
    }

    fn epoch(&self) -> i32 {
        *self.epoch.get().expect("key check done before any record access")
    }

    fn clock_offset(&self) -> i64 {
        *self.clock_offset.get().expect("key check done before any record access")
    }

    /// Open `rows`, their times moved onto this host's clock.
    fn open_rows(&self, rows: &[Row]) -> Result<VaultData> {
        let mut data = records::decode(&self.cfg.id, &self.sealer, rows)?;
        clock::shift(&mut data, -self.clock_offset());
        Ok(data)
    }

    async fn rows(&self, c: &Client) -> Result<Vec<Row>> {
        let rows = c
            .query("SELECT kind, provider, name, version, key_epoch, sealed FROM authsome_records WHERE store_id = $1", &[&self.cfg.id])
            .await
            .map_err(|e| self.db_error(e))?;
        Ok(rows.iter().map(|r| Row { key: (r.get(0), r.get(1), r.get(2)), version: r.get(3), epoch: r.get(4), sealed: r.get(5) }).collect())
    }

    /// Every record, decrypted. Long-running proxies that [`PgStore::watch`]
    /// get a copy kept fresh by notifications (bounded by
    /// `AUTHSOME_STORE_CACHE_SECS`); everyone else reads the database.
    pub fn load(&self) -> Result<VaultData> {
        if let Some(d) = self.live.cached() {
            return Ok(d);
        }
        self.load_fresh()
    }

    /// Every record, read from the database now.
    pub fn load_fresh(&self) -> Result<VaultData> {
        self.retry_once(|| self.load_fresh_once())
    }

    fn load_fresh_once(&self) -> Result<VaultData> {
        let generation = self.live.generation();
        let guard = self.client()?;
        let c = guard.as_ref().expect("connected");
        let rows = self.block_db(self.rows(c))?;
        let data = self.open_rows(&rows)?;
        self.live.remember(generation, &data);
        Ok(data)
    }

    /// Read-modify-write in one transaction under the store's advisory lock:
    /// `f` sees the latest records; changed rows are written with a version
    /// compare-and-set and announced on commit; nothing is written when `f` fails.
    pub fn update(&self, f: &mut dyn FnMut(&mut VaultData) -> Result<()>) -> Result<()> {
        let lock_key = format!("authsome-store:{}", self.cfg.id);
        let read = |c: &Client| {
            self.block_db(async {
                c.batch_execute("BEGIN").await.map_err(|e| self.db_error(e))?;
                c.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key]).await.map_err(|e| self.db_error(e))?;
                self.rows(c).await
            })
        };
        // Nothing is written before the read succeeds, so a connection lost
        // while reading is retried once; once writing began, never.
        let mut guard = self.client()?;
        let mut before_rows = read(guard.as_ref().expect("connected"));
        if before_rows.is_err() {
            drop(guard);
            if self.connection_lost() {
                guard = self.client()?;
                before_rows = read(guard.as_ref().expect("connected"));
            } else {
                guard = self.client()?;
            }
        }
        let c = guard.as_ref().expect("connected");
        let outcome = before_rows.and_then(|rows| {
            let before = self.open_rows(&rows)?;
            let mut after = before.clone();
            f(&mut after)?;
            if after == before {
                return Ok(None);
            }
            Ok(Some((rows, before, after)))
        });
        let result = match outcome {
            Ok(Some((rows, before, after))) => self.block_db(self.write_changes(c, &rows, &before, &after)),
            Ok(None) => self.block_db(async { c.batch_execute("COMMIT").await.map_err(|e| self.db_error(e)) }),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = self.block_db(async { c.batch_execute("ROLLBACK").await.map_err(|e| self.db_error(e)) });
        }
        self.live.invalidate();
        result
    }

    async fn write_changes(&self, c: &Client, rows: &[Row], before: &VaultData, after: &VaultData) -> Result<()> {
        let versions: std::collections::BTreeMap<&RecordKey, i64> = rows.iter().map(|r| (&r.key, r.version)).collect();
        // Back onto the database's clock: an unchanged record encodes to exactly what was read.
        let on_db_clock = |d: &VaultData| {
            let mut d = d.clone();
            clock::shift(&mut d, self.clock_offset());
            d
        };
        let (before, after) = (&on_db_clock(before), &on_db_clock(after));
        let (old, new) = (records::encode(before), records::encode(after));
        let epoch = self.epoch();
        let db = |e| self.db_error(e);
        for (key, plain) in &new {
            if old.get(key) == Some(plain) {
                continue;
            }
            let hint = records::expiry_hint(after, key).map(|e| e as f64);
            let version = match versions.get(key) {
                Some(v) => {
                    let next = v + 1;
                    let sealed = self.sealer.seal(&records::aad(&self.cfg.id, key, next, epoch), plain);
                    let n = c
                        .execute(
                            "UPDATE authsome_records SET sealed = $5, version = $6, key_epoch = $7, expires_at = to_timestamp($8), \
                             updated_at = now(), updated_by = $9 \
                             WHERE store_id = $1 AND kind = $2 AND provider = $3 AND name = $4 AND version = $10",
                            &[&self.cfg.id, &key.0, &key.1, &key.2, &sealed, &next, &epoch, &hint, &self.me, v],
                        )
                        .await
                        .map_err(db)?;
                    if n != 1 {
                        return Err(Error::other(format!(
                            "team store {}: {}/{}/{} changed underneath a locked write",
                            self.cfg.id, key.0, key.1, key.2
                        )));
                    }
                    next
                }
                None => {
                    let sealed = self.sealer.seal(&records::aad(&self.cfg.id, key, 1, epoch), plain);
                    c.execute(
                        "INSERT INTO authsome_records (store_id, kind, provider, name, version, key_epoch, sealed, expires_at, updated_by) \
                         VALUES ($1, $2, $3, $4, 1, $5, $6, to_timestamp($7), $8)",
                        &[&self.cfg.id, &key.0, &key.1, &key.2, &epoch, &sealed, &hint, &self.me],
                    )
                    .await
                    .map_err(db)?;
                    1
                }
            };
            self.notify(c, key, version).await?;
        }
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            c.execute(
                "DELETE FROM authsome_records WHERE store_id = $1 AND kind = $2 AND provider = $3 AND name = $4",
                &[&self.cfg.id, &key.0, &key.1, &key.2],
            )
            .await
            .map_err(db)?;
            self.notify(c, key, 0).await?;
        }
        c.batch_execute("COMMIT").await.map_err(db)
    }

    async fn notify(&self, c: &Client, key: &RecordKey, version: i64) -> Result<()> {
        let payload = serde_json::json!({"s": self.cfg.id, "k": format!("{}/{}/{}", key.0, key.1, key.2), "v": version}).to_string();
        c.execute("SELECT pg_notify($1, $2)", &[&schema::CHANNEL, &payload]).await.map_err(|e| self.db_error(e))?;
        Ok(())
    }

    /// Create the tables (if missing) and the store row with a key check under `key`.
    pub fn init(&self) -> Result<InitOutcome> {
        let client = self.block(self.connect_patiently())?;
        let check = self.sealer.seal(&records::key_check_aad(&self.cfg.id, 1), records::KEY_CHECK);
        let created = self.block_db(async {
            client.batch_execute(&format!("BEGIN; {} COMMIT;", schema::SCHEMA)).await.map_err(|e| self.db_error(e))?;
            client
                .execute(
                    "INSERT INTO authsome_store (store_id, format, key_epoch, key_check) VALUES ($1, 2, 1, $2) ON CONFLICT DO NOTHING",
                    &[&self.cfg.id, &check],
                )
                .await
                .map_err(|e| self.db_error(e))
        })?;
        let epoch = self.block_db(self.key_check(&client))?;
        let _ = self.epoch.set(epoch);
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client);
        Ok(if created == 1 { InitOutcome::Created } else { InitOutcome::AlreadyThere })
    }

    /// `store status`: what the database says, no secrets.
    pub fn status(&self) -> Result<serde_json::Value> {
        self.retry_once(|| self.status_once())
    }

    fn status_once(&self) -> Result<serde_json::Value> {
        let guard = self.client()?;
        let c = guard.as_ref().expect("connected");
        self.block_db(async {
            let db = |e| self.db_error(e);
            let v = c.query_one("SELECT version(), EXTRACT(EPOCH FROM now())::float8", &[]).await.map_err(db)?;
            let (server, db_now): (String, f64) = (v.get(0), v.get(1));
            let local = clock::local_now();
            let n = c.query_one("SELECT count(*) FROM authsome_records WHERE store_id = $1", &[&self.cfg.id]).await.map_err(db)?;
            let leases = c
                .query(
                    "SELECT provider, name, holder, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM authsome_refresh_leases \
                     WHERE store_id = $1 AND holder IS NOT NULL",
                    &[&self.cfg.id],
                )
                .await
                .map_err(db)?;
            let leases: Vec<serde_json::Value> = leases
                .iter()
                .map(|r| {
                    let left: Option<f64> = r.get(3);
                    serde_json::json!({"provider": r.get::<_, String>(0), "connection": r.get::<_, String>(1), "holder": r.get::<_, Option<String>>(2), "seconds_left": left.map(|l| l.round())})
                })
                .collect();
            Ok(serde_json::json!({
                "store": self.cfg.id,
                "url": self.url_for_humans(),
                "server": server,
                "key": self.key_source.to_string(),
                "key_check": "ok",
                "key_epoch": self.epoch(),
                "records": n.get::<_, i64>(0),
                "clock_offset_seconds": ((db_now - local) * 10.0).round() / 10.0,
                "leases_held": leases,
            }))
        })
    }

    /// The home this store was opened for (its local audit log is the fallback).
    fn home(&self) -> &Home {
        &self.home
    }
}

/// Whether `c`'s connection is gone, allowing it a moment: the connection
/// closes just after the error that reported its end.
fn closed_soon(c: &Client) -> bool {
    c.is_closed() || {
        std::thread::sleep(Duration::from_millis(100));
        c.is_closed()
    }
}

/// Whether a failed connection attempt may succeed if tried again (the server
/// restarting, the network away) rather than refused for good (a wrong or
/// missing password, no such database, a bad URL), which fails at once.
fn worth_retrying(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(c) => matches!(c.code(), "57P01" | "57P02" | "57P03") || c.code().starts_with("08"),
        None => e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// One connection to the database described by `cfg`, TLS through rustls
/// (ring) when the server offers it (`sslmode` in the URL decides).
async fn connect(cfg: &PgConfig) -> std::result::Result<Client, tokio_postgres::Error> {
    let (client, connection) = raw_connect(cfg).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

type TlsStream = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream;
type RawConnection = tokio_postgres::Connection<tokio_postgres::Socket, TlsStream>;

async fn raw_connect(cfg: &PgConfig) -> std::result::Result<(Client, RawConnection), tokio_postgres::Error> {
    use std::str::FromStr;
    let mut pc = tokio_postgres::Config::from_str(&cfg.url)?;
    if let Some(p) = crate::fence::process::secret_var("AUTHSOME_STORE_PASSWORD").filter(|p| !p.is_empty()) {
        pc.password(p);
    }
    pc.application_name("authsome").connect_timeout(Duration::from_secs(3));
    // A peer gone silent under an open connection is found out by the kernel
    // where it can tell: an idle listener by keepalives within about 10 s, data
    // left unacknowledged after 5 s. Every round trip is bounded anyway (`ANSWER_PATIENCE`).
    pc.tcp_user_timeout(Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(2);
    pc.connect(tls_for(cfg)).await
}

fn tls_for(cfg: &PgConfig) -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            if let Ok(pem) = std::fs::read(path) {
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem).flatten() {
                    let _ = roots.add(cert);
                }
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let config = crate::net::tls::client_config(Arc::new(roots), &[]);
    tokio_postgres_rustls::MakeRustlsConnect::new((*config).clone())
}
