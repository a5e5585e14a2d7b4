//! The hostile child (SECURITY.md): `tests/support/hostile_child.py` runs as
//! the command under `run`, `exec` (CI secret in `secret_env`, vault key in
//! `AUTHSOME_VAULT_KEY`), `up`, and `authsome run` in a hook-activated shell,
//! tries every way it knows to obtain a secret, and keeps what it gets. Each
//! test then asserts that no real secret and no vault key is in its loot, and
//! that the fence really refused what the kernel lets it refuse. The `/proc`
//! part runs as root, as an unprivileged user (created with `useradd`), and
//! from another user. Also here: responses quoting the injected key, `NO_PROXY`
//! spellings, direct connections under `deny`, and reserved `[run.env]` names.

use crate::common::echo::Echo;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = crate::common::bin();
const PLACEHOLDER: &str = "authsome-proxy-managed";
const VAULT_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const ACME_KEY: &str = "acme-hostile-secret-7f3a9c1e55";
const SEMR_KEY: &str = "semr+query/key=9b8c7d6e5f";
const BASIC_KEY: &str = "basic-hostile-secret-1a2b3c4d";
const CI_KEY: &str = "ci-secret-from-env-0badc0ffee";
/// An unprivileged user the same-user attacks run as (authsome and child).
const USER: &str = "authsome-hostile";
/// Another local user.
const OTHER: &str = "authsome-other";

/// Providers: `acme` (Bearer header), `semr` (SEMrush-style key in the
/// query), `basicco` (key as HTTP Basic user name).
const PROVIDERS: [(&str, &str); 3] = [
    (
        "acme",
        r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":"api.acme.test",
           "api_key":{"header_name":"Authorization","header_prefix":"Bearer","env_var":"ACME_API_KEY"}}"#,
    ),
    (
        "semr",
        r#"{"name":"semr","auth_type":"api_key","flow":"api_key","api_url":"api.semr.test",
           "api_key":{"location":"query","query_param":"key","env_var":"SEMR_API_KEY"}}"#,
    ),
    (
        "basicco",
        r#"{"name":"basicco","auth_type":"api_key","flow":"api_key","api_url":"api.basic.test",
           "api_key":{"location":"basic","basic_position":"username","env_var":"BASIC_API_KEY"}}"#,
    ),
];
const HOSTS: [&str; 4] = ["api.acme.test", "api.semr.test", "api.basic.test", "other.test"];

/// The kernel's Landlock ABI version (0: none), asked directly.
fn landlock_abi() -> i32 {
    // SAFETY: the documented version query: NULL attributes, size 0, flag 1.
    let v = unsafe { nix::libc::syscall(nix::libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    v.max(0) as i32
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `(uid, gid)` of `name`, created when missing; `None` (with the reason
/// printed) when the test does not run as root.
fn user(name: &str) -> Option<(u32, u32)> {
    if !is_root() {
        println!("skipping the {name} part: creating users needs root");
        return None;
    }
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap();
    if nix::unistd::User::from_name(name).unwrap().is_none() {
        let st = Command::new("useradd").args(["-M", "-s", "/bin/sh", name]).status().expect("useradd");
        assert!(st.success(), "useradd {name}");
    }
    let u = nix::unistd::User::from_name(name).unwrap().unwrap();
    Some((u.uid.as_raw(), u.gid.as_raw()))
}

/// A world for one hostile run: a home with the three providers logged in, a
/// project beside it, a loot directory, and the echo upstream.
struct Hostile {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    proj: PathBuf,
    loot: PathBuf,
    echo: Echo,
    /// Run everything as this user.
    as_user: Option<(u32, u32)>,
    /// Where the vault key comes from: the environment or `<home>/vault.key`.
    key_in_env: bool,
}

impl Hostile {
    fn new(as_user: Option<(u32, u32)>, key_in_env: bool) -> Hostile {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        for d in ["home/providers", "proj", "loot", "userhome"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for (name, def) in PROVIDERS {
            std::fs::write(root.join(format!("home/providers/{name}.json")), def).unwrap();
        }
        let echo = Echo::start(&HOSTS);
        std::fs::copy(&echo.ca_path, root.join("upstream-ca.pem")).unwrap();
        if let Some((uid, gid)) = as_user {
            chown_tree(&root, uid, gid);
        }
        let h = Hostile {
            home: root.join("home"),
            proj: root.join("proj"),
            loot: root.join("loot"),
            root,
            _tmp: tmp,
            echo,
            as_user,
            key_in_env,
        };
        for (name, key) in [("acme", ACME_KEY), ("semr", SEMR_KEY), ("basicco", BASIC_KEY)] {
            let out = h.run_stdin(&["login", name], key);
            assert!(out.status.success(), "login {name}: {}", text(&out));
        }
        h
    }

    fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let mut put = |k: &str, v: &str| env.insert(k.to_owned(), v.to_owned());
        put("PATH", "/usr/local/bin:/usr/bin:/bin");
        put("HOME", &self.root.join("userhome").display().to_string());
        put("LANG", "C.UTF-8");
        put("AUTHSOME_HOME", &self.home.display().to_string());
        put("AUTHSOME_NO_KEYRING", "1");
        put("AUTHSOME_RESOLVE", &HOSTS.iter().map(|h| self.echo.resolve(h)).collect::<Vec<_>>().join(","));
        put("AUTHSOME_UPSTREAM_CA", &self.root.join("upstream-ca.pem").display().to_string());
        put("NO_COLOR", "1");
        if self.key_in_env {
            put("AUTHSOME_VAULT_KEY", VAULT_KEY);
        }
        env
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(&self.proj).env_clear().envs(self.env()).stdin(Stdio::null());
        if let Some((uid, gid)) = self.as_user {
            c.uid(uid).gid(gid);
        }
        c
    }

    fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn write_project(&self, toml: &str) {
        std::fs::write(self.proj.join("authsome.toml"), toml).unwrap();
        if let Some((uid, gid)) = self.as_user {
            chown_tree(&self.proj, uid, gid);
        }
        let out = self.cmd(&["allow"]).output().unwrap();
        assert!(out.status.success(), "allow: {}", text(&out));
    }

    /// The hostile child's argv after `--`.
    fn hostile_argv(&self) -> Vec<String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/hostile_child.py");
        let mut v = vec!["/usr/bin/python3".to_owned(), script.display().to_string(), self.loot.display().to_string()];
        v.push(self.home.display().to_string());
        v.push(BIN.to_owned());
        v.extend(["acme", "semr", "basicco"].map(String::from));
        v
    }

    /// Run `authsome ARGS -- <hostile child>` with extra variables.
    fn attack(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let argv = self.hostile_argv();
        let mut all: Vec<&str> = args.to_vec();
        all.push("--");
        all.extend(argv.iter().map(String::as_str));
        let mut c = self.cmd(&all);
        for (k, v) in extra {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "the hostile child must run to its end: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("hostile child done"), "{}", text(&out));
        out
    }

    /// What the child managed (attempt → success).
    fn results(&self) -> BTreeMap<String, bool> {
        serde_json::from_slice(&std::fs::read(self.loot.join("results.json")).expect("results.json")).unwrap()
    }
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(p).status().unwrap();
    assert!(st.success());
    // The temp directory itself (0700) must be traversable by its new owner.
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn text(out: &Output) -> String {
    format!("{:?}\n--- stdout\n{}\n--- stderr\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The vault key as raw bytes, as it sits in memory.
fn raw_vault_key() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(VAULT_KEY).unwrap()
}

/// Every file the child kept, searched for every secret (and the raw key).
fn assert_no_loot(loot: &Path, secrets: &[&str]) {
    let mut needles: Vec<(String, Vec<u8>)> = secrets.iter().map(|s| (s.to_string(), s.as_bytes().to_vec())).collect();
    needles.push(("raw vault key".into(), raw_vault_key()));
    needles.push(("URL-encoded semr key".into(), b"semr%2Bquery%2Fkey%3D9b8c7d6e5f".to_vec()));
    let mut files = 0;
    for entry in std::fs::read_dir(loot).unwrap() {
        let p = entry.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        files += 1;
        for (name, n) in &needles {
            assert!(!data.windows(n.len()).any(|w| w == n.as_slice()), "the hostile child obtained {name} through {}", p.display());
        }
    }
    assert!(files > 10, "the hostile child kept too little to be credible ({files} files)");
}

/// Where the kernel has Landlock, every door the fence closes was closed.
fn assert_fenced(results: &BTreeMap<String, bool>, unprivileged: bool) {
    if landlock_abi() < 1 {
        println!("not asserting the fence: this kernel has no Landlock");
        return;
    }
    let must_fail = |prefix: &str| {
        // The run's CA bundle (public certificates) is the one file it may read.
        let hits: Vec<_> = results.iter().filter(|(k, _)| k.starts_with(prefix) && !k.ends_with("ca.pem")).collect();
        assert!(!hits.is_empty(), "no {prefix} attempt was made: {results:?}");
        for (k, ok) in hits {
            assert!(!ok, "{k} succeeded under the fence");
        }
    };
    // Listing the home is allowed (names only: every directory above it stays
    // listable); opening anything in it is not.
    for a in ["home-keyfile", "home-vault", "home-file-", "home-write", "authsome-get", "proc-mem-", "proc-root-keyfile-", "ptrace-"] {
        must_fail(a);
    }
    if landlock_abi() >= 6 {
        must_fail("signal-");
    }
    if unprivileged || !is_root() {
        // Root may read /proc entries of any process (out of scope); a user may not.
        must_fail("proc-environ-");
        must_fail("proc-maps-");
        must_fail("proc-fds-");
    }
}

fn all_secrets() -> Vec<&'static str> {
    vec![ACME_KEY, SEMR_KEY, BASIC_KEY, CI_KEY, VAULT_KEY]
}

fn hostile_run(as_user: Option<(u32, u32)>, key_in_env: bool) {
    let h = Hostile::new(as_user, key_in_env);
    h.attack(&["run"], &[]);
    assert_no_loot(&h.loot, &all_secrets());
    assert_fenced(&h.results(), as_user.is_some());
}

#[test]
fn under_run_the_child_obtains_nothing() {
    hostile_run(None, true);
    hostile_run(None, false);
}

#[test]
fn under_run_an_unprivileged_child_obtains_nothing() {
    let Some(u) = user(USER) else { return };
    hostile_run(Some(u), true);
    hostile_run(Some(u), false);
}

fn hostile_exec(as_user: Option<(u32, u32)>) {
    // CI: the acme key comes from secret_env; the others from the vault (key in the environment).
    let h = Hostile::new(as_user, true);
    h.write_project("[providers.acme]\nsecret_env = \"ACME_CI_KEY\"\n[providers.semr]\n[providers.basicco]\n");
    h.attack(&["exec"], &[("ACME_CI_KEY", CI_KEY)]);
    assert_no_loot(&h.loot, &all_secrets());
    let results = h.results();
    assert_fenced(&results, as_user.is_some());
    let pids =
        std::fs::read_dir(&h.loot).unwrap().filter_map(|e| e.ok()).find(|e| e.file_name().to_string_lossy().ends_with("authsome-pids"));
    assert!(pids.is_some(), "the child looked for exec's proxy helper");
    assert!(results.keys().filter(|k| k.starts_with("proc-environ-")).count() >= 2, "the helper was attacked too: {results:?}");
}

#[test]
fn under_exec_the_child_obtains_neither_the_ci_secret_nor_the_vault_key() {
    hostile_exec(None);
    if let Some(u) = user(USER) {
        hostile_exec(Some(u));
    }
}

#[test]
fn under_up_the_child_obtains_nothing() {
    // As the current user, then (when root) as an unprivileged one.
    let unprivileged = user(USER);
    for as_user in std::iter::once(None).chain(unprivileged.map(Some)) {
        let h = Hostile::new(as_user, true);
        h.write_project("[providers.acme]\n[providers.semr]\n[providers.basicco]\n");
        h.attack(&["up"], &[]);
        assert_no_loot(&h.loot, &all_secrets());
        assert_fenced(&h.results(), as_user.is_some());
    }
}

#[test]
fn in_a_hook_activated_shell_authsome_run_keeps_the_child_from_the_daemon_too() {
    // The key in a file: an activated shell drops AUTHSOME_VAULT_KEY from its environment.
    let h = Hostile::new(None, false);
    h.write_project("[providers.acme]\n[providers.semr]\n");
    let mut env = h.env();
    env.insert("AUTHSOME_DAEMON_LINGER".into(), "0.2".into());
    env.insert("TERM".into(), "xterm-256color".into());
    let mut sh = crate::common::shell::Tmux::start(crate::common::shell::Kind::BashString, &h.root, &h.proj, &env);
    let active = sh.env();
    assert_eq!(active.get("ACME_API_KEY").map(String::as_str), Some(PLACEHOLDER), "the shell is activated");
    let argv: Vec<String> = h.hostile_argv().iter().map(|a| format!("'{a}'")).collect();
    let out = sh.capture(&format!("'{BIN}' run -- {}", argv.join(" ")));
    assert!(String::from_utf8_lossy(&out).contains("hostile child done"), "{}", sh.screen());
    let results = h.results();
    let pids = std::fs::read_to_string(
        std::fs::read_dir(&h.loot)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with("authsome-pids"))
            .unwrap()
            .path(),
    )
    .unwrap();
    assert!(pids.split(' ').count() >= 2, "the daemon was among the targets: {pids}");
    assert_no_loot(&h.loot, &all_secrets());
    assert_fenced(&results, false);
}

#[test]
fn without_the_fence_a_same_user_child_still_cannot_read_authsome_processes() {
    // PR_SET_DUMPABLE alone, as an unprivileged user: /proc/PID/environ, mem,
    // maps and fd of every authsome process are closed to the same user.
    let Some(u) = user(USER) else { return };
    let h = Hostile::new(Some(u), true);
    h.attack(&["run", "--no-fence"], &[]);
    let results = h.results();
    for (k, ok) in &results {
        if ["proc-environ-", "proc-mem-", "proc-maps-", "proc-fds-", "ptrace-"].iter().any(|p| k.starts_with(p)) {
            assert!(!ok, "{k} succeeded against a non-dumpable authsome");
        }
    }
    assert!(results.get("home-keyfile").is_some_and(|ok| !ok) || !h.home.join("vault.key").exists());
    assert_no_loot_except_home(&h.loot);
}

/// Without the fence the child can read the home (that is what the fence is
/// for); the /proc attempts must still have yielded nothing.
fn assert_no_loot_except_home(loot: &Path) {
    for entry in std::fs::read_dir(loot).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.contains("proc-") {
            continue;
        }
        let data = std::fs::read(&p).unwrap();
        for s in [ACME_KEY, VAULT_KEY] {
            assert!(!data.windows(s.len()).any(|w| w == s.as_bytes()), "{name} holds a secret");
        }
    }
}

#[test]
fn another_user_cannot_read_a_running_authsome() {
    let Some(u) = user(USER) else { return };
    let Some((ouid, ogid)) = user(OTHER) else { return };
    let h = Hostile::new(Some(u), true);
    let ready = h.root.join("loot/ready");
    let mut run = h
        .cmd(&["run", "--", "sh", "-c", &format!("touch '{}'; sleep 30", ready.display())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !ready.exists() {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "run did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = run.id();
    let probe = format!(
        "import sys\nfor f in ['environ','mem','maps','cwd']:\n  try:\n    open('/proc/{pid}/'+f,'rb').read(64); print(f,'READ')\n  except OSError as e: print(f,'denied')\n"
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(probe).uid(ouid).gid(ogid).output().unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = run.wait();
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.matches("denied").count(), 4, "another user read a running authsome: {s}{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn injected_values_never_come_back_in_responses() {
    let h = Hostile::new(None, true);
    // Each provider's API quotes the request: body (URL and headers), Location,
    // Link, and a gzip body when the client accepts one.
    let urls = [
        "https://api.acme.test/echo",
        "https://api.acme.test/reflect?x=1",
        "https://api.acme.test/gzip",
        "https://api.semr.test/echo?q=1",
        "https://api.semr.test/reflect?q=1",
        "https://api.semr.test/gzip?q=1",
        "https://api.basic.test/echo",
        "https://api.basic.test/reflect?b=1",
    ];
    let script: Vec<String> = urls
        .iter()
        .map(|u| format!("curl -sS -i --compressed -H \"Authorization: Bearer $ACME_API_KEY\" -u \"$BASIC_API_KEY:\" '{u}'; echo"))
        .collect();
    let out = h.cmd(&["run", "--", "sh", "-c", &script.join("\n")]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{BASIC_KEY}:"));
    for s in [ACME_KEY, SEMR_KEY, BASIC_KEY, "semr%2Bquery%2Fkey%3D9b8c7d6e5f", basic.as_str()] {
        assert!(!stdout.contains(s), "a response relayed {s}:\n{stdout}");
    }
    // The upstream did get them, and saw them quoted back in place of the placeholder.
    let seen = h.echo.seen();
    assert_eq!(seen.len(), urls.len(), "{seen:?}");
    assert!(seen.iter().any(|s| s.target.contains("key=semr%2Bquery%2Fkey%3D9b8c7d6e5f")), "{seen:?}");
    assert!(seen.iter().any(|s| s.header("authorization") == vec![format!("Bearer {ACME_KEY}")]));
    for s in &seen {
        assert_eq!(s.header("accept-encoding"), vec!["identity".to_owned()], "injected requests ask for identity: {s:?}");
    }
    assert!(stdout.contains("location: https://api.semr.test/reflect?q=1&key=authsome-proxy-managed"), "{stdout}");
    assert!(stdout.contains("link: <https://api.semr.test/reflect?q=1&key=authsome-proxy-managed&page=2>"), "{stdout}");
    assert!(stdout.contains(&format!("Bearer {PLACEHOLDER}")), "the echoed header shows the placeholder: {stdout}");
}

#[test]
fn declared_hosts_never_stay_in_no_proxy_whatever_the_spelling() {
    let h = Hostile::new(None, true);
    let no_proxy = "API.ACME.TEST.,.api.semr.test.,*.basic.test,*.acme.test.,api.acme.test.:443,internal.corp";
    let out = h
        .cmd(&["run", "--", "sh", "-c", "echo \"NO_PROXY=$NO_PROXY\"; echo \"no_proxy=$no_proxy\""])
        .env("NO_PROXY", no_proxy)
        .env("no_proxy", "Api.Semr.Test.")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("NO_PROXY=internal.corp\n"), "{stdout}");
    assert!(stdout.contains("no_proxy=\n"), "{stdout}");
}

/// A client that ignores the proxy variables goes straight to the upstream.
fn direct_curl(echo: &Echo) -> String {
    format!(
        "curl -sS -o /dev/null -w '%{{http_code}}' --noproxy '*' --cacert '{}' --resolve other.test:{p}:127.0.0.1 https://other.test:{p}/direct; echo \" exit=$?\"",
        echo.ca_path.display(),
        p = echo.port
    )
}

#[test]
fn deny_makes_direct_connections_fail_where_the_kernel_fences_tcp() {
    let h = Hostile::new(None, true);
    let out = h.cmd(&["run", "--", "sh", "-c", &direct_curl(&h.echo)]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("200 exit=0"), "without deny a direct connection works: {}", text(&out));
    if landlock_abi() < 4 {
        println!("not asserting the TCP fence: Landlock ABI {} has no network rules", landlock_abi());
        return;
    }
    let out = h.cmd(&["run", "--deny-undeclared", "--", "sh", "-c", &direct_curl(&h.echo)]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("exit=7"), "run --deny-undeclared: the direct connection must fail: {}", text(&out));
    // Through the proxy, declared hosts still work.
    let out =
        h.cmd(&["run", "--deny-undeclared", "--", "curl", "-sS", "-f", "-o", "/dev/null", "https://api.acme.test/ok"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    h.write_project("[providers.acme]\n[proxy]\nundeclared_hosts = \"deny\"\n");
    let out = h.cmd(&["exec", "--", "sh", "-c", &direct_curl(&h.echo)]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("exit=7"), "exec with deny: {}", text(&out));
}

#[test]
fn run_env_cannot_set_names_authsome_or_the_loader_own() {
    let h = Hostile::new(None, true);
    for (name, col) in [
        ("__authsome_state", 1),
        ("AUTHSOME_HOME", 1),
        ("LD_PRELOAD", 1),
        ("DYLD_INSERT_LIBRARIES", 1),
        ("BASH_ENV", 1),
        ("PROMPT_COMMAND", 1),
    ] {
        std::fs::write(h.proj.join("authsome.toml"), format!("[providers.acme]\n[run.env]\nOK = \"1\"\n{name} = \"x\"\n")).unwrap();
        let out = h.cmd(&["allow"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("authsome.toml:4:{col}")) && err.contains(name), "{name}: {err}");
    }
}

#[test]
fn turning_the_fence_off_is_covered_by_trust_and_really_turns_it_off() {
    let h = Hostile::new(None, true);
    h.write_project("[providers.acme]\n");
    let read_key = format!("cat '{}' >/dev/null && echo READ || echo DENIED", h.home.join("vaults/default.vault").display());
    let out = h.cmd(&["exec", "--", "sh", "-c", &read_key]).output().unwrap();
    if landlock_abi() >= 1 {
        assert!(String::from_utf8_lossy(&out.stdout).contains("DENIED"), "{}", text(&out));
    }
    std::fs::write(h.proj.join("authsome.toml"), "[providers.acme]\n[run]\nfence = false\n").unwrap();
    let out = h.cmd(&["exec", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "turning the fence off asks for allow again: {}", text(&out));
    let out = h.cmd(&["allow"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fence") || String::from_utf8_lossy(&out.stderr).contains("fence"),
        "allow shows it: {}",
        text(&out)
    );
    let out = h.cmd(&["exec", "--", "sh", "-c", &read_key]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("READ"), "{}", text(&out));
    let out = h.cmd(&["run", "--no-fence", "--", "sh", "-c", &read_key]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("READ"), "{}", text(&out));
}

#[test]
fn doctor_says_whether_the_fence_is_available() {
    let h = Hostile::new(None, true);
    let out = h.cmd(&["doctor"]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let line = s.lines().find(|l| l.contains("fence")).unwrap_or_else(|| panic!("{s}"));
    if landlock_abi() >= 1 {
        assert!(line.contains(&format!("Landlock ABI {}", landlock_abi())), "{line}");
    } else {
        assert!(line.contains("unavailable"), "{line}");
    }
}

#[test]
fn abstract_sockets_outside_the_fence_are_closed_and_the_childs_own_work_goes_on() {
    use std::os::linux::net::SocketAddrExt;
    let h = Hostile::new(None, true);
    let name = format!("authsome-hostile-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    // The child connects to an abstract socket outside its tree (a keyring or
    // D-Bus stand-in), then does ordinary work: signals its own child, writes
    // its own files, reads the project.
    let script = format!(
        "import os, signal, socket, subprocess\n\
         s = socket.socket(socket.AF_UNIX)\n\
         try:\n    s.connect('\\0{name}'); print('abstract: connected')\n\
         except OSError as e: print('abstract: refused', e.errno)\n\
         p = subprocess.Popen(['sleep', '30']); os.kill(p.pid, signal.SIGTERM); print('own child:', p.wait())\n\
         open('written-by-child', 'w').write('x'); print('wrote:', open('written-by-child').read())\n\
         print('project:', open('authsome.toml').read().strip())\n"
    );
    std::fs::write(h.proj.join("authsome.toml"), "[providers.acme]\n").unwrap();
    let out = h.cmd(&["run", "--", "/usr/bin/python3", "-c", &script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("own child: -15") && stdout.contains("wrote: x") && stdout.contains("project: [providers.acme]"), "{stdout}");
    if landlock_abi() >= 6 {
        assert!(stdout.contains("abstract: refused 1"), "EPERM expected: {stdout}");
    } else {
        println!("not asserting abstract socket scoping: Landlock ABI {} < 6", landlock_abi());
    }
    let out = h.cmd(&["run", "--no-fence", "--", "/usr/bin/python3", "-c", &script]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("abstract: connected"), "unfenced, it connects: {}", text(&out));
}
