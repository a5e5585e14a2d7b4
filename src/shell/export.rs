//! `authsome export SHELL`: the statements that move the shell from its current
//! environment to the one the current directory wants, and nothing at all when
//! nothing changed.
//!
//! The no-op decision ([`is_noop`]) uses only `stat`: the project file found by
//! walking up from the directory and the identities recorded in the state. Only
//! when something changed does the slow path ask the [`Activator`] for the
//! desired environment.

use super::activation::{self, Activation, Activator, Env, Request};
use super::quote;
use super::state::{State, Watched, SHELL_VAR, STATE_VAR};
use super::Shell;
use crate::paths::Home;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Variable name → new value (`None`: unset it).
pub type Changes = BTreeMap<String, Option<String>>;

/// True when the shell already is in the state the directory wants: no state and
/// no project, or a state naming the same project whose watched files are all unchanged.
pub fn is_noop(home: &Home, raw_state: Option<&OsString>, project: Option<&Path>) -> bool {
    match (raw_state, project) {
        (None, None) => true,
        (Some(raw), Some(project)) => {
            raw.to_str().and_then(State::decode).is_some_and(|s| s.profile == home.profile() && s.still_current(home.root(), project))
        }
        _ => false,
    }
}

/// The variable changes that take an environment (read through `current`) whose
/// authsome-set variables had the prior values `old_saved` to the `desired` set,
/// and the prior values to remember for that new set.
///
/// A variable leaving the set gets its prior value back (unset if it was unset);
/// a variable entering it remembers the value it had before any activation.
pub fn diff(current: &dyn Fn(&str) -> Option<OsString>, old_saved: &Changes, desired: &Env) -> (Changes, Changes) {
    let base = |k: &str| -> Option<OsString> {
        match old_saved.get(k) {
            Some(prior) => prior.clone().map(OsString::from),
            None => current(k),
        }
    };
    let mut changes = Changes::new();
    let mut saved = Changes::new();
    for (k, v) in desired {
        let prior = base(k);
        saved.insert(k.clone(), prior.map(|p| p.to_string_lossy().into_owned()));
        if current(k).as_deref() != v.as_deref().map(std::ffi::OsStr::new) {
            changes.insert(k.clone(), v.clone());
        }
    }
    for (k, prior) in old_saved {
        if desired.contains_key(k) {
            continue;
        }
        if current(k).as_deref() != prior.as_deref().map(std::ffi::OsStr::new) {
            changes.insert(k.clone(), prior.clone());
        }
    }
    (changes, saved)
}

/// `changes` as statements for `shell` (the state last, as the unexported
/// shell variable [`SHELL_VAR`]), or a JSON object with `null` for unset
/// variables (the state under [`STATE_VAR`]). Empty when there are no changes.
pub fn render(shell: Shell, changes: &Changes) -> String {
    if changes.is_empty() {
        return String::new();
    }
    if shell == Shell::Json {
        let map: serde_json::Map<String, serde_json::Value> =
            changes.iter().map(|(k, v)| (k.clone(), v.clone().map_or(serde_json::Value::Null, serde_json::Value::String))).collect();
        return format!("{}\n", serde_json::Value::Object(map));
    }
    let ordered = changes.iter().filter(|(k, _)| *k != STATE_VAR).chain(changes.iter().filter(|(k, _)| *k == STATE_VAR));
    ordered
        .map(|(k, v)| match (k.as_str(), v) {
            (STATE_VAR, Some(v)) => quote::set_local(shell, SHELL_VAR, v),
            (STATE_VAR, None) => quote::unset(shell, SHELL_VAR),
            (_, Some(v)) => quote::set(shell, k, v),
            (_, None) => quote::unset(shell, k),
        })
        .collect()
}

/// Run `authsome export SHELL`: print the statements (stdout) and notices (stderr).
pub fn run(home: &Home, shell: Shell, shell_pid: Option<u32>) -> i32 {
    let project = std::env::current_dir().ok().and_then(|d| crate::project::find(&d));
    // The hooks pass an empty value when the shell has no state.
    let raw = std::env::var_os(STATE_VAR).filter(|v| !v.is_empty());
    if is_noop(home, raw.as_ref(), project.as_deref()) {
        return 0;
    }
    let state = raw.as_ref().and_then(|r| r.to_str()).and_then(State::decode);
    // Without --pid (another tool calling `export json`), the caller is the shell.
    let shell_pid = shell_pid.or_else(|| u32::try_from(nix::unistd::getppid().as_raw()).ok());
    let activator = activation::current();
    let (changes, notices) = reconcile(&*activator, home, shell_pid, raw.is_some(), state, project);
    // One write for all lines, so typed-ahead input echoed by the terminal
    // cannot land in the middle of a message.
    let lines: String = notices.iter().map(|n| format!("authsome: {n}\n")).collect();
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), lines.as_bytes());
    print!("{}", render(shell, &changes));
    0
}

/// The process environment with the prior values of `saved` put back and the
/// state variable removed: the shell as it was before any activation.
fn base_env(saved: &Changes) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    env.remove(std::ffi::OsStr::new(STATE_VAR));
    for (k, prior) in saved {
        match prior {
            Some(v) => env.insert(k.into(), v.into()),
            None => env.remove(std::ffi::OsStr::new(k)),
        };
    }
    env
}

/// Make this process's environment `base` (it was `current`). The export
/// process is single-threaded, so changing its environment is sound.
fn restore_process_env(current: &BTreeMap<OsString, OsString>, base: &BTreeMap<OsString, OsString>) {
    for k in current.keys().filter(|k| !base.contains_key(*k)) {
        std::env::remove_var(k);
    }
    for (k, v) in base.iter().filter(|(k, v)| current.get(*k) != Some(v)) {
        std::env::set_var(k, v);
    }
}

/// The slow path: ask the activator about `project`, restore what the previous
/// state set, and return the changes plus the lines to show on stderr.
fn reconcile(
    activator: &dyn Activator,
    home: &Home,
    shell_pid: Option<u32>,
    had_state: bool,
    state: Option<State>,
    project: Option<PathBuf>,
) -> (Changes, Vec<String>) {
    let mut notices = Vec::new();
    let old_saved = state.as_ref().map(|s| s.saved.clone()).unwrap_or_default();
    let was_active = state.as_ref().filter(|s| s.active).map(|s| s.project.clone());
    let shell_env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    // From here on this process sees the shell as it was before any activation,
    // so the vault key, proxy settings etc. are the user's, not the project's.
    let base_env = base_env(&old_saved);
    restore_process_env(&shell_env, &base_env);
    let mut desired = Env::new();
    let mut new_state = None;
    if let Some(project) = project {
        let mut watched = vec![Watched::now(project.clone())];
        watched.extend(activator.watch(home).into_iter().map(Watched::now));
        let outcome = activator.activate(&Request { home, project_file: &project, shell_pid, base_env: &base_env });
        watched.extend(outcome.watch.into_iter().map(Watched::now));
        let active = match outcome.activation {
            Activation::Active { env, notices: n } => {
                for (k, v) in env {
                    if !quote::valid_name(&k) || k == STATE_VAR {
                        notices.push(format!("ignoring variable {k:?}: not a valid name"));
                    } else {
                        desired.insert(k, v);
                    }
                }
                if was_active.as_deref() != Some(project.as_path()) {
                    notices.push(format!("activated {}", project.display()));
                }
                notices.extend(n);
                true
            }
            Activation::Inactive { reason } => {
                // One short line, whatever the underlying error looks like.
                notices.push(reason.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; "));
                false
            }
        };
        new_state = Some(State::new(home.root().to_owned(), home.profile().to_owned(), project, active, watched, Changes::new()));
    }
    if let Some(old) = was_active {
        let still = new_state.as_ref().is_some_and(|s| s.active && s.project == old);
        if !still {
            activator.deactivate(home, &old, shell_pid);
            // Said first: leaving one project comes before entering the next.
            notices.insert(0, format!("deactivated {}", old.display()));
        }
    }
    let (mut changes, saved) = diff(&|k| shell_env.get(std::ffi::OsStr::new(k)).cloned(), &old_saved, &desired);
    if let Some(summary) = change_summary(&changes, &|k| shell_env.contains_key(std::ffi::OsStr::new(k))) {
        notices.push(summary);
    }
    match new_state {
        Some(mut s) => {
            s.saved = saved;
            changes.insert(STATE_VAR.to_owned(), Some(s.encode()));
        }
        None if had_state => {
            changes.insert(STATE_VAR.to_owned(), None);
        }
        None => {}
    }
    (changes, notices)
}

/// `export +NEW ~CHANGED -REMOVED`, as direnv says it (names only, never
/// values); `None` when no variable changes.
fn change_summary(changes: &Changes, had: &dyn Fn(&str) -> bool) -> Option<String> {
    let words: Vec<String> = changes
        .iter()
        .filter(|(k, _)| *k != STATE_VAR)
        .map(|(k, v)| match (v, had(k)) {
            (None, _) => format!("-{k}"),
            (Some(_), true) => format!("~{k}"),
            (Some(_), false) => format!("+{k}"),
        })
        .collect();
    (!words.is_empty()).then(|| format!("export {}", words.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lists_names_like_direnv() {
        let mut c = Changes::new();
        c.insert("NEW".into(), Some("secret-looking-value".into()));
        c.insert("HTTPS_PROXY".into(), Some("x".into()));
        c.insert("GONE".into(), None);
        c.insert(STATE_VAR.into(), Some("s".into()));
        let s = change_summary(&c, &|k| k == "HTTPS_PROXY" || k == "GONE").unwrap();
        assert_eq!(s, "export -GONE ~HTTPS_PROXY +NEW");
        assert!(change_summary(&Changes::new(), &|_| false).is_none());
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn want(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect()
    }

    #[test]
    fn enter_then_leave_restores_exactly() {
        let shell_env = env(&[("HTTPS_PROXY", "http://corp:3128"), ("KEEP", "1")]);
        let cur = |k: &str| shell_env.get(k).map(OsString::from);
        let mut wanted = want(&[("HTTPS_PROXY", "http://127.0.0.1:1"), ("TOKEN", "authsome-proxy-managed")]);
        wanted.insert("KEEP".into(), None);
        let (changes, saved) = diff(&cur, &Changes::new(), &wanted);
        assert_eq!(changes.len(), 3);
        assert_eq!(changes["KEEP"], None);
        assert_eq!(saved["KEEP"].as_deref(), Some("1"));
        assert_eq!(saved["HTTPS_PROXY"].as_deref(), Some("http://corp:3128"));
        assert_eq!(saved["TOKEN"], None);

        // Apply, then leave.
        let mut after = shell_env.clone();
        for (k, v) in &changes {
            match v {
                Some(v) => after.insert(k.clone(), v.clone()),
                None => after.remove(k),
            };
        }
        let cur2 = |k: &str| after.get(k).map(OsString::from);
        let (back, saved2) = diff(&cur2, &saved, &BTreeMap::new());
        assert!(saved2.is_empty());
        assert_eq!(back["HTTPS_PROXY"].as_deref(), Some("http://corp:3128"));
        assert_eq!(back["TOKEN"], None);
        assert_eq!(back["KEEP"].as_deref(), Some("1"));
    }

    #[test]
    fn switching_projects_keeps_original_priors() {
        let active = env(&[("A", "from-p1"), ("B", "from-p1")]);
        let cur = |k: &str| active.get(k).map(OsString::from);
        let old_saved: Changes = [("A".to_owned(), Some("orig".to_owned())), ("B".to_owned(), None)].into();
        let (changes, saved) = diff(&cur, &old_saved, &want(&[("A", "from-p2")]));
        assert_eq!(changes["A"].as_deref(), Some("from-p2"));
        assert_eq!(changes["B"], None);
        assert_eq!(saved["A"].as_deref(), Some("orig"));
        assert_eq!(saved.len(), 1);
    }

    #[test]
    fn unchanged_values_emit_nothing() {
        let e = env(&[("A", "1")]);
        let cur = |k: &str| e.get(k).map(OsString::from);
        let (changes, _) = diff(&cur, &[("A".to_owned(), None)].into(), &want(&[("A", "1")]));
        assert!(changes.is_empty());
        assert_eq!(render(Shell::Bash, &changes), "");
    }

    #[test]
    fn render_puts_state_last_and_json_uses_null() {
        let c: Changes =
            [(STATE_VAR.to_owned(), Some("s".to_owned())), ("Z".to_owned(), None), ("A".to_owned(), Some("it's".to_owned()))].into();
        let bash = render(Shell::Bash, &c);
        assert_eq!(bash, format!("export A='it'\\''s';\nunset Z;\n{SHELL_VAR}='s';\n"));
        let fish = render(Shell::Fish, &c);
        assert!(fish.starts_with("set -gx A 'it\\'s';\nset -e -g Z;\n"));
        let json: serde_json::Value = serde_json::from_str(&render(Shell::Json, &c)).unwrap();
        assert_eq!(json["Z"], serde_json::Value::Null);
        assert_eq!(json["A"], "it's");
    }
}
