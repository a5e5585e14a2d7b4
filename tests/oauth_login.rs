//! Black-box login tests: the real binary against the in-process fake
//! authorization server, with a python3 BROWSER stand-in following the
//! authorization URL to the callback.

use crate::common::fake_as::{s256, Config, FakeAs};
use crate::common::login_env::{assert_no_secrets, LoginEnv, Out};
use std::time::Duration;

fn answers(fake: &FakeAs) -> serde_json::Value {
    let c = fake.config();
    serde_json::json!({"client_id": c.client_id, "client_secret": c.client_secret.unwrap_or_default()})
}

/// A home with the Discord-shaped provider installed and the fake browser wired in.
fn discord(config: Config) -> (FakeAs, LoginEnv) {
    let fake = FakeAs::start(config);
    let env = LoginEnv::with_discord(&fake);
    (fake, env)
}

fn status(env: &LoginEnv, provider: &str) -> String {
    let out = env.run(&["get", provider, "--field", "status"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    out.stdout.trim().to_owned()
}

#[test]
fn discord_plain_code_flow_sends_no_code_challenge_and_stores_granted_scopes() {
    let (fake, env) = discord(Config { granted_scope: Some("identify email".into()), ..Config::default() });
    let login = env.run(&["login", "discord"], None);
    assert_eq!(login.code, 0, "{}", login.all());

    let auth = fake.requests_to("authorize");
    assert_eq!(auth.len(), 1);
    let q = &auth[0].query;
    assert!(!q.contains_key("code_challenge") && !q.contains_key("code_challenge_method"), "Discord must get no PKCE: {q:?}");
    assert_eq!(q["redirect_uri"], format!("http://{}/auth/callback/oauth", env.callback));
    assert_eq!(q["scope"], "identify email guilds connections");
    let tokens = fake.token_requests("authorization_code");
    assert_eq!(tokens.len(), 1);
    assert!(!tokens[0].form.contains_key("code_verifier"));
    // The browser GETs the authorization page; the code is exchanged by POST (RFC 6749 §4.1.3).
    assert_eq!((auth[0].method.as_str(), tokens[0].method.as_str()), ("GET", "POST"));

    let log = env.wait_browser_log(2);
    assert_eq!(log[0]["kind"], "client_form", "{log:?}");
    assert_eq!(log[0]["shown"]["redirect_uri"], true);
    assert_eq!(log[1]["kind"], "authorize");
    assert_eq!(log[1]["heading"], "Connected to Discord");

    assert_eq!(status(&env, "discord"), "connected");
    let scopes = env.run(&["get", "discord", "--field", "scopes"], None);
    assert_eq!(scopes.stdout.trim(), "identify,email");
    let get = env.run(&["get", "discord", "--json"], None);

    // Client credentials are stored (encrypted) and reused: a second login asks nothing.
    let data = env.vault();
    assert_eq!(data.clients["discord"].client_id, fake.config().client_id);
    let again = env.run(&["login", "discord", "--connection", "work", "--scopes", "identify"], None);
    assert_eq!(again.code, 0, "{}", again.all());
    let log = env.wait_browser_log(3);
    assert_eq!(log.len(), 3, "no second client form: {log:?}");
    assert_eq!(fake.requests_to("authorize")[1].query["scope"], "identify");
    assert_eq!(status(&env, "discord"), "connected");

    assert_no_secrets(&fake.secrets(), &[&login, &scopes, &get, &again]);
}

#[test]
fn github_gets_a_valid_s256_pair_and_base_url_is_templated() {
    let fake = FakeAs::start(Config { require_pkce: true, granted_scope: Some("repo,read:user".into()), ..Config::default() });
    let mut env = LoginEnv::new();
    let mut def = fake.github_provider();
    def["oauth"]["base_url"] = "https://github.example.invalid".into();
    env.install_provider(&def);
    env.use_fake_browser(answers(&fake));
    let login = env.run(&["login", "github", "--base-url", &fake.origin()], None);
    assert_eq!(login.code, 0, "{}", login.all());

    let auth = &fake.requests_to("authorize")[0];
    assert_eq!(auth.path, "/login/oauth/authorize");
    assert_eq!(auth.query["code_challenge_method"], "S256");
    let challenge = &auth.query["code_challenge"];
    let token = &fake.token_requests("authorization_code")[0];
    assert_eq!(token.path, "/login/oauth/access_token");
    let verifier = &token.form["code_verifier"];
    assert!((43..=128).contains(&verifier.len()), "verifier length {}", verifier.len());
    assert!(verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
    assert_eq!(&s256(verifier), challenge, "challenge is not S256(verifier)");

    let scopes = env.run(&["get", "github", "--field", "scopes"], None);
    assert_eq!(scopes.stdout.trim(), "repo,read:user");
    let base = env.run(&["get", "github", "--field", "base_url"], None);
    assert_eq!(base.stdout.trim(), fake.origin());
    assert_no_secrets(&fake.secrets(), &[&login, &scopes]);
}

#[test]
fn wrong_state_is_refused_before_any_token_request() {
    let (fake, env) = discord(Config { state_override: Some("forged-state".into()), ..Config::default() });
    let out = env.run(&["login", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("state does not match"), "{}", out.all());
    assert!(fake.requests_to("token").is_empty(), "a code with a wrong state must never be exchanged");
    assert_eq!(env.wait_browser_log(2)[1]["heading"], "Discord login failed");
    // No connection; the client credentials are kept (the provider did not reject
    // them), so the next login does not ask for them again.
    assert!(env.vault().connections.is_empty());
    assert_eq!(env.vault().clients["discord"].client_id, fake.config().client_id);
    assert_no_secrets(&fake.secrets(), &[&out]);
}

#[test]
fn denied_consent_fails_with_exit_4() {
    let (fake, env) = discord(Config { deny_consent: true, ..Config::default() });
    let out = env.run(&["login", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("access_denied") && out.stderr.contains("denied"), "{}", out.all());
    let get = env.run(&["get", "discord", "--field", "status"], None);
    assert_eq!((get.code, get.stdout.trim()), (0, "not_connected"), "{}", get.all());
    assert_no_secrets(&fake.secrets(), &[&out]);
}

#[test]
fn token_endpoint_500_is_reported_with_its_status() {
    let (fake, env) = discord(Config { token_status: Some(500), ..Config::default() });
    let out = env.run(&["login", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("HTTP 500"), "{}", out.all());
    assert!(!out.stderr.contains("Internal Server Error"), "response bodies are not echoed: {}", out.all());
    assert_no_secrets(&fake.secrets(), &[&out]);
}

#[test]
fn busy_callback_port_explains_what_to_do() {
    let (fake, env) = discord(Config::default());
    let _squatter = std::net::TcpListener::bind(env.callback).unwrap();
    let out = env.run(&["login", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("already in use") && out.stderr.contains("AUTHSOME_CALLBACK_ADDR"), "{}", out.all());
    assert!(out.stderr.contains("by process"), "names what holds the port: {}", out.all());
    assert!(fake.requests().is_empty());
}

#[test]
fn pasted_redirect_url_completes_a_no_browser_login() {
    use std::io::Write;
    let fake = FakeAs::start(Config::default());
    let env = LoginEnv::new();
    env.install_provider(&fake.discord_provider());
    let (mut child, mut stdin, mut stderr, seen, authorize) = start_printed_login(&fake, &env, &["login", "discord", "--no-browser"]);
    let (code, headers, _) = crate::common::fake_as::http_get(&authorize);
    assert_eq!(code, 302);
    writeln!(stdin, "{}", headers["location"]).unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let out = Out { code: status.code().unwrap_or(-1), stdout: String::new(), stderr: seen + &rest };
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(status_of(&env), "connected");
    assert!(env.vault().clients.contains_key("discord"));
    assert_no_secrets(&fake.secrets(), &[&out]);
}

/// Start a login that prints its authorization URL (no browser): type the
/// client credentials at the prompt, then read stderr up to the URL. Returns
/// the child, its stdin and stderr, what was read so far, and the URL.
fn start_printed_login(
    fake: &FakeAs,
    env: &LoginEnv,
    args: &[&str],
) -> (std::process::Child, std::process::ChildStdin, std::io::BufReader<std::process::ChildStderr>, String, String) {
    use std::io::{BufRead, Write};
    let c = fake.config();
    let mut child = env
        .cmd(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}\n{}", c.client_id, c.client_secret.clone().unwrap()).unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let authorize = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no authorization URL printed:\n{seen}");
        seen.push_str(&line);
        if let Some(u) = line.split_whitespace().find(|w| w.contains("/oauth2/authorize")) {
            break u.to_owned();
        }
    };
    (child, stdin, stderr, seen, authorize)
}

fn status_of(env: &LoginEnv) -> String {
    status(env, "discord")
}

fn device_env(script: &[&str]) -> (FakeAs, LoginEnv) {
    let fake = FakeAs::start(Config { device_script: script.iter().map(|s| s.to_string()).collect(), ..Config::default() });
    let env = LoginEnv::new();
    env.install_provider(&fake.github_provider());
    (fake, env)
}

fn device_login(fake: &FakeAs, env: &LoginEnv) -> Out {
    let c = fake.config();
    env.run(
        &["login", "github", "--flow", "device_code", "--no-browser"],
        Some(&format!("{}\n{}\n", c.client_id, c.client_secret.unwrap())),
    )
}

#[test]
fn device_flow_honours_pending_and_slow_down() {
    let (fake, env) = device_env(&["authorization_pending", "slow_down"]);
    let out = device_login(&fake, &env);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("WDJB-MJHT") && out.stderr.contains(&fake.url("/activate")), "{}", out.all());
    let polls = fake.token_requests("urn:ietf:params:oauth:grant-type:device_code");
    assert_eq!(polls.len(), 3, "pending, slow_down, then success");
    let gap = polls[2].at.duration_since(polls[1].at);
    assert!(gap >= Duration::from_millis(4900), "slow_down must add 5 s to the interval, waited {gap:?}");
    assert_eq!(fake.requests_to("device")[0].form["scope"], "repo read:user");
    assert_eq!(status(&env, "github"), "connected");
    assert_no_secrets(&fake.secrets(), &[&out]);
}

/// GitHub's device flow answers "pending" and "slow down" with HTTP 200.
#[test]
fn device_flow_understands_errors_sent_with_http_200() {
    let (fake, env) = device_env(&["authorization_pending", "slow_down"]);
    fake.configure(|c| c.errors_as_200 = true);
    let out = device_login(&fake, &env);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.token_requests("urn:ietf:params:oauth:grant-type:device_code").len(), 3, "pending, slow_down, then success");
    assert_eq!(status(&env, "github"), "connected");

    assert_no_secrets(&fake.secrets(), &[&out]);

    let (fake, env) = device_env(&["authorization_pending", "expired_token"]);
    fake.configure(|c| c.errors_as_200 = true);
    let expired = device_login(&fake, &env);
    assert_eq!(expired.code, 4, "{}", expired.all());
    assert!(expired.stderr.contains("expired before it was approved"), "{}", expired.all());
    assert_no_secrets(&fake.secrets(), &[&expired]);
}

#[test]
fn device_flow_reports_denial_and_expiry() {
    let (fake, env) = device_env(&["access_denied"]);
    let out = device_login(&fake, &env);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("access was denied"), "{}", out.all());

    fake.configure(|c| c.device_script = ["authorization_pending".to_string(), "expired_token".to_string()].into());
    let out2 = device_login(&fake, &env);
    assert_eq!(out2.code, 4, "{}", out2.all());
    assert!(out2.stderr.contains("expired before it was approved"), "{}", out2.all());
    assert!(env.vault().connections.is_empty());
    assert_no_secrets(&fake.secrets(), &[&out, &out2]);
}

#[test]
fn dcr_discovers_the_registration_endpoint_and_reuses_the_client() {
    let fake = FakeAs::start(Config { client_secret: None, client_id: String::new(), ..Config::default() });
    let mut env = LoginEnv::new();
    env.install_provider(&fake.dcr_provider("mcpdemo"));
    env.use_fake_browser(serde_json::json!({"client_id": "unused"}));
    let out = env.run(&["login", "mcpdemo"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.requests_to("metadata").len(), 1);
    let reg = fake.requests_to("register");
    assert_eq!(reg.len(), 1);
    let body = reg[0].json.as_ref().unwrap();
    assert_eq!(body["redirect_uris"][0], format!("http://{}/auth/callback/oauth", env.callback));
    let auth = &fake.requests_to("authorize")[0];
    assert_eq!(auth.query["client_id"], fake.registered_clients()[0]);
    assert_eq!(auth.query["code_challenge_method"], "S256");
    let stored = env.vault().clients["mcpdemo"].clone();
    assert_eq!(stored.client_id, fake.registered_clients()[0]);
    assert_eq!(stored.registered_at.as_deref(), Some(fake.url("/register").as_str()));

    let again = env.run(&["login", "mcpdemo", "--connection", "second"], None);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(fake.requests_to("register").len(), 1, "the registered client is reused");

    // Metadata without a registration endpoint: a clear failure.
    fake.configure(|c| c.metadata_registration = false);
    let forced = env.run(&["login", "mcpdemo", "--force"], None);
    assert_eq!(forced.code, 4, "{}", forced.all());
    assert!(forced.stderr.contains("registration_endpoint"), "{}", forced.all());
    assert_no_secrets(&fake.secrets(), &[&out, &again, &forced]);
}

#[test]
fn logout_revokes_access_then_refresh_token_and_deletes_even_on_failure() {
    let (fake, env) = discord(Config::default());
    assert_eq!(env.run(&["login", "discord"], None).code, 0);
    assert_eq!(env.run(&["login", "discord", "--connection", "work"], None).code, 0);
    let conn = env.vault().connection("discord", Some("default")).unwrap().clone();
    let out = env.run(&["logout", "discord"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    let rev = fake.requests_to("revoke");
    assert_eq!(rev.len(), 2);
    assert_eq!(rev[0].form["token_type_hint"], "access_token");
    assert_eq!(rev[0].form["token"], conn.access_token.unwrap().expose());
    assert_eq!(rev[1].form["token_type_hint"], "refresh_token");
    assert_eq!(rev[1].form["token"], conn.refresh_token.unwrap().expose());
    assert_eq!(env.run(&["get", "discord", "--connection", "default"], None).code, 3);
    // The remaining connection became the default.
    assert_eq!(env.run(&["get", "discord", "--field", "connection"], None).stdout.trim(), "work");

    fake.configure(|c| c.revoke_status = 503);
    let failed = env.run(&["logout", "discord", "--connection", "work"], None);
    assert_eq!(failed.code, 0, "{}", failed.all());
    assert!(failed.stderr.contains("HTTP 503") && failed.stderr.contains("deleted anyway"), "{}", failed.all());
    assert_eq!(env.run(&["get", "discord", "--connection", "work"], None).code, 3);
    assert_no_secrets(&fake.secrets(), &[&out, &failed]);
}

#[test]
fn api_key_form_rejects_a_bad_key_with_the_hint_then_stores_a_valid_one() {
    let mut env = LoginEnv::new();
    let key = format!("sk-{}", crate::common::fake_as::rand_token());
    let bad = format!("pk-{}", crate::common::fake_as::rand_token());
    env.use_fake_browser(serde_json::json!({"api_key": key, "bad_api_key": bad}));
    let out = env.run(&["login", "openai"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    let log = env.wait_browser_log(2);
    assert_eq!(log[0]["kind"], "api_key_rejected");
    assert!(log[0]["error"].as_str().unwrap().contains("start with"), "{log:?}");
    assert_eq!(log[0]["hint"], true);
    assert_eq!(log[0]["echoed"], false, "a rejected key is never echoed back");
    assert_eq!(log[1]["kind"], "api_key_form");
    assert_eq!(log[1]["shown"]["masked"], true);
    assert_eq!(log[1]["heading"], "OpenAI API key saved");
    assert_eq!(env.vault().connection("openai", None).unwrap().api_key.as_ref().unwrap().expose(), key);
    let secrets = vec![key, bad];
    assert_no_secrets(&secrets, &[&out]);
}

#[test]
fn the_browser_never_inherits_the_vault_key() {
    let mut env = LoginEnv::new();
    let key = format!("sk-{}", crate::common::fake_as::rand_token());
    env.use_fake_browser(serde_json::json!({"api_key": key}));
    env.set("AUTHSOME_VAULT_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let out = env.run(&["login", "openai"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(env.wait_browser_log(1)[0]["shown"]["vault_key_in_env"], false);
    let status = env.run(&["get", "openai", "--field", "status"], None);
    assert_eq!(status.stdout.trim(), "connected", "{}", status.all());
}

#[test]
fn bundled_discord_definition_works_through_resolve_and_upstream_ca() {
    let fake = FakeAs::start_tls(Config::default(), &["discord.com"]);
    let mut env = LoginEnv::new();
    let ca = env.dir.path().join("upstream-ca.pem");
    std::fs::write(&ca, fake.ca_pem().unwrap()).unwrap();
    env.use_fake_browser(answers(&fake));
    let resolve = format!("discord.com:443:127.0.0.1:{}", fake.addr().port());
    env.set("AUTHSOME_RESOLVE", &resolve);
    env.set("FAKE_BROWSER_RESOLVE", &resolve);
    env.set("FAKE_BROWSER_CA", &ca.display().to_string());

    // Without trusting the test CA the token exchange is refused (and reported, exit 4).
    let untrusted = env.run(&["login", "discord"], None);
    assert_eq!(untrusted.code, 4, "{}", untrusted.all());
    assert!(untrusted.stderr.contains("discord.com") && untrusted.stderr.contains("TLS"), "{}", untrusted.all());
    assert!(fake.requests_to("token").is_empty());

    env.set("AUTHSOME_UPSTREAM_CA", &ca.display().to_string());
    let login = env.run(&["login", "discord"], None);
    assert_eq!(login.code, 0, "{}", login.all());
    let auth = fake.requests_to("authorize");
    assert_eq!(auth.last().unwrap().path, "/oauth2/authorize");
    assert!(!auth.last().unwrap().query.contains_key("code_challenge"), "bundled Discord sends no PKCE");
    let token = &fake.requests_to("token")[0];
    assert_eq!(token.path, "/api/oauth2/token");
    assert_eq!(token.headers["host"], "discord.com");
    assert_eq!(status(&env, "discord"), "connected");

    let logout = env.run(&["logout", "discord"], None);
    assert_eq!(logout.code, 0, "{}", logout.all());
    assert_eq!(fake.requests_to("revoke").len(), 2);
    assert_no_secrets(&fake.secrets(), &[&untrusted, &login, &logout]);
}

#[test]
fn over_ssh_the_url_is_printed_and_the_callback_still_completes() {
    let fake = FakeAs::start(Config::default());
    let mut env = LoginEnv::new();
    env.install_provider(&fake.discord_provider());
    env.set("SSH_CONNECTION", "192.0.2.1 50000 192.0.2.2 22");
    let (mut child, stdin, mut stderr, seen, authorize) = start_printed_login(&fake, &env, &["login", "discord"]);
    assert!(seen.contains("SSH session"), "{seen}");
    // The user's browser (e.g. through a forwarded port) reaches the login server.
    let (code, headers, _) = crate::common::fake_as::http_get(&authorize);
    assert_eq!(code, 302);
    let (status, _, page) = crate::common::fake_as::http_get(&headers["location"]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Connected to Discord"));
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = Out { code: child.wait().unwrap().code().unwrap_or(-1), stdout: String::new(), stderr: seen + &rest };
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(status_of(&env), "connected");
    assert_no_secrets(&fake.secrets(), &[&out]);
}
