//! Records as the team store holds them: one row per connection, client and
//! default, each sealed on the client with the vault's AEAD under the team
//! key. The associated data binds a ciphertext to its store, kind, provider,
//! name, version and key epoch, so the database (which sees only those names
//! and numbers) cannot move a ciphertext to another row, another store or
//! another version of the same row.

use crate::error::{Error, Result};
use crate::vault::crypto::Sealer;
use crate::vault::VaultData;
use std::collections::BTreeMap;

/// Identity of one row: (kind, provider, name); name is `""` for clients and defaults.
pub type RecordKey = (String, String, String);

/// Plaintext of every record of `data`, keyed by row identity.
pub fn encode(data: &VaultData) -> BTreeMap<RecordKey, Vec<u8>> {
    let mut out = BTreeMap::new();
    for ((p, n), c) in &data.connections {
        out.insert(("connection".to_owned(), p.clone(), n.clone()), serde_json::to_vec(c).expect("serializable"));
    }
    for (p, c) in &data.clients {
        out.insert(("client".to_owned(), p.clone(), String::new()), serde_json::to_vec(c).expect("serializable"));
    }
    for (p, n) in &data.defaults {
        out.insert(("default".to_owned(), p.clone(), String::new()), serde_json::to_vec(n).expect("serializable"));
    }
    out
}

/// The associated data of a row's ciphertext.
pub fn aad(store: &str, key: &RecordKey, version: i64, epoch: i32) -> String {
    format!("authsome/v2/{store}/{}/{}/{}/{version}/{epoch}", key.0, key.1, key.2)
}

/// The associated data of the key-check value of a store.
pub fn key_check_aad(store: &str, epoch: i32) -> String {
    format!("authsome/v2/{store}/key-check/{epoch}")
}

/// The plaintext of the key check.
pub const KEY_CHECK: &[u8] = b"authsome-key-check";

/// One row as read from the database.
pub struct Row {
    /// Row identity.
    pub key: RecordKey,
    /// CAS token: +1 on every write.
    pub version: i64,
    /// Team key generation that sealed it.
    pub epoch: i32,
    /// nonce ‖ ciphertext ‖ tag.
    pub sealed: Vec<u8>,
}

/// Open every row into vault data; any row that does not open is an error
/// naming the row (never its content).
pub fn decode(store: &str, sealer: &Sealer, rows: &[Row]) -> Result<VaultData> {
    let mut data = VaultData::default();
    for r in rows {
        let bad = || {
            Error::other(format!(
                "team store {store}: record {}/{}/{} (version {}) does not open with the team key: it was tampered with or moved",
                r.key.0, r.key.1, r.key.2, r.version
            ))
        };
        let plain = sealer.open(&aad(store, &r.key, r.version, r.epoch), &r.sealed).map_err(|_| bad())?;
        match r.key.0.as_str() {
            "connection" => data.put_connection(serde_json::from_slice(&plain).map_err(|_| bad())?),
            "client" => {
                data.clients.insert(r.key.1.clone(), serde_json::from_slice(&plain).map_err(|_| bad())?);
            }
            "default" => {
                data.defaults.insert(r.key.1.clone(), serde_json::from_slice(&plain).map_err(|_| bad())?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(data)
}

/// The non-secret expiry hint of a connection record (Unix seconds), for `status` and scheduling.
pub fn expiry_hint(data: &VaultData, key: &RecordKey) -> Option<i64> {
    if key.0 != "connection" {
        return None;
    }
    data.connections.get(&(key.1.clone(), key.2.clone())).and_then(|c| c.expires_at).and_then(|e| i64::try_from(e).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::crypto::MasterKey;
    use crate::vault::{Connection, Secret};

    #[test]
    fn a_ciphertext_is_bound_to_store_row_version_and_epoch() {
        let sealer = Sealer::new(&MasterKey::generate());
        let mut d = VaultData::default();
        d.put_connection(Connection::api_key("openai", "default", Secret::new("sk-secret")));
        let (key, plain) = encode(&d).into_iter().next().unwrap();
        let sealed = sealer.seal(&aad("acme", &key, 3, 1), &plain);
        let row = |store_key: RecordKey, version, epoch| Row { key: store_key, version, epoch, sealed: sealed.clone() };
        assert_eq!(decode("acme", &sealer, &[row(key.clone(), 3, 1)]).unwrap(), d);
        assert!(decode("other", &sealer, &[row(key.clone(), 3, 1)]).is_err(), "another store");
        assert!(decode("acme", &sealer, &[row(key.clone(), 4, 1)]).is_err(), "a newer version");
        assert!(decode("acme", &sealer, &[row(key.clone(), 3, 2)]).is_err(), "another key epoch");
        let moved = ("connection".to_owned(), "openai".to_owned(), "work".to_owned());
        let e = decode("acme", &sealer, &[row(moved, 3, 1)]).unwrap_err();
        assert!(!e.message.contains("sk-secret") && e.message.contains("openai/work"), "{}", e.message);
    }
}
