//! Provider definitions: the bundled set embedded at build time, user overrides
//! under `<home>/providers`, and project-local files; loading, validation
//! (reported as `file:line:column`) and lookup with "did you mean" suggestions.

pub mod def;
pub mod hosts;
pub(crate) mod jsonpos;
pub mod page;
pub mod parts;
pub mod values;

pub use def::{ApiKeyDef, AuthType, ExportSource, Flow, KeyLocation, OAuthDef, ProviderDef, PLACEHOLDER};
pub use hosts::HostPattern;

use crate::error::{Error, Result};
use crate::paths::Home;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_providers.rs"));
}

/// Variables exported by more than one bundled provider, because those
/// providers are alternative ways into the same account (an API and its MCP
/// server take the same token). Only one of each pair is normally connected;
/// if both are, the child sees the same placeholder either way. Every other
/// bundled variable belongs to exactly one provider (checked by the test suite).
pub const SHARED_VARIABLES: &[(&str, &[&str])] = &[
    ("CLOUDFLARE_API_TOKEN", &["cloudflare", "cloudflare-mcp"]),
    ("GH_TOKEN", &["github", "github-mcp"]),
    ("NOTION_ACCESS_TOKEN", &["notion", "notion-mcp"]),
    ("SENTRY_AUTH_TOKEN", &["sentry", "sentry-mcp"]),
];

/// Registrable domains under which a bundled regex or templated host may
/// match more than one host: each belongs to the provider itself, so
/// `<anything>.<domain>` is still that provider's. Any other pattern needs a
/// literal suffix of at least three labels (`api.mailchimp.com`).
pub const REGISTRABLE_DOMAINS: &[&str] =
    &["googleapis.com", "githubusercontent.com", "linear.app", "pinecone.io", "myshopify.com", "zendesk.com", "freshdesk.com"];

/// The embedded provider files as (name, JSON text), sorted by name.
pub fn bundled_files() -> &'static [(&'static str, &'static str)] {
    bundled::BUNDLED
}

/// Where the effective definition of a provider came from (the SOURCE column).
/// Serialized (in trust records) as the word [`Source::as_str`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Embedded in the binary.
    Bundled,
    /// `<home>/providers/<name>.json`, which wins over the bundled file.
    Custom,
    /// Declared by a project's `authsome.toml`.
    Project,
}

impl Source {
    /// The word shown to users and scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Bundled => "bundled",
            Source::Custom => "custom",
            Source::Project => "project",
        }
    }
}

/// A validated definition with its origin and compiled host patterns.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The definition as written.
    pub def: ProviderDef,
    /// Where it came from.
    pub source: Source,
    /// The file it was read from (none for bundled ones).
    pub path: Option<PathBuf>,
    /// `api_url` entries, compiled for [`Provider::binding`]; an entry whose
    /// `{value}` is not filled is left out, so it matches nothing.
    pub hosts: Vec<HostPattern>,
    /// The connection values the hosts and endpoints were bound to.
    pub binding: Binding,
}

/// What a connection fills into a templated definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// `--base-url` given at login, when it overrides `oauth.base_url`.
    pub base_url: Option<String>,
    /// `connection_values` given at login.
    pub values: BTreeMap<String, String>,
}

impl Provider {
    /// Validate `def` and compile its hosts (no connection bound yet).
    fn new(def: ProviderDef, source: Source, path: Option<PathBuf>) -> Provider {
        Provider { def, source, path, hosts: Vec::new(), binding: Binding::default() }.bound(None, &BTreeMap::new())
    }

    /// This provider as one connection sees it: `{base_url}` and `{name}`
    /// filled from the connection. A connection whose base URL overrides the
    /// definition's keeps only the entries built from it
    /// ([`def::ApiUrl::for_connection`]): a GitHub Enterprise token goes to
    /// its own host's `/api/`, never to api.github.com. Only the connection's
    /// stored base URL and values are needed, never its secret.
    pub fn bound(&self, base_url: Option<&str>, values: &BTreeMap<String, String>) -> Provider {
        let binding = Binding { base_url: self.overriding(base_url).map(str::to_owned), values: values.clone() };
        let default_base = self.def.oauth.as_ref().and_then(|o| o.base_url.as_deref());
        let hosts = self
            .def
            .api_url
            .for_connection(binding.base_url.is_some())
            .iter()
            .filter_map(|e| self.def.bind(e, binding.base_url.as_deref().or(default_base), values))
            .filter_map(|e| HostPattern::parse(&e).ok())
            .collect();
        Provider { hosts, binding, ..self.clone() }
    }

    /// `base_url` when it overrides the definition's own base URL.
    fn overriding<'a>(&self, base_url: Option<&'a str>) -> Option<&'a str> {
        let default_base = self.def.oauth.as_ref().and_then(|o| o.base_url.as_deref());
        base_url.filter(|b| Some(b.trim_end_matches('/')) != default_base.map(|d| d.trim_end_matches('/')))
    }

    /// Whether this provider, as bound, is what a connection holding
    /// `base_url` and `values` sees. A connection logged in again for other
    /// hosts (another `--base-url`) after the routes were built must not
    /// have its new credential injected on the old hosts. Asked at every
    /// injected request, so it compares in place rather than building a binding.
    pub fn is_bound_like(&self, base_url: Option<&str>, values: &BTreeMap<String, String>) -> bool {
        self.overriding(base_url) == self.binding.base_url.as_deref() && *values == self.binding.values
    }

    /// Provider identifier.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// Whether a CONNECT to `host:port` concerns this provider.
    pub fn matches_host(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|h| h.matches_host(host, port))
    }
}

/// Parse and validate provider JSON. `origin` names the file in messages;
/// every problem is reported as `origin:line:column: message` with exit 2.
pub fn parse(text: &str, origin: &str) -> Result<ProviderDef> {
    let def: ProviderDef = serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m).to_owned();
        Error::bad_input(format!("{origin}:{}:{}: {msg}", e.line(), e.column().max(1)))
    })?;
    let problems = def.problems();
    if problems.is_empty() {
        return Ok(def);
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let (l, c) = jsonpos::locate(text, &p.pointer);
            format!("{origin}:{l}:{c}: {}", p.message)
        })
        .collect();
    Err(Error::bad_input(lines.join("\n")))
}

/// Read and validate a provider file from disk.
pub fn load_file(path: &Path) -> Result<ProviderDef> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

/// Read one override file: `None` when it is empty (see [`Registry::load`]).
fn load_override(path: &Path, stem: &str) -> Result<Option<ProviderDef>> {
    let text = crate::fsutil::read_private(path).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let def = parse(&text, &path.display().to_string())?;
    if stem != def.name {
        return Err(Error::bad_input(format!(
            "{}: file name must match the provider name {:?} (expected {}.json)",
            path.display(),
            def.name,
            def.name
        )));
    }
    Ok(Some(def))
}

/// The effective set of providers: bundled, overridden by `<home>/providers`,
/// extended by project files.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    providers: BTreeMap<String, Provider>,
    /// Override files that could not be used, with why (`file:line:column: …`).
    skipped: Vec<Skipped>,
    /// Names that exist but may not be used yet, with the reason (e.g. a
    /// definition in a project file that is not allowed).
    refused: BTreeMap<String, Error>,
    /// Bundled or custom definitions a project definition of the same name
    /// took the place of: `allow` must say so, naming the hosts that change.
    replaced: BTreeMap<String, Provider>,
}

/// An override file that was not loaded. Unrelated commands keep working (the
/// file is named in one warning); the provider it names refuses to be used
/// until the file is fixed, so a half-edited override never silently falls
/// back to different endpoints.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The provider the file is named after (its stem).
    pub name: String,
    /// Why it was skipped, starting with the file name.
    pub error: Error,
}

impl Registry {
    /// Bundled definitions plus every override in `<home>/providers`.
    ///
    /// An empty override counts as absent: the documented workflow
    /// `authsome inspect discord > <home>/providers/discord.json` has the shell
    /// create the empty file before authsome reads it. A broken or misnamed
    /// file is skipped and listed in [`Registry::skipped`].
    pub fn load(home: &Home) -> Result<Registry> {
        Registry::load_named(home, |_| true)
    }

    /// [`Registry::load`] with only the bundled definitions whose name
    /// `wanted` accepts (every override is still read). Parsing all the
    /// bundled files is most of the start-up cost of a command such as `run`,
    /// which needs only the providers the vault holds connections for.
    pub fn load_named(home: &Home, wanted: impl Fn(&str) -> bool) -> Result<Registry> {
        let mut reg = Registry::bundled_named(wanted)?;
        home.check()?;
        let dir = home.providers_dir();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
                // An override decides where a credential goes: it must be a file of ours nobody else can write.
                if let Some(why) = crate::fsutil::unsafe_reason(&path, false) {
                    return Err(crate::paths::unsafe_error(&path, &why));
                }
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
                match load_override(&path, &stem) {
                    Ok(None) => {}
                    Ok(Some(def)) => {
                        reg.providers.insert(def.name.clone(), Provider::new(def, Source::Custom, Some(path)));
                    }
                    Err(error) => reg.skipped.push(Skipped { name: stem, error }),
                }
            }
        }
        Ok(reg)
    }

    /// Override files that were not loaded, for the one warning commands print.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Make [`Registry::get`] answer `error` for `name` (unless a usable
    /// definition of that name is added later), instead of "unknown provider".
    pub fn refuse(&mut self, name: &str, error: Error) {
        self.refused.insert(name.to_owned(), error);
    }

    /// The definitions embedded in the binary alone (no home, no overrides):
    /// what a component that knows nothing of homes, such as the proxy's own
    /// tests, starts from.
    pub fn bundled() -> Result<Registry> {
        Registry::bundled_named(|_| true)
    }

    /// The bundled definitions whose name (also their file's) `wanted` accepts.
    fn bundled_named(wanted: impl Fn(&str) -> bool) -> Result<Registry> {
        let mut reg = Registry::default();
        for (name, text) in bundled_files().iter().filter(|(name, _)| wanted(name)) {
            let def = parse(text, &format!("<bundled>/{name}.json")).map_err(|e| Error::other(e.message))?;
            reg.providers.insert(def.name.clone(), Provider::new(def, Source::Bundled, None));
        }
        Ok(reg)
    }

    /// Add a project-local definition; it wins over bundled and custom ones
    /// (the one it replaces is kept for [`Registry::replaced`]).
    pub fn add_project(&mut self, def: ProviderDef, path: PathBuf) {
        let name = def.name.clone();
        if let Some(old) = self.providers.insert(name.clone(), Provider::new(def, Source::Project, Some(path))) {
            if old.source != Source::Project {
                self.replaced.insert(name, old);
            }
        }
    }

    /// The bundled or custom definition a project definition named `name`
    /// replaced, if any: the user's existing connections of that name would
    /// follow the project's definition.
    pub fn replaced(&self, name: &str) -> Option<&Provider> {
        self.replaced.get(name)
    }

    /// Look a provider up; unknown names exit 3 with the closest known name.
    pub fn get(&self, name: &str) -> Result<&Provider> {
        // Names are lower-case; `login OpenAI` means openai.
        let lower = name.to_ascii_lowercase();
        let name = if self.providers.contains_key(name) { name } else { lower.as_str() };
        if let Some(p) = self.providers.get(name).filter(|p| p.source == Source::Project) {
            return Ok(p);
        }
        if let Some(e) = self.refused.get(name) {
            return Err(e.clone());
        }
        if let Some(s) = self.skipped.iter().find(|s| s.name == name) {
            return Err(Error::bad_input(format!(
                "{}\nthe custom definition of {name} is broken: fix it (`authsome edit {name}`) or remove it (`authsome remove {name}`)",
                s.error.message
            )));
        }
        self.providers.get(name).ok_or_else(|| {
            let mut msg = format!("unknown provider {name:?}");
            if let Some(s) = self.suggest(name) {
                msg.push_str(&format!(" (did you mean {s:?}?)"));
            }
            msg.push_str("; `authsome list` shows every provider");
            Error::unknown(msg)
        })
    }

    /// Every provider, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }

    /// The known name closest to `name`, if it is plausibly a typo.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        let name = name.as_str();
        self.providers
            .keys()
            .map(|k| (edit_distance(name, k), k))
            .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(1) || k.starts_with(name))
            .min()
            .map(|(_, k)| k.as_str())
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = parse("{\n  \"name\": \"x\",\n  oops\n}", "p.json").unwrap_err();
        assert_eq!(err.code, 2);
        assert!(err.message.starts_with("p.json:3:3: "), "{}", err.message);
    }

    #[test]
    fn semantic_errors_point_at_the_offending_value() {
        let text = r#"{
  "name": "acme",
  "auth_type": "oauth2",
  "flow": "pkce",
  "api_url": "api.acme.test",
  "oauth": {
    "authorization_url": "https://acme.test/authorize",
    "token_url": "http://acme.test/token"
  }
}"#;
        let err = parse(text, "acme.json").unwrap_err();
        assert!(err.message.starts_with("acme.json:8:18: "), "{}", err.message);
        assert!(err.message.contains("must use https"));
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_location() {
        let err = parse("{\"name\": \"a\", \"colour\": 1}", "a.json").unwrap_err();
        assert!(err.message.starts_with("a.json:1:"), "{}", err.message);
        assert!(err.message.contains("unknown field `colour`"), "{}", err.message);
    }

    #[test]
    fn suggestions_find_close_names() {
        let home = Home::at("/nonexistent-authsome-home", "default");
        let reg = Registry::load(&home).unwrap();
        assert_eq!(reg.suggest("discrod"), Some("discord"));
        assert_eq!(reg.get("githbu").unwrap_err().code, 3);
        assert!(reg.get("githbu").unwrap_err().message.contains("\"github\""));
    }
}
