//! `authsome hook` and `authsome export` as black boxes, with real projects:
//! the snippets, the statements and their quoting through real shells, the
//! once-only notices, and the no-op path (nothing printed, nothing but `stat`).

use crate::common::bin;
use crate::common::shell::{apply_json, Sandbox, TRICKY};
use std::process::Command;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn hook_snippets_call_the_binary_by_absolute_path() {
    let exe = std::fs::canonicalize(bin()).unwrap();
    for (shell, needle) in [("bash", "PROMPT_COMMAND"), ("zsh", "precmd_functions"), ("fish", "--on-event fish_prompt")] {
        let o = Command::new(bin()).args(["hook", shell]).env("PATH", "/nonexistent").output().unwrap();
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let s = stdout(&o);
        assert!(s.contains(&format!("'{}' export {shell}", exe.display())), "{shell}: {s}");
        assert!(s.contains(needle), "{shell}: {s}");
    }
    let zsh = stdout(&Command::new(bin()).args(["hook", "zsh"]).output().unwrap());
    assert!(zsh.contains("chpwd_functions"));
    let fish = stdout(&Command::new(bin()).args(["hook", "fish"]).output().unwrap());
    assert!(fish.contains("--on-variable PWD"));
    // The snippets are valid syntax for their shell.
    for (shell, check) in [("bash", vec!["bash", "-n"]), ("zsh", vec!["zsh", "-n"]), ("fish", vec!["fish", "--no-execute"])] {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), stdout(&Command::new(bin()).args(["hook", shell]).output().unwrap())).unwrap();
        let o = Command::new(check[0]).args(&check[1..]).arg(file.path()).output().unwrap();
        assert!(o.status.success(), "{shell} -n: {}", stderr(&o));
    }
}

#[test]
fn unknown_shells_are_bad_input() {
    for args in [["hook", "json"], ["hook", "tcsh"], ["export", "tcsh"]] {
        let o = Command::new(bin()).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty());
    }
    // The same commands through the full parser (a global flag first) behave alike.
    let o = Command::new(bin()).args(["--quiet", "hook", "tcsh"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(bin()).args(["--quiet", "hook", "bash"]).output().unwrap();
    assert!(stdout(&o).contains("_authsome_hook"));
    // An unknown shell names the accepted ones.
    let o = Command::new(bin()).args(["hook", "tcsh"]).output().unwrap();
    assert!(stderr(&o).contains("[possible values: bash, zsh, fish]"), "{}", stderr(&o));
    let o = Command::new(bin()).args(["export", "tcsh"]).output().unwrap();
    assert!(stderr(&o).contains("[possible values: bash, zsh, fish, json]"), "{}", stderr(&o));
}

#[test]
fn hook_and_export_have_help() {
    for (cmd, values) in [("hook", "[possible values: bash, zsh, fish]"), ("export", "[possible values: bash, zsh, fish, json]")] {
        for help in ["--help", "-h"] {
            let o = Command::new(bin()).args([cmd, help]).output().unwrap();
            assert_eq!(o.status.code(), Some(0), "{cmd} {help}: {}", stderr(&o));
            let text = stdout(&o);
            assert!(text.contains(&format!("Usage: authsome {cmd}")) && text.contains(values), "{cmd} {help}:\n{text}");
            assert!(!stderr(&o).contains("unsupported shell"), "{}", stderr(&o));
        }
    }
}

#[test]
fn login_flows_are_checked_by_the_parser() {
    let o = Command::new(bin()).args(["login", "github", "--flow", "telepathy"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("[possible values: pkce, device_code, dcr_pkce, api_key]"), "{}", stderr(&o));
}

#[test]
fn outside_any_project_prints_nothing() {
    let sb = Sandbox::new();
    let o = sb.export("bash", &sb.path("home"), &sb.base_env());
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "");
    assert!(!sb.path("authsome-home").join("run").exists(), "no proxy was started");
}

#[test]
fn enter_noop_edit_and_leave() {
    let sb = Sandbox::new();
    let mut env = sb.base_env();
    env.insert("HTTPS_PROXY".into(), "http://corp:3128".into());
    env.insert("SSL_CERT_DIR".into(), "/etc/ssl/certs".into());
    let before = env.clone();

    let o = sb.export("json", &sb.path("proj/sub"), &env);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.contains("activated"), "{err}");
    assert!(err.contains("acme: not logged in") && err.contains("authsome login acme"), "missing logins are named: {err}");
    assert!(!err.contains("discord: not logged in"), "{err}");
    apply_json(&mut env, &o.stdout);
    assert_eq!(env["DISCORD_ACCESS_TOKEN"], "authsome-proxy-managed");
    assert_eq!(env["ACME_API_KEY"], "authsome-proxy-managed");
    assert_eq!(env["WEIRD_VALUE"], TRICKY);
    assert!(env["HTTPS_PROXY"].starts_with("http://authsome:"));
    assert!(std::path::Path::new(&env["SSL_CERT_FILE"]).is_file());
    assert!(!env.contains_key("SSL_CERT_DIR") && !env.contains_key("AUTHSOME_VAULT_KEY"));

    // Same directory, nothing changed: nothing at all, on either stream.
    for dir in ["proj/sub", "proj"] {
        let o = sb.export("bash", &sb.path(dir), &env);
        assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("", ""), "no-op in {dir}");
    }

    // A comment edit keeps trust: re-evaluated, only the state changes.
    let toml = std::fs::read_to_string(sb.path("proj/authsome.toml")).unwrap();
    sb.write_project("proj", &format!("# a comment\n{toml}"));
    let o = sb.export("json", &sb.path("proj"), &env);
    let changed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(changed.as_object().unwrap().keys().collect::<Vec<_>>(), ["AUTHSOME_SHELL_STATE"], "{changed}");
    assert!(!stderr(&o).contains("activated"), "no second activation notice: {}", stderr(&o));
    apply_json(&mut env, &o.stdout);

    // A meaningful edit drops trust: everything is restored, once, with the fix.
    sb.write_project("proj", "[providers.discord]\n\n[providers.acme]\n\n[run.env]\nEXTRA = \"x\"\n");
    let o = sb.export("json", &sb.path("proj"), &env);
    assert!(stderr(&o).contains("changed since it was allowed"), "{}", stderr(&o));
    apply_json(&mut env, &o.stdout);
    let mut expect = before.clone();
    expect.insert("AUTHSOME_SHELL_STATE".into(), env["AUTHSOME_SHELL_STATE"].clone());
    assert_eq!(env, expect);
    // Allowing it again activates the new content.
    sb.allow("proj");
    let o = sb.export("json", &sb.path("proj"), &env);
    apply_json(&mut env, &o.stdout);
    assert_eq!(env["EXTRA"], "x");
    assert!(!env.contains_key("WEIRD_VALUE"));

    // Leaving restores everything, including the pre-existing HTTPS_PROXY.
    let o = sb.export("json", &sb.root, &env);
    assert!(stderr(&o).contains("deactivated"));
    apply_json(&mut env, &o.stdout);
    assert_eq!(env, before);
    let o = sb.export("bash", &sb.root, &env);
    assert_eq!(stdout(&o), "");
}

#[test]
fn refused_projects_are_reported_once() {
    let sb = Sandbox::new();
    for (dir, msg) in [("untrusted", "is not allowed yet; review it, then run `authsome allow"), ("broken", "authsome.toml:1:")] {
        let mut env = sb.base_env();
        let o = sb.export("json", &sb.path(dir), &env);
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains(msg), "{}", stderr(&o));
        apply_json(&mut env, &o.stdout);
        assert_eq!(env.len(), sb.base_env().len() + 1, "only the state is recorded: {env:?}");
        let o = sb.export("bash", &sb.path(dir), &env);
        assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("", ""), "second prompt in {dir}");
    }
    // Allowing the untrusted one activates it at the next prompt.
    let mut env = sb.base_env();
    let o = sb.export("json", &sb.path("untrusted"), &env);
    apply_json(&mut env, &o.stdout);
    sb.allow("untrusted");
    let o = sb.export("json", &sb.path("untrusted"), &env);
    apply_json(&mut env, &o.stdout);
    assert_eq!(env["DISCORD_ACCESS_TOKEN"], "authsome-proxy-managed", "{}", stderr(&o));
}

#[test]
fn corrupt_state_is_dropped() {
    let sb = Sandbox::new();
    let mut env = sb.base_env();
    env.insert("AUTHSOME_SHELL_STATE".into(), "%%garbage%%".into());
    let o = sb.export("bash", &sb.root, &env);
    assert_eq!(stdout(&o), "unset __authsome_state;\n");
}

/// Every quoting hazard survives each real shell's evaluation byte for byte,
/// and leaving restores the previous value.
#[test]
fn values_round_trip_through_real_shells() {
    let sb = Sandbox::new();
    let mut env = sb.base_env();
    env.insert("WEIRD_VALUE".into(), "previous 'value' with $ and \\".into());
    let scripts = [
        (
            "bash",
            vec!["bash", "-c"],
            r#"ex() { eval "$(AUTHSOME_SHELL_STATE="${__authsome_state-}" "$AUTHSOME_BIN" export bash)"; }; ex; printf %s "$WEIRD_VALUE"; cd ..; ex; printf '|%s' "$WEIRD_VALUE""#,
        ),
        (
            "zsh",
            vec!["zsh", "-f", "-c"],
            r#"ex() { eval "$(AUTHSOME_SHELL_STATE="${__authsome_state-}" "$AUTHSOME_BIN" export zsh)"; }; ex; printf %s "$WEIRD_VALUE"; cd ..; ex; printf '|%s' "$WEIRD_VALUE""#,
        ),
        (
            "fish",
            vec!["fish", "--no-config", "-c"],
            r#"function ex; AUTHSOME_SHELL_STATE="$__authsome_state" $AUTHSOME_BIN export fish | source; end; ex; printf %s "$WEIRD_VALUE"; cd ..; ex; printf '|%s' "$WEIRD_VALUE""#,
        ),
    ];
    for (name, argv, script) in scripts {
        let o = Command::new(argv[0])
            .args(&argv[1..])
            .arg(script)
            .current_dir(sb.path("proj"))
            .env_clear()
            .envs(&env)
            .env("AUTHSOME_BIN", bin())
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("{TRICKY}|previous 'value' with $ and \\"), "{name}: {}", stderr(&o));
    }
}

/// The no-op path makes no thread (no async runtime), no socket (no daemon),
/// and opens nothing under the home or the project: only `stat` calls.
#[test]
fn noop_path_only_stats() {
    let sb = Sandbox::new();
    let mut env = sb.base_env();
    let o = sb.export("json", &sb.path("proj"), &env);
    apply_json(&mut env, &o.stdout);
    assert!(env.contains_key("HTTPS_PROXY"), "{}", stderr(&o));
    let trace = sb.path("trace");
    let o = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=%file,%network,%process", "-o"])
        .arg(&trace)
        .args([bin(), "export", "bash"])
        .current_dir(sb.path("proj/sub"))
        .env_clear()
        .envs(&env)
        .output()
        .expect("strace is installed");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let trace = std::fs::read_to_string(trace).unwrap();
    let root = sb.root.to_string_lossy().into_owned();
    for line in trace.lines() {
        let call = line.split_once(' ').map_or(line, |(_, c)| c.trim_start());
        assert!(!call.starts_with("clone") && !call.starts_with("socket") && !call.starts_with("connect"), "{call}");
        if call.contains(&root) {
            assert!(
                ["statx(", "newfstatat(", "stat(", "getcwd("].iter().any(|s| call.starts_with(s)),
                "only stat under the sandbox: {call}"
            );
        }
    }
    assert!(trace.contains("authsome.toml"), "the project file was stat'ed:\n{trace}");
    assert!(trace.contains("daemon.json"), "the proxy's identity was stat'ed:\n{trace}");
}
