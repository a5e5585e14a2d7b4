//! Token refresh: rotation, the cross-process lock (20 concurrent processes
//! spend the refresh token once), failures before and after expiry, and
//! timeouts against a slow token endpoint.

use crate::common::fake_as::{Config, FakeAs};
use crate::common::login_env::{assert_no_secrets, finish, LoginEnv, Out};
use std::process::Stdio;
use std::time::Duration;

/// A logged-in Discord-shaped connection whose token expires in `expires_in` seconds.
fn logged_in(expires_in: u64) -> (FakeAs, LoginEnv) {
    let fake = FakeAs::start(Config { expires_in: Some(expires_in), ..Config::default() });
    let env = LoginEnv::with_discord(&fake);
    let out = env.run(&["login", "discord"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    (fake, env)
}

fn field(env: &LoginEnv, f: &str) -> String {
    let out = env.run(&["get", "discord", "--field", f], None);
    assert_eq!(out.code, 0, "{}", out.all());
    out.stdout.trim().to_owned()
}

fn access_token(env: &LoginEnv) -> String {
    env.vault().connection("discord", None).unwrap().access_token.as_ref().unwrap().expose().to_owned()
}

#[test]
fn twenty_concurrent_processes_refresh_exactly_once() {
    let (fake, env) = logged_in(60);
    let before = access_token(&env);
    fake.configure(|c| c.expires_in = Some(3600));
    let children: Vec<_> = (0..20)
        .map(|_| env.cmd(&["refresh", "discord"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let outs: Vec<Out> = children.into_iter().map(finish).collect();
    assert_eq!(fake.token_requests("refresh_token").len(), 1, "the refresh token must be spent exactly once");
    // Each process reports the expiry of the token it ended with: the new one's.
    let new_expiry = authsome::fmt_time(env.vault().connection("discord", None).unwrap().expires_at.unwrap());
    for o in &outs {
        assert_eq!(o.code, 0, "{}", o.all());
        assert!(o.stderr.contains(&format!("valid until {new_expiry}")), "{}", o.all());
    }
    assert!(outs.iter().filter(|o| o.stderr.contains(": refreshed,")).count() == 1, "exactly one process refreshed");
    let newest = fake.access_tokens().last().unwrap().clone();
    assert_ne!(newest, before);
    assert_eq!(access_token(&env), newest, "every process ends with the new token");
    assert_eq!(field(&env, "status"), "connected");
    // A later run finds the token fresh and sends nothing.
    let again = env.run(&["refresh", "discord"], None);
    assert!(again.stderr.contains("fresh"), "{}", again.all());
    assert_eq!(fake.token_requests("refresh_token").len(), 1);
    let refs: Vec<&Out> = outs.iter().chain([&again]).collect();
    assert_no_secrets(&fake.secrets(), &refs);
}

#[test]
fn rotated_refresh_tokens_are_saved_and_used_next_time() {
    let (fake, env) = logged_in(3600);
    let rt0 = env.vault().connection("discord", None).unwrap().refresh_token.clone().unwrap();
    let fresh = env.run(&["refresh", "discord"], None);
    assert_eq!(fresh.code, 0);
    assert!(fake.token_requests("refresh_token").is_empty(), "a fresh token is not refreshed");
    let forced = env.run(&["refresh", "discord", "--force"], None);
    assert_eq!(forced.code, 0, "{}", forced.all());
    let rt1 = env.vault().connection("discord", None).unwrap().refresh_token.clone().unwrap();
    assert_ne!(rt0, rt1, "the rotated refresh token is stored");
    assert_eq!(fake.token_requests("refresh_token")[0].form["refresh_token"], rt0.expose());
    let forced2 = env.run(&["refresh", "discord", "--force", "--json"], None);
    assert_eq!(forced2.code, 0, "{}", forced2.all());
    assert_eq!(fake.token_requests("refresh_token")[1].form["refresh_token"], rt1.expose());
    let v: serde_json::Value = serde_json::from_str(&forced2.stdout).unwrap();
    assert_eq!(v["result"], "refreshed");
    assert_no_secrets(&fake.secrets(), &[&fresh, &forced, &forced2]);
}

#[test]
fn invalid_grant_past_expiry_marks_the_connection_expired() {
    invalid_grant_past_expiry(false);
}

/// GitHub answers token errors with HTTP 200 and the error in the body.
#[test]
fn invalid_grant_sent_with_http_200_past_expiry_marks_the_connection_expired() {
    invalid_grant_past_expiry(true);
}

fn invalid_grant_past_expiry(errors_as_200: bool) {
    let (fake, env) = logged_in(0);
    // Past its expiry, the token shows as expired before any refresh is tried.
    assert_eq!(field(&env, "status"), "expired");
    fake.configure(|c| {
        c.refresh_error = Some((400, "invalid_grant".into()));
        c.errors_as_200 = errors_as_200;
    });
    let out = env.run(&["refresh", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("invalid_grant") && out.stderr.contains("authsome login discord"), "{}", out.all());
    assert_eq!(field(&env, "status"), "expired");
    assert!(field(&env, "status_reason").contains("invalid_grant"));
    // The dead refresh token is dropped: the next attempt sends nothing and still says what to do.
    let again = env.run(&["refresh", "discord"], None);
    assert_eq!(again.code, 4, "{}", again.all());
    assert_eq!(fake.token_requests("refresh_token").len(), 1);
    // Logging in again restores it.
    fake.configure(|c| c.expires_in = Some(3600));
    let login = env.run(&["login", "discord"], None);
    assert_eq!(login.code, 0, "{}", login.all());
    assert_eq!(field(&env, "status"), "connected");
    assert_no_secrets(&fake.secrets(), &[&out, &again, &login]);
}

#[test]
fn server_error_past_expiry_marks_expired_but_keeps_the_refresh_token_for_a_retry() {
    let (fake, env) = logged_in(0);
    fake.configure(|c| c.token_status = Some(500));
    let out = env.run(&["refresh", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("HTTP 500"), "{}", out.all());
    // The refresh token still works once the server is back: that is the fix shown.
    assert!(out.stderr.contains("authsome refresh discord"), "{}", out.all());
    assert_eq!(field(&env, "status"), "expired");
    fake.configure(|c| {
        c.token_status = None;
        c.expires_in = Some(3600);
    });
    let retry = env.run(&["refresh", "discord"], None);
    assert_eq!(retry.code, 0, "{}", retry.all());
    assert_eq!(field(&env, "status"), "connected");
    assert_no_secrets(&fake.secrets(), &[&out, &retry]);
}

#[test]
fn failed_refresh_keeps_a_still_valid_token() {
    let (fake, env) = logged_in(120);
    let before = access_token(&env);
    fake.configure(|c| c.refresh_error = Some((400, "invalid_grant".into())));
    let out = env.run(&["refresh", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("stays valid"), "{}", out.all());
    assert_eq!(field(&env, "status"), "connected");
    assert_eq!(access_token(&env), before);
    assert_no_secrets(&fake.secrets(), &[&out]);
}

#[test]
fn slow_token_endpoint_times_out_and_the_fast_path_takes_no_lock() {
    let (fake, env) = logged_in(0);
    fake.configure(|c| c.delay = Duration::from_secs(3));
    let home = authsome::paths::Home::at(env.home(), "default");
    let reg = authsome::providers::Registry::load(&home).unwrap();
    let provider = reg.get("discord").unwrap();
    let http = authsome::oauth::client::OAuthHttp::from_env().unwrap().with_timeout(Duration::from_millis(300));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = rt.block_on(authsome::oauth::refresh_connection(&home, provider, "default", false, &http)).unwrap_err();
    assert_eq!(err.code, 4);
    assert!(err.message.contains("did not answer within"), "{}", err.message);
    assert_eq!(field(&env, "status"), "expired");

    // Fast path: with a fresh token, ensure_fresh returns without touching the lock,
    // even while another process holds it.
    fake.configure(|c| {
        c.delay = Duration::ZERO;
        c.expires_in = Some(3600);
    });
    let fixed = env.run(&["refresh", "discord"], None);
    assert_eq!(fixed.code, 0, "{}", fixed.all());
    let lock = authsome::oauth::refresh::lock_file(&home, "discord", "default");
    let _held = authsome::fsutil::FileLock::acquire(&lock).unwrap();
    let conn = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), authsome::oauth::ensure_fresh(&home, provider, "default")).await })
        .expect("the fast path must not wait for the refresh lock")
        .unwrap();
    assert_eq!(conn.status, authsome::vault::Status::Connected);
}
