//! A test world for `authsome run`: a temp home with custom providers, a fixed
//! vault key, and an echo upstream reached through AUTHSOME_RESOLVE.

use super::echo::Echo;
use std::process::{Command, Output, Stdio};

/// Fixed test vault key (base64 of 32 bytes), also set in this test process
/// so the library API can write the vault.
/// The API key stored for `acme`.
pub const ACME_KEY: &str = "acme-real-key-0123456789";
/// The OAuth access token stored for `octo` and `github`.
pub const OCTO_TOKEN: &str = "octo-real-token-abcdef";
pub const GH_TOKEN: &str = "gho_realtoken0123456789";

/// `acme`: API key as `Authorization: Bearer`; `octo`: OAuth with its token
/// endpoint on the API host; `other.test` is declared by nobody.
pub const HOSTS: [&str; 5] = ["api.acme.test", "api.octo.test", "api.github.com", "other.test", "b.octo.test"];

const ACME: &str = r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":"api.acme.test",
 "api_key":{"header_name":"Authorization","header_prefix":"Bearer","env_var":"ACME_API_KEY"},"export":{"ACME_API_KEY":"API_KEY"}}"#;
const OCTO: &str = r#"{"name":"octo","auth_type":"oauth2","flow":"pkce","api_url":["api.octo.test","b.octo.test"],
 "oauth":{"authorization_url":"https://api.octo.test/oauth/authorize","token_url":"https://api.octo.test/oauth/token"},
 "export":{"OCTO_TOKEN":"ACCESS_TOKEN","OCTO_REFRESH":"REFRESH_TOKEN"}}"#;

pub struct World {
    pub home: tempfile::TempDir,
    /// Beside the home (never inside it: a child is fenced from the home):
    /// `$HOME`, gh's config, projects.
    pub outside: tempfile::TempDir,
    pub echo: Echo,
}

impl World {
    /// A home with `acme` logged in (via the CLI) and `octo` + `github` tokens
    /// written through the library API.
    pub fn new() -> World {
        super::process_env();
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("providers")).unwrap();
        std::fs::write(home.path().join("providers/acme.json"), ACME).unwrap();
        std::fs::write(home.path().join("providers/octo.json"), OCTO).unwrap();
        let echo = Echo::start(&HOSTS);
        let w = World { home, outside: tempfile::tempdir().unwrap(), echo };
        let out = w.run_with_stdin(&["login", "acme"], ACME_KEY);
        assert!(out.status.success(), "login failed: {}", String::from_utf8_lossy(&out.stderr));
        w.store_token("octo", OCTO_TOKEN);
        w.store_token("github", GH_TOKEN);
        w
    }

    /// Store an OAuth connection through `authsome::vault::Vault`.
    pub fn store_token(&self, provider: &str, token: &str) {
        let home = authsome::paths::Home::at(self.home.path(), "default");
        let vault = authsome::vault::Vault::open(&home).unwrap();
        vault
            .update(|d| {
                let mut c = authsome::vault::Connection::oauth(provider, "default", authsome::secret::Secret::new(token));
                c.refresh_token = Some(authsome::secret::Secret::new(format!("{token}-refresh")));
                d.put_connection(c);
                Ok(())
            })
            .unwrap();
    }

    /// The binary with this world's environment (and no inherited proxy settings).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(super::bin());
        c.args(args)
            .env("AUTHSOME_HOME", self.home.path())
            .env("AUTHSOME_VAULT_KEY", super::VAULT_KEY)
            .env("AUTHSOME_RESOLVE", HOSTS.iter().map(|h| self.echo.resolve(h)).collect::<Vec<_>>().join(","))
            .env("AUTHSOME_UPSTREAM_CA", &self.echo.ca_path)
            .env("NO_COLOR", "1")
            .env("GH_CONFIG_DIR", self.outside.path().join("gh"))
            .env("GH_NO_UPDATE_NOTIFIER", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("HOME", self.outside.path())
            .stdin(Stdio::null());
        for v in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"] {
            c.env_remove(v);
        }
        c
    }

    /// Run to completion and capture output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// The audit log, parsed.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        match std::fs::read_to_string(self.home.path().join("audit.log")) {
            Ok(t) => t.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Files left in `<home>/run`.
    pub fn run_dir_files(&self) -> Vec<String> {
        match std::fs::read_dir(self.home.path().join("run")) {
            Ok(d) => d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Assert that no secret of the world appears in `out`.
pub fn assert_no_secrets(out: &Output) {
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for s in [ACME_KEY, OCTO_TOKEN, GH_TOKEN, super::VAULT_KEY] {
        assert!(!all.contains(s), "a secret leaked into the output:\n{all}");
    }
}

/// Output as text, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
