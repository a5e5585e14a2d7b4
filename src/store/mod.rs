//! The credential store a profile uses: what the CLI, OAuth refresh and the
//! proxy's credential source need from a vault (load connections, clients and
//! defaults; read-modify-write; single-flight refresh), with two
//! implementations:
//!
//! - the vault file of the profile (`<home>/vaults/<profile>.vault`), the
//!   default, unchanged: refresh is single-flight among the processes of one
//!   machine through a file lock;
//! - a team store on PostgreSQL ([`pg`]), shared by laptops, CI runners and
//!   agents: records sealed on the client under a team key, refresh
//!   single-flight across hosts through a fenced lease (README, "Team store").
//!
//! [`select`] decides which one from `AUTHSOME_STORE` or `<home>/config.toml`.

pub mod pg;
pub mod select;
pub mod traffic_audit;

use crate::error::{Error, Result};
use crate::paths::Home;
use crate::vault::{Vault, VaultData};
use std::time::Duration;

/// One profile's store.
pub enum Store {
    /// The local vault file (shared: the proxy's snapshot cache holds the same handle).
    File(std::sync::Arc<Vault>),
    /// A team store.
    Pg(Box<pg::PgStore>),
}

/// What a refresh holds while it may spend a refresh token.
pub enum RefreshLease {
    /// The file store: the machine-wide flock (held by the caller) is enough.
    Local,
    /// The team store: a lease row, fenced by its epoch.
    Shared(pg::Lease),
}

impl Store {
    /// The store the profile of `home` is configured to use (the file vault
    /// unless `AUTHSOME_STORE` or `<home>/config.toml` names a team store).
    pub fn open(home: &Home) -> Result<Store> {
        match select::select(home)? {
            select::Selection::File => Ok(Store::File(std::sync::Arc::new(Vault::open(home)?))),
            select::Selection::Pg(cfg) => Ok(Store::Pg(Box::new(pg::PgStore::open(home, cfg)?))),
        }
    }

    /// Whether `home`'s profile uses a team store (without opening anything).
    pub fn is_team(home: &Home) -> Result<bool> {
        Ok(matches!(select::select(home)?, select::Selection::Pg(_)))
    }

    /// Whether the profile has a store to read: a team store, or a vault file that exists.
    pub fn in_use(home: &Home) -> Result<bool> {
        Ok(match select::select(home)? {
            select::Selection::File => home.vault_file().exists(),
            select::Selection::Pg(_) => true,
        })
    }

    /// The records as they are now, without creating a key or a vault file
    /// when a file-vault profile has none yet.
    pub fn snapshot(home: &Home) -> Result<VaultData> {
        match select::select(home)? {
            select::Selection::File if !home.vault_file().exists() => Ok(VaultData::default()),
            select::Selection::File => Vault::open(home)?.load(),
            select::Selection::Pg(cfg) => pg::PgStore::open(home, cfg)?.load(),
        }
    }

    /// A consistent snapshot of every record.
    pub fn load(&self) -> Result<VaultData> {
        match self {
            Store::File(v) => v.load(),
            Store::Pg(p) => p.load(),
        }
    }

    /// A snapshot read from the backing store now (no cached copy).
    pub fn load_fresh(&self) -> Result<VaultData> {
        match self {
            Store::File(v) => v.load(),
            Store::Pg(p) => p.load_fresh(),
        }
    }

    /// Read-modify-write, serialised with every other writer of the store:
    /// `f` sees the latest data; its changes are written only if it returns `Ok`.
    pub fn update<T>(&self, f: impl FnOnce(&mut VaultData) -> Result<T>) -> Result<T> {
        match self {
            Store::File(v) => v.update(f),
            Store::Pg(p) => {
                let mut f = Some(f);
                let mut out = None;
                p.update(&mut |d| {
                    let f = f.take().ok_or_else(|| Error::other("store update ran its change twice"))?;
                    out = Some(f(d)?);
                    Ok(())
                })?;
                out.ok_or_else(|| Error::other("store update did not run its change"))
            }
        }
    }

    /// For messages: which store this is.
    pub fn describe(&self) -> String {
        match self {
            Store::File(v) => format!("vault {}", v.path().display()),
            Store::Pg(p) => format!("team store {} at {}", p.id(), p.url_for_humans()),
        }
    }

    /// Keep a long-running reader's copy fresh through notifications (team store only).
    pub fn watch(&self) {
        if let Store::Pg(p) = self {
            p.watch();
        }
    }

    /// Record a login, logout or refresh event in the team store's audit (no-op for the file store).
    pub fn audit(&self, action: &str, provider: &str, connection: &str, reason: Option<String>, lease: Option<&pg::Lease>) {
        if let Store::Pg(p) = self {
            p.audit(&pg::StoreEvent {
                action: action.to_owned(),
                provider: provider.to_owned(),
                connection: connection.to_owned(),
                reason,
                lease_epoch: lease.map(|l| l.epoch),
            });
        }
    }
}

/// Where a proxy of `home`'s profile records injections and refusals: the
/// team store's audit when the profile uses one, else the local audit log.
pub fn audit_sink(home: &Home) -> std::sync::Arc<dyn crate::audit::AuditSink> {
    match select::select(home) {
        Ok(select::Selection::Pg(cfg)) => std::sync::Arc::new(traffic_audit::StoreAudit::new(home, cfg)),
        _ => std::sync::Arc::new(crate::audit::FileAudit::new(home.audit_log())),
    }
}

/// Refuse to run a project that requires team store `required` when the
/// profile uses another store (exit 4, with the fix): its credentials must
/// not silently come from someone's personal vault.
pub fn require(home: &Home, required: Option<&str>) -> Result<()> {
    let Some(id) = required else { return Ok(()) };
    match select::select(home)? {
        select::Selection::Pg(cfg) if cfg.id == id => Ok(()),
        select::Selection::Pg(cfg) => Err(Error::login(format!(
            "authsome.toml requires team store {id:?}, but this profile uses team store {:?}; set AUTHSOME_STORE_ID={id} (README, \"Team store\")",
            cfg.id
        ))),
        select::Selection::File => Err(Error::login(format!(
            "authsome.toml requires team store {id:?}, but this profile uses its vault file; set AUTHSOME_STORE and AUTHSOME_STORE_ID={id}, \
             or add [store] to {} (README, \"Team store\")",
            home.config_file().display()
        ))),
    }
}

/// Length of a refresh lease: `AUTHSOME_REFRESH_LEASE_SECS`, default 120 s.
pub fn lease_length() -> Duration {
    let secs = std::env::var("AUTHSOME_REFRESH_LEASE_SECS").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(120.0);
    Duration::from_secs_f64(secs.clamp(1.0, 3600.0))
}

/// Time kept in hand at the end of a lease for committing the result: an
/// eighth of the lease, at most 15 s.
pub fn lease_margin(length: Duration) -> Duration {
    (length / 8).min(Duration::from_secs(15))
}
