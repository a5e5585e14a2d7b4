//! The proxy refreshes an OAuth token that is about to expire before it injects
//! it, so a long run keeps working; and a run past a failed refresh gets no
//! stale token.

use crate::common::echo::Echo;
use crate::common::fake_as::{Config, FakeAs};
use crate::common::login_env::{assert_no_secrets, LoginEnv};

/// Discord logged in against the fake with a token that expires in 100 s
/// (inside the 300 s refresh margin); `discord.com` served by the echo upstream.
fn setup(config: Config) -> (FakeAs, Echo, LoginEnv) {
    let fake = FakeAs::start(Config { expires_in: Some(100), ..config });
    let echo = Echo::start(&["discord.com"]);
    let mut env = LoginEnv::with_discord(&fake);
    let login = env.run(&["login", "discord"], None);
    assert_eq!(login.code, 0, "{}", login.all());
    env.upstream(&echo, "discord.com");
    (fake, echo, env)
}

fn curl_through_run(env: &LoginEnv) -> crate::common::login_env::Out {
    env.run(&["run", "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "https://discord.com/api/users/@me"], None)
}

#[test]
fn a_token_near_expiry_is_refreshed_before_injection() {
    let (fake, echo, env) = setup(Config::default());
    let first = fake.access_tokens();
    assert_eq!(first.len(), 1);
    let out = curl_through_run(&env);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout, "200");
    assert_eq!(fake.token_requests("refresh_token").len(), 1, "exactly one refresh before the injection");
    let tokens = fake.access_tokens();
    assert_eq!(tokens.len(), 2);
    let seen = echo.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), vec![format!("Bearer {}", tokens[1])], "the refreshed token is injected, not the old one");
    // The vault holds the new token, so the next run does not refresh again
    // (the fake issues 100 s tokens, so it would: check the stored one instead).
    assert_eq!(env.vault().connection("discord", None).unwrap().access_token.as_ref().unwrap().expose(), tokens[1]);
    assert_no_secrets(&fake.secrets(), &[&out]);
}

#[test]
fn a_failed_refresh_past_expiry_injects_nothing_and_says_how_to_fix_it() {
    let (fake, echo, env) = setup(Config { refresh_error: Some((400, "invalid_grant".into())), ..Config::default() });
    // Move the stored expiry into the past.
    let home = authsome::paths::Home::at(env.home(), "default");
    let vault = authsome::vault::Vault::open(&home).unwrap();
    vault
        .update(|d| {
            let mut c = d.connection("discord", None).unwrap().clone();
            c.expires_at = Some(authsome::fsutil::now_unix() - 10);
            d.put_connection(c);
            Ok(())
        })
        .unwrap();
    let out = curl_through_run(&env);
    // The proxy's own answer, not a 502 that reads as an upstream failure.
    assert_eq!(out.stdout, "511", "{}", out.all());
    let body = env.run(&["run", "--", "curl", "-sS", "https://discord.com/api/users/@me"], None);
    assert!(
        body.stdout.starts_with("authsome: no credential to inject") && body.stdout.contains("authsome login discord"),
        "{}",
        body.all()
    );
    assert!(echo.seen().is_empty(), "nothing reaches the upstream without a valid token");
    assert_eq!(env.run(&["get", "discord", "--field", "status"], None).stdout.trim(), "expired");
    let audit = std::fs::read_to_string(env.home().join("audit.log")).unwrap();
    assert!(audit.contains("authsome login discord"), "{audit}");
    assert_no_secrets(&fake.secrets(), &[&out]);
}
