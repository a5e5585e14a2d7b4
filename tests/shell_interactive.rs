//! Real bash (string and array PROMPT_COMMAND), zsh and fish, driven
//! interactively through tmux with the authsome hook installed from their rc
//! files: `$?` survives the hook, entering a project sets its variables (exact
//! bytes, whatever the quoting hazards), leaving restores every variable
//! exactly, and refused projects are reported once, not on every prompt.

mod common;

use common::shell::{Kind, Sandbox, Tmux, TRICKY};
use std::collections::BTreeMap;

const PRE_PROXY: &str = "http://corp-proxy.example:3128";
const PRE_CERT: &str = "/etc/ssl/certs/pre-existing.pem";

fn wanted() -> BTreeMap<&'static str, &'static str> {
    [
        ("DISCORD_ACCESS_TOKEN", "authsome-proxy-managed"),
        ("HTTPS_PROXY", "http://authsome:cred@127.0.0.1:41000"),
        ("SSL_CERT_FILE", "/run/authsome/bundle.pem"),
        ("WEIRD_VALUE", TRICKY),
    ]
    .into()
}

/// Variables a shell legitimately changes by itself between two `env` calls.
fn comparable(mut env: BTreeMap<String, String>) -> BTreeMap<String, String> {
    for k in ["PWD", "OLDPWD", "_"] {
        env.remove(k);
    }
    env
}

fn drive(kind: Kind) {
    let sb = Sandbox::new(&wanted());
    let mut env = sb.base_env();
    env.insert("HTTPS_PROXY".into(), PRE_PROXY.into());
    env.insert("SSL_CERT_FILE".into(), PRE_CERT.into());
    env.insert("SSL_CERT_DIR".into(), "/etc/ssl/certs".into());
    let mut sh = Tmux::start(kind, &sb.root, &sb.root, &env);
    let status = kind.status_var();

    let before = sh.env();
    assert_eq!(before.get("HTTPS_PROXY").map(String::as_str), Some(PRE_PROXY));
    assert!(!before.contains_key("DISCORD_ACCESS_TOKEN"));
    assert!(!before.contains_key("AUTHSOME_SHELL_STATE"), "no state outside a project");

    // $? / $status of a failing command survives the prompt hook.
    sh.send("false");
    assert_eq!(sh.capture(&format!("echo {status}")), b"1\n");
    sh.send("sh -c 'exit 3'");
    assert_eq!(sh.capture(&format!("echo {status}")), b"3\n");

    // Enter the project: its variables, byte for byte.
    sh.send("cd proj");
    let inside = sh.env();
    for (k, v) in wanted() {
        assert_eq!(inside.get(k).map(String::as_str), Some(v), "{k} inside the project");
    }
    assert!(inside.contains_key("AUTHSOME_SHELL_STATE"));
    assert!(!inside.contains_key("SSL_CERT_DIR"), "the project unsets SSL_CERT_DIR");
    sh.send("false");
    assert_eq!(sh.capture(&format!("echo {status}")), b"1\n", "$? inside an active project");

    // A subdirectory keeps the activation unchanged.
    sh.send("cd sub");
    assert_eq!(comparable(sh.env()), comparable(inside.clone()));

    // A nested project replaces the outer one; going back re-activates the outer one.
    sh.send("cd ../nested");
    let nested = sh.env();
    assert_eq!(nested.get("NESTED_ONLY").map(String::as_str), Some("n"));
    assert_eq!(nested.get("HTTPS_PROXY").map(String::as_str), Some("http://nested:1"));
    assert!(!nested.contains_key("DISCORD_ACCESS_TOKEN"));
    assert_eq!(nested.get("SSL_CERT_FILE").map(String::as_str), Some(PRE_CERT));
    sh.send("cd ..");
    let back = sh.env();
    assert!(!back.contains_key("NESTED_ONLY"));
    assert_eq!(back.get("HTTPS_PROXY"), inside.get("HTTPS_PROXY"));

    // Leave: every variable is exactly as before, including the pre-existing
    // HTTPS_PROXY and SSL_CERT_FILE and the previously unset ones.
    sh.send("cd ..");
    let after = sh.env();
    assert_eq!(comparable(after), comparable(before.clone()));

    // Refused projects: one line each, not one per prompt, nothing activated.
    sh.send("cd untrusted");
    for _ in 0..3 {
        sh.send("true");
    }
    let mut refused = comparable(sh.env());
    assert!(refused.remove("AUTHSOME_SHELL_STATE").is_some(), "the refusal is remembered in the state");
    assert_eq!(refused, comparable(before.clone()), "a refused project activates nothing");
    sh.send("cd ../broken");
    for _ in 0..3 {
        sh.send("true");
    }
    sh.capture("true");
    let screen = sh.screen();
    assert_eq!(screen.matches("is not trusted; run `authsome allow`").count(), 1, "{screen}");
    assert_eq!(screen.matches("authsome.toml:1:1: expected a table").count(), 1, "{screen}");
    assert_eq!(screen.matches("missing login: run `authsome login discord`").count(), 2, "once per activation: {screen}");
    sh.send("cd ..");
    assert_eq!(comparable(sh.env()), comparable(before));
}

#[test]
fn bash_string_prompt_command() {
    drive(Kind::BashString);
}

#[test]
fn bash_array_prompt_command() {
    drive(Kind::BashArray);
}

#[test]
fn zsh() {
    drive(Kind::Zsh);
}

#[test]
fn fish() {
    drive(Kind::Fish);
}

/// The user's own PROMPT_COMMAND keeps running (string and array forms), and
/// evaluating the hook twice installs it once.
#[test]
fn bash_keeps_user_prompt_command() {
    for kind in [Kind::BashString, Kind::BashArray] {
        let sb = Sandbox::new(&wanted());
        let env = sb.base_env();
        let mut sh = Tmux::start(kind, &sb.root, &sb.root, &env);
        sh.send("true");
        let pc = sh.capture("declare -p PROMPT_COMMAND");
        let pc = String::from_utf8_lossy(&pc);
        assert_eq!(pc.matches("_authsome_hook").count(), 1, "{pc}");
        assert!(pc.contains("_user_pc"), "{pc}");
        if kind == Kind::BashArray {
            assert!(pc.starts_with("declare -a"), "{pc}");
        }
        let runs = std::fs::read_to_string(sh.work.join("user_pc")).unwrap();
        assert!(runs.lines().count() >= 2, "user prompt command ran on each prompt: {runs:?}");
    }
}
