//! `authsome run` end to end: real clients through the real binary's proxy to a
//! local HTTPS echo upstream.

use crate::common::proxy::{assert_no_secrets, text, World, ACME_KEY, GH_TOKEN, OCTO_TOKEN};

const PLACEHOLDER: &str = "authsome-proxy-managed";

/// A script that prints the provider variables as the child sees them, then
/// runs `cmd` with its output discarded.
fn env_then(cmd: &str) -> String {
    format!("echo \"ACME_API_KEY=$ACME_API_KEY\"; echo \"OCTO_TOKEN=$OCTO_TOKEN\"; echo \"OCTO_REFRESH=${{OCTO_REFRESH-unset}}\"; echo \"GH_TOKEN=$GH_TOKEN\"; echo \"VAULT=${{AUTHSOME_VAULT_KEY-unset}}\"; {cmd}")
}

fn assert_child_env(stdout: &str) {
    assert!(stdout.contains(&format!("ACME_API_KEY={PLACEHOLDER}\n")), "{stdout}");
    assert!(stdout.contains(&format!("OCTO_TOKEN={PLACEHOLDER}\n")), "{stdout}");
    assert!(stdout.contains(&format!("GH_TOKEN={PLACEHOLDER}\n")), "{stdout}");
    assert!(stdout.contains("OCTO_REFRESH=unset\n"), "refresh tokens are never exported: {stdout}");
    assert!(stdout.contains("VAULT=unset\n"), "the vault key never reaches a child: {stdout}");
}

#[test]
fn curl_http1_and_http2_get_the_real_key_while_the_child_holds_the_placeholder() {
    let w = World::new();
    for flag in ["--http1.1", "--http2"] {
        let script = env_then(&format!("curl -sS -f {flag} -o /dev/null -w '%{{http_version}}\\n' https://api.acme.test/x?page=2"));
        let out = w.run(&["run", "--", "sh", "-c", &script]);
        assert!(out.status.success(), "{}", text(&out));
        assert_no_secrets(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_child_env(&stdout);
        assert_eq!(stdout.lines().last().unwrap(), if flag == "--http2" { "2" } else { "1.1" });
    }
    let seen = w.echo.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.header("authorization"), vec![format!("Bearer {ACME_KEY}")]);
        assert_eq!(s.target, "/x?page=2");
        assert_eq!(s.sni.as_deref(), Some("api.acme.test"));
    }
    let audit = w.audit();
    assert_eq!(audit.len(), 2, "{audit:?}");
    for e in &audit {
        assert_eq!(e["action"], "inject");
        assert_eq!(e["provider"], "acme");
        assert_eq!(e["path"], "/x");
        assert_eq!(e["status"], 200);
        assert!(!e.to_string().contains(ACME_KEY));
    }
    assert!(w.run_dir_files().is_empty(), "bundle left behind: {:?}", w.run_dir_files());
}

#[test]
fn python_requests_and_httpx_reach_upstream_with_the_real_token() {
    let w = World::new();
    let py = "import requests, httpx\n\
r = requests.get('https://api.octo.test/user'); print('requests', r.status_code)\n\
r = httpx.get('https://api.octo.test/user'); print('httpx', r.status_code)\n";
    let out = w.run(&["run", "--", "sh", "-c", &env_then(&format!("python3 -c \"{py}\""))]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secrets(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_child_env(&stdout);
    assert!(stdout.contains("requests 200\n") && stdout.contains("httpx 200\n"), "{stdout}");
    let seen = w.echo.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.header("authorization"), vec![format!("Bearer {OCTO_TOKEN}")]);
    }
    assert_eq!(w.audit().len(), 2);
}

#[test]
fn gh_api_goes_through_the_proxy_with_the_real_token() {
    let w = World::new();
    let out = w.run(&["run", "--", "sh", "-c", &env_then("gh api /user --jq .target")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secrets(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_child_env(&stdout);
    assert!(stdout.ends_with("/user\n"), "{stdout}");
    let seen = w.echo.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].sni.as_deref(), Some("api.github.com"));
    assert_eq!(seen[0].header("authorization"), vec![format!("Bearer {GH_TOKEN}")]);
    let audit = w.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["provider"], "github");
}

#[test]
fn git_ls_remote_answers_the_407_challenge_and_gets_the_token() {
    let w = World::new();
    let out = w.run(&["run", "--", "sh", "-c", &env_then("git ls-remote https://api.octo.test/repo.git")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secrets(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_child_env(&stdout);
    assert!(stdout.contains(&format!("{}\trefs/heads/main", crate::common::echo::GIT_REF)), "{stdout}");
    let seen = w.echo.seen();
    assert!(!seen.is_empty());
    for s in &seen {
        assert!(s.target.starts_with("/repo.git/info/refs"), "{s:?}");
        assert_eq!(s.header("authorization"), vec![format!("Bearer {OCTO_TOKEN}")]);
    }
    let audit = w.audit();
    let challenged = audit.iter().filter(|e| e["status"] == 407).count();
    assert!(challenged >= 1, "git only authenticates to the proxy when challenged: {audit:?}");
    assert_eq!(audit.iter().filter(|e| e["action"] == "inject").count(), seen.len());
    assert_eq!(audit.len(), challenged + seen.len(), "{audit:?}");
}

#[test]
fn undeclared_hosts_are_tunnelled_blind_and_never_decrypted() {
    let w = World::new();
    let ca = w.echo.ca_path.display().to_string();
    // Trusting only the upstream's own test CA proves the certificate the
    // client saw was the upstream's, not one minted by authsome.
    let script = format!(
        "curl -sS -f -v --cacert {ca} -H 'Authorization: Bearer {PLACEHOLDER}' -o /dev/null https://other.test/plain?q=1 2>&1 | grep -i 'issuer:'"
    );
    let out = w.run(&["run", "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("authsome test upstream CA"), "{stdout}");
    assert!(!stdout.contains("authsome run CA"), "{stdout}");
    let seen = w.echo.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].sni.as_deref(), Some("other.test"));
    assert_eq!(seen[0].header("authorization"), vec![format!("Bearer {PLACEHOLDER}")], "tunnelled bytes are untouched");
    assert!(w.audit().is_empty(), "a blind tunnel is neither an injection nor a refusal: {:?}", w.audit());
}

#[test]
fn unauthenticated_use_gets_407_and_no_injection() {
    let w = World::new();
    let script = "bare=$(echo \"$HTTPS_PROXY\" | sed 's#//[^@]*@#//#'); \
        curl -s -o /dev/null -w 'none=%{http_connect}\\n' --proxy \"$bare\" https://api.acme.test/x; \
        wrong=$(echo \"$HTTPS_PROXY\" | sed 's#//[^@]*@#//authsome:wrong@#'); \
        curl -s -o /dev/null -w 'wrong=%{http_connect}\\n' --proxy \"$wrong\" https://api.acme.test/x; true";
    let out = w.run(&["run", "--", "sh", "-c", script]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("none=407\n") && stdout.contains("wrong=407\n"), "{stdout}");
    assert!(w.echo.seen().is_empty(), "nothing may reach upstream without the proxy credential");
    let audit = w.audit();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|e| e["status"] == 407 && e["action"] == "refuse"));
}

#[test]
fn host_or_sni_mismatch_gets_421() {
    let w = World::new();
    let script = "curl -s -o /dev/null -w 'host=%{http_code}\\n' -H 'Host: api.octo.test' https://api.acme.test/x; \
        curl -s -o /dev/null -w 'sni=%{http_code}\\n' --connect-to api.octo.test:443:b.octo.test:443 https://api.octo.test/x";
    let out = w.run(&["run", "--", "sh", "-c", script]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("host=421\n"), "{stdout}");
    assert!(stdout.contains("sni=421\n"), "{stdout}");
    assert!(w.echo.seen().is_empty(), "{:?}", w.echo.seen());
    let audit = w.audit();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|e| e["status"] == 421 && e["action"] == "refuse"));
}

#[test]
fn the_providers_token_endpoint_never_gets_a_credential() {
    let w = World::new();
    let script = format!(
        "curl -sS -f -o /dev/null -X POST -H 'Authorization: Bearer {PLACEHOLDER}' -d grant_type=refresh_token https://api.octo.test/oauth/token"
    );
    let out = w.run(&["run", "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    let seen = w.echo.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/oauth/token");
    assert!(seen[0].header("authorization").is_empty(), "{:?}", seen[0]);
    assert!(!format!("{:?}", seen[0]).contains(OCTO_TOKEN));
    let audit = w.audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "refuse");
    assert_eq!(audit[0]["provider"], "octo");
}

#[test]
fn redirects_are_not_followed_and_never_carry_the_token_elsewhere() {
    let w = World::new();
    let ca = w.echo.ca_path.display().to_string();
    let script = format!(
        "cat \"$CURL_CA_BUNDLE\" {ca} > \"$HOME/both.pem\"; \
         curl -s -o /dev/null -w 'plain=%{{http_code}}\\n' 'https://api.acme.test/redirect?to=https://other.test/landing'; \
         curl -sS -f -L -o /dev/null --cacert \"$HOME/both.pem\" -w 'followed=%{{http_code}}\\n' 'https://api.acme.test/redirect?to=https://other.test/landing'"
    );
    let out = w.run(&["run", "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("plain=302\n"), "the proxy passes the redirect back: {stdout}");
    assert!(stdout.contains("followed=200\n"), "{stdout}");
    let seen = w.echo.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let landing: Vec<_> = seen.iter().filter(|s| s.target == "/landing").collect();
    assert_eq!(landing.len(), 1);
    assert_eq!(landing[0].sni.as_deref(), Some("other.test"));
    assert!(!format!("{:?}", landing[0]).contains(ACME_KEY), "{:?}", landing[0]);
    assert_eq!(seen.iter().filter(|s| s.header("authorization") == vec![format!("Bearer {ACME_KEY}")]).count(), 2);
}

#[test]
fn exit_codes_follow_the_child() {
    let w = World::new();
    assert_eq!(w.run(&["run", "--", "sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(w.run(&["run", "sh", "-c", "exit 0"]).status.code(), Some(0));
    assert_eq!(w.run(&["run", "--", "sh", "-c", "kill -TERM $$"]).status.code(), Some(143));
    let out = w.run(&["run", "--", "definitely-not-a-command-authsome"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("command not found: definitely-not-a-command-authsome"), "{}", text(&out));
    assert!(w.run_dir_files().is_empty());
    // argv[0] stays what the user typed (multi-call binaries depend on it).
    let out = w.run(&["run", "--", "ls", "/nonexistent-authsome-path"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("ls: "), "{}", text(&out));
}

#[test]
fn sigterm_and_sighup_to_authsome_reach_the_child() {
    use std::io::BufRead;
    let w = World::new();
    for (sig, name) in [(nix::sys::signal::Signal::SIGTERM, "TERM"), (nix::sys::signal::Signal::SIGHUP, "HUP")] {
        let script = format!("trap 'echo got-{name}; exit 42' {name}; echo ready; while :; do sleep 0.05; done");
        let mut child = w.cmd(&["run", "--", "sh", "-c", &script]).stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), format!("got-{name}"));
        assert_eq!(child.wait().unwrap().code(), Some(42));
    }
}

#[test]
fn nothing_of_the_run_remains_afterwards() {
    let w = World::new();
    let script = "echo pid=$$; echo proxy=$(echo $HTTPS_PROXY | sed 's#.*@##'); echo bundle=$SSL_CERT_FILE; ls -l \"$SSL_CERT_FILE\"; curl -sS -f -o /dev/null https://api.acme.test/x";
    let out = w.run(&["run", "--", "sh", "-c", script]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| stdout.lines().find_map(|l| l.strip_prefix(k)).unwrap().to_owned();
    let pid: i32 = field("pid=").parse().unwrap();
    let addr = field("proxy=");
    let bundle = field("bundle=");
    assert!(stdout.contains("-rw-------"), "bundle must be private: {stdout}");
    assert!(bundle.starts_with(&w.home.path().join("run").display().to_string()), "{bundle}");
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(), "child {pid} still alive");
    assert!(std::net::TcpStream::connect(addr.trim()).is_err(), "proxy port {addr} still open");
    assert!(!std::path::Path::new(&bundle).exists(), "bundle {bundle} left behind");
    assert!(w.run_dir_files().is_empty(), "{:?}", w.run_dir_files());
    assert_eq!(w.audit().len(), 1);
}

#[test]
fn log_shows_the_audit_events() {
    let w = World::new();
    for path in ["/one", "/two?secret=1"] {
        let out = w.run(&["run", "--", "curl", "-sS", "-f", "-o", "/dev/null", &format!("https://api.acme.test{path}")]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = w.run(&["log", "--json", "-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["path"], "/two");
    assert_eq!(events[0]["action"], "inject");
    let out = w.run(&["log"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("acme/default") && table.contains("api.acme.test/one") && table.contains("api.acme.test/two"), "{table}");
    assert!(!table.contains("secret"), "{table}");
    assert_no_secrets(&out);
}

#[test]
fn an_upstream_whose_tls_handshake_fails_is_logged_as_a_failure_not_an_injection() {
    let w = World::new();
    // Trust only the system roots upstream: the echo upstream's certificate is refused.
    let out = w
        .cmd(&["run", "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "https://api.acme.test/x"])
        .env("AUTHSOME_UPSTREAM_CA", "/etc/ssl/certs/ca-certificates.crt")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "502", "{}", text(&out));
    let events = w.audit();
    let last = events.last().expect("an audit line");
    assert_eq!(last["action"], "failed", "{last}");
    assert_eq!(last["status"], 502, "{last}");
    assert!(last["reason"].as_str().unwrap_or("").contains("cannot reach api.acme.test"), "{last}");
    assert!(events.iter().all(|e| e["action"] != "inject"), "{events:?}");
    let table = String::from_utf8_lossy(&w.run(&["log"]).stdout).into_owned();
    assert!(table.contains("failed") && !table.contains("inject"), "{table}");
    assert_no_secrets(&out);
}

#[test]
fn run_without_any_connection_still_runs_the_command_and_creates_no_key() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .args(["run", "--", "sh", "-c", "test -n \"$HTTPS_PROXY\" && test -s \"$SSL_CERT_FILE\" && echo proxied"])
        .env("AUTHSOME_HOME", home.path())
        .env_remove("AUTHSOME_VAULT_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "proxied\n");
    assert!(!home.path().join("vault.key").exists());
}

#[test]
fn ctrl_c_reaches_the_child_and_authsome_reports_its_exit() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let w = World::new();
    // Own process group, like a job in an interactive shell: the terminal's
    // Ctrl-C is a SIGINT to the whole foreground group.
    let mut child = w
        .cmd(&["run", "--", "sh", "-c", "trap 'echo got-int; exit 3' INT; echo ready; while :; do sleep 0.05; done"])
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "got-int");
    assert_eq!(child.wait().unwrap().code(), Some(3), "authsome survives Ctrl-C and returns the child's code");
}

#[test]
fn a_bundle_left_by_a_killed_run_is_swept_by_the_next_run() {
    let w = World::new();
    let pid_file = w.outside.path().join("child.pid");
    let script = format!("echo $$ > '{}'; exec sleep 30", pid_file.display());
    let mut killed =
        w.cmd(&["run", "--", "sh", "-c", &script]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while (w.run_dir_files().is_empty() || !pid_file.exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let left = w.run_dir_files();
    assert_eq!(left.len(), 1, "{left:?}");
    // Another run that is alive keeps its bundle while the killed one's goes.
    let mut alive =
        w.cmd(&["run", "--", "sleep", "30"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    while w.run_dir_files().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SIGKILL its child first (so no orphan outlives the test), then authsome:
    // killed outright, it cannot clean up after itself.
    let child: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), nix::sys::signal::Signal::SIGKILL).unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert_eq!(w.run_dir_files().len(), 2, "the killed run left its bundle");
    let out = w.run(&["run", "--", "true"]);
    assert!(out.status.success(), "{}", text(&out));
    let now = w.run_dir_files();
    assert_eq!(now.len(), 1, "only the live run's bundle remains: {now:?}");
    assert!(!now.contains(&left[0]), "the killed run's bundle was swept: {now:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(alive.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    alive.wait().unwrap();
    assert!(w.run_dir_files().is_empty(), "{:?}", w.run_dir_files());
}
