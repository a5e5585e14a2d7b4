//! Acceptance of shell activation with the real project mode and background
//! proxy: in real bash, zsh and fish, `cd project` makes `curl` typed in the
//! shell reach the provider's API (a local echo upstream) with the real
//! token while the variable holds the placeholder; `cd ..` restores every
//! variable; a login from another terminal applies to the next request; two
//! shells share one proxy, which stops once both are gone; edits to
//! `authsome.toml` reach the running proxy without re-activation.

use crate::common::shell::{apply_json, Kind, Sandbox, Tmux, ACME_KEY, DISCORD_TOKEN};
use std::collections::BTreeMap;
use std::process::Command;

const PRE_PROXY: &str = "http://corp-proxy.example:3128";
const PRE_CERT: &str = "/etc/ssl/certs/pre-existing.pem";

fn comparable(mut env: BTreeMap<String, String>) -> BTreeMap<String, String> {
    for k in ["PWD", "OLDPWD", "_"] {
        env.remove(k);
    }
    env
}

/// The `Authorization` headers the echo upstream saw for the request whose
/// JSON reply is `reply` (the latest request to that target). The reply
/// itself quotes them with every injected value replaced by the placeholder.
fn authorization(sb: &Sandbox, reply: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(reply).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(reply)));
    let target = v["target"].as_str().unwrap();
    let seen = sb.echo.seen().into_iter().rev().find(|r| r.target == target).unwrap_or_else(|| panic!("no request to {target}"));
    let echoed: Vec<String> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case("authorization")))
        .map(|h| h[1].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(echoed, vec!["Bearer authsome-proxy-managed".to_owned()], "the relayed reply never quotes the credential");
    seen.header("authorization")
}

fn curl(var: &str, url: &str) -> String {
    format!("curl -sS --max-time 20 -H \"Authorization: Bearer ${var}\" {url}")
}

fn drive(kind: Kind) {
    let sb = Sandbox::new();
    let mut env = sb.base_env();
    env.insert("HTTPS_PROXY".into(), PRE_PROXY.into());
    env.insert("SSL_CERT_FILE".into(), PRE_CERT.into());
    let mut sh = Tmux::start(kind, &sb.root, &sb.root, &env);
    let before = sh.env();

    sh.send("cd proj");
    let inside = sh.env();
    assert_eq!(sh.capture("echo $DISCORD_ACCESS_TOKEN"), b"authsome-proxy-managed\n");
    assert_eq!(inside["ACME_API_KEY"], "authsome-proxy-managed");
    assert!(inside["HTTPS_PROXY"].starts_with("http://authsome:") && inside["HTTPS_PROXY"].contains("@127.0.0.1:"));
    assert_eq!(inside["SSL_CERT_FILE"], inside["CURL_CA_BUNDLE"]);
    assert_ne!(inside["SSL_CERT_FILE"], PRE_CERT);

    // curl typed in the shell reaches the upstream with the real token.
    let reply = sh.capture(&curl("DISCORD_ACCESS_TOKEN", "https://discord.com/api/users/@me"));
    assert_eq!(authorization(&sb, &reply), vec![format!("Bearer {DISCORD_TOKEN}")]);

    // Not logged in to acme yet: no credential reaches the upstream.
    let reply = sh.capture(&curl("ACME_API_KEY", "https://api.acme.test/v1/me"));
    assert!(!String::from_utf8_lossy(&reply).contains(ACME_KEY));
    // Logging in from another terminal: the very next request carries the key.
    sb.login_acme();
    let reply = sh.capture(&curl("ACME_API_KEY", "https://api.acme.test/v1/me"));
    assert_eq!(authorization(&sb, &reply), vec![format!("Bearer {ACME_KEY}")]);
    assert_eq!(sh.env(), inside, "the login did not re-activate the shell");

    // Leaving restores every variable, the pre-existing HTTPS_PROXY and SSL_CERT_FILE included.
    sh.send("cd ..");
    assert_eq!(comparable(sh.env()), comparable(before));
    // The shell left, so the project's proxy stops.
    sb.eventually("the proxy stopped", || sb.daemons().is_empty());
}

#[test]
fn bash() {
    drive(Kind::BashString);
}

#[test]
fn zsh() {
    drive(Kind::Zsh);
}

#[test]
fn fish() {
    drive(Kind::Fish);
}

#[test]
fn two_shells_share_one_proxy_which_stops_when_both_are_gone() {
    let sb = Sandbox::new();
    let env = sb.base_env();
    let mut a = Tmux::start(Kind::BashArray, &sb.root, &sb.path("proj"), &env);
    let mut b = Tmux::start(Kind::Zsh, &sb.root, &sb.path("proj/sub"), &env);
    let (ea, eb) = (a.env(), b.env());
    assert_eq!(ea["HTTPS_PROXY"], eb["HTTPS_PROXY"]);
    assert_eq!(ea["SSL_CERT_FILE"], eb["SSL_CERT_FILE"]);
    let daemons = sb.daemons();
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    assert_eq!(daemons[0]["shells"].as_array().unwrap().len(), 2, "{daemons:?}");
    let pid = daemons[0]["pid"].as_u64().unwrap() as i32;
    let reply = b.capture(&curl("DISCORD_ACCESS_TOKEN", "https://discord.com/api/x"));
    assert_eq!(authorization(&sb, &reply), vec![format!("Bearer {DISCORD_TOKEN}")]);

    drop(a);
    sb.eventually("one shell remains", || sb.daemons().first().is_some_and(|d| d["shells"].as_array().unwrap().len() == 1));
    let reply = b.capture(&curl("DISCORD_ACCESS_TOKEN", "https://discord.com/api/y"));
    assert_eq!(authorization(&sb, &reply), vec![format!("Bearer {DISCORD_TOKEN}")], "still served after the first shell closed");
    drop(b);
    sb.eventually("the proxy process exited", || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err());
    assert!(sb.daemons().is_empty());
    let bundle = std::path::Path::new(&ea["SSL_CERT_FILE"]);
    assert!(!bundle.exists(), "the CA bundle is removed with the proxy");
}

#[test]
fn project_edits_reach_the_running_proxy_without_reactivation() {
    let sb = Sandbox::new();
    sb.write_project("proj", "[providers.discord]\n");
    sb.allow("proj");
    sb.login_acme();
    let sleeper = Command::new("sleep").arg("300").spawn().unwrap();
    let mut env = sb.base_env();
    let o = Command::new(crate::common::bin())
        .args(["export", "json", "--pid", &sleeper.id().to_string()])
        .current_dir(sb.path("proj"))
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    apply_json(&mut env, &o.stdout);
    let run_curl = |env: &BTreeMap<String, String>| {
        let o = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-H", "Authorization: Bearer authsome-proxy-managed", "https://api.acme.test/v1"])
            .env_clear()
            .envs(env)
            .output()
            .unwrap();
        // Before acme is declared its host is tunnelled blind, so curl rejects
        // the upstream's own certificate and prints nothing.
        if o.stdout.is_empty() {
            Vec::new()
        } else {
            authorization(&sb, &o.stdout)
        }
    };
    assert!(run_curl(&env).is_empty(), "acme is not declared yet");
    assert!(!sb.echo.seen().iter().any(|r| r.header("authorization").iter().any(|h| h.contains(ACME_KEY))));
    sb.write_project("proj", "[providers.discord]\n\n[providers.acme]\n");
    sb.allow("proj");
    sb.eventually("the proxy injects acme", || run_curl(&env) == vec![format!("Bearer {ACME_KEY}")]);
    let mut sleeper = sleeper;
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    sb.eventually("the proxy stopped", || sb.daemons().is_empty());
}

/// `daemon status` shows the proxy and its shells; `daemon stop` stops it and a
/// shell still in the project gets a fresh one at its next prompt; a proxy
/// whose files disappear (home deleted) exits instead of lingering forever.
#[test]
fn daemon_status_stop_and_lost_home() {
    let sb = Sandbox::new();
    let mut sleeper = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let mut env = sb.base_env();
    let export = |env: &BTreeMap<String, String>| {
        Command::new(crate::common::bin())
            .args(["export", "json", "--pid", &pid])
            .current_dir(sb.path("proj"))
            .env_clear()
            .envs(env)
            .output()
            .unwrap()
    };
    let o = export(&env);
    apply_json(&mut env, &o.stdout);
    let first = env["HTTPS_PROXY"].clone();
    let daemons = sb.daemons();
    assert_eq!(daemons.len(), 1);
    assert_eq!(daemons[0]["shells"], serde_json::json!([sleeper.id()]));
    assert!(daemons[0]["project"].as_str().unwrap().ends_with("proj/authsome.toml"));
    let text = String::from_utf8_lossy(&sb.authsome(&["daemon", "status"]).stdout).into_owned();
    assert!(
        text.contains("proj/authsome.toml") && !text.contains(first.split('@').next().unwrap()),
        "no proxy credential in status: {text}"
    );

    let o = sb.cmd(&["daemon", "stop", &sb.path("proj/sub").to_string_lossy()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(sb.daemons().is_empty());
    // The next prompt notices and starts a fresh proxy.
    let o = export(&env);
    apply_json(&mut env, &o.stdout);
    assert!(env["HTTPS_PROXY"].starts_with("http://authsome:") && env["HTTPS_PROXY"] != first, "{}", String::from_utf8_lossy(&o.stderr));
    let daemon = sb.daemons()[0]["pid"].as_u64().unwrap() as i32;

    std::fs::remove_dir_all(sb.path("authsome-home/run")).unwrap();
    sb.eventually("the orphaned proxy exited", || nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon), None).is_err());
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// `daemon stop` through a symlink to the project names the daemon the hook
/// started from the real directory: every command finds projects one way.
#[test]
fn daemon_stop_through_a_symlink_stops_the_projects_proxy() {
    let sb = Sandbox::new();
    let mut sleeper = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let o = Command::new(crate::common::bin())
        .args(["export", "json", "--pid", &pid])
        .current_dir(sb.path("proj"))
        .env_clear()
        .envs(sb.base_env())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sb.daemons().len(), 1);
    std::os::unix::fs::symlink(sb.path("proj"), sb.path("link-to-project")).unwrap();

    let o = sb.cmd(&["daemon", "stop", "./link-to-project"]).current_dir(&sb.root).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("stopped the proxy of") && !stderr.contains("no project proxy is running"), "{stderr}");
    assert!(sb.daemons().is_empty(), "the daemon still runs after `daemon stop ./link-to-project`");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}
