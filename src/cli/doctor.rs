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

/// Run every check and print the report. Nothing under the home is changed
/// unless `fix`: then permissions others could write through are tightened
/// (links and files of other users are only reported; removing them is the
/// user's call).
pub fn run(ctx: &Ctx, fix: bool) -> Result<i32> {
    let mut checks = Vec::new();
    let home = &ctx.home;
    let root = home.root();
    let mut home_ok = true;
    for (path, follow) in home.checked_paths().into_iter().chain(provider_files(home)) {
        let Some(mut why) = crate::fsutil::unsafe_reason(&path, follow) else { continue };
        if fix && why.contains("writable by other users") {
            let mode = if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) { 0o700 } else { 0o600 };
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)) {
                Ok(()) => {
                    checks.push(Check {
                        name: "home",
                        ok: true,
                        detail: format!(
                            "fixed: {} was writable by other users, now mode {mode:o}; check it for files you did not put there",
                            path.display()
                        ),
                    });
                    continue;
                }
                Err(e) => why = format!("{why}, and chmod failed: {e}"),
            }
        }
        home_ok = false;
        checks.push(Check { name: "home", ok: false, detail: crate::paths::unsafe_error(&path, &why).message });
    }
    if home_ok {
        checks.push(match mode_of(root) {
            None => Check { name: "home", ok: true, detail: format!("{} (not created yet)", root.display()) },
            Some(m) if m & 0o077 == 0 => Check { name: "home", ok: true, detail: format!("{} (mode {m:o})", root.display()) },
            // Nobody else can write it (checked above): hiding its listing is
            // harmless, so it is done and reported, never silently.
            Some(m) => match std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)) {
                Ok(()) => Check { name: "home", ok: true, detail: format!("{} was mode {m:o}; tightened to 700", root.display()) },
                Err(e) => Check { name: "home", ok: false, detail: format!("{} has mode {m:o} and chmod failed: {e}", root.display()) },
            },
        });
    }
    if !home_ok {
        return report(ctx, &checks);
    }
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
    report(ctx, &checks)
}

/// Every provider override, checked like the home (links never followed).
fn provider_files(home: &crate::paths::Home) -> Vec<(std::path::PathBuf, bool)> {
    let Ok(entries) = std::fs::read_dir(home.providers_dir()) else { return Vec::new() };
    let mut files: Vec<_> = entries.flatten().map(|e| (e.path(), false)).collect();
    files.sort();
    files
}

fn report(ctx: &Ctx, checks: &[Check]) -> Result<i32> {
    let failed = checks.iter().filter(|c| !c.ok).count();
    if ctx.ui.json {
        let items: Vec<_> = checks.iter().map(|c| serde_json::json!({"check": c.name, "ok": c.ok, "detail": c.detail})).collect();
        ctx.ui.print_json(&serde_json::json!({"ok": failed == 0, "checks": items}));
    } else {
        for c in checks {
            let mark = if c.ok { ctx.ui.paint("✓", "32") } else { ctx.ui.paint("✗", "31") };
            println!("{mark} {:<17}{}", c.name, crate::text::printable(&c.detail));
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
