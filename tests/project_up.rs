//! `authsome up` end to end: logging in a missing provider through a real
//! pseudo-terminal with the BROWSER stand-in and the fake authorization
//! server, then running the command behind the proxy; and applying an edit of
//! `authsome.toml` to the running proxy without restarting the command.

use crate::common::echo::Echo;
use crate::common::fake_as::{Config, FakeAs};
use crate::common::login_env::LoginEnv;
use crate::common::project_run::{curl_with, wait_for_file, ProjectWorld, Pty};
use crate::common::proxy::{text, GH_TOKEN};

#[test]
fn up_logs_in_the_missing_provider_via_browser_then_runs_the_command() {
    let fake = FakeAs::start(Config { granted_scope: Some("identify guilds".into()), ..Config::default() });
    let echo = Echo::start(&["discord.com"]);
    let mut env = LoginEnv::with_discord(&fake);
    env.upstream(&echo, "discord.com");
    let dir = env.dir.path().join("bot");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("authsome.toml"),
        format!(
            "[providers.discord]\nscopes = [\"identify\", \"guilds\"]\n[run]\ncommand = '{} && echo BOT-RAN-WITH-$DISCORD_ACCESS_TOKEN'\n",
            curl_with("DISCORD_ACCESS_TOKEN", "https://discord.com/api/users/@me")
        ),
    )
    .unwrap();
    let out = env.run(&["allow", dir.to_str().unwrap()], None);
    assert_eq!(out.code, 0, "{}", out.all());

    let mut cmd = env.cmd(&["up"]);
    cmd.current_dir(&dir).env("TERM", "dumb");
    let mut pty = Pty::spawn(cmd);
    let code = pty.wait();
    let screen = pty.output();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("authsome login discord"), "the checklist names the login it runs: {screen}");
    assert!(screen.contains("BOT-RAN-WITH-authsome-proxy-managed"), "{screen}");
    assert_eq!(fake.requests_to("authorize").len(), 1, "logged in through the browser once");
    let tokens = fake.access_tokens();
    assert_eq!(tokens.len(), 1);
    let seen = echo.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), vec![format!("Bearer {}", tokens[0])]);
    for s in fake.secrets() {
        assert!(!screen.contains(&s), "a secret reached the terminal: {screen}");
    }

    // Satisfied now: a second `up` logs nothing in.
    let mut cmd = env.cmd(&["up", "--", "true"]);
    cmd.current_dir(&dir);
    let mut pty = Pty::spawn(cmd);
    assert_eq!(pty.wait(), 0, "{}", pty.output());
    assert_eq!(fake.requests_to("authorize").len(), 1);
}

#[test]
fn a_provider_added_while_up_runs_is_injected_into_the_same_process() {
    let w = ProjectWorld::new();
    let (ready, go) = (w.dir.join("ready"), w.dir.join("go"));
    let script = format!(
        "echo $$ > pid-before; {} && touch ready; while [ ! -f go ]; do sleep 0.05; done; \
         curl -sS -f -o /dev/null -H 'Authorization: Bearer authsome-proxy-managed' https://api.github.com/after-reload && echo $$ > pid-after",
        curl_with("ACME_API_KEY", "https://api.acme.test/before")
    );
    w.write_toml(&format!("[providers.acme]\n[run]\ncommand = '''{script}'''\n"));
    w.allow();
    let mut child = w.cmd(&["up"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    wait_for_file(&ready);

    // Declare GitHub: the edit changes the file's meaning, so it waits for `allow`.
    w.write_toml(&format!("[providers.acme]\n[providers.github]\n[run]\ncommand = '''{script}'''\n"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !log.lock().unwrap().contains("changed since it was allowed") {
        assert!(std::time::Instant::now() < deadline, "no trust notice:\n{}", log.lock().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!log.lock().unwrap().contains("now injecting"), "an unallowed change must not apply");
    w.allow();
    while !log.lock().unwrap().contains("now injecting github/default") {
        assert!(std::time::Instant::now() < deadline, "never applied:\n{}", log.lock().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(&go, "").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", log.lock().unwrap());
    let before = std::fs::read_to_string(w.dir.join("pid-before")).unwrap();
    let after = std::fs::read_to_string(w.dir.join("pid-after")).unwrap();
    assert_eq!(before, after, "the same process made both requests");
    let seen = w.world.echo.seen();
    let after_reload: Vec<_> = seen.iter().filter(|s| s.target == "/after-reload").collect();
    assert_eq!(after_reload.len(), 1, "{seen:?}");
    assert_eq!(after_reload[0].header("authorization"), vec![format!("Bearer {GH_TOKEN}")]);
    let _ = text;
}

#[test]
fn a_provider_declared_while_up_runs_is_logged_in_then_injected() {
    let fake = FakeAs::start(Config::default());
    let echo = Echo::start(&["discord.com"]);
    let mut env = LoginEnv::with_discord(&fake);
    env.upstream(&echo, "discord.com");
    let dir = env.dir.path().join("bot");
    std::fs::create_dir_all(&dir).unwrap();
    let script = "touch ready; while [ ! -f go ]; do sleep 0.05; done; \
        curl -sS -f -o /dev/null -H 'Authorization: Bearer authsome-proxy-managed' https://discord.com/api/users/@me";
    std::fs::write(dir.join("authsome.toml"), format!("[run]\ncommand = '''{script}'''\n")).unwrap();
    assert_eq!(env.run(&["allow", dir.to_str().unwrap()], None).code, 0);
    let mut cmd = env.cmd(&["up"]);
    cmd.current_dir(&dir).env("TERM", "dumb");
    let mut pty = Pty::spawn(cmd);
    wait_for_file(&dir.join("ready"));
    std::fs::write(dir.join("authsome.toml"), format!("[providers.discord]\n[run]\ncommand = '''{script}'''\n")).unwrap();
    pty.expect("changed since it was allowed");
    assert_eq!(env.run(&["allow", dir.to_str().unwrap()], None).code, 0);
    pty.expect("now injecting discord/default");
    std::fs::write(dir.join("go"), "").unwrap();
    assert_eq!(pty.wait(), 0, "{}", pty.output());
    assert_eq!(fake.requests_to("authorize").len(), 1, "logged in while the command ran");
    let tokens = fake.access_tokens();
    assert_eq!(echo.seen().len(), 1);
    assert_eq!(echo.seen()[0].header("authorization"), vec![format!("Bearer {}", tokens[0])]);
}

#[test]
fn up_on_a_terminal_offers_to_allow_an_untrusted_file() {
    let w = ProjectWorld::new();
    w.write_toml("[providers.acme]\n[run]\ncommand = \"echo RAN\"\n");
    let mut pty = Pty::spawn(w.cmd(&["up"]));
    pty.expect("Allow it? [y/N]");
    assert!(pty.output().contains("provider  acme"), "{}", pty.output());
    pty.send("y\n");
    assert_eq!(pty.wait(), 0, "{}", pty.output());
    assert!(pty.output().contains("RAN"), "{}", pty.output());
    let out = w.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["trust"], "allowed");

    w.write_toml("[providers.acme]\n[run]\ncommand = \"echo CHANGED-$((40 + 2))\"\n");
    let mut pty = Pty::spawn(w.cmd(&["up"]));
    pty.expect("Allow it? [y/N]");
    pty.send("n\n");
    assert_eq!(pty.wait(), 2, "{}", pty.output());
    assert!(!pty.output().contains("CHANGED-42"), "a refused file runs nothing: {}", pty.output());
}

#[test]
fn too_few_scopes_are_fixed_by_a_re_consent_asking_for_the_union() {
    let fake = FakeAs::start(Config { granted_scope: Some("identify email".into()), ..Config::default() });
    let env = LoginEnv::with_discord(&fake);
    let login = env.run(&["login", "discord", "--scopes", "identify,email"], None);
    assert_eq!(login.code, 0, "{}", login.all());
    let dir = env.dir.path().join("bot");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("authsome.toml"), "[providers.discord]\nscopes = [\"guilds\"]\n").unwrap();
    assert_eq!(env.run(&["allow", dir.to_str().unwrap()], None).code, 0);

    let mut status = env.cmd(&["status"]);
    let out = status.current_dir(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stdout.contains("missing scopes: guilds") && stdout.contains("authsome login discord --scopes identify,email,guilds"),
        "{stdout}"
    );

    fake.configure(|c| c.granted_scope = Some("identify email guilds".into()));
    let mut cmd = env.cmd(&["up", "--", "true"]);
    cmd.current_dir(&dir);
    let mut pty = Pty::spawn(cmd);
    assert_eq!(pty.wait(), 0, "{}", pty.output());
    let auth = fake.requests_to("authorize");
    assert_eq!(auth.len(), 2);
    let asked: std::collections::BTreeSet<&str> = auth[1].query["scope"].split(' ').collect();
    assert_eq!(asked, ["email", "guilds", "identify"].into_iter().collect(), "keeps what was granted, adds what is required");
    // Through the CLI, as a user would read it.
    let scopes = env.run(&["get", "discord", "--field", "scopes"], None);
    assert_eq!(scopes.stdout.trim(), "identify,email,guilds", "{}", scopes.all());
}
