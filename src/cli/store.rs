//! `authsome store`: set up, inspect and move data into or out of a team store
//! (README, "Team store"). The store is the one `AUTHSOME_STORE` or
//! `<home>/config.toml` selects for the profile.

use super::Ctx;
use crate::error::{Error, Result};
use crate::store::pg::{InitOutcome, PgStore};
use crate::store::select::{self, PgConfig, Selection, TeamKeySource};
use crate::vault::Vault;
use clap::Subcommand;

/// `authsome store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the tables and this store's key check; makes a team key when none is configured.
    Init,
    /// Server, key check, record count, clock offset and held refresh leases.
    Status,
    /// Copy every record of this profile's vault file into the team store (one-way).
    Migrate {
        /// Read from the profile's vault file (the only source so far).
        #[arg(long, required = true)]
        from_file: bool,
    },
    /// Copy every record of the team store into this profile's vault file (to leave the team store).
    Export,
}

fn configured(ctx: &Ctx) -> Result<PgConfig> {
    match select::select(&ctx.home)? {
        Selection::Pg(cfg) => Ok(cfg),
        Selection::File => Err(Error::bad_input(format!(
            "no team store is configured: set AUTHSOME_STORE=postgres://… or add a [store] section to {}",
            ctx.home.config_file().display()
        ))),
    }
}

/// Dispatch `authsome store`.
pub fn run(ctx: &Ctx, cmd: StoreCommand) -> Result<i32> {
    match cmd {
        StoreCommand::Init => init(ctx),
        StoreCommand::Status => {
            let store = PgStore::open(&ctx.home, configured(ctx)?)?;
            let v = store.status()?;
            if ctx.ui.json {
                ctx.ui.print_json(&v);
            } else {
                for (k, val) in v.as_object().expect("status is an object") {
                    println!("{k:<22}{}", val.as_str().map_or_else(|| val.to_string(), str::to_owned));
                }
            }
            Ok(0)
        }
        StoreCommand::Migrate { .. } => {
            let store = PgStore::open(&ctx.home, configured(ctx)?)?;
            let local = Vault::open(&ctx.home)?.load()?;
            let n = local.connections.len() + local.clients.len();
            store.update(&mut |d| {
                d.connections.extend(local.connections.clone());
                d.clients.extend(local.clients.clone());
                d.defaults.extend(local.defaults.clone());
                Ok(())
            })?;
            ctx.ui.success(format_args!("copied {n} records from {} into team store {}", ctx.home.vault_file().display(), store.id()));
            Ok(0)
        }
        StoreCommand::Export => {
            let store = PgStore::open(&ctx.home, configured(ctx)?)?;
            let data = store.load_fresh()?;
            let n = data.connections.len() + data.clients.len();
            Vault::open(&ctx.home)?.update(|d| {
                d.connections.extend(data.connections);
                d.clients.extend(data.clients);
                d.defaults.extend(data.defaults);
                Ok(())
            })?;
            ctx.ui.success(format_args!("copied {n} records from team store {} into {}", store.id(), ctx.home.vault_file().display()));
            Ok(0)
        }
    }
}

/// `store init`: the team key comes from `AUTHSOME_STORE_KEY` or `<home>/store.key`;
/// without either, a new one is made, saved to `<home>/store.key` and printed once.
fn init(ctx: &Ctx) -> Result<i32> {
    let cfg = configured(ctx)?;
    let (key, source, made) = match select::team_key(&ctx.home)? {
        Some((k, s)) => (k, s, false),
        None => {
            let k = crate::vault::crypto::MasterKey::generate();
            let path = ctx.home.store_key_file();
            crate::fsutil::ensure_private_dir(ctx.home.root())?;
            let text = crate::vault::key::encode_key(&k);
            if !crate::fsutil::create_exclusive(&path, text.as_bytes(), 0o600)? {
                return Err(Error::other(format!("{} appeared while init ran; run `authsome store init` again", path.display())));
            }
            (k, TeamKeySource::File(path), true)
        }
    };
    let store = PgStore::with_key(&ctx.home, cfg, &key, source)?;
    let outcome = store.init()?;
    let what = match outcome {
        InitOutcome::Created => "created",
        InitOutcome::AlreadyThere => "already initialised; the team key matches",
    };
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"store": store.id(), "result": what, "key": store.key_source().to_string()}));
    } else {
        ctx.ui.success(format_args!(
            "team store {} at {}: {what} (team key from {})",
            store.id(),
            store.url_for_humans(),
            store.key_source()
        ));
    }
    if made {
        // Printed once, on purpose: the team lead hands it to teammates and CI.
        println!("{}", crate::vault::key::encode_key(&key));
        ctx.ui.info(
            "That is the new team key (also saved, mode 0600, where it says above). Give it to each teammate's \
                     <home>/store.key or to CI as AUTHSOME_STORE_KEY; anyone with it and database access reads the store.",
        );
    }
    Ok(0)
}
