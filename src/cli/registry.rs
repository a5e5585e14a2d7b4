//! `list`, `inspect`, `register`, `remove`, `edit`: the provider registry as users see it.

use super::Ctx;
use crate::error::{Error, Result};
use crate::providers;

/// `authsome list [--category NAME]`.
pub fn list(ctx: &Ctx, category: Option<&str>) -> Result<i32> {
    if let Some(c) = category {
        if !providers::def::CATEGORIES.contains(&c) {
            return Err(Error::bad_input(format!("unknown category {c:?}; use one of {}", providers::def::CATEGORIES.join(", "))));
        }
    }
    let reg = ctx.registry_here()?;
    let data = crate::store::Store::snapshot(&ctx.home)?;
    let shown = || reg.iter().filter(|p| category.is_none_or(|c| p.def.category.as_deref() == Some(c)));
    if ctx.ui.json {
        let items: Vec<_> = shown()
            .map(|p| {
                let default = data.default_connection(p.name());
                let conns: Vec<_> = data
                    .connections_of(p.name())
                    .map(|c| serde_json::json!({"name": c.name, "status": c.status_at(crate::fsutil::now_unix()).as_str(), "default": c.name == default}))
                    .collect();
                serde_json::json!({
                    "name": p.name(),
                    "display_name": p.def.title(),
                    "auth_type": p.def.auth_type,
                    "flow": p.def.flow.as_str(),
                    "category": p.def.category,
                    "source": p.source.as_str(),
                    "path": p.path.as_ref().map(|p| p.display().to_string()),
                    "connections": conns,
                })
            })
            .collect();
        ctx.ui.print_json(&serde_json::json!({"providers": items}));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = shown()
        .map(|p| {
            let now = crate::fsutil::now_unix();
            let default = data.default_connection(p.name());
            let several = data.connections_of(p.name()).nth(1).is_some();
            let conns: Vec<String> = data
                .connections_of(p.name())
                .map(|c| {
                    // With several connections, the default is marked (what `run` and `get` use).
                    let mark = if several && c.name == default { ", default" } else { "" };
                    format!("{} ({}{mark})", c.name, c.status_at(now).as_str())
                })
                .collect();
            vec![
                p.name().to_owned(),
                p.def.title().to_owned(),
                serde_json::to_value(p.def.auth_type).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                p.def.category.clone().unwrap_or_else(|| "-".to_owned()),
                p.source.as_str().to_owned(),
                if conns.is_empty() { "-".to_owned() } else { conns.join(", ") },
            ]
        })
        .collect();
    print!("{}", crate::ui::table(&["NAME", "DISPLAY NAME", "TYPE", "CATEGORY", "SOURCE", "CONNECTIONS"], &rows));
    Ok(0)
}

/// `authsome inspect NAME [--page]`: the effective definition, valid as a
/// provider file, or its documentation page.
pub fn inspect(ctx: &Ctx, name: &str, page: bool) -> Result<i32> {
    let reg = ctx.registry_here()?;
    let p = reg.get(name)?;
    if page {
        print!("{}", providers::page::page_for(&p.def, p.source));
        return Ok(0);
    }
    println!("{}", serde_json::to_string_pretty(&p.def).expect("definition serializes"));
    Ok(0)
}

/// `authsome register FILE`: validate, then install atomically under `<home>/providers`.
pub fn register(ctx: &Ctx, file: &std::path::Path, force: bool) -> Result<i32> {
    ctx.home.check()?;
    let text = std::fs::read_to_string(file).map_err(|e| Error::bad_input(format!("{}: {e}", file.display())))?;
    let def = providers::parse(&text, &file.display().to_string())?;
    let dir = ctx.home.providers_dir();
    let dest = dir.join(format!("{}.json", def.name));
    if dest.exists() && !force && std::fs::read_to_string(&dest).ok().as_deref() != Some(&text) {
        return Err(Error::bad_input(format!(
            "a custom definition of {:?} already exists at {}; pass --force to replace it",
            def.name,
            dest.display()
        )));
    }
    ctx.home.ensure()?;
    crate::fsutil::atomic_write(&dest, text.as_bytes(), 0o600)?;
    let bundled = providers::bundled_files().iter().any(|(n, _)| *n == def.name);
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"name": def.name, "path": dest.display().to_string(), "overrides_bundled": bundled}));
    } else if bundled {
        ctx.ui.success(format_args!(
            "registered {} (overrides the bundled definition; `authsome remove {}` restores it)",
            def.name, def.name
        ));
    } else {
        ctx.ui.success(format_args!("registered {}", def.name));
    }
    Ok(0)
}

/// `authsome remove NAME`: delete the custom file, restoring the bundled
/// definition. When no definition is left, the provider's connections and
/// client credentials go too: nothing could use or log them out any more.
pub fn remove(ctx: &Ctx, name: &str) -> Result<i32> {
    let name = &name.to_ascii_lowercase();
    let dest = ctx.home.providers_dir().join(format!("{name}.json"));
    if !dest.exists() {
        let reg = ctx.registry()?;
        let p = reg.get(name)?;
        return Err(Error::unknown(format!("{name} has no custom definition to remove (its source is {})", p.source.as_str())));
    }
    std::fs::remove_file(&dest)?;
    let restored = providers::bundled_files().iter().any(|(n, _)| n == name);
    let mut forgotten = Vec::new();
    if !restored && ctx.home.vault_file().exists() {
        forgotten = ctx.vault()?.update(|d| {
            let names: Vec<String> = d.connections_of(name).map(|c| c.name.clone()).collect();
            for c in &names {
                d.connections.remove(&(name.clone(), c.clone()));
            }
            d.defaults.remove(name);
            d.clients.remove(name);
            Ok(names)
        })?;
    }
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({
            "name": name, "removed": dest.display().to_string(), "restored_bundled": restored, "deleted_connections": forgotten,
        }));
    } else if restored {
        ctx.ui.success(format_args!("removed custom {name}; the bundled definition is in effect again"));
    } else {
        ctx.ui.success(format_args!("removed custom provider {name}"));
        if !forgotten.is_empty() {
            ctx.ui.info(format_args!("deleted its stored connections ({}) and client credentials", forgotten.join(", ")));
        }
    }
    Ok(0)
}

/// `authsome edit NAME`: copy the effective definition to the override file,
/// open `$VISUAL`/`$EDITOR` on a scratch copy, and install it only when it is
/// valid; a broken edit never reaches `<home>/providers`.
pub fn edit(ctx: &Ctx, name: &str) -> Result<i32> {
    let reg = ctx.registry()?;
    let dir = ctx.home.providers_dir();
    let name = name.to_ascii_lowercase();
    let dest = dir.join(format!("{name}.json"));
    // A broken override is what the user wants to fix: start from it.
    let current = std::fs::read_to_string(&dest).ok().filter(|t| !t.trim().is_empty());
    let start = match current {
        Some(t) => t,
        None => {
            let p = reg.get(&name)?;
            format!("{}\n", serde_json::to_string_pretty(&p.def).expect("definition serializes"))
        }
    };
    ctx.home.ensure()?;
    let scratch = dir.join(format!(".{name}.json.edit.{}", std::process::id()));
    crate::fsutil::atomic_write(&scratch, start.as_bytes(), 0o600)?;
    let outcome = edit_loop(&name, &scratch, &start);
    let _ = std::fs::remove_file(&scratch);
    let Some(text) = outcome? else {
        ctx.ui.info(format_args!("no changes; {} is unchanged", dest.display()));
        return Ok(0);
    };
    crate::fsutil::atomic_write(&dest, text.as_bytes(), 0o600)?;
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"name": name, "path": dest.display().to_string()}));
    } else {
        ctx.ui.success(format_args!("saved {} (source: custom; `authsome remove {name}` restores the bundled one)", dest.display()));
    }
    Ok(0)
}

/// Run the editor until the file is valid (asking again on a terminal);
/// `None` when nothing changed.
fn edit_loop(name: &str, scratch: &std::path::Path, start: &str) -> Result<Option<String>> {
    use std::io::IsTerminal;
    loop {
        run_editor(scratch)?;
        let text = std::fs::read_to_string(scratch)?;
        if text == start {
            return Ok(None);
        }
        let problem = match providers::parse(&text, &scratch.display().to_string()) {
            Ok(def) if def.name == name => return Ok(Some(text)),
            Ok(def) => Error::bad_input(format!("{}: \"name\" must stay {name:?} (found {:?})", scratch.display(), def.name)),
            Err(e) => e,
        };
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(problem.context(format_args!("not saved; the definition of {name} is unchanged")));
        }
        eprintln!("{}", problem.message);
        eprint!("edit again? [Y/n] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim().eq_ignore_ascii_case("n") {
            return Err(Error::bad_input(format!("not saved; the definition of {name} is unchanged")));
        }
    }
}

/// `$VISUAL`, else `$EDITOR`, else `vi`, run by the shell like git does (so
/// `EDITOR="code --wait"` works) with the file as its last argument.
fn run_editor(file: &std::path::Path) -> Result<()> {
    let editor =
        ["VISUAL", "EDITOR"].iter().filter_map(|k| std::env::var(k).ok()).find(|v| !v.trim().is_empty()).unwrap_or_else(|| "vi".to_owned());
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file)
        .status()
        .map_err(|e| Error::other(format!("cannot run the editor {editor:?}: {e}")))?;
    if !status.success() {
        return Err(Error::bad_input(format!("the editor {editor:?} failed ({status}); nothing was saved")));
    }
    Ok(())
}
