//! The tables of a team store. Created by `authsome store init` under a
//! transaction-scoped advisory lock, so two first-time inits cannot race.
//! The database holds names, versions, expiry hints and audit metadata; every
//! secret is inside `sealed`, which only holders of the team key can open.

/// Every table, idempotently.
pub const SCHEMA: &str = r#"
SELECT pg_advisory_xact_lock(hashtext('authsome-schema'));
CREATE TABLE IF NOT EXISTS authsome_store (
  store_id   text PRIMARY KEY,
  format     int  NOT NULL,
  key_epoch  int  NOT NULL,
  key_check  bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS authsome_records (
  store_id   text   NOT NULL REFERENCES authsome_store,
  kind       text   NOT NULL CHECK (kind IN ('connection','client','default')),
  provider   text   NOT NULL,
  name       text   NOT NULL DEFAULT '',
  version    bigint NOT NULL,
  key_epoch  int    NOT NULL,
  sealed     bytea  NOT NULL,
  expires_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text   NOT NULL,
  PRIMARY KEY (store_id, kind, provider, name));
CREATE TABLE IF NOT EXISTS authsome_refresh_leases (
  store_id   text NOT NULL,
  provider   text NOT NULL,
  name       text NOT NULL,
  epoch      bigint NOT NULL DEFAULT 0,
  holder     text,
  expires_at timestamptz,
  last_attempt jsonb,
  PRIMARY KEY (store_id, provider, name));
CREATE TABLE IF NOT EXISTS authsome_audit (
  id bigserial PRIMARY KEY,
  store_id text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  host text, run_id text, action text NOT NULL, provider text, connection text,
  method text, target_host text, path text, status int,
  reason text, lease_epoch bigint);
"#;

/// The notification channel of every store; payloads are `{"s":store,"k":"kind/provider/name","v":version}`.
pub const CHANNEL: &str = "authsome";
