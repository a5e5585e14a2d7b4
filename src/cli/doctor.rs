//! `authsome doctor`: everything that must hold for authsome to work safely,
//! each check reported with its fix; non-zero exit when any fails.

use super::Ctx;
use crate::error::Result;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn mode_of(p: &Path) -> Option<u32> {
    std::fs::metadata(p).ok().map(|m| m.permissions().mode() & 0o777)
}

/// "1 connection", "2 connections".
fn connections(n: usize) -> String {
    format!("{n} connection{}", if n == 1 { "" } else { "s" })
}

/// Run every check and print the report.
pub fn run(ctx: &Ctx) -> Result<i32> {
    let mut checks = Vec::new();
    let home = &ctx.home;
    let root = home.root();
    let before = mode_of(root);
    let made = home.ensure();
    checks.push(match (made, mode_of(root)) {
        (Err(e), _) => Check { name: "home", ok: false, detail: format!("cannot create {}: {e}", root.display()) },
        // A fix is reported, never made silently.
        (Ok(()), Some(m)) if m & 0o077 == 0 && before.is_some_and(|b| b != m) => {
            Check { name: "home", ok: true, detail: format!("{} was mode {:o}; tightened to {m:o}", root.display(), before.unwrap_or(0)) }
        }
        (Ok(()), Some(m)) if m & 0o077 == 0 => Check { name: "home", ok: true, detail: format!("{} (mode {m:o})", root.display()) },
        (Ok(()), m) => Check {
            name: "home",
            ok: false,
            detail: format!("{} has mode {:o}; run `chmod 700 {}`", root.display(), m.unwrap_or(0), root.display()),
        },
    });
    checks.push(match ctx.registry() {
        Ok(reg) if !reg.skipped().is_empty() => {
            let names: Vec<String> = reg.skipped().iter().map(|s| s.error.message.lines().next().unwrap_or_default().to_owned()).collect();
            Check { name: "providers", ok: false, detail: format!("skipped: {}", names.join("; ")) }
        }
        Ok(reg) => {
            let custom = reg.iter().filter(|p| p.source == crate::providers::Source::Custom).count();
            Check { name: "providers", ok: true, detail: format!("{} providers ({custom} custom), all valid", reg.iter().count()) }
        }
        Err(e) => Check { name: "providers", ok: false, detail: e.message },
    });
    if let Some(check) = team_store_check(ctx) {
        checks.push(check);
    }
    match crate::vault::Vault::open(&ctx.home) {
        Err(e) => checks.push(Check { name: "vault key", ok: false, detail: e.message }),
        Ok(vault) => {
            checks.push(Check { name: "vault key", ok: true, detail: format!("from {}", vault.key_source()) });
            let vpath = vault.path().to_path_buf();
            checks.push(match vault.load() {
                Ok(d) if !vpath.exists() => Check {
                    name: "vault",
                    ok: true,
                    detail: format!("{} (not created yet; {})", vpath.display(), connections(d.connections.len())),
                },
                Ok(d) => match mode_of(&vpath) {
                    Some(m) if m & 0o077 != 0 => Check {
                        name: "vault",
                        ok: false,
                        detail: format!("{} has mode {m:o}; run `chmod 600 {}`", vpath.display(), vpath.display()),
                    },
                    _ => Check {
                        name: "vault",
                        ok: true,
                        detail: format!("{} decrypts ({})", vpath.display(), connections(d.connections.len())),
                    },
                },
                Err(e) => Check { name: "vault", ok: false, detail: e.message },
            });
            checks.push(match vault.probe_round_trip() {
                Ok(()) => Check { name: "vault round trip", ok: true, detail: "encrypt, write, read, decrypt".into() },
                Err(e) => Check { name: "vault round trip", ok: false, detail: e.message },
            });
        }
    }
    let audit = home.audit_log();
    if let Some(m) = mode_of(&audit) {
        checks.push(Check {
            name: "audit log",
            ok: m & 0o077 == 0,
            detail: if m & 0o077 == 0 {
                format!("{}", audit.display())
            } else {
                format!("{} has mode {m:o}; run `chmod 600 {}`", audit.display(), audit.display())
            },
        });
    }
    let abi = crate::fence::Abi::current();
    checks.push(Check { name: "fence", ok: abi.available(), detail: crate::fence::describe(abi) });
    let failed = checks.iter().filter(|c| !c.ok).count();
    if ctx.ui.json {
        let items: Vec<_> = checks.iter().map(|c| serde_json::json!({"check": c.name, "ok": c.ok, "detail": c.detail})).collect();
        ctx.ui.print_json(&serde_json::json!({"ok": failed == 0, "checks": items}));
    } else {
        for c in &checks {
            let mark = if c.ok { ctx.ui.paint("✓", "32") } else { ctx.ui.paint("✗", "31") };
            println!("{mark} {:<17}{}", c.name, c.detail);
        }
    }
    Ok(if failed == 0 { 0 } else { crate::error::exit::UNEXPECTED })
}

/// The team store line: reachable, key check passed, clock offset (only when one is configured).
fn team_store_check(ctx: &Ctx) -> Option<Check> {
    let status = match crate::store::select::select(&ctx.home) {
        Ok(crate::store::select::Selection::File) => return None,
        Err(e) => return Some(Check { name: "team store", ok: false, detail: e.message }),
        Ok(crate::store::select::Selection::Pg(cfg)) => crate::store::pg::PgStore::open(&ctx.home, cfg).and_then(|s| s.status()),
    };
    Some(match status {
        Ok(v) => Check {
            name: "team store",
            ok: true,
            detail: format!(
                "{} at {}: key check ok, {} records, clock offset {} s",
                v["store"].as_str().unwrap_or(""),
                v["url"].as_str().unwrap_or(""),
                v["records"],
                v["clock_offset_seconds"]
            ),
        },
        Err(e) => Check { name: "team store", ok: false, detail: e.message },
    })
}
