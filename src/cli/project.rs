//! `status`, `init`, `allow`, `deny`: the project-mode commands that need no proxy.

use super::Ctx;
use crate::error::{Error, Result};
use crate::project::grants;
use crate::project::requirements::Check;
use crate::project::trust::{self, Trust};
use crate::project::{config, locate, Project, FILE_NAME};
use crate::providers::Registry;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The schema reference written at the top of new project files.
pub const SCHEMA_URL: &str = "https://authsome.agentr.dev/schema/authsome.schema.json";

/// The project file at or above `dir` (default: the current directory).
fn current_file(dir: Option<&Path>) -> Result<PathBuf> {
    locate(dir.unwrap_or(Path::new(".")))
}

/// The project at or above the current directory, allowed as it is now.
/// Otherwise, when `may_prompt` and on a terminal, show what it grants and
/// offer to allow it (its definitions are read for that, as `allow` reads
/// them); without one (CI, pipes, `exec`) never prompt: fail with one line
/// naming the command to run.
pub(crate) fn trusted_project(ctx: &Ctx, may_prompt: bool) -> Result<(Project, Registry)> {
    let file = current_file(None)?;
    let (project, registry, state) = crate::launch::project::open(&ctx.home, &file)?;
    if state == Trust::Allowed {
        // A project that requires a team store is never served from another store.
        crate::store::require(&ctx.home, project.store_id.as_deref())?;
        return Ok((project, registry));
    }
    let interactive = may_prompt && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive {
        return Err(Error::bad_input(trust::refusal(&project, &state)));
    }
    let (project, registry) = crate::launch::project::load(&ctx.home, &file)?;
    let verb = match state {
        Trust::Changed => "changed since you allowed it",
        Trust::Replaces(_) => "now replaces a definition it did not replace when you allowed it",
        Trust::Denied => "is blocked (you ran `authsome deny`)",
        _ => "is not allowed yet",
    };
    crate::ui::say(format_args!("{} {verb}. Allowing it grants:\n{}", project.file.display(), grants::summary(&project, &registry)));
    let replaced = grants::replacements(&project, &registry);
    if !replaced.is_empty() {
        // Replacing a definition the user's credentials follow takes the explicit command, never a "y".
        for r in &replaced {
            crate::ui::say(format_args!("! {}", r.warning()));
        }
        return Err(Error::bad_input(needs_replace(&project, &replaced)));
    }
    let answer = crate::ui::prompt_line("Allow it? [y/N] ").map_err(|e| Error::other(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        trust::allow(&ctx.home, &project)?;
        crate::store::require(&ctx.home, project.store_id.as_deref())?;
        Ok((project, registry))
    } else {
        Err(Error::bad_input(trust::refusal(&project, &state)))
    }
}

/// `authsome status`: each requirement, its state and its fix; exit 4 when a
/// required one is unmet.
pub(crate) fn status(ctx: &Ctx) -> Result<i32> {
    let (project, registry, trust) = crate::launch::project::open(&ctx.home, &current_file(None)?)?;
    let checks = crate::launch::project::evaluate(&ctx.home, &project, &registry, &crate::launch::project::process_env)?;
    let unmet = checks.iter().any(Check::blocks);
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({
            "file": project.file.display().to_string(),
            "trusted": trust == Trust::Allowed,
            "trust": trust.code(),
            "allow_command": (trust != Trust::Allowed).then(|| trust::fix_command(&project, &trust)),
            "unread_definitions": project.unread,
            "satisfied": !unmet,
            "requirements": checks.iter().map(Check::to_json).collect::<Vec<_>>(),
            "grants": grants::to_json(&project, &registry),
        }));
    } else {
        println!("{} ({})", crate::text::printable(&project.file.display().to_string()), trust.as_str());
        if checks.is_empty() {
            println!("no providers declared; add a [providers.NAME] table");
        } else {
            let rows: Vec<Vec<String>> = checks.iter().map(row).collect();
            print!("{}", crate::ui::table(&["REQUIREMENT", "STATE", "ACCOUNT", "GRANTED", "REQUIRED", "EXPIRES", "FIX"], &rows));
        }
        if trust != Trust::Allowed {
            ctx.ui.warn(trust::refusal(&project, &trust));
            ctx.ui.info(format_args!("allowing it grants:\n{}", grants::summary(&project, &registry).trim_end()));
            for r in grants::replacements(&project, &registry) {
                ctx.ui.warn(r.warning());
            }
        }
    }
    // Not allowed yet: nothing would run, so this is not a green status.
    Ok(if unmet {
        crate::error::exit::LOGIN
    } else if trust != Trust::Allowed {
        crate::error::exit::BAD_INPUT
    } else {
        0
    })
}

fn row(c: &Check) -> Vec<String> {
    let dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    let mut label = c.label();
    if c.requirement.optional {
        label.push_str(" [optional]");
    }
    vec![
        label,
        c.state.describe(),
        dash(c.account.clone().unwrap_or_default()),
        dash(c.granted.join(",")),
        dash(c.requirement.scopes.join(",")),
        dash(c.expires_at.map(crate::fmt_time).unwrap_or_default()),
        dash(c.fix_text()),
    ]
}

/// The refusal for a project whose definitions replace bundled or user
/// ones: the command that allows it anyway, naming each.
fn needs_replace(project: &Project, replaced: &[grants::Replacement]) -> String {
    let names: Vec<&str> = replaced.iter().map(|r| r.name()).collect();
    let command = trust::allow_replacing(project, &names);
    format!(
        "{} replaces the definition of {} that your credentials follow; nothing was allowed. If you mean it, run `{command}`",
        project.file.display(),
        names.join(", ")
    )
}

/// `authsome allow [DIR] [--replace PROVIDER]…`: show everything the project
/// file grants and trust it as it is now. A project definition that replaces
/// a bundled or user one is refused unless named with `--replace`.
pub(crate) fn allow(ctx: &Ctx, dir: Option<PathBuf>, replace: &[String]) -> Result<i32> {
    let (project, registry) = crate::launch::project::load(&ctx.home, &current_file(dir.as_deref())?)?;
    let replaced = grants::replacements(&project, &registry);
    if let Some(stray) = replace.iter().find(|n| !replaced.iter().any(|r| r.name() == n.as_str())) {
        return Err(Error::bad_input(format!(
            "--replace {}: {} replaces no definition of that name",
            crate::text::one_line(stray),
            project.file.display()
        )));
    }
    let before = trust::check(&ctx.home, &project);
    if !ctx.ui.json && before != Trust::Allowed {
        ctx.ui.info(format_args!("{} grants:\n{}", project.file.display(), grants::summary(&project, &registry).trim_end()));
    }
    for r in &replaced {
        ctx.ui.warn(r.warning());
    }
    // Already allowed as it is: the replacement was confirmed then, nothing new is granted.
    let unconfirmed: Vec<grants::Replacement> = replaced.iter().filter(|r| !replace.iter().any(|n| n == r.name())).cloned().collect();
    if !unconfirmed.is_empty() && before != Trust::Allowed {
        // Scripts read the error alone: it carries the warnings there.
        let mut lines: Vec<String> = if ctx.ui.json { unconfirmed.iter().map(grants::Replacement::warning).collect() } else { Vec::new() };
        // The command names every replacement: `allow` asks for them all at once.
        lines.push(needs_replace(&project, &replaced));
        return Err(Error::bad_input(lines.join("\n")));
    }
    trust::allow(&ctx.home, &project)?;
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({
            "file": project.file.display().to_string(),
            "allowed": true,
            "digest": trust::digest(&project),
            "grants": grants::to_json(&project, &registry),
        }));
    } else {
        ctx.ui.success(format_args!("allowed {}", project.file.display()));
    }
    Ok(0)
}

/// `authsome deny [DIR]`: revoke trust (the file need not parse).
pub(crate) fn deny(ctx: &Ctx, dir: Option<PathBuf>) -> Result<i32> {
    let file = current_file(dir.as_deref())?;
    let was = trust::deny(&ctx.home, &file)?;
    if ctx.ui.json {
        ctx.ui.print_json(&serde_json::json!({"file": file.display().to_string(), "denied": true, "was_allowed": was}));
    } else if was {
        ctx.ui.success(format_args!("denied {}", file.display()));
    } else {
        ctx.ui.info(format_args!("{} was not allowed", file.display()));
    }
    Ok(0)
}

/// Variable names (never values) defined in a dotenv file.
pub fn dotenv_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, _)| k.trim().to_owned())
        .filter(|k| crate::text::valid_env_name(k))
        .collect()
}

/// Providers whose API-key or exported variables appear in `names`, with the variable found.
///
/// Two providers that export the same variable cannot both be declared (the
/// starter must load), so the first one found keeps it.
pub fn suggest_providers(registry: &Registry, names: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    for p in registry.iter() {
        let mut vars: Vec<&str> = p.def.export.keys().map(String::as_str).collect();
        if let Some(v) = p.def.api_key.as_ref().and_then(|k| k.env_var.as_deref()) {
            vars.push(v);
        }
        if vars.iter().any(|v| claimed.contains(v)) {
            continue;
        }
        // GITHUB_TOKEN is the name most .env files (and GitHub Actions) use.
        let aliases: &[&str] = if p.name() == "github" { &["GITHUB_TOKEN"] } else { &[] };
        if let Some(v) = vars.iter().chain(aliases).find(|v| names.contains(**v)) {
            out.push((p.name().to_owned(), (*v).to_owned()));
            claimed.extend(vars.iter().chain(aliases));
        }
    }
    out
}

/// The starter file: commented, valid, with the schema reference.
pub fn starter(found: &[(String, String)]) -> String {
    let mut providers = String::new();
    for (name, var) in found {
        providers.push_str(&format!("[providers.{name}]  # {var} is in .env\n\n"));
    }
    if found.is_empty() {
        providers.push_str("[providers]\n# openai = true               # shorthand: default connection, no scopes\n\n");
    }
    format!(
        r#"#:schema {SCHEMA_URL}
# authsome.toml: the credentials this project needs. It holds no secret;
# commit it. `authsome allow` trusts it, `authsome up` starts working.

# One table per provider (`authsome list` shows them all). The program sees a
# placeholder in the provider's variables (OPENAI_API_KEY=authsome-proxy-managed);
# the proxy adds the real credential to requests to that provider's hosts.
{providers}# [providers.github]
# scopes = ["repo"]              # scopes the token must carry (OAuth providers)
# connection = "work"            # a named connection (default: the provider's default)
# optional = true                # use it when logged in, never block on it
# export = ["MY_GITHUB_TOKEN"]   # extra variables holding the placeholder
# secret_env = "GH_CI_TOKEN"     # CI (`authsome exec`): take the token from this variable

# Two accounts of one provider: an array of tables. The second gets its own
# placeholder and variables (DISCORD_ACCESS_TOKEN_WORK=authsome-proxy-managed-work).
# [[providers.discord]]
# connection = "personal"
# [[providers.discord]]
# connection = "work"

# In-house APIs: a provider definition next to this file.
# [definitions]
# acme = "authsome/acme.json"

[run]
# command = "python main.py"     # run by your $SHELL; or an argv array ["python", "main.py"]
# env = {{ LOG_LEVEL = "info" }}   # plain, non-secret variables

[proxy]
undeclared_hosts = "tunnel"      # or "deny": refuse every host not declared above
"#
    )
}

/// `authsome init`: write a starter `authsome.toml` in the current directory.
pub(crate) fn init(ctx: &Ctx) -> Result<i32> {
    let dir = config::absolute(Path::new("."));
    let file = dir.join(FILE_NAME);
    let registry = ctx.registry()?;
    let names = std::fs::read_to_string(dir.join(".env")).map(|t| dotenv_names(&t)).unwrap_or_default();
    let found = suggest_providers(&registry, &names);
    let text = starter(&found);
    let created = crate::fsutil::create_exclusive(&file, text.as_bytes(), 0o644)
        .map_err(|e| Error::other(format!("cannot write {}: {e}", file.display())))?;
    if !created {
        return Err(Error::bad_input(format!("{} already exists; edit it, or delete it to start over", file.display())));
    }
    // Like every project file, the new one is inert until the user allows it.
    if ctx.ui.json {
        let suggested: Vec<_> = found.iter().map(|(p, v)| serde_json::json!({"provider": p, "found": v})).collect();
        ctx.ui.print_json(&serde_json::json!({"file": file.display().to_string(), "allowed": false, "providers": suggested}));
        return Ok(0);
    }
    ctx.ui.success(format_args!("wrote {}", file.display()));
    for (p, v) in &found {
        ctx.ui.info(format_args!(
            "  {p}: {v} is in .env; {}, then delete {v} from .env so programs never hold the secret",
            crate::fix::LoginFix::new(p, None).profile(ctx.home.profile()).hint()
        ));
    }
    ctx.ui.info("next: edit it, run `authsome allow` (the file does nothing until then), then `authsome up`");
    Ok(0)
}
