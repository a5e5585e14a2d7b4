//! `authsome.toml`: finding it, parsing it, and turning it into a checked
//! [`Project`] model.
//!
//! The file reads like a lockfile-free `devbox.json` or a `mise.toml`: one table
//! per provider under `[providers]`, a `[run]` table for the command, and a
//! `[proxy]` table for the policy. Every mistake is reported as
//! `authsome.toml:line:column: message` (exit 2), several at once when there
//! are several, and an unknown provider name comes with the closest known one.
//!
//! ```toml
//! #:schema https://authsome.agentr.dev/schema/authsome.schema.json
//! [providers.github]
//! scopes = ["repo"]
//!
//! [[providers.discord]]          # two accounts of one provider
//! connection = "personal"
//! [[providers.discord]]
//! connection = "work"            # DISCORD_ACCESS_TOKEN_WORK
//!
//! [run]
//! command = "python bot.py"
//! env = { LOG_LEVEL = "debug" }
//! ```

use crate::error::{Error, Result};
use crate::providers::{AuthType, Provider, ProviderDef, Registry, Source, PLACEHOLDER};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Name of the project file.
pub const FILE_NAME: &str = "authsome.toml";

/// The nearest `authsome.toml` at or above `start`, without reading it.
///
/// Only `stat` calls: the shell hook runs this on every prompt, so it must stay
/// cheap (no TOML parsing, no registry, no vault).
pub fn find(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(FILE_NAME);
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = d.parent();
    }
    None
}

/// The project file for `dir_or_file`: the file itself when it names one, else
/// the nearest one at or above the directory. Exit 2 when there is none.
pub fn locate(dir_or_file: &Path) -> Result<PathBuf> {
    if dir_or_file.is_file() {
        return Ok(in_place(dir_or_file));
    }
    let abs = absolute(dir_or_file);
    find(&abs).map(|f| in_place(&f)).ok_or_else(|| {
        Error::bad_input(format!("no {FILE_NAME} in {} or any parent directory; `authsome init` creates one", abs.display()))
    })
}

/// The project file `file` named by where it takes effect: its directory
/// made absolute with symbolic links resolved, its own name kept. A linked
/// parent directory is the same directory, so the same project; a linked
/// (or hard-linked) `authsome.toml` is the project of the directory holding
/// the link, which trust treats as a project of its own.
pub fn in_place(file: &Path) -> PathBuf {
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(file)).unwrap_or_else(|_| file.to_path_buf())
    };
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir).map(|d| d.join(name)).unwrap_or(abs),
        _ => abs,
    }
}

/// The text of the project file `file`: a small regular file (a FIFO, device
/// or huge file found by walking up is refused without blocking or being read).
pub fn read(file: &Path) -> Result<String> {
    crate::fsutil::read_small_regular(file, true, crate::fsutil::MAX_PROJECT_FILE)
        .map_err(|e| Error::bad_input(format!("{}: {e}", file.display())))
}

/// `p` made absolute against the current directory, symlinks resolved when it exists.
pub fn absolute(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// A line and column (1-based, columns in characters) in the project file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// Line number.
    pub line: usize,
    /// Column number.
    pub column: usize,
}

impl Location {
    /// The position of byte `offset` in the indexed text.
    pub fn of(index: &crate::text::LineIndex, offset: usize) -> Location {
        let (line, column) = index.line_col(offset);
        Location { line, column }
    }
}

/// What the proxy does with a CONNECT to a host no declared provider owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UndeclaredHosts {
    /// Pass it through untouched (end-to-end TLS, no credential): the default.
    #[default]
    Tunnel,
    /// Refuse it, so the program can only reach declared APIs.
    Deny,
}

impl UndeclaredHosts {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            UndeclaredHosts::Tunnel => "tunnel",
            UndeclaredHosts::Deny => "deny",
        }
    }
}

/// The command `[run]` declares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunCommand {
    /// A string, run by the user's `$SHELL -c` (so pipes and `&&` work).
    Shell(String),
    /// An argv array, executed directly without a shell.
    Argv(Vec<String>),
}

impl RunCommand {
    /// The argv to execute; `shell` is the user's `$SHELL` (or `/bin/sh`).
    pub fn argv(&self, shell: &str) -> Vec<String> {
        match self {
            RunCommand::Shell(s) => vec![shell.to_owned(), "-c".to_owned(), s.clone()],
            RunCommand::Argv(v) => v.clone(),
        }
    }
    /// A one-line rendering for summaries.
    pub fn display(&self) -> String {
        match self {
            RunCommand::Shell(s) => s.clone(),
            RunCommand::Argv(v) => v.join(" "),
        }
    }
}

/// One declared need: a connection of a provider, with the scopes it must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Provider name (a bundled, custom or project provider).
    pub provider: String,
    /// Connection name; `None` means the provider's default connection.
    pub connection: Option<String>,
    /// Scopes the connection must have been granted (sorted, deduplicated).
    pub scopes: Vec<String>,
    /// Missing is fine: used when connected, otherwise skipped.
    pub optional: bool,
    /// Every variable that holds this requirement's placeholder in the child.
    pub vars: Vec<String>,
    /// The placeholder value: [`PLACEHOLDER`] for a provider's primary
    /// requirement, `authsome-proxy-managed-<connection>` for the others.
    pub placeholder: String,
    /// CI: environment variable holding this requirement's secret (`authsome exec`).
    pub secret_env: Option<String>,
    /// Whether this is the provider's primary requirement (first declared
    /// without a connection name, else first declared).
    pub primary: bool,
    /// Where it was declared, for messages.
    pub location: Location,
}

impl Requirement {
    /// `github` or `github (work)`, for messages.
    pub fn label(&self) -> String {
        crate::text::connection_label(&self.provider, self.connection.as_deref())
    }
}

/// A project-local provider definition (`[definitions]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The provider name (the key, equal to the file's `name`).
    pub name: String,
    /// The JSON file, absolute.
    pub path: PathBuf,
    /// The path as written in the file (what trust records as read).
    pub declared: String,
    /// Its validated content.
    pub def: ProviderDef,
    /// The bundled or user definition of the same name it takes the place of
    /// here and now (the user's connections of that name follow it).
    pub replaces: Option<Replaced>,
}

/// Which bundled or user definition a project definition takes the place of.
/// Trust records these when the project is allowed: one that appears later
/// (the user adds their own, a release bundles one) was never confirmed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Replaced {
    /// The provider name both definitions share.
    pub name: String,
    /// Bundled, or the user's own file.
    pub source: Source,
    /// The user's file, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl Replaced {
    /// `old`, the definition a project definition named `name` takes the place of.
    pub fn of(name: &str, old: &Provider) -> Replaced {
        Replaced { name: name.to_owned(), source: old.source, path: old.path.clone() }
    }

    /// "your definition of NAME (PATH)" or "the bundled definition of NAME".
    pub fn whose(&self) -> String {
        match (self.source, &self.path) {
            (Source::Custom, Some(p)) => format!("your definition of {} ({})", self.name, p.display()),
            _ => format!("the bundled definition of {}", self.name),
        }
    }
}

/// A `[definitions]` entry as written, before its file is read: what `allow`
/// would read, and what a trust record says it allowed to be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Declared {
    /// The provider name.
    pub name: String,
    /// The file, relative to the project directory, as written.
    pub path: String,
}

/// Whether the files a project's `[definitions]` name may be opened; told
/// every entry (sorted by name) once they are known to stay inside the project.
pub type MayRead<'a> = &'a dyn Fn(&[Declared]) -> bool;

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Run {
    /// The command `up`/`exec` run when none is given on the command line.
    pub command: Option<RunCommand>,
    /// Extra plain (non-secret) variables for the child.
    pub env: BTreeMap<String, String>,
    /// `fence = false`: run the child without the fence (security-relevant,
    /// so part of what `allow` covers).
    pub no_fence: bool,
}

/// A parsed and checked `authsome.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// The file, absolute and canonical.
    pub file: PathBuf,
    /// Its directory (the project root, `AUTHSOME_ACTIVE`).
    pub dir: PathBuf,
    /// Declared needs, providers sorted by name, each provider's in file order.
    pub requirements: Vec<Requirement>,
    /// Project-local provider definitions, sorted by name.
    pub definitions: Vec<Definition>,
    /// Definitions that were not read, because the project is not trusted as
    /// it is (sorted by name); the requirements of their providers are left
    /// out. Always empty in a project that can be run (see `trust::canonical`).
    pub unread: Vec<Declared>,
    /// `[run]`.
    pub run: Run,
    /// `[proxy] undeclared_hosts`.
    pub undeclared_hosts: UndeclaredHosts,
    /// `[store] id`: the team store this project's credentials must come from
    /// (the URL is never the project's to give; see README, "Team store").
    pub store_id: Option<String>,
}

impl Project {
    /// Read, parse and check `file`, reading every project definition (only
    /// `allow` does this: see [`Project::load_gated`]); they are added to `registry`.
    pub fn load(file: &Path, registry: &mut Registry) -> Result<Project> {
        Project::load_gated(file, registry, &|_| true)
    }

    /// Read, parse and check `file`; its definitions are read (and added to
    /// `registry`) only when `may_read` says so, and listed in
    /// [`Project::unread`] otherwise.
    pub fn load_gated(file: &Path, registry: &mut Registry, may_read: MayRead) -> Result<Project> {
        let file = in_place(file);
        parse_gated(&read(&file)?, &file, registry, may_read)
    }
}

// ---------------------------------------------------------------------------
// Raw file shape (serde), with spans for messages.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    providers: BTreeMap<Spanned<String>, Spanned<OneOrMany>>,
    #[serde(default)]
    definitions: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    run: Option<RawRun>,
    #[serde(default)]
    proxy: Option<RawProxy>,
    #[serde(default)]
    store: Option<RawStore>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    id: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    #[serde(default)]
    connection: Option<Spanned<String>>,
    #[serde(default)]
    scopes: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    export: Vec<Spanned<String>>,
    #[serde(default)]
    secret_env: Option<Spanned<String>>,
}

/// A provider entry: a table, an array of tables (several connections), or `true`.
enum OneOrMany {
    One(RawRequirement),
    Many(Vec<Spanned<RawRequirement>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table (`[providers.NAME]`), an array of tables (`[[providers.NAME]]`) or `true`")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<OneOrMany, E> {
                if v {
                    Ok(OneOrMany::One(RawRequirement::default()))
                } else {
                    Err(E::custom("`false` declares nothing; remove the line instead"))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<OneOrMany, A::Error> {
                RawRequirement::deserialize(de::value::MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<OneOrMany, A::Error> {
                let v = Vec::<Spanned<RawRequirement>>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                if v.is_empty() {
                    return Err(de::Error::custom("an empty list declares nothing; remove the line instead"));
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    #[serde(default)]
    command: Option<Spanned<RawCommand>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    fence: Option<bool>,
}

struct RawCommand(RunCommand);

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCommand;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string (run by your $SHELL) or an array of strings (argv)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<RawCommand, E> {
                Ok(RawCommand(RunCommand::Shell(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<RawCommand, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(|v| RawCommand(RunCommand::Argv(v)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    #[serde(default)]
    undeclared_hosts: Option<UndeclaredHosts>,
}

// ---------------------------------------------------------------------------
// Checking.

/// Collects located problems so one run reports all of them.
struct Problems<'a> {
    index: crate::text::LineIndex<'a>,
    origin: String,
    lines: Vec<String>,
}

impl Problems<'_> {
    fn at(&mut self, span: std::ops::Range<usize>, msg: impl fmt::Display) {
        let loc = Location::of(&self.index, span.start);
        self.lines.push(format!("{}:{}:{}: {msg}", self.origin, loc.line, loc.column));
    }
}

/// How the file is named in messages: relative to the current directory when
/// below it (`authsome.toml:3:1`), absolute otherwise.
fn origin_name(file: &Path) -> String {
    let cwd = std::env::current_dir().ok().map(|c| absolute(&c));
    match cwd.as_deref().and_then(|c| file.strip_prefix(c).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => file.display().to_string(),
    }
}

/// Parse and check the text of `file` (absolute). Project definitions are
/// loaded relative to the file's directory and added to `registry`.
pub fn parse(text: &str, file: &Path, registry: &mut Registry) -> Result<Project> {
    parse_gated(text, file, registry, &|_| true)
}

/// [`parse`], opening the files `[definitions]` names only when `may_read`
/// allows them (see [`Project::load_gated`]).
pub fn parse_gated(text: &str, file: &Path, registry: &mut Registry, may_read: MayRead) -> Result<Project> {
    let origin = origin_name(file);
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let loc = e.span().map(|s| Location::of(&crate::text::LineIndex::new(text), s.start)).unwrap_or(Location { line: 1, column: 1 });
        Error::bad_input(format!("{origin}:{}:{}: {}", loc.line, loc.column, e.message().trim_end()))
    })?;
    let mut c = Checker {
        p: Problems { index: crate::text::LineIndex::new(text), origin, lines: Vec::new() },
        assigned_vars: BTreeMap::new(),
        secret_envs: BTreeSet::new(),
    };
    // Project definitions first: requirements may name them.
    let (definitions, unread) = c.definitions(&raw.definitions, &dir, registry, may_read);
    let mut requirements = Vec::new();
    for (name, entry) in &raw.providers {
        // What an unread definition would define is not known yet; one that
        // could not be read has its own error already.
        let unknown = unread.iter().any(|d| &d.name == name.get_ref())
            || (raw.definitions.contains_key(name) && !definitions.iter().any(|d| &d.name == name.get_ref()));
        if !unknown {
            requirements.extend(c.provider(name, entry.get_ref(), registry));
        }
    }
    let run = raw.run.as_ref().map(|r| c.run(r)).unwrap_or_default();
    if let Some(id) = raw.store.as_ref().map(|s| &s.id) {
        if !crate::providers::def::valid_name(id.get_ref()) {
            c.p.at(id.span(), format_args!("store id {:?} must be lower-case letters, digits, '-' or '_'", id.get_ref()));
        }
    }
    if !c.p.lines.is_empty() {
        return Err(Error::bad_input(c.p.lines.join("\n")));
    }
    Ok(Project {
        file: file.to_path_buf(),
        dir,
        requirements,
        definitions,
        unread,
        run,
        undeclared_hosts: raw.proxy.and_then(|p| p.undeclared_hosts).unwrap_or_default(),
        store_id: raw.store.map(|s| s.id.into_inner()),
    })
}

/// Whether `path` names something below the project directory by its
/// words alone: relative, not empty, no `..`.
fn inside(path: &str) -> bool {
    use std::path::Component;
    let p = Path::new(path);
    p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && p.components().any(|c| matches!(c, Component::Normal(_)))
}

/// Read the definition `rel` (already [`inside`] by its words) of the project
/// in `dir`: links are resolved and must stay inside the project, and the
/// file must be a small regular one (see `fsutil::read_small_regular`).
/// Returns the path as named, absolute, and the text.
fn read_definition(dir: &Path, rel: &str) -> std::result::Result<(PathBuf, String), String> {
    let full = dir.join(rel);
    let root = std::fs::canonicalize(dir).map_err(|e| format!("cannot read the project directory {}: {e}", dir.display()))?;
    let real = std::fs::canonicalize(&full).map_err(|e| format!("cannot read provider definition {}: {e}", full.display()))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "provider definition {} leads to {}, outside the project; it must be a file inside {}",
            full.display(),
            real.display(),
            root.display()
        ));
    }
    let text = crate::fsutil::read_small_regular(&real, false, crate::fsutil::MAX_PROJECT_FILE)
        .map_err(|e| format!("provider definition {} {e}", full.display()))?;
    Ok((full, text))
}

/// The checks of one file, step by step, with what they share: the problems
/// found so far, which requirement each variable belongs to, the CI variables taken.
struct Checker<'a> {
    p: Problems<'a>,
    assigned_vars: BTreeMap<String, String>,
    secret_envs: BTreeSet<String>,
}

/// One `[[providers.NAME]]` entry with where it was declared.
type Entry<'r> = (&'r RawRequirement, std::ops::Range<usize>);

impl Checker<'_> {
    /// `[definitions]`: each path checked to stay inside the project; then,
    /// when `may_read` allows it, each file read, validated, named as its key
    /// and added to `registry`. Otherwise nothing is opened and the entries
    /// come back unread.
    fn definitions(
        &mut self,
        raw: &BTreeMap<Spanned<String>, Spanned<String>>,
        dir: &Path,
        registry: &mut Registry,
        may_read: MayRead,
    ) -> (Vec<Definition>, Vec<Declared>) {
        let mut declared = Vec::new();
        for (name, path) in raw {
            if !crate::providers::def::valid_name(name.get_ref()) {
                self.p.at(name.span(), format_args!("provider name {:?} must be lower-case letters, digits, '-' or '_'", name.get_ref()));
            } else if !inside(path.get_ref()) {
                self.p.at(
                    path.span(),
                    format_args!(
                        "definition path {:?} must be a relative path inside the project (no absolute path, no `..`)",
                        path.get_ref()
                    ),
                );
            } else {
                declared.push((Declared { name: name.get_ref().clone(), path: path.get_ref().clone() }, path.span()));
            }
        }
        let entries: Vec<Declared> = declared.iter().map(|(d, _)| d.clone()).collect();
        if !self.p.lines.is_empty() || !may_read(&entries) {
            return (Vec::new(), entries);
        }
        let mut definitions = Vec::new();
        for (d, span) in declared {
            let (full, json) = match read_definition(dir, &d.path) {
                Ok(read) => read,
                Err(e) => {
                    self.p.at(span, e);
                    continue;
                }
            };
            let def = match crate::providers::parse(&json, &full.display().to_string()) {
                Ok(def) => def,
                Err(e) => {
                    self.p.lines.push(e.message);
                    continue;
                }
            };
            if def.name != d.name {
                self.p.at(span, format_args!("{} defines provider {:?}, not {:?}", full.display(), def.name, d.name));
                continue;
            }
            registry.add_project(def.clone(), full.clone());
            let replaces = registry.replaced(&d.name).map(|old| Replaced::of(&d.name, old));
            definitions.push(Definition { name: d.name, path: full, declared: d.path, def, replaces });
        }
        (definitions, Vec::new())
    }

    /// Every requirement of one `[providers.NAME]` (a table, an array of tables, or `true`).
    fn provider(&mut self, name: &Spanned<String>, entry: &OneOrMany, registry: &Registry) -> Vec<Requirement> {
        let provider = match registry.get(name.get_ref()) {
            Ok(pr) => pr.clone(),
            Err(_) => {
                let mut msg = format!("unknown provider {:?}", name.get_ref());
                if let Some(s) = registry.suggest(name.get_ref()) {
                    msg.push_str(&format!(" (did you mean {s:?}?)"));
                }
                msg.push_str("; `authsome list` shows every provider, `[definitions]` adds your own");
                self.p.at(name.span(), msg);
                return Vec::new();
            }
        };
        let entries: Vec<Entry> = match entry {
            OneOrMany::One(r) => vec![(r, name.span())],
            OneOrMany::Many(v) => v.iter().map(|r| (r.get_ref(), r.span())).collect(),
        };
        let primary = entries.iter().position(|(r, _)| r.connection.is_none()).unwrap_or(0);
        let mut seen_connections: BTreeSet<Option<String>> = BTreeSet::new();
        let mut out = Vec::new();
        for (i, (r, span)) in entries.into_iter().enumerate() {
            let connection = r.connection.as_ref().map(|c| c.get_ref().clone());
            if let Some(c) = &r.connection {
                if !crate::providers::def::valid_name(c.get_ref()) {
                    self.p.at(c.span(), format_args!("connection name {:?} must be lower-case letters, digits, '-' or '_'", c.get_ref()));
                }
            }
            if !seen_connections.insert(connection.clone()) {
                let what = connection.as_deref().map_or("the default connection".to_owned(), |c| format!("connection {c:?}"));
                let at = r.connection.as_ref().map_or(span.clone(), |c| c.span());
                self.p.at(at, format_args!("{} declares {what} twice", name.get_ref()));
                continue;
            }
            out.push(self.requirement(name.get_ref(), &provider.def, (r, span), connection, i == primary));
        }
        out
    }

    /// One requirement: its scopes, placeholder, variables and CI variable.
    fn requirement(&mut self, name: &str, def: &ProviderDef, (r, span): Entry, connection: Option<String>, primary: bool) -> Requirement {
        let scopes = self.scopes(name, def, r);
        let placeholder = match (&connection, primary) {
            (Some(c), false) => format!("{PLACEHOLDER}-{c}"),
            _ => PLACEHOLDER.to_owned(),
        };
        let label = crate::text::connection_label(name, connection.as_deref());
        let wanted = self.vars(def, r, &span, connection.as_deref(), primary);
        let vars = self.claim_vars(&label, wanted);
        let secret_env = self.secret_env(r);
        Requirement {
            provider: name.to_owned(),
            connection,
            scopes,
            optional: r.optional,
            vars,
            placeholder,
            secret_env,
            primary,
            location: Location::of(&self.p.index, span.start),
        }
    }

    /// `scopes`, checked, sorted and deduplicated.
    fn scopes(&mut self, name: &str, def: &ProviderDef, r: &RawRequirement) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        if let Some(s) = &r.scopes {
            if def.auth_type == AuthType::ApiKey && !s.get_ref().is_empty() {
                self.p.at(s.span(), format_args!("{name} uses an API key, which has no scopes; remove `scopes`"));
            }
            for scope in s.get_ref() {
                if scope.get_ref().is_empty() || scope.get_ref().chars().any(|c| c.is_whitespace() || c == ',') {
                    self.p.at(scope.span(), format_args!("scope {:?} must be non-empty without spaces or commas", scope.get_ref()));
                }
                scopes.push(scope.get_ref().clone());
            }
        }
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// The variables a requirement asks for, with where: the provider's own
    /// go to its primary requirement, the others get them suffixed with the
    /// connection name; then `export`.
    fn vars(
        &mut self,
        def: &ProviderDef,
        r: &RawRequirement,
        span: &std::ops::Range<usize>,
        connection: Option<&str>,
        primary: bool,
    ) -> Vec<(String, std::ops::Range<usize>)> {
        let mut vars = Vec::new();
        let key_var = def.api_key.as_ref().and_then(|k| k.env_var.as_deref());
        let mut own: Vec<&str> = def.exported_vars().chain(key_var).collect();
        own.sort_unstable();
        own.dedup();
        for v in own {
            let var = match (connection, primary) {
                (Some(c), false) => format!("{v}_{}", c.to_ascii_uppercase().replace('-', "_")),
                _ => v.to_owned(),
            };
            vars.push((var, span.clone()));
        }
        for v in &r.export {
            if !crate::text::valid_env_name(v.get_ref()) {
                self.p.at(v.span(), format_args!("{:?} is not a valid environment variable name", v.get_ref()));
                continue;
            }
            vars.push((v.get_ref().clone(), v.span()));
        }
        vars
    }

    /// Keep the variables no other requirement holds and authsome does not set.
    fn claim_vars(&mut self, label: &str, vars: Vec<(String, std::ops::Range<usize>)>) -> Vec<String> {
        let mut kept = Vec::new();
        for (var, at) in vars {
            if crate::child_vars::is_reserved(var.as_str()) {
                self.p.at(at, format_args!("{var} is set by authsome itself and cannot hold a placeholder"));
                continue;
            }
            match self.assigned_vars.get(&var) {
                Some(other) if other == label => {}
                Some(other) => self.p.at(at, format_args!("{var} would hold the placeholders of both {other} and {label}")),
                None => {
                    self.assigned_vars.insert(var.clone(), label.to_owned());
                    kept.push(var);
                }
            }
        }
        kept.sort();
        kept.dedup();
        kept
    }

    /// `secret_env`: a valid name no other requirement uses.
    fn secret_env(&mut self, r: &RawRequirement) -> Option<String> {
        match &r.secret_env {
            Some(s) if !crate::text::valid_env_name(s.get_ref()) => {
                self.p.at(s.span(), format_args!("{:?} is not a valid environment variable name", s.get_ref()));
                None
            }
            Some(s) if !self.secret_envs.insert(s.get_ref().clone()) => {
                self.p.at(s.span(), format_args!("{} is already the secret_env of another requirement", s.get_ref()));
                None
            }
            Some(s) => Some(s.get_ref().clone()),
            None => None,
        }
    }

    /// `[run]`: a non-empty command, and plain variables that neither
    /// authsome nor a placeholder owns.
    fn run(&mut self, r: &RawRun) -> Run {
        let mut run = Run::default();
        if let Some(c) = &r.command {
            let cmd = &c.get_ref().0;
            let empty = match cmd {
                RunCommand::Shell(s) => s.trim().is_empty(),
                RunCommand::Argv(v) => v.first().is_none_or(|a| a.is_empty()),
            };
            if empty {
                self.p.at(c.span(), "command is empty; remove it to get an interactive shell");
            }
            run.command = Some(cmd.clone());
        }
        run.no_fence = r.fence == Some(false);
        for (k, v) in &r.env {
            if !crate::text::valid_env_name(k.get_ref()) {
                self.p.at(k.span(), format_args!("{:?} is not a valid environment variable name", k.get_ref()));
            } else if crate::child_vars::is_reserved(k.get_ref()) {
                self.p.at(k.span(), format_args!("{} is set by authsome itself; remove it from [run.env]", k.get_ref()));
            } else if let Some(owner) = self.assigned_vars.get(k.get_ref()) {
                self.p.at(k.span(), format_args!("{} holds the placeholder of {owner}; remove it from [run.env]", k.get_ref()));
            } else {
                run.env.insert(k.get_ref().clone(), v.get_ref().clone());
            }
        }
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Home;

    fn registry() -> Registry {
        Registry::load(&Home::at("/nonexistent-authsome-home", "default")).unwrap()
    }

    fn load(text: &str) -> Result<Project> {
        parse(text, Path::new("/nonexistent-project/authsome.toml"), &mut registry())
    }

    #[test]
    fn a_full_file_becomes_the_model() {
        let p = load(
            r#"
[providers.github]
scopes = ["repo", "read:user", "repo"]

[providers.openai]
optional = true
secret_env = "CI_OPENAI_KEY"
export = ["LLM_KEY"]

[run]
command = ["python", "agent.py"]
env = { LOG_LEVEL = "debug" }

[proxy]
undeclared_hosts = "deny"
"#,
        )
        .unwrap();
        assert_eq!(p.requirements.len(), 2);
        let gh = &p.requirements[0];
        assert_eq!(gh.provider, "github");
        assert_eq!(gh.scopes, vec!["read:user", "repo"]);
        assert_eq!(gh.vars, vec!["GH_TOKEN", "GITHUB_ACCESS_TOKEN"]);
        assert_eq!(gh.placeholder, PLACEHOLDER);
        let oa = &p.requirements[1];
        assert!(oa.optional);
        assert_eq!(oa.vars, vec!["LLM_KEY", "OPENAI_API_KEY"]);
        assert_eq!(oa.secret_env.as_deref(), Some("CI_OPENAI_KEY"));
        assert_eq!(p.run.command, Some(RunCommand::Argv(vec!["python".into(), "agent.py".into()])));
        assert_eq!(p.run.env["LOG_LEVEL"], "debug");
        assert_eq!(p.undeclared_hosts, UndeclaredHosts::Deny);
    }

    #[test]
    fn two_connections_get_distinct_placeholders_and_variables() {
        let p = load(
            r#"
[[providers.discord]]
connection = "personal"
[[providers.discord]]
connection = "work-bot"
"#,
        )
        .unwrap();
        let (a, b) = (&p.requirements[0], &p.requirements[1]);
        assert!(a.primary && !b.primary);
        assert_eq!(a.placeholder, "authsome-proxy-managed");
        assert_eq!(b.placeholder, "authsome-proxy-managed-work-bot");
        assert_eq!(a.vars, vec!["DISCORD_ACCESS_TOKEN"]);
        assert_eq!(b.vars, vec!["DISCORD_ACCESS_TOKEN_WORK_BOT"]);
    }

    #[test]
    fn the_unnamed_connection_is_primary_wherever_it_is() {
        let p = load("[[providers.github]]\nconnection = \"work\"\n[[providers.github]]\nscopes = [\"repo\"]\n").unwrap();
        assert!(!p.requirements[0].primary && p.requirements[1].primary);
        assert_eq!(p.requirements[0].placeholder, "authsome-proxy-managed-work");
        assert_eq!(p.requirements[1].placeholder, "authsome-proxy-managed");
    }

    #[test]
    fn true_is_shorthand_for_an_empty_table() {
        let p = load("[providers]\nopenai = true\n").unwrap();
        assert_eq!(p.requirements[0].provider, "openai");
        assert!(p.requirements[0].scopes.is_empty());
    }

    #[test]
    fn shell_commands_run_through_the_users_shell() {
        let p = load("[run]\ncommand = \"python bot.py && echo done\"\n").unwrap();
        assert_eq!(p.run.command.unwrap().argv("/bin/zsh"), vec!["/bin/zsh", "-c", "python bot.py && echo done"]);
    }

    #[test]
    fn unknown_provider_suggests_and_cites_line_and_column() {
        let err = load("# deps\n[providers.githbu]\nscopes = [\"repo\"]\n").unwrap_err();
        assert_eq!(err.code, 2);
        assert!(err.message.contains("authsome.toml:2:12: unknown provider \"githbu\""), "{}", err.message);
        assert!(err.message.contains("did you mean \"github\""), "{}", err.message);
    }

    #[test]
    fn syntax_and_type_errors_cite_the_position() {
        let err = load("[providers.github]\nscopes = \"repo\"\n").unwrap_err();
        assert!(err.message.contains("authsome.toml:2:10: "), "{}", err.message);
        let err = load("[proxy]\nundeclared_hosts = \"block\"\n").unwrap_err();
        assert!(err.message.contains("authsome.toml:2:20: "), "{}", err.message);
        assert!(err.message.contains("tunnel"), "{}", err.message);
        let err = load("[providers.github]\nscope = [\"repo\"]\n").unwrap_err();
        assert!(err.message.contains("authsome.toml:2:1: unknown field `scope`"), "{}", err.message);
        let err = load("[providers\n").unwrap_err();
        assert!(err.message.contains("authsome.toml:1:"), "{}", err.message);
    }

    #[test]
    fn several_problems_are_reported_together() {
        let err = load(
            "[providers.openai]\nscopes = [\"x\"]\n[providers.discrod]\n[[providers.github]]\nconnection = \"w\"\n[[providers.github]]\nconnection = \"w\"\n[run.env]\nHTTPS_PROXY = \"x\"\n",
        )
        .unwrap_err();
        let lines: Vec<&str> = err.message.lines().collect();
        assert_eq!(lines.len(), 4, "{}", err.message);
        assert!(lines.iter().any(|l| l.contains(":2:10: openai uses an API key")));
        assert!(lines.iter().any(|l| l.contains(":3:12: unknown provider \"discrod\" (did you mean \"discord\"?)")));
        assert!(lines.iter().any(|l| l.contains(":7:14: github declares connection \"w\" twice")));
        assert!(lines.iter().any(|l| l.contains(":9:1: HTTPS_PROXY is set by authsome")));
    }

    #[test]
    fn variables_cannot_be_claimed_twice() {
        let err = load("[providers.github]\n[providers.openai]\nexport = [\"GH_TOKEN\"]\n").unwrap_err();
        assert!(err.message.contains(":3:11: GH_TOKEN would hold the placeholders of both github and openai"), "{}", err.message);
        let err = load("[providers.github]\n[run.env]\nGH_TOKEN = \"x\"\n").unwrap_err();
        assert!(err.message.contains("GH_TOKEN holds the placeholder of github"), "{}", err.message);
    }

    #[test]
    fn empty_commands_and_duplicate_defaults_are_rejected() {
        assert!(load("[run]\ncommand = []\n").unwrap_err().message.contains(":2:11: command is empty"));
        assert!(load("[[providers.github]]\n[[providers.github]]\n").unwrap_err().message.contains("the default connection twice"));
    }

    #[test]
    fn project_definitions_are_loaded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let def = r#"{"name": "acme", "auth_type": "api_key", "flow": "api_key", "api_url": "api.acme.test",
            "api_key": {"header_name": "X-Api-Key"}, "export": {"ACME_KEY": "API_KEY"}}"#;
        std::fs::create_dir(dir.path().join("providers")).unwrap();
        std::fs::write(dir.path().join("providers/acme.json"), def).unwrap();
        let file = dir.path().join("authsome.toml");
        std::fs::write(&file, "[definitions]\nacme = \"providers/acme.json\"\n[providers.acme]\n").unwrap();
        let mut reg = registry();
        let p = Project::load(&file, &mut reg).unwrap();
        assert_eq!(p.definitions[0].name, "acme");
        assert_eq!(p.requirements[0].vars, vec!["ACME_KEY"]);
        assert_eq!(reg.get("acme").unwrap().source, crate::providers::Source::Project);

        std::fs::write(&file, "[definitions]\nacme = \"providers/missing.json\"\n").unwrap();
        let err = Project::load(&file, &mut registry()).unwrap_err();
        assert!(err.message.contains("authsome.toml:2:8: cannot read provider definition"), "{}", err.message);
        std::fs::write(&file, "[definitions]\nwidget = \"providers/acme.json\"\n").unwrap();
        let err = Project::load(&file, &mut registry()).unwrap_err();
        assert!(err.message.contains("defines provider \"acme\", not \"widget\""), "{}", err.message);
    }

    #[test]
    fn definition_paths_must_stay_inside_by_their_words() {
        for ok in ["a.json", "./defs/a.json", "defs/./a.json"] {
            assert!(inside(ok), "{ok}");
        }
        for bad in ["", ".", "/etc/passwd", "../x.json", "defs/../../x.json", "defs/..", "/dev/stdin"] {
            assert!(!inside(bad), "{bad}");
        }
    }

    #[test]
    fn unread_definitions_open_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("acme.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, "[definitions]\nacme = \"acme.json\"\n[providers.acme]\n[providers.github]\n").unwrap();
        let asked = std::cell::RefCell::new(Vec::new());
        let may_read = |d: &[Declared]| {
            asked.borrow_mut().extend_from_slice(d);
            false
        };
        let p = Project::load_gated(&file, &mut registry(), &may_read).unwrap();
        let acme = Declared { name: "acme".into(), path: "acme.json".into() };
        assert_eq!(*asked.borrow(), vec![acme.clone()]);
        assert_eq!(p.unread, vec![acme]);
        assert!(p.definitions.is_empty());
        // Only what the unread file would define is left out.
        assert_eq!(p.requirements.iter().map(|r| r.provider.as_str()).collect::<Vec<_>>(), vec!["github"]);
        // Allowed to read, the FIFO is refused without blocking.
        let err = Project::load(&file, &mut registry()).unwrap_err();
        assert!(err.message.contains("authsome.toml:2:8: provider definition") && err.message.contains("is a FIFO"), "{}", err.message);
        assert!(!err.message.contains("unknown provider"), "{}", err.message);
    }

    #[test]
    fn a_linked_project_file_belongs_to_the_linking_directory() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        for d in ["proj", "evil"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        std::fs::write(root.join("proj").join(FILE_NAME), "").unwrap();
        std::os::unix::fs::symlink("../proj/authsome.toml", root.join("evil").join(FILE_NAME)).unwrap();
        std::os::unix::fs::symlink(root.join("proj"), root.join("alias")).unwrap();
        assert_eq!(locate(&root.join("evil")).unwrap(), root.join("evil").join(FILE_NAME));
        assert_eq!(locate(&root.join("evil").join(FILE_NAME)).unwrap(), root.join("evil").join(FILE_NAME));
        assert_eq!(locate(&root.join("alias").join(FILE_NAME)).unwrap(), root.join("proj").join(FILE_NAME));
        assert_eq!(locate(&root.join("alias")).unwrap(), root.join("proj").join(FILE_NAME));
    }

    #[test]
    fn find_walks_up_without_parsing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "this is not toml [").unwrap();
        let deep = dir.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find(&deep), Some(dir.path().join(FILE_NAME)));
    }

    #[test]
    fn locations_count_characters() {
        use crate::text::LineIndex;
        assert_eq!(Location::of(&LineIndex::new("ab\ncé\nx"), 7), Location { line: 3, column: 1 });
        assert_eq!(Location::of(&LineIndex::new("ab\ncéd"), 6), Location { line: 2, column: 3 });
    }

    #[test]
    fn the_nearest_regular_file_wins() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let inner = root.join("a/b/c");
        std::fs::create_dir_all(&inner).unwrap();
        assert_eq!(find(&inner), None);
        std::fs::write(root.join("a").join(FILE_NAME), "").unwrap();
        assert_eq!(find(&inner), Some(root.join("a").join(FILE_NAME)));
        std::fs::write(root.join("a/b").join(FILE_NAME), "").unwrap();
        assert_eq!(find(&inner), Some(root.join("a/b").join(FILE_NAME)));
        std::fs::create_dir(inner.join(FILE_NAME)).unwrap();
        assert_eq!(find(&inner), Some(root.join("a/b").join(FILE_NAME)));
    }
}
