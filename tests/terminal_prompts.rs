//! What a person at a terminal sees: secrets typed at a prompt are never
//! echoed, and the device flow opens the browser when Enter is pressed. The
//! binary runs on a real pseudo-terminal (its controlling terminal).

use crate::common::fake_as::{Config, FakeAs};
use crate::common::login_env::LoginEnv;
use crate::common::project_run::Pty;

const KEY: &str = "sk-typedAtTheTerminal0123456789";

#[test]
fn an_api_key_typed_at_the_hidden_prompt_is_never_echoed() {
    let env = LoginEnv::new();
    let mut pty = Pty::spawn(env.cmd(&["login", "openai", "--no-browser"]));
    pty.expect("(input hidden)");
    pty.send(&format!("{KEY}\n"));
    assert_eq!(pty.wait(), 0, "{}", pty.output());
    assert!(!pty.output().contains(KEY), "the key was echoed:\n{}", pty.output());
    assert_eq!(env.run(&["get", "openai", "--field", "status"], None).stdout.trim(), "connected");
    assert_eq!(env.vault().connection("openai", None).unwrap().api_key.as_ref().unwrap().expose(), KEY);
}

#[test]
fn client_credentials_typed_at_the_terminal_hide_the_secret_and_the_device_flow_opens_the_browser_on_enter() {
    let fake = FakeAs::start(Config {
        device_script: ["authorization_pending"; 4].iter().map(|s| s.to_string()).collect(),
        device_interval: 1,
        ..Config::default()
    });
    let mut env = LoginEnv::new();
    env.install_provider(&fake.github_provider());
    let c = fake.config();
    let secret = c.client_secret.clone().unwrap();
    // First login on the terminal without a browser: both client credentials typed, the secret hidden.
    let mut pty = Pty::spawn(env.cmd(&["login", "github", "--flow", "device_code", "--no-browser"]));
    pty.expect("client ID");
    pty.send(&format!("{}\n", c.client_id));
    pty.expect("(input hidden");
    pty.send(&format!("{secret}\n"));
    pty.expect("WDJB-MJHT");
    assert_eq!(pty.wait(), 0, "{}", pty.output());
    assert!(!pty.output().contains(&secret), "the client secret was echoed:\n{}", pty.output());
    assert!(!pty.output().contains("Press Enter"), "no browser, no offer to open one:\n{}", pty.output());

    // With a browser: the code is shown, and Enter opens the verification page.
    fake.configure(|c| c.device_script = ["authorization_pending"; 4].iter().map(|s| s.to_string()).collect());
    env.use_fake_browser(serde_json::json!({"client_id": c.client_id, "client_secret": secret}));
    let mut pty = Pty::spawn(env.cmd(&["login", "github", "--flow", "device_code", "--force"]));
    pty.expect("Press Enter to open the browser");
    assert!(env.browser_log().iter().all(|v| v["final_path"] != "/activate"), "opened before Enter: {:?}", env.browser_log());
    pty.send("\n");
    assert_eq!(pty.wait(), 0, "{}", pty.output());
    let log = env.wait_browser_log(1);
    assert!(log.iter().any(|v| v["final_path"] == "/activate"), "Enter did not open the page: {log:?}");
    assert_eq!(env.run(&["get", "github", "--field", "status"], None).stdout.trim(), "connected");
}
