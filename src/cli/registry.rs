//! `list`, `inspect`, `register`, `remove`: the provider registry as users see it.

use super::Ctx;
use crate::error::{Error, Result};
use crate::providers::{self, Source};

/// `authsome list [--category NAME]`.
pub fn list(ctx: &Ctx, category: Option<&str>) -> Result<i32> {
    if let Some(c) = category {
        if !providers::def::CATEGORIES.contains(&c) {
            return Err(Error::bad_input(format!("unknown category {c:?}; use one of {}", providers::def::CATEGORIES.join(", "))));
        }
    }
    let reg = ctx.registry()?;
    let data = crate::store::Store::snapshot(&ctx.home)?;
    let shown = || reg.iter().filter(|p| category.is_none_or(|c| p.def.category.as_deref() == Some(c)));
    if ctx.ui.json {
        let items: Vec<_> = shown()
            .map(|p| {
                let default = data.default_connection(p.name());
                let conns: Vec<_> = data
                    .connections_of(p.name())
                    .map(|c| serde_json::json!({"name": c.name, "status": c.status.as_str(), "default": c.name == default}))
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
            let conns: Vec<String> = data.connections_of(p.name()).map(|c| format!("{} ({})", c.name, c.status.as_str())).collect();
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
    let reg = ctx.registry()?;
    let p = reg.get(name)?;
    if page {
        print!("{}", providers::page::page(&p.def));
        return Ok(0);
    }
    println!("{}", serde_json::to_string_pretty(&p.def).expect("definition serializes"));
    Ok(0)
}

/// `authsome register FILE`: validate, then install atomically under `<home>/providers`.
pub fn register(ctx: &Ctx, file: &std::path::Path, force: bool) -> Result<i32> {
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
    crate::fsutil::ensure_private_dir(&dir)?;
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

/// `authsome remove NAME`: delete the custom file, restoring the bundled definition.
pub fn remove(ctx: &Ctx, name: &str) -> Result<i32> {
    let dest = ctx.home.providers_dir().join(format!("{name}.json"));
    if !dest.exists() {
        let reg = ctx.registry()?;
        let p = reg.get(name)?;
        return Err(Error::unknown(format!("{name} has no custom definition to remove (its source is {})", p.source.as_str())));
    }
    std::fs::remove_file(&dest)?;
    let reg = ctx.registry()?;
    let restored = reg.get(name).ok().filter(|p| p.source == Source::Bundled).is_some();
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"name": name, "removed": dest.display().to_string(), "restored_bundled": restored}));
    } else if restored {
        ctx.ui.success(format_args!("removed custom {name}; the bundled definition is in effect again"));
    } else {
        ctx.ui.success(format_args!("removed custom provider {name}"));
    }
    Ok(0)
}
