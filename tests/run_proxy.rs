//! `authsome run` end to end: real clients through the real binary's proxy to a
//! local HTTPS echo upstream.

mod common;

use common::proxy::{assert_no_secrets, text, World, ACME_KEY};

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
