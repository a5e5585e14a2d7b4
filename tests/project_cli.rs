//! Black-box tests of `status`, `init`, `allow` and `deny` through the real binary.

use crate::common::project::{text, Sandbox};

const OPENAI_KEY: &str = "sk-test-proj-0123456789abcdefghijkl";

#[test]
fn status_reports_each_requirement_with_its_fix_and_exits_4() {
    let sb = Sandbox::new();
    sb.write_toml(
        "[providers.openai]\n[[providers.github]]\nconnection = \"work\"\nscopes = [\"workflow\"]\n[providers.linear]\noptional = true\n",
    );
    let out = sb.run(&["status"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stdout}{stderr}");
    assert!(stdout.contains("authsome login openai"), "{stdout}");
    assert!(stdout.contains("authsome login github --connection work --scopes repo,read:user,workflow"), "{stdout}");
    assert!(stdout.contains("linear [optional]"), "{stdout}");

    sb.login_key("openai", None, OPENAI_KEY);
    let out = sb.run(&["status", "--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "github is still missing");
    assert!(!stdout.contains(OPENAI_KEY) && !stderr.contains(OPENAI_KEY));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let reqs = v["requirements"].as_array().unwrap();
    let openai = reqs.iter().find(|r| r["provider"] == "openai").unwrap();
    assert_eq!(openai["state"], "satisfied");
    assert_eq!(openai["fix"], serde_json::Value::Null);
    let gh = reqs.iter().find(|r| r["provider"] == "github").unwrap();
    assert_eq!(gh["state"], "client_credentials_missing");
    assert_eq!(gh["connection"], "work");
    assert_eq!(gh["scopes_required"], serde_json::json!(["workflow"]));
    assert_eq!(v["trusted"], false);

    sb.write_toml("[providers.openai]\n[providers.linear]\noptional = true\n");
    let out = sb.run(&["status"]);
    assert_eq!(out.status.code(), Some(2), "met, but not allowed: nothing would run {:?}", text(&out));
    assert!(sb.run(&["allow"]).status.success());
    let out = sb.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
}

#[test]
fn status_finds_the_file_from_a_subdirectory_and_cites_errors() {
    let sb = Sandbox::new();
    sb.write_toml("# deps\n[providers.opnai]\n");
    let sub = sb.dir.join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let out = sb.cmd(&["status"]).current_dir(&sub).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("authsome.toml:2:12: unknown provider \"opnai\" (did you mean \"openai\"?)"), "{stderr}");

    let empty = tempfile::tempdir().unwrap();
    let out = sb.cmd(&["status"]).current_dir(empty.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("no authsome.toml"), "{:?}", text(&out));
}

fn trust_of(sb: &Sandbox) -> String {
    let out = sb.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    v["trust"].as_str().unwrap().to_owned()
}

#[test]
fn trust_follows_meaning_not_bytes() {
    let sb = Sandbox::new();
    sb.write_toml("[providers.openai]\n[run]\ncommand = \"python3 main.py\"\n");
    assert_eq!(trust_of(&sb), "not_allowed");
    let out = sb.run(&["status"]);
    assert!(text(&out).1.contains(&format!("authsome allow {}", sb.dir.display())), "{:?}", text(&out));

    let out = sb.run(&["allow"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(trust_of(&sb), "allowed");

    // A comment, spacing and key order: still allowed.
    sb.write_toml("# the agent\n[run]   # what runs\ncommand   = \"python3 main.py\"\n\n[providers.openai] # the LLM\n");
    assert_eq!(trust_of(&sb), "allowed");

    // Adding a provider drops trust.
    sb.write_toml("[providers.openai]\n[providers.github]\n[run]\ncommand = \"python3 main.py\"\n");
    assert_eq!(trust_of(&sb), "changed");

    // Changing the command drops it too.
    sb.write_toml("[providers.openai]\n[run]\ncommand = \"python3 main.py --upload\"\n");
    assert_eq!(trust_of(&sb), "changed");

    // Allow by path from elsewhere, then deny.
    let out = sb.cmd(&["allow", sb.dir.to_str().unwrap()]).current_dir(sb.tmp.path()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(trust_of(&sb), "allowed");
    let out = sb.run(&["deny"]);
    assert!(out.status.success());
    assert!(text(&out).1.contains("denied"), "{:?}", text(&out));
    assert_eq!(trust_of(&sb), "denied");
    // The hook and `up` say it is blocked, not merely "not allowed yet".
    let out = sb.run(&["export", "bash"]);
    assert!(text(&out).1.contains("is blocked"), "{:?}", text(&out));
    assert!(sb.run(&["allow"]).status.success());
    assert_eq!(trust_of(&sb), "allowed");
}

#[test]
fn a_referenced_provider_file_is_part_of_trust() {
    let sb = Sandbox::new();
    let def = |host: &str| {
        format!(
            r#"{{"name": "acme", "auth_type": "api_key", "flow": "api_key", "api_url": "{host}",
               "api_key": {{"header_name": "X-Api-Key"}}, "export": {{"ACME_KEY": "API_KEY"}}}}"#
        )
    };
    std::fs::write(sb.dir.join("acme.json"), def("api.acme.test")).unwrap();
    sb.write_toml("[definitions]\nacme = \"acme.json\"\n[providers.acme]\n");
    assert!(sb.run(&["allow"]).status.success());
    assert_eq!(trust_of(&sb), "allowed");
    std::fs::write(sb.dir.join("acme.json"), def("api.evil.test")).unwrap();
    assert_eq!(trust_of(&sb), "changed");
}

#[test]
fn init_writes_a_starter_from_dotenv_and_refuses_to_overwrite() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.dir.join(".env"),
        "# local\nOPENAI_API_KEY=sk-live-dont-print-me-0123456789\nexport DISCORD_ACCESS_TOKEN=abc\nUNRELATED=1\n",
    )
    .unwrap();
    let out = sb.run(&["init"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("dont-print-me") && !stderr.contains("dont-print-me"));
    let written = std::fs::read_to_string(sb.dir.join("authsome.toml")).unwrap();
    assert!(written.starts_with("#:schema https://"), "{written}");
    assert!(written.contains("\n[providers.openai]"), "{written}");
    assert!(written.contains("\n[providers.discord]"), "{written}");
    assert!(!written.contains("dont-print-me"));
    assert!(stderr.contains("authsome login openai"), "{stderr}");

    // The starter parses, and like every project file it is inert until allowed.
    let out = sb.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(v["trust"], "not_allowed");
    assert_eq!(v["requirements"].as_array().unwrap().len(), 2);

    std::fs::write(sb.dir.join("authsome.toml"), "# mine\n").unwrap();
    let out = sb.run(&["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("already exists"));
    assert_eq!(std::fs::read_to_string(sb.dir.join("authsome.toml")).unwrap(), "# mine\n");
}
