//! Black-box acceptance tests of the foundation: bundled registry, override
//! workflow, validation errors, API-key storage, vault integrity and locking.

use crate::common::cli::Home;
use serde_json::Value;

const OPENAI_KEY: &str = "sk-testkey0123456789abcdefghij";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn inspect_discord_prints_the_seed_facts() {
    let h = Home::new();
    let d = json(&h.run(&["inspect", "discord"]).ok().stdout);
    assert_eq!(d["name"], "discord");
    assert_eq!(d["display_name"], "Discord");
    assert_eq!(d["auth_type"], "oauth2");
    assert_eq!(d["flow"], "pkce");
    assert_eq!(d["api_url"], "discord.com");
    assert_eq!(d["oauth"]["pkce"], false);
    assert_eq!(d["oauth"]["supports_device_code"], false);
    assert_eq!(d["oauth"]["supports_dcr"], false);
    assert_eq!(d["oauth"]["scopes"], serde_json::json!(["identify", "email", "guilds", "connections"]));
    assert_eq!(d["oauth"]["authorization_url"], "https://discord.com/oauth2/authorize");
    assert_eq!(d["export"]["DISCORD_ACCESS_TOKEN"], "ACCESS_TOKEN");
    assert_eq!(d["export"]["DISCORD_REFRESH_TOKEN"], "REFRESH_TOKEN");
    // Inspecting must not create anything (no key, no vault).
    assert!(h.files().is_empty(), "{:?}", h.files());
}

#[test]
fn list_json_has_every_bundled_provider() {
    let h = Home::new();
    let v = json(&h.run(&["list", "--json"]).ok().stdout);
    let providers = v["providers"].as_array().unwrap();
    let bundled = authsome::providers::bundled_files().len();
    assert!(bundled >= 130, "{bundled} bundled providers");
    assert_eq!(providers.len(), bundled);
    assert!(providers.iter().all(|p| p["source"] == "bundled"));
    assert!(providers.iter().any(|p| p["name"] == "discord" && p["display_name"] == "Discord"));
    let table = h.run(&["list"]).ok().stdout;
    assert!(table.lines().next().unwrap().contains("SOURCE"));
    assert_eq!(table.lines().count(), bundled + 1);
}

fn source_of(h: &Home, name: &str) -> String {
    let v = json(&h.run(&["list", "--json"]).ok().stdout);
    v["providers"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["source"].as_str().unwrap().to_owned()
}

#[test]
fn override_workflow_from_the_seed_page() {
    let h = Home::new();
    let inspected = h.run(&["inspect", "discord"]).ok().stdout;
    let dir = h.path().join("providers");
    std::fs::create_dir_all(&dir).unwrap();
    let edited = inspected.replace("\"guilds\",\n", "").replace("\"connections\"", "\"connections\",\n      \"bot\"");
    assert_ne!(edited, inspected);
    std::fs::write(dir.join("discord.json"), &edited).unwrap();
    assert_eq!(source_of(&h, "discord"), "custom");
    let table = h.run(&["list"]).ok().stdout;
    let line = table.lines().find(|l| l.starts_with("discord ")).unwrap();
    assert!(line.contains("custom"), "{line}");
    let now = json(&h.run(&["inspect", "discord"]).ok().stdout);
    assert_eq!(now["oauth"]["scopes"], serde_json::json!(["identify", "email", "connections", "bot"]));
    h.run(&["remove", "discord"]).ok();
    assert_eq!(source_of(&h, "discord"), "bundled");
    assert_eq!(h.run(&["inspect", "discord"]).ok().stdout, inspected);
    // Nothing left to remove: unknown override, exit 3.
    h.run(&["remove", "discord"]).expect_code(3);
}

#[test]
fn register_installs_a_validated_copy() {
    let h = Home::new();
    let src = h.path().join("acme-src.json");
    std::fs::write(
        &src,
        r#"{"name": "acme", "display_name": "Acme", "auth_type": "api_key", "flow": "api_key",
            "api_url": "https://api.acme.test/v1", "api_key": {"header_name": "X-Acme-Key"},
            "export": {"ACME_KEY": "API_KEY"}}"#,
    )
    .unwrap();
    h.run(&["register", src.to_str().unwrap()]).ok();
    assert_eq!(source_of(&h, "acme"), "custom");
    h.run(&["remove", "acme"]).ok();
    h.run(&["inspect", "acme"]).expect_code(3);
}

#[test]
fn bad_provider_files_name_file_line_column_and_change_nothing() {
    let h = Home::new();
    let syntax = h.path().join("syntax.json");
    std::fs::write(&syntax, "{\n  \"name\": \"acme\",\n  \"auth_type\": \"api_key\"\n  \"flow\": \"api_key\"\n}\n").unwrap();
    let r = h.run(&["register", syntax.to_str().unwrap()]).expect_code(2);
    assert!(r.stderr.contains(&format!("{}:4:3:", syntax.display())), "{}", r.stderr);

    let schema = h.path().join("schema.json");
    std::fs::write(
        &schema,
        "{\n  \"name\": \"acme\",\n  \"auth_type\": \"api_key\",\n  \"flow\": \"api_key\",\n  \"api_url\": \"api.acme.test\",\n  \"api_key\": {\n    \"location\": \"query\"\n  }\n}\n",
    )
    .unwrap();
    let r = h.run(&["register", schema.to_str().unwrap()]).expect_code(2);
    assert!(r.stderr.contains(&format!("{}:6:14:", schema.display())), "{}", r.stderr);
    assert!(r.stderr.contains("query_param"), "{}", r.stderr);

    let r = h.run(&["register", h.path().join("missing.json").to_str().unwrap()]).expect_code(2);
    assert!(r.stderr.contains("missing.json"), "{}", r.stderr);
    assert!(!h.path().join("providers").exists(), "a rejected file must not be installed");

    // A broken override placed by hand is reported with its location; it
    // breaks only its own provider, never unrelated commands.
    std::fs::create_dir_all(h.path().join("providers")).unwrap();
    std::fs::copy(&syntax, h.path().join("providers/acme.json")).unwrap();
    let r = h.run(&["list"]).ok();
    assert!(r.stderr.contains("providers/acme.json:4:3:"), "{}", r.stderr);
    let r = h.run(&["inspect", "acme"]).expect_code(2);
    assert!(r.stderr.contains("providers/acme.json:4:3:"), "{}", r.stderr);
}

#[test]
fn api_key_from_stdin_is_stored_encrypted_and_never_shown() {
    let h = Home::with_key_file();
    h.run_stdin(&["login", "openai"], &format!("{OPENAI_KEY}\n")).ok();
    assert_eq!(h.run(&["get", "openai", "--field", "status"]).ok().stdout, "connected\n");
    let get = h.run(&["get", "openai"]).ok();
    let get_json = h.run(&["get", "openai", "--json"]).ok();
    for out in [&get.stdout, &get.stderr, &get_json.stdout, &get_json.stderr] {
        assert!(!out.contains(OPENAI_KEY), "key leaked: {out}");
    }
    assert_eq!(json(&get_json.stdout)["api_key"], "<redacted>");
    let vault = h.path().join("vaults/default.vault");
    for f in h.files() {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(OPENAI_KEY), "key in plain text in {}", f.display());
        if f != vault && f.file_name().unwrap() != "vault.key" {
            continue;
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
    let revealed = h.run(&["get", "openai", "--field", "api_key", "--reveal"]).ok();
    assert_eq!(revealed.stdout.trim(), OPENAI_KEY);
}

#[test]
fn a_key_that_does_not_match_the_pattern_is_refused_with_the_hint() {
    let h = Home::new();
    let r = h.run_stdin(&["login", "openai"], "not-a-key-secretvalue\n").expect_code(2);
    assert!(r.stderr.contains("sk-"), "hint missing: {}", r.stderr);
    assert!(!r.stderr.contains("not-a-key-secretvalue"), "the rejected key was echoed: {}", r.stderr);
    h.run(&["get", "openai"]).expect_code(3);
}

#[test]
fn unknown_providers_and_connections_exit_3() {
    let h = Home::new();
    let r = h.run(&["get", "discrod"]).expect_code(3);
    assert!(r.stderr.contains("did you mean \"discord\""), "{}", r.stderr);
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    let r = h.run(&["get", "openai", "--connection", "work"]).expect_code(3);
    assert!(r.stderr.contains("authsome login openai --connection work"), "{}", r.stderr);
    h.run(&["logout", "discord"]).expect_code(3);
}

#[test]
fn named_connections_and_logout() {
    let h = Home::new();
    h.run_stdin(&["login", "openai", "--connection", "work"], OPENAI_KEY).ok();
    h.run_stdin(&["login", "openai", "--connection", "personal"], &OPENAI_KEY.replace("0123", "9876")).ok();
    // The first connection of a provider becomes its default.
    assert_eq!(h.run(&["get", "openai", "--field", "connection"]).ok().stdout, "work\n");
    assert_eq!(h.run(&["get", "openai", "--connection", "personal", "--field", "status"]).ok().stdout, "connected\n");
    h.run(&["logout", "openai", "--connection", "work"]).ok();
    h.run(&["get", "openai", "--connection", "work"]).expect_code(3);
    assert_eq!(h.run(&["get", "openai", "--connection", "personal", "--field", "status"]).ok().stdout, "connected\n");
}

#[test]
fn a_flipped_vault_byte_is_reported_as_tampering() {
    let h = Home::new();
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    let path = h.path().join("vaults/default.vault");
    let original = std::fs::read(&path).unwrap();
    for pos in [0, original.len() / 3, original.len() / 2, original.len() - 3] {
        let mut bad = original.clone();
        bad[pos] ^= 0x04;
        std::fs::write(&path, &bad).unwrap();
        for args in [&["get", "openai"][..], &["list"][..]] {
            let r = h.run(args).expect_code(1);
            assert!(r.stderr.contains("vault") && r.stderr.contains("corrupted or was tampered with"), "byte {pos}: {}", r.stderr);
            assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        }
        // Writing is refused too: a tampered vault is never replaced by an empty one.
        h.run_stdin(&["login", "openai", "--connection", "other"], OPENAI_KEY).expect_code(1);
        assert_eq!(std::fs::read(&path).unwrap(), bad);
    }
    std::fs::write(&path, &original).unwrap();
    h.run(&["get", "openai"]).ok();
}

#[test]
fn twenty_concurrent_writers_all_land() {
    // Key-file mode: the 20 processes also race to create the key.
    let h = Home::with_key_file();
    let children: Vec<_> = (0..20)
        .map(|i| {
            use std::io::Write;
            let mut c = h
                .cmd(&["login", "openai", "--connection", &format!("c{i}")])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(format!("{OPENAI_KEY}{i}").as_bytes()).unwrap();
            c
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let v = json(&h.run(&["list", "--json"]).ok().stdout);
    let openai = v["providers"].as_array().unwrap().iter().find(|p| p["name"] == "openai").unwrap().clone();
    let mut names: Vec<String> = openai["connections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    want.sort();
    assert_eq!(names, want);
    for i in [0, 7, 19] {
        let k = h.run(&["get", "openai", "--connection", &format!("c{i}"), "--field", "api_key", "--reveal"]).ok().stdout;
        assert_eq!(k.trim(), format!("{OPENAI_KEY}{i}"));
    }
}

#[test]
fn version_touches_nothing() {
    let h = Home::new();
    // Poison the home: a broken override and a garbage vault. --version must not care.
    std::fs::create_dir_all(h.path().join("providers")).unwrap();
    std::fs::write(h.path().join("providers/broken.json"), "{").unwrap();
    std::fs::create_dir_all(h.path().join("vaults")).unwrap();
    std::fs::write(h.path().join("vaults/default.vault"), "garbage").unwrap();
    let r = h.run(&["--version"]).ok();
    assert_eq!(r.stdout.trim(), format!("authsome {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(h.files().len(), 2);
}

#[test]
fn doctor_reports_key_source_and_fails_on_bad_permissions() {
    let h = Home::with_key_file();
    let r = h.run(&["doctor"]).ok();
    assert!(r.stdout.contains("vault key") && r.stdout.contains("key file"), "{}", r.stdout);
    let v = json(&h.run(&["doctor", "--json"]).ok().stdout);
    assert_eq!(v["ok"], true);
    let env = Home::new();
    assert!(env.run(&["doctor"]).ok().stdout.contains("AUTHSOME_VAULT_KEY"));
    h.run_stdin(&["login", "openai"], OPENAI_KEY).ok();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(h.path().join("vaults/default.vault"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = h.run(&["doctor"]).expect_code(1);
    assert!(r.stdout.contains("chmod 600"), "{}", r.stdout);
}

#[test]
fn json_errors_are_machine_readable() {
    let h = Home::new();
    let r = h.run(&["--json", "get", "nosuchprovider"]).expect_code(3);
    let v = json(r.stderr.trim());
    assert_eq!(v["error"], "unknown");
    assert_eq!(v["exit_code"], 3);
    assert!(v["message"].as_str().unwrap().contains("nosuchprovider"), "{v}");
    // Usage errors too: `--json` always yields one JSON object.
    let r = h.run(&["--json", "get"]).expect_code(2);
    let v = json(r.stderr.trim());
    assert_eq!(v["error"], "bad_input", "{v}");
    assert!(!v["message"].as_str().unwrap().is_empty());
    // A command that is not found.
    let r = h.run(&["--json", "run", "--", "no-such-command-authsome-test"]).expect_code(127);
    assert_eq!(json(r.stderr.trim())["error"], "command_not_found");
}

/// A stand-in `secret-tool` on PATH: stores secrets in a file, or hangs.
fn fake_keyring(dir: &std::path::Path, hang: bool) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = dir.join("keyring.txt");
    let script = if hang {
        "#!/bin/sh\nexec sleep 30\n".to_owned()
    } else {
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  lookup) [ -s '{0}' ] && cat '{0}' || exit 1 ;;\n  store) cat > '{0}' ;;\n  *) exit 2 ;;\nesac\n",
            store.display()
        )
    };
    let tool = bin.join("secret-tool");
    std::fs::write(&tool, script).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn the_os_keyring_is_used_when_it_answers() {
    let h = Home::with_key_file();
    let bin = fake_keyring(h.path(), false);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = |args: &[&str], input: Option<&str>| {
        use std::io::Write;
        let mut c = h.cmd(args);
        c.env_remove("AUTHSOME_NO_KEYRING").env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent").env("PATH", &path);
        c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.unwrap_or("").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(run(&["login", "openai"], Some(OPENAI_KEY)).status.success());
    assert!(h.path().join("keyring.txt").exists(), "the key went to the keyring");
    assert!(!h.path().join("vault.key").exists(), "no key file when the keyring works");
    let doctor = String::from_utf8(run(&["doctor"], None).stdout).unwrap();
    assert!(doctor.contains("OS keyring (via secret-tool)"), "{doctor}");
    assert_eq!(String::from_utf8(run(&["get", "openai", "--field", "status"], None).stdout).unwrap(), "connected\n");
}

#[test]
fn a_hung_keyring_falls_back_to_the_key_file() {
    let h = Home::with_key_file();
    let bin = fake_keyring(h.path(), true);
    let mut c = h.cmd(&["doctor"]);
    c.env_remove("AUTHSOME_NO_KEYRING")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()));
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("key file"), "{stdout}");
    assert!(h.path().join("vault.key").exists());
}
