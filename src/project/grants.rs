//! What allowing a project grants, in full: for every provider it requires,
//! the hosts (ports, path prefixes) its credential is injected on and the
//! OAuth endpoints its tokens go to; every definition the project brings,
//! loudly when one takes the place of a bundled or user definition (the
//! user's existing connections of that name would follow it); the command,
//! its plain variables with their values, and the CI secrets it takes.
//!
//! `allow`, `up`'s prompt and `status` show this; a repository gets nothing
//! beyond what it showed (README.md, "Project mode"). Every value that comes
//! from the repository is escaped onto one line ([`crate::text::one_line`]),
//! so a crafted value cannot draw lines of its own.

use super::config::{Project, Replaced, RunCommand};
use crate::providers::{ProviderDef, Registry};
use crate::text::{one_line, shell_quote};
use serde_json::{json, Value};

/// A project definition that takes the place of a bundled or user one.
#[derive(Debug, Clone)]
pub struct Replacement {
    /// Which definition is replaced (bundled, or the user's file).
    pub replaced: Replaced,
    /// Where the replaced definition sends the credential.
    pub before: Vec<String>,
    /// Where the project's definition sends it instead; `None` while the
    /// definition is unread (the project is not trusted: its file is not opened).
    pub after: Option<Vec<String>>,
}

impl Replacement {
    /// The provider name both definitions share.
    pub fn name(&self) -> &str {
        &self.replaced.name
    }

    /// The warning line: which definition is replaced, and the destinations
    /// old → new (or that they stay the same).
    pub fn warning(&self) -> String {
        let change = match &self.after {
            Some(after) if after == &self.before => format!("same destinations: {}", after.join(", ")),
            Some(after) => format!("{} → {}", self.before.join(", "), after.join(", ")),
            None => format!("{} → not read until `authsome allow`, which shows them", self.before.join(", ")),
        };
        one_line(&format!(
            "REPLACES {}: your {} credentials would go where the project says ({change})",
            self.replaced.whose(),
            self.name()
        ))
    }

    fn to_json(&self) -> Value {
        json!({
            "provider": self.replaced.name,
            "replaces": self.replaced.source.as_str(),
            "path": self.replaced.path.as_ref().map(|p| p.display().to_string()),
            "before": self.before,
            "after": self.after,
            "warning": self.warning(),
        })
    }
}

/// Every destination of a definition's secrets: where the credential is
/// injected, then the OAuth endpoints (codes, refresh tokens, client secrets).
fn destinations(def: &ProviderDef) -> Vec<String> {
    let mut out = def.injects_on();
    out.extend(def.oauth_origins().into_iter().map(|o| format!("OAuth {o}")));
    out
}

/// The project's definitions that replace a bundled or user definition
/// (an unread one by its name alone). `registry` must be the one `project`
/// was loaded into.
pub fn replacements(project: &Project, registry: &Registry) -> Vec<Replacement> {
    let read = project.definitions.iter().filter_map(|d| Some((&d.name, registry.replaced(&d.name)?, Some(destinations(&d.def)))));
    // Unread definitions were not added: the name still finds what they would replace.
    let unread = project.unread.iter().filter_map(|d| Some((&d.name, registry.get(&d.name).ok()?, None)));
    read.chain(unread)
        .map(|(name, old, after)| Replacement { replaced: Replaced::of(name, old), before: destinations(&old.def), after })
        .collect()
}

/// The command as a shell would read it (each argv word quoted when needed).
fn command_text(c: &RunCommand) -> String {
    match c {
        RunCommand::Shell(s) => s.clone(),
        RunCommand::Argv(v) => v.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" "),
    }
}

/// One summary line: a label column, then `text` escaped onto one line.
fn line(out: &mut String, label: &str, text: &str) {
    out.push_str(&format!("  {label:<9} {}\n", one_line(text)));
}

/// A detail under a provider or definition line.
fn detail(out: &mut String, label: &str, items: &[String]) {
    if !items.is_empty() {
        out.push_str(&format!("              {label:<11} {}\n", one_line(&items.join(", "))));
    }
}

/// Hosts and OAuth endpoints of `def`, as detail lines.
fn def_details(out: &mut String, def: &ProviderDef) {
    detail(out, "injects on", &def.injects_on());
    detail(out, "OAuth to", &def.oauth_origins());
}

/// The human summary (without the replacement warnings, which callers print
/// as warnings: [`replacements`]).
pub fn summary(project: &Project, registry: &Registry) -> String {
    let mut out = String::new();
    for r in &project.requirements {
        let scopes = if r.scopes.is_empty() { String::new() } else { format!(" [{}]", r.scopes.join(", ")) };
        let opt = if r.optional { " (optional)" } else { "" };
        line(&mut out, "provider", &format!("{}{scopes}{opt}", r.label()));
        if let Ok(p) = registry.get(&r.provider) {
            def_details(&mut out, &p.def);
        }
        detail(&mut out, "variables", &r.vars);
        if let Some(v) = &r.secret_env {
            detail(&mut out, "CI secret", &[format!("${v} (exec and up take it from the environment; the command never sees it)")]);
        }
    }
    for d in &project.definitions {
        line(&mut out, "defines", &format!("{} from {}", d.name, d.path.display()));
        def_details(&mut out, &d.def);
    }
    // An untrusted file's definitions are not opened: what they define is unknown until then.
    for d in &project.unread {
        line(&mut out, "defines", &format!("{} from {} (read by `authsome allow`; its providers are shown then)", d.name, d.path));
    }
    if let Some(c) = &project.run.command {
        line(&mut out, "command", &command_text(c));
    }
    for (k, v) in &project.run.env {
        line(&mut out, "env", &format!("{k}={v}"));
    }
    line(&mut out, "proxy", &format!("undeclared hosts: {}", project.undeclared_hosts.as_str()));
    if project.run.no_fence {
        line(&mut out, "fence", "off: the command can read the authsome home and signal authsome");
    }
    if let Some(id) = &project.store_id {
        line(&mut out, "store", &format!("credentials only from the team store {id}"));
    }
    out
}

/// The same, for `--json`: `warnings` holds one line per replacement.
pub fn to_json(project: &Project, registry: &Registry) -> Value {
    let providers: Vec<Value> = project
        .requirements
        .iter()
        .map(|r| {
            let def = registry.get(&r.provider).ok().map(|p| &p.def);
            json!({
                "provider": r.provider,
                "connection": r.connection,
                "scopes": r.scopes,
                "optional": r.optional,
                "vars": r.vars,
                "secret_env": r.secret_env,
                "injects_on": def.map(ProviderDef::injects_on).unwrap_or_default(),
                "oauth": def.map(ProviderDef::oauth_origins).unwrap_or_default(),
            })
        })
        .collect();
    let replaced = replacements(project, registry);
    let definitions: Vec<Value> = project
        .definitions
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "path": d.path.display().to_string(),
                "injects_on": d.def.injects_on(),
                "oauth": d.def.oauth_origins(),
                "replaces": replaced.iter().find(|r| r.name() == d.name).map(Replacement::to_json),
            })
        })
        .collect();
    json!({
        "providers": providers,
        "definitions": definitions,
        "warnings": replaced.iter().map(Replacement::warning).collect::<Vec<_>>(),
        "command": project.run.command.as_ref().map(command_text),
        "env": project.run.env,
        "undeclared_hosts": project.undeclared_hosts.as_str(),
        "fence": !project.run.no_fence,
        "store": project.store_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Home;
    use std::path::Path;

    fn load(text: &str, defs: &[(&str, &str)]) -> (Project, Registry) {
        let dir = tempfile::tempdir().unwrap();
        for (name, json) in defs {
            std::fs::write(dir.path().join(name), json).unwrap();
        }
        let mut reg = Registry::load(&Home::at("/nonexistent-authsome-home", "default")).unwrap();
        let file = dir.path().join("authsome.toml");
        let p = super::super::config::parse(text, Path::new(&file), &mut reg).unwrap();
        (p, reg)
    }

    #[test]
    fn every_host_variable_and_value_is_shown_on_its_own_line() {
        let (p, reg) = load(
            "[providers.openai]\nsecret_env = \"CI_OPENAI\"\n[run]\ncommand = [\"sh\", \"-c\", \"make deploy\"]\nenv = { MODE = \"prod\\n  proxy     undeclared hosts: deny\" }\n",
            &[],
        );
        let s = summary(&p, &reg);
        assert!(s.contains("  provider  openai\n              injects on  api.openai.com\n"), "{s}");
        assert!(s.contains("variables   OPENAI_API_KEY\n"), "{s}");
        assert!(s.contains("CI secret   $CI_OPENAI"), "{s}");
        assert!(s.contains("  command   sh -c 'make deploy'\n"), "{s}");
        assert!(s.contains("  env       MODE=prod\\n  proxy     undeclared hosts: deny\n"), "{s}");
        assert_eq!(s.matches("\n  proxy").count(), 1, "{s}");
        assert!(replacements(&p, &reg).is_empty());
    }

    #[test]
    fn a_definition_replacing_a_bundled_one_names_the_old_and_new_hosts() {
        let json = r#"{"name": "openai", "auth_type": "api_key", "flow": "api_key", "api_url": ["exfil.example", "https://api.exfil.example:8443/v1"], "api_key": {"env_var": "OPENAI_API_KEY"}}"#;
        let (p, reg) = load("[definitions]\nopenai = \"openai.json\"\n[providers.openai]\n", &[("openai.json", json)]);
        let r = replacements(&p, &reg);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].replaced.source, crate::providers::Source::Bundled);
        let w = r[0].warning();
        assert!(w.starts_with("REPLACES the bundled definition of openai"), "{w}");
        assert!(w.contains("api.openai.com → exfil.example, api.exfil.example:8443/v1/*"), "{w}");
        let v = to_json(&p, &reg);
        assert_eq!(v["warnings"][0], w);
        assert_eq!(v["definitions"][0]["replaces"]["before"][0], "api.openai.com");
    }
}
