//! The client-credentials form in real headless Chromium (Debian packages
//! `chromium` and `chromium-driver`), driven through chromedriver's WebDriver
//! API by `tests/support/chromium_browser.py`, with JavaScript disabled.

use crate::common::fake_as::{Config, FakeAs};
use crate::common::login_env::{assert_no_secrets, free_addr, support, LoginEnv};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver() -> (Driver, String) {
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    assert!(
        std::path::Path::new(&bin).exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "this test needs Chromium: apt-get install chromium chromium-driver"
    );
    let addr = free_addr();
    let child = Command::new(&bin)
        .arg(format!("--port={}", addr.port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let url = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            let (status, _, body) = crate::common::fake_as::http_get(&format!("{url}/status"));
            if status == 200 && body.contains("\"ready\":true") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "chromedriver did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (driver, url)
}

#[test]
fn chromium_fills_the_client_form_and_the_login_completes() {
    let (_driver, wd_url) = start_chromedriver();
    let fake = FakeAs::start(Config { granted_scope: Some("identify email guilds connections".into()), ..Config::default() });
    let mut env = LoginEnv::new();
    env.install_provider(&fake.discord_provider());
    let c = fake.config();
    let secret = c.client_secret.clone().unwrap();
    env.use_fake_browser(serde_json::json!({"client_id": c.client_id, "client_secret": secret}));
    env.set("BROWSER", &support("chromium_browser.py").display().to_string());
    env.set("WEBDRIVER_URL", &wd_url);

    let login = env.run(&["login", "discord"], None);
    assert_eq!(login.code, 0, "{}\nbrowser log: {:?}", login.all(), env.browser_log());

    let log = env.wait_browser_log(2);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["kind"], "client_form");
    assert_eq!(log[0]["redirect_uri_shown"], format!("http://{}/auth/callback/oauth", env.callback));
    assert_eq!(log[0]["heading"], "Client credentials saved");
    assert_eq!(log[1]["kind"], "authorize");
    assert_eq!(log[1]["heading"], "Connected to Discord");

    // The secret typed into the form is the one authsome authenticated with.
    let token = &fake.token_requests("authorization_code")[0];
    assert_eq!(token.form["client_secret"], secret, "Discord's definition sends the client credentials in the body");
    assert!(!fake.requests_to("authorize")[0].query.contains_key("code_challenge"));
    assert_eq!(env.vault().clients["discord"].client_secret.as_ref().unwrap().expose(), secret);
    let status = env.run(&["get", "discord", "--field", "status"], None);
    assert_eq!(status.stdout.trim(), "connected");
    assert_no_secrets(&fake.secrets(), &[&login, &status]);
}
