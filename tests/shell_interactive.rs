//! Real bash (string and array PROMPT_COMMAND), zsh and fish, driven
//! interactively through tmux with the authsome hook installed from their rc
//! files, on real projects: `$?` survives the hook, entering a project sets its
//! variables (exact bytes, whatever the quoting hazards), leaving restores
//! every variable exactly, prior values never reach the shell's children, and
//! refused projects are reported once, not on every prompt.

use crate::common::shell::{Kind, Sandbox, Tmux, TRICKY};
use std::collections::BTreeMap;

const PRE_PROXY: &str = "http://user:corp-proxy-password@corp-proxy.example:3128";
const PRE_CERT: &str = "/etc/ssl/certs/pre-existing.pem";
const OWN_TOKEN: &str = "users-own-discord-token-must-not-leak";

/// Variables a shell legitimately changes by itself between two `env` calls.
fn comparable(mut env: BTreeMap<String, String>) -> BTreeMap<String, String> {
    for k in ["PWD", "OLDPWD", "_"] {
        env.remove(k);
    }
    env
}

fn drive(kind: Kind) {
    let sb = Sandbox::new();
    let mut env = sb.base_env();
    env.insert("HTTPS_PROXY".into(), PRE_PROXY.into());
    env.insert("SSL_CERT_FILE".into(), PRE_CERT.into());
    env.insert("SSL_CERT_DIR".into(), "/etc/ssl/certs".into());
    env.insert("DISCORD_ACCESS_TOKEN".into(), OWN_TOKEN.into());
    let mut sh = Tmux::start(kind, &sb.root, &sb.root, &env);
    let status = kind.status_var();

    let before = sh.env();
    assert_eq!(before.get("HTTPS_PROXY").map(String::as_str), Some(PRE_PROXY));
    assert!(!before.contains_key("ACME_API_KEY"));

    // $? / $status of a failing command survives the prompt hook.
    sh.send("false");
    assert_eq!(sh.capture(&format!("echo {status}")), b"1\n");
    sh.send("sh -c 'exit 3'");
    assert_eq!(sh.capture(&format!("echo {status}")), b"3\n");
    if kind != Kind::Fish {
        // Modern bash and zsh also restore `$?` themselves around prompt hooks;
        // calling the hook directly shows it hands back the status it found.
        sh.send("sh -c 'exit 5'");
        sh.send("_authsome_hook");
        assert_eq!(sh.capture(&format!("echo {status}")), b"5\n");
    }

    // Enter the project: its variables, byte for byte.
    sh.send("cd proj");
    let inside = sh.env();
    assert_eq!(inside["DISCORD_ACCESS_TOKEN"], "authsome-proxy-managed");
    assert_eq!(inside["ACME_API_KEY"], "authsome-proxy-managed");
    assert_eq!(inside["WEIRD_VALUE"], TRICKY);
    assert!(inside["HTTPS_PROXY"].starts_with("http://authsome:"));
    assert_ne!(inside["SSL_CERT_FILE"], PRE_CERT);
    assert!(!inside.contains_key("SSL_CERT_DIR"), "SSL_CERT_DIR must not point elsewhere");
    assert!(!inside.contains_key("AUTHSOME_VAULT_KEY"), "the vault key is not passed to children");
    // The shell's record of prior values stays in the shell: children see none of them.
    assert!(!inside.keys().any(|k| k.contains("AUTHSOME_SHELL_STATE") || k.contains("authsome_state")));
    for secret in [OWN_TOKEN, "corp-proxy-password", crate::common::VAULT_KEY] {
        assert!(!inside.values().any(|v| v.contains(secret)), "{secret} leaked into a child's environment");
    }
    sh.send("false");
    assert_eq!(sh.capture(&format!("echo {status}")), b"1\n", "$? inside an active project");

    // A subdirectory keeps the activation unchanged.
    sh.send("cd sub");
    assert_eq!(comparable(sh.env()), comparable(inside.clone()));

    // A nested project replaces the outer one; going back activates the outer one again.
    sh.send("cd ../nested");
    let nested = sh.env();
    assert_eq!(nested["NESTED_ONLY"], "n");
    assert_eq!(nested["DISCORD_ACCESS_TOKEN"], OWN_TOKEN, "the nested project does not declare discord");
    assert!(!nested.contains_key("WEIRD_VALUE") && !nested.contains_key("ACME_API_KEY"));
    assert!(nested["HTTPS_PROXY"].starts_with("http://authsome:"));
    assert_ne!(nested["HTTPS_PROXY"], inside["HTTPS_PROXY"], "each project has its own proxy");
    sh.send("cd ..");
    let back = sh.env();
    assert!(!back.contains_key("NESTED_ONLY"));
    assert_eq!(back["WEIRD_VALUE"], TRICKY);
    assert_eq!(back["DISCORD_ACCESS_TOKEN"], "authsome-proxy-managed");

    // Leave: every variable is exactly as before, including the pre-existing
    // HTTPS_PROXY, SSL_CERT_FILE, SSL_CERT_DIR, the user's own token, and the
    // previously unset ones.
    sh.send("cd ..");
    assert_eq!(comparable(sh.env()), comparable(before.clone()));

    // Refused projects: one line each, not one per prompt, nothing activated.
    sh.send("cd untrusted");
    for _ in 0..3 {
        sh.send("true");
    }
    assert_eq!(comparable(sh.env()), comparable(before.clone()), "a refused project activates nothing");
    sh.send("cd ../broken");
    for _ in 0..3 {
        sh.send("true");
    }
    sh.capture("true");
    let screen = sh.screen();
    assert_eq!(screen.matches("is not allowed yet; review it").count(), 1, "{screen}");
    assert_eq!(screen.matches("authsome.toml:1:19: invalid table header").count(), 1, "{screen}");
    assert_eq!(screen.matches("acme: not logged in").count(), 2, "once per activation: {screen}");
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
        let sb = Sandbox::new();
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
