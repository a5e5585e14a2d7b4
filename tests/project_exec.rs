//! `authsome exec` end to end: real curl through the real binary's proxy to a
//! local HTTPS echo upstream; trust, CI secrets, PID, signals and exit codes.

use crate::common::project_run::{curl_with, ProjectWorld};
use crate::common::proxy::{assert_no_secrets, text, ACME_KEY, GH_TOKEN};
use std::os::unix::process::ExitStatusExt;

const WORK_TOKEN: &str = "gho_worktoken9876543210";

fn bearer_of(w: &ProjectWorld, path: &str) -> Vec<String> {
    w.world.echo.seen().iter().filter(|s| s.target == path).flat_map(|s| s.header("authorization")).collect()
}

#[test]
fn exec_in_a_project_declaring_two_providers_injects_both() {
    let w = ProjectWorld::new();
    w.write_toml("[providers.acme]\n[providers.github]\n");
    w.allow();
    let script = format!(
        "echo \"ACME=$ACME_API_KEY GH=$GH_TOKEN\"; {} && {}",
        curl_with("ACME_API_KEY", "https://api.acme.test/one"),
        curl_with("GH_TOKEN", "https://api.github.com/two")
    );
    let out = w.run(&["exec", "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secrets(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACME=authsome-proxy-managed GH=authsome-proxy-managed"), "{}", text(&out));
    assert_eq!(bearer_of(&w, "/one"), vec![format!("Bearer {ACME_KEY}")]);
    assert_eq!(bearer_of(&w, "/two"), vec![format!("Bearer {GH_TOKEN}")]);
}

#[test]
fn exec_with_a_missing_login_exits_4_naming_the_fix() {
    let w = ProjectWorld::new();
    w.write_toml("[providers.acme]\n[[providers.github]]\nconnection = \"work\"\nscopes = [\"repo\"]\n[providers.openai]\n");
    w.allow();
    let marker = w.dir.join("ran");
    let out = w.run(&["exec", "--", "touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(!marker.exists(), "the command must not run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one line per unmet requirement: {stderr}");
    assert!(lines.iter().any(|l| l.contains("github (work)") && l.ends_with("fix: authsome login github --connection work")), "{stderr}");
    assert!(lines.iter().any(|l| l.contains("openai: not logged in") && l.ends_with("fix: authsome login openai")), "{stderr}");
}

#[test]
fn two_connections_of_one_provider_get_the_right_token_per_placeholder() {
    let w = ProjectWorld::new();
    w.store_connection("github", "work", WORK_TOKEN);
    w.write_toml("[[providers.github]]\n[[providers.github]]\nconnection = \"work\"\nexport = [\"WORK_GH\"]\n");
    w.allow();
    let script = format!(
        "echo \"$GH_TOKEN|$GH_TOKEN_WORK|$WORK_GH\"; {} && {} && {} && curl -sS -f -o /dev/null https://api.github.com/none",
        curl_with("GH_TOKEN", "https://api.github.com/personal"),
        curl_with("GH_TOKEN_WORK", "https://api.github.com/work"),
        curl_with("WORK_GH", "https://api.github.com/work-extra"),
    );
    let out = w.run(&["exec", "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secrets(&out);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(WORK_TOKEN));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("authsome-proxy-managed|authsome-proxy-managed-work|authsome-proxy-managed-work"),
        "{}",
        text(&out)
    );
    assert_eq!(bearer_of(&w, "/personal"), vec![format!("Bearer {GH_TOKEN}")]);
    assert_eq!(bearer_of(&w, "/work"), vec![format!("Bearer {WORK_TOKEN}")]);
    assert_eq!(bearer_of(&w, "/work-extra"), vec![format!("Bearer {WORK_TOKEN}")]);
    assert_eq!(bearer_of(&w, "/none"), vec![format!("Bearer {GH_TOKEN}")], "no placeholder: the default connection");
}

#[test]
fn an_untrusted_file_activates_nothing_and_trust_follows_meaning() {
    let w = ProjectWorld::new();
    let marker = w.dir.join("ran");
    let exec = |w: &ProjectWorld| {
        w.run(&["exec", "--", "sh", "-c", &format!("touch {}; {}", marker.display(), curl_with("ACME_API_KEY", "https://api.acme.test/t"))])
    };
    w.write_toml("[providers.acme]\n");
    let out = exec(&w);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("`authsome allow {}`", w.dir.display())), "{stderr}");
    assert!(!marker.exists() && w.world.echo.seen().is_empty(), "nothing may run or be injected");

    w.allow();
    w.write_toml("# API keys for the build\n[providers.acme]   # acme's API\n");
    let out = exec(&w);
    assert!(out.status.success(), "a comment edit keeps trust: {}", text(&out));
    assert!(marker.exists());
    std::fs::remove_file(&marker).unwrap();

    w.write_toml("[providers.acme]\n[providers.github]\n");
    let out = exec(&w);
    assert_eq!(out.status.code(), Some(2), "adding a provider drops trust: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed since it was allowed"), "{}", text(&out));
    assert!(!marker.exists());
    assert_eq!(w.world.echo.seen().len(), 1);
}

#[test]
fn a_ci_run_injects_the_secret_from_the_environment_and_hides_it_from_the_child() {
    // A fresh CI machine: no vault, no key, no TTY; the provider is project-local.
    let echo = crate::common::echo::Echo::start(&["api.acme.test"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("acme.json"),
        r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":"api.acme.test",
            "api_key":{"header_name":"Authorization","header_prefix":"Bearer"},"export":{"ACME_API_KEY":"API_KEY"}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("authsome.toml"), "[definitions]\nacme = \"acme.json\"\n[providers.acme]\nsecret_env = \"ACME_CI_SECRET\"\n")
        .unwrap();
    let secret = "acme-ci-secret-from-the-runner-42";
    let home = tmp.path().join("home");
    let cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(crate::common::bin());
        c.args(args)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", tmp.path())
            .env("CI", "true")
            .env("AUTHSOME_HOME", &home)
            .env("AUTHSOME_RESOLVE", echo.resolve("api.acme.test"))
            .env("AUTHSOME_UPSTREAM_CA", &echo.ca_path)
            .env("ACME_CI_SECRET", secret)
            .stdin(std::process::Stdio::null());
        c
    };
    assert!(cmd(&["allow"]).output().unwrap().status.success());
    let script = format!("env > child-env.txt; {}", curl_with("ACME_API_KEY", "https://api.acme.test/ci"));
    let out = cmd(&["exec", "--", "sh", "-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains(secret), "{all}");
    let child_env = std::fs::read_to_string(dir.join("child-env.txt")).unwrap();
    assert!(!child_env.contains(secret), "the secret reached the child: {child_env}");
    assert!(!child_env.contains("ACME_CI_SECRET="), "{child_env}");
    assert!(child_env.contains("ACME_API_KEY=authsome-proxy-managed\n"), "{child_env}");
    let seen = echo.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), vec![format!("Bearer {secret}")]);
    assert!(!home.join("vault.key").exists() && !home.join("vaults").exists(), "a CI run with every secret in env needs no vault");

    // Without the secret: exit 4, naming both fixes.
    let out = cmd(&["exec", "--", "true"]).env_remove("ACME_CI_SECRET").output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fix: authsome login acme (or set ACME_CI_SECRET)"), "{}", text(&out));
}

#[test]
fn the_command_keeps_authsomes_pid_signals_and_exit_code() {
    let w = ProjectWorld::new();
    w.write_toml("[providers.acme]\n[run]\ncommand = \"exit 7\"\n");
    w.allow();
    let out = w.run(&["exec"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));

    let child = w.cmd(&["exec", "--", "sh", "-c", "echo $$; kill -TERM $$"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string(), "the command runs as authsome's own process");
    assert_eq!(out.status.signal(), Some(15), "died of SIGTERM exactly as it would alone: {:?}", out.status);

    // The helper notices and removes the run's CA bundle.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !w.world.run_dir_files().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(w.world.run_dir_files().is_empty(), "helper left {:?}", w.world.run_dir_files());
}

#[test]
fn a_vault_restored_from_ci_storage_works_with_the_key_in_the_environment() {
    let w = ProjectWorld::new();
    w.write_toml("[providers.acme]\n");
    // A CI machine: only the vault file (restored from a cache) and AUTHSOME_VAULT_KEY.
    let ci_home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ci_home.path().join("vaults")).unwrap();
    std::fs::create_dir_all(ci_home.path().join("providers")).unwrap();
    std::fs::copy(w.world.home.path().join("vaults/default.vault"), ci_home.path().join("vaults/default.vault")).unwrap();
    std::fs::copy(w.world.home.path().join("providers/acme.json"), ci_home.path().join("providers/acme.json")).unwrap();
    let run = |args: &[&str]| w.cmd(args).env("AUTHSOME_HOME", ci_home.path()).env("CI", "true").output().unwrap();
    assert!(run(&["allow"]).status.success());
    let out = run(&["exec", "--", "sh", "-c", &curl_with("ACME_API_KEY", "https://api.acme.test/restored")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secrets(&out);
    assert_eq!(bearer_of(&w, "/restored"), vec![format!("Bearer {ACME_KEY}")]);
}

#[test]
fn the_projects_policy_decides_what_happens_to_undeclared_hosts() {
    let w = ProjectWorld::new();
    // -k: the tunnel is end to end with the echo server, whose CA the run does not trust.
    let probe = "curl -sS -k -f -o /dev/null https://other.test/undeclared";
    w.write_toml("[providers.acme]\n");
    w.allow();
    let out = w.run(&["exec", "--", "sh", "-c", probe]);
    assert!(out.status.success(), "tunnel is the default: {}", text(&out));
    w.write_toml("[providers.acme]\n[proxy]\nundeclared_hosts = \"deny\"\n");
    w.allow();
    let out = w.run(&["exec", "--", "sh", "-c", probe]);
    assert!(!out.status.success(), "deny refuses the CONNECT: {}", text(&out));
    let tunnelled = w.world.echo.seen().iter().filter(|s| s.target == "/undeclared").count();
    assert_eq!(tunnelled, 1, "only the tunnel run reached the host");
}
