//! The team store against a real PostgreSQL (README, "Team store"). Each
//! "host" is its own authsome home (its own machine-wide refresh lock, no
//! shared files) sharing one store; the hosts are plain processes on loopback,
//! not network namespaces. The fake authorization server runs in strict
//! rotation mode: a second use of any refresh token is `invalid_grant` and
//! revokes the family, so any double spend shows up.

use crate::common::echo::Echo;
use crate::common::fake_as::{Config, FakeAs};
use crate::common::login_env::{assert_no_secrets, finish, LoginEnv, Out};
use crate::common::pg;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STORE_ID: &str = "acme";

fn random_key() -> String {
    use base64::Engine as _;
    let mut key = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Run `authsome ARGS` on `host` again and again until `stop`; returns the stderr of each failed run.
fn keep_running(host: &LoginEnv, args: &[&str], stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    let cmd = host.cmd(args);
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))).collect();
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut failures = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let out = std::process::Command::new(&prog).args(&args).env_clear().envs(envs.clone()).stdin(Stdio::null()).output().unwrap();
            if !out.status.success() {
                failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        failures
    })
}

/// One team: a fresh database, a team key, and the fake provider.
struct Team {
    db: String,
    key: String,
    fake: FakeAs,
}

impl Team {
    /// `None` when PostgreSQL is unavailable outside CI (the test says so).
    fn new(config: Config) -> Option<Team> {
        let admin = pg::available()?;
        Some(Team { db: pg::fresh_db(&admin), key: random_key(), fake: FakeAs::start(config) })
    }

    /// A host: its own home, the Discord-shaped provider, the store settings.
    fn host(&self) -> LoginEnv {
        let mut env = LoginEnv::with_discord(&self.fake);
        env.set("AUTHSOME_STORE", &self.db);
        env.set("AUTHSOME_STORE_ID", STORE_ID);
        env.set("AUTHSOME_STORE_KEY", &self.key);
        env
    }

    /// The records as the team store holds them, opened with the team key.
    fn records(&self, host: &LoginEnv) -> authsome::vault::VaultData {
        let home = authsome::paths::Home::at(host.home(), "default");
        let cfg = authsome::store::select::PgConfig { url: self.db.clone(), id: STORE_ID.into(), ca: None };
        let store = authsome::store::pg::PgStore::with_team_key(&home, cfg, &self.key).unwrap();
        store.load_fresh().unwrap()
    }

    fn access_token(&self, host: &LoginEnv) -> String {
        self.records(host).connection("discord", None).unwrap().access_token.as_ref().unwrap().expose().to_owned()
    }

    /// Initialise the store from `host` and log in to Discord there.
    fn init_and_login(&self, host: &LoginEnv) {
        let init = host.run(&["store", "init"], None);
        assert_eq!(init.code, 0, "{}", init.all());
        assert!(init.stderr.contains("created"), "{}", init.all());
        let login = host.run(&["login", "discord"], None);
        assert_eq!(login.code, 0, "{}", login.all());
    }

    fn audit(&self) -> Vec<(String, String)> {
        pg::psql(&self.db, "SELECT action, coalesce(reason, '') FROM authsome_audit ORDER BY id")
            .lines()
            .map(|l| {
                let (a, r) = l.split_once('|').unwrap_or((l, ""));
                (a.to_owned(), r.to_owned())
            })
            .collect()
    }
}

/// Another view of `host`'s home (same files, its own variables).
fn same_home(host: &LoginEnv) -> LoginEnv {
    let mut env = LoginEnv::new();
    env.set("AUTHSOME_HOME", &host.home().display().to_string());
    env.vars.extend(host.vars.iter().filter(|(k, _)| k != "AUTHSOME_HOME").cloned());
    env
}

/// Refresh-token values presented to the token endpoint, in order.
fn refresh_uses(fake: &FakeAs) -> Vec<String> {
    fake.token_requests("refresh_token").iter().map(|r| r.form["refresh_token"].clone()).collect()
}

fn spawn(host: &LoginEnv, args: &[&str]) -> std::process::Child {
    host.cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn a_login_on_one_host_is_used_on_another_and_the_database_never_sees_a_secret() {
    let Some(team) = Team::new(Config { strict_rotation: true, ..Config::default() }) else { return };
    let (h1, mut h2) = (team.host(), team.host());
    team.init_and_login(&h1);
    let status = h2.run(&["get", "discord", "--field", "status"], None);
    assert_eq!((status.code, status.stdout.trim()), (0, "connected"), "{}", status.all());
    // The second host's init finds the store and accepts its key.
    let again = h2.run(&["store", "init"], None);
    assert!(again.code == 0 && again.stderr.contains("already initialised"), "{}", again.all());

    // The child never sees the store's URL, password or key.
    h2.set("AUTHSOME_STORE_PASSWORD", "hunter2-not-used");
    let env = h2.run(&["run", "--", "env"], None);
    assert_eq!(env.code, 0, "{}", env.all());
    for var in ["AUTHSOME_STORE=", "AUTHSOME_STORE_PASSWORD=", "AUTHSOME_STORE_KEY=", "AUTHSOME_VAULT_KEY="] {
        assert!(!env.stdout.lines().any(|l| l.starts_with(var)), "{var} reached the child:\n{}", env.stdout);
    }
    assert!(!env.stdout.contains(&team.key) && !env.stdout.contains(&team.db));

    // pg_dump: names and versions, never a token, a client secret or the key.
    let dump = pg::pg_dump(&team.db);
    assert!(dump.contains("discord"), "the dump is of the right database");
    let mut secrets = team.fake.secrets();
    secrets.push(team.fake.config().client_secret.unwrap());
    secrets.push(team.key.clone());
    for s in &secrets {
        assert!(!dump.contains(s.as_str()), "a secret is readable in pg_dump");
    }
    assert!(team.audit().iter().any(|(a, _)| a == "login"), "the login is audited in the store");
    let status = h1.run(&["store", "status"], None);
    assert!(status.code == 0 && status.stdout.contains("key_check") && status.stdout.contains("ok"), "{}", status.all());
    assert_no_secrets(&secrets, &[&status, &again, &env]);
}

#[test]
fn a_host_with_the_wrong_team_key_reads_and_writes_nothing() {
    let Some(team) = Team::new(Config::default()) else { return };
    let h1 = team.host();
    team.init_and_login(&h1);
    let before = pg::pg_dump(&team.db);
    let mut intruder = team.host();
    intruder.set("AUTHSOME_STORE_KEY", &random_key());
    let login = intruder.run(&["login", "openai"], Some("sk-intruder-0123456789abcdefghij"));
    assert_eq!(login.code, 4, "{}", login.all());
    assert!(login.stderr.contains("key check failed") && login.stderr.contains("nothing was read or written"), "{}", login.all());
    let get = intruder.run(&["get", "discord"], None);
    assert_eq!(get.code, 4, "{}", get.all());
    let after = pg::pg_dump(&team.db);
    assert!(pg::same_content(&before, &after), "the database is unchanged:\n{after}");
    assert!(!after.contains("sk-intruder"));
}

#[test]
fn four_hosts_of_25_processes_spend_the_refresh_token_exactly_once() {
    let Some(team) = Team::new(Config { strict_rotation: true, expires_in: Some(60), ..Config::default() }) else { return };
    let hosts: Vec<LoginEnv> = (0..4).map(|_| team.host()).collect();
    team.init_and_login(&hosts[0]);
    let before = team.access_token(&hosts[0]);
    team.fake.configure(|c| c.expires_in = Some(3600));
    let children: Vec<_> = hosts.iter().flat_map(|h| (0..25).map(move |_| spawn(h, &["refresh", "discord"]))).collect();
    let outs: Vec<Out> = children.into_iter().map(finish).collect();
    let uses = refresh_uses(&team.fake);
    assert_eq!(uses.len(), 1, "exactly one refresh-token use across 100 processes on 4 hosts");
    assert_eq!(team.fake.reuse_detected(), 0);
    let after = team.access_token(&hosts[0]);
    assert_ne!(after, before);
    assert_eq!(&after, team.fake.access_tokens().last().unwrap(), "the store holds the newest token");
    let expiry = authsome::fmt_time(team.records(&hosts[0]).connection("discord", None).unwrap().expires_at.unwrap());
    for o in &outs {
        assert_eq!(o.code, 0, "{}", o.all());
        assert!(o.stderr.contains(&format!("valid until {expiry}")), "every process ends with the new token: {}", o.all());
    }
    assert_eq!(outs.iter().filter(|o| o.stderr.contains(": refreshed,")).count(), 1, "exactly one process refreshed");
    let refreshes: Vec<_> = team.audit().into_iter().filter(|(a, _)| a == "refresh").collect();
    assert_eq!(refreshes.len(), 1, "one refresh audit row: {refreshes:?}");
    let refs: Vec<&Out> = outs.iter().collect();
    assert_no_secrets(&team.fake.secrets(), &refs);
}

#[test]
fn fifty_expiry_cycles_from_four_hosts_never_fork_the_refresh_token_chain() {
    // Tokens live 301 s: within the 300 s refresh margin one second after issue.
    let Some(team) = Team::new(Config { strict_rotation: true, expires_in: Some(301), ..Config::default() }) else { return };
    let hosts: Vec<LoginEnv> = (0..4).map(|_| team.host()).collect();
    team.init_and_login(&hosts[0]);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = hosts.iter().flat_map(|h| [h, h]).map(|h| keep_running(h, &["refresh", "discord"], &stop)).collect();
    let done = pg::wait_until(Duration::from_secs(150), || refresh_uses(&team.fake).len() >= 50);
    stop.store(true, Ordering::SeqCst);
    assert!(done, "50 cycles within the time limit (got {})", refresh_uses(&team.fake).len());
    let failures: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let uses = refresh_uses(&team.fake);
    let distinct: std::collections::HashSet<&String> = uses.iter().collect();
    assert_eq!(distinct.len(), uses.len(), "no refresh token was presented twice");
    assert_eq!(team.fake.reuse_detected(), 0);
    assert!(failures.is_empty(), "every run succeeded: {failures:?}");
    // The chain: each use presents the token issued by the previous one, and the store holds the last.
    let rt = team.records(&hosts[0]).connection("discord", None).unwrap().refresh_token.clone().unwrap();
    assert_eq!(team.fake.live_refresh_tokens(), vec![rt.expose().to_owned()], "one live refresh token, the stored one");
}

#[test]
fn a_lease_holder_killed_before_sending_is_taken_over_after_its_lease() {
    let Some(team) = Team::new(Config { strict_rotation: true, expires_in: Some(60), ..Config::default() }) else { return };
    let (mut h1, mut h2) = (team.host(), team.host());
    team.init_and_login(&h1);
    team.fake.configure(|c| c.expires_in = Some(3600));
    for h in [&mut h1, &mut h2] {
        h.set("AUTHSOME_REFRESH_LEASE_SECS", "3");
    }
    h1.set("AUTHSOME_TEST_PAUSE_AFTER_LEASE", "60000");
    let mut holder = spawn(&h1, &["refresh", "discord"]);
    assert!(
        pg::wait_until(Duration::from_secs(20), || pg::psql(
            &team.db,
            "SELECT count(*) FROM authsome_refresh_leases WHERE holder IS NOT NULL"
        )
        .trim()
            == "1"),
        "the first host took the lease"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let start = Instant::now();
    let out = h2.run(&["refresh", "discord"], None);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains(": refreshed,"), "{}", out.all());
    assert!(start.elapsed() < Duration::from_secs(15), "taken over after the 3 s lease, not later");
    assert_eq!(refresh_uses(&team.fake).len(), 1, "the killed holder sent nothing; one use");
    let audit = team.audit();
    let takeover = audit.iter().find(|(a, _)| a == "lease_expired_takeover").expect("takeover audited");
    assert!(takeover.1.contains("never finished"), "{takeover:?}");
    assert!(audit.iter().any(|(a, _)| a == "refresh"));
    let log = h2.run(&["log", "--store"], None);
    assert!(log.code == 0 && log.stdout.contains("lease_expired_takeover"), "{}", log.all());
}

#[test]
fn a_lease_holder_killed_after_the_provider_rotated_ends_in_a_clear_relogin() {
    let Some(team) = Team::new(Config { strict_rotation: true, expires_in: Some(0), ..Config::default() }) else { return };
    let (mut h1, mut h2) = (team.host(), team.host());
    team.init_and_login(&h1);
    let spent = team.records(&h1).connection("discord", None).unwrap().refresh_token.clone().unwrap();
    for h in [&mut h1, &mut h2] {
        h.set("AUTHSOME_REFRESH_LEASE_SECS", "4");
    }
    // The provider rotates, then holds its answer while we kill the holder.
    team.fake.configure(|c| c.token_response_delay = Duration::from_secs(30));
    let mut holder = spawn(&h1, &["refresh", "discord"]);
    assert!(pg::wait_until(Duration::from_secs(20), || refresh_uses(&team.fake).len() == 1), "the holder sent its request");
    holder.kill().unwrap();
    holder.wait().unwrap();
    team.fake.configure(|c| c.token_response_delay = Duration::ZERO);
    let out = h2.run(&["refresh", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("invalid_grant") && out.stderr.contains("never finished"), "names the interrupted attempt: {}", out.all());
    assert!(out.stderr.contains("authsome login discord"), "{}", out.all());
    let reason = h2.run(&["get", "discord", "--field", "status_reason"], None);
    assert!(reason.stdout.contains("taken over from") && reason.stdout.contains("/pid "), "{}", reason.all());
    // Only the spent token was ever presented, never one we did not store.
    assert!(refresh_uses(&team.fake).iter().all(|u| u == spent.expose()));
    assert!(team.audit().iter().any(|(a, _)| a == "lease_expired_takeover"));
    assert!(team.audit().iter().any(|(a, r)| a == "refresh_failed" && r.contains("invalid_grant")));
}

#[test]
fn a_login_on_one_host_reaches_a_running_proxy_on_another_within_a_second() {
    let Some(team) = Team::new(Config::default()) else { return };
    let echo = Echo::start(&["api.openai.com"]);
    let (h1, mut h2) = (team.host(), team.host());
    let init = h1.run(&["store", "init"], None);
    assert_eq!(init.code, 0, "{}", init.all());
    let key1 = "sk-teamkeyone-0123456789abcdefghij";
    let key2 = "sk-teamkeytwo-0123456789abcdefghij";
    assert_eq!(h1.run(&["login", "openai"], Some(key1)).code, 0);
    h2.upstream(&echo, "api.openai.com");
    // A long cache bound: only a notification can make the proxy see the new key in time.
    h2.set("AUTHSOME_STORE_CACHE_SECS", "60");
    // One request at a time, each stamped just before it is sent: the n-th stamp is the n-th request the upstream saw.
    let script = "for i in $(seq 1 60); do date +%s.%N; curl -s -o /dev/null https://api.openai.com/v1/models; sleep 0.05; done";
    let proxy = spawn(&h2, &["run", "--", "sh", "-c", script]);
    std::thread::sleep(Duration::from_millis(2500));
    let login = h1.run(&["login", "openai", "--force"], Some(key2));
    assert_eq!(login.code, 0, "{}", login.all());
    let logged_in_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let out = finish(proxy);
    assert_eq!(out.code, 0, "{}", out.all());
    let stamps: Vec<f64> = out.stdout.lines().map(|l| l.trim().parse().unwrap()).collect();
    let seen = echo.seen();
    assert_eq!(seen.len(), stamps.len(), "every request reached the upstream");
    let sent: Vec<(f64, String)> = stamps.iter().zip(&seen).map(|(t, s)| (*t, s.header("authorization").join(","))).collect();
    assert!(sent.iter().any(|(_, a)| a == &format!("Bearer {key1}")), "the first key was served: {sent:?}");
    let late: Vec<_> = sent.iter().filter(|(t, _)| *t > logged_in_at + 1.0).collect();
    assert!(!late.is_empty(), "requests after the login: {sent:?}");
    assert!(late.iter().all(|(_, a)| a == &format!("Bearer {key2}")), "within 1 s every request carries the new key: {late:?}");
    // Every injection is a row in the store (no query string, no key), readable from any host.
    let injected = pg::psql(
        &team.db,
        "SELECT count(*) FROM authsome_audit WHERE action = 'inject' AND target_host = 'api.openai.com' AND path = '/v1/models'",
    );
    assert_eq!(injected.trim(), sent.len().to_string(), "one audit row per injection");
    let log = h1.run(&["log", "--store", "-n", "5"], None);
    assert!(log.code == 0 && log.stdout.contains("GET api.openai.com/v1/models 200"), "{}", log.all());
    let dump = pg::pg_dump(&team.db);
    assert!(!dump.contains("sk-teamkey"), "no key in the database");
}

#[test]
fn a_host_cut_off_from_the_database_fails_clearly_and_the_others_are_unaffected() {
    let Some(team) = Team::new(Config { strict_rotation: true, ..Config::default() }) else { return };
    let (h1, mut cut) = (team.host(), team.host());
    team.init_and_login(&h1);
    // No network namespace here: the cut-off host's route to the database leads nowhere.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = team.db.replace(&url::Url::parse(&team.db).unwrap().port().unwrap().to_string(), &dead.port().to_string());
    cut.set("AUTHSOME_STORE", &url);
    let start = Instant::now();
    let out = cut.run(&["get", "discord"], None);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("cannot reach the team store"), "{}", out.all());
    assert!(start.elapsed() < Duration::from_secs(30));
    let ok = h1.run(&["refresh", "discord", "--force"], None);
    assert_eq!(ok.code, 0, "{}", ok.all());
    assert_no_secrets(&team.fake.secrets(), &[&out, &ok]);
}

#[test]
fn a_database_restart_under_load_is_ridden_out() {
    let Some(_) = pg::available() else { return };
    let server = pg::PgServer::start().expect("a dedicated server for the restart");
    let fake = FakeAs::start(Config { strict_rotation: true, expires_in: Some(301), ..Config::default() });
    let team = Team { db: pg::fresh_db(&server.admin_url()), key: random_key(), fake };
    let hosts: Vec<LoginEnv> = (0..2).map(|_| team.host()).collect();
    team.init_and_login(&hosts[0]);
    // A running proxy on the second host: its first request opens the store and its listener.
    let echo = Echo::start(&["discord.com"]);
    let mut proxy_host = team.host();
    proxy_host.upstream(&echo, "discord.com");
    let proxy = spawn(&proxy_host, &["run", "--", "sh", "-c", "curl -s -o /dev/null https://discord.com/api/users/@me; sleep 12"]);
    let listeners =
        || pg::psql(&team.db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'authsome' AND query LIKE 'LISTEN%'");
    assert!(pg::wait_until(Duration::from_secs(8), || listeners().trim() == "1"), "the proxy listens");
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = hosts.iter().map(|h| keep_running(h, &["refresh", "discord"], &stop)).collect();
    std::thread::sleep(Duration::from_secs(2));
    server.restart();
    assert!(pg::wait_until(Duration::from_secs(8), || listeners().trim() == "1"), "the listener came back after the restart");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let _ = finish(proxy);
    let failures: Vec<String> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(failures.is_empty(), "commands reconnected across the restart: {failures:?}");
    let uses = refresh_uses(&team.fake);
    let distinct: std::collections::HashSet<&String> = uses.iter().collect();
    assert!(uses.len() >= 2, "refreshes continued: {}", uses.len());
    assert_eq!(distinct.len(), uses.len(), "no refresh token presented twice across the restart");
    assert_eq!(team.fake.reuse_detected(), 0);
}

#[test]
fn a_project_that_requires_the_team_store_refuses_to_run_from_a_personal_vault() {
    let Some(team) = Team::new(Config::default()) else { return };
    let h1 = team.host();
    assert_eq!(h1.run(&["store", "init"], None).code, 0);
    assert_eq!(h1.run(&["login", "openai"], Some("sk-teamproject-0123456789abcdefghij")).code, 0);
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("authsome.toml"), "[providers.openai]\n\n[store]\nid = \"acme\"\n").unwrap();
    let allow = h1.run(&["allow", &project.path().display().to_string()], None);
    assert_eq!(allow.code, 0, "{}", allow.all());
    let run = |h: &LoginEnv| {
        finish(
            h.cmd(&["exec", "--", "true"])
                .current_dir(project.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let ok = run(&h1);
    assert_eq!(ok.code, 0, "{}", ok.all());
    // The same user without the team store configured: refused, with the fix.
    let mut personal = same_home(&h1);
    personal.vars.retain(|(k, _)| !k.starts_with("AUTHSOME_STORE"));
    let refused = run(&personal);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(refused.stderr.contains("requires team store \"acme\"") && refused.stderr.contains("AUTHSOME_STORE"), "{}", refused.all());
    let mut other = same_home(&h1);
    other.set("AUTHSOME_STORE_ID", "elsewhere");
    let refused = run(&other);
    assert!(refused.code == 4 && refused.stderr.contains("uses team store \"elsewhere\""), "{}", refused.all());
}

/// The lease contract, straight against the store: exclusive while held,
/// granted again only after it lapses (by the database clock), with a new
/// epoch, and a late holder's release cannot free its successor's lease.
#[test]
fn refresh_leases_are_exclusive_lapse_on_the_database_clock_and_release_fenced() {
    use authsome::store::pg::LeaseTry;
    let Some(team) = Team::new(Config::default()) else { return };
    let h1 = team.host();
    assert_eq!(h1.run(&["store", "init"], None).code, 0);
    let open = || {
        let home = authsome::paths::Home::at(h1.home(), "default");
        let cfg = authsome::store::select::PgConfig { url: team.db.clone(), id: STORE_ID.into(), ca: None };
        authsome::store::pg::PgStore::with_team_key(&home, cfg, &team.key).unwrap()
    };
    let (a, b) = (open(), open());
    let len = Duration::from_secs(2);
    let LeaseTry::Granted(first) = a.try_lease("discord", "default", len).unwrap() else { panic!("a free lease is granted") };
    assert!(first.took_over.is_none());
    assert!(first.remaining() <= len && first.remaining() > Duration::from_millis(1500));
    let LeaseTry::Busy(who) = b.try_lease("discord", "default", len).unwrap() else { panic!("a held lease is not granted twice") };
    assert!(who.contains("/pid "), "{who}");
    // Another connection's lease is independent.
    assert!(matches!(b.try_lease("discord", "work", len).unwrap(), LeaseTry::Granted(_)));
    std::thread::sleep(Duration::from_millis(2300));
    let LeaseTry::Granted(second) = b.try_lease("discord", "default", len).unwrap() else { panic!("a lapsed lease is granted") };
    assert_eq!(second.epoch, first.epoch + 1, "a new epoch per grant");
    assert!(second.took_over.as_deref().is_some_and(|t| t.contains("never finished")), "{:?}", second.took_over);
    assert!(!a.release(&first, "ok").unwrap(), "the lapsed holder cannot release its successor's lease");
    assert!(matches!(a.try_lease("discord", "default", len).unwrap(), LeaseTry::Busy(_)), "still held by the second holder");
    assert!(b.release(&second, "ok").unwrap());
    let LeaseTry::Granted(third) = a.try_lease("discord", "default", len).unwrap() else { panic!("a released lease is granted at once") };
    assert!(third.took_over.is_none(), "a released lease is not a takeover");
}

/// Every write is a compare-and-set: versions grow by one per change, a
/// change that fails writes nothing, and an unchanged record keeps its version.
#[test]
fn writes_bump_versions_and_a_failed_change_writes_nothing() {
    let Some(team) = Team::new(Config::default()) else { return };
    let h1 = team.host();
    assert_eq!(h1.run(&["store", "init"], None).code, 0);
    let version = |kind: &str| {
        pg::psql(&team.db, &format!("SELECT coalesce(max(version), 0) FROM authsome_records WHERE kind = '{kind}'")).trim().to_owned()
    };
    assert_eq!(h1.run(&["login", "openai"], Some("sk-versionone-0123456789abcdefghij")).code, 0);
    assert_eq!(version("connection"), "1");
    assert_eq!(h1.run(&["login", "openai", "--force"], Some("sk-versiontwo-0123456789abcdefghij")).code, 0);
    assert_eq!(version("connection"), "2");
    let bad = h1.run(&["login", "openai", "--force"], Some("not-a-key"));
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert_eq!(version("connection"), "2", "a refused change writes nothing");
    // A ciphertext moved to another row does not open: the database cannot swap records.
    pg::psql(&team.db, "INSERT INTO authsome_records SELECT store_id, kind, provider, 'copy', version, key_epoch, sealed, expires_at, updated_at, updated_by FROM authsome_records WHERE kind = 'connection'");
    let get = h1.run(&["get", "openai"], None);
    assert_eq!(get.code, 1, "{}", get.all());
    assert!(get.stderr.contains("connection/openai/copy") && get.stderr.contains("tampered with or moved"), "{}", get.all());
}

/// A network namespace joined to this one by a veth pair: a second "machine"
/// whose only way to the database is that link. Removed when dropped.
struct NetNs {
    name: String,
    root_if: String,
    root_addr: String,
}

impl NetNs {
    fn ip(args: &[&str]) {
        let out = std::process::Command::new("ip").args(args).output().expect("ip runs");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `None` (after saying why) when this is not root or there is no `ip`.
    fn create() -> Option<NetNs> {
        let usable = nix::unistd::geteuid().is_root()
            && std::process::Command::new("ip").args(["netns", "list"]).output().is_ok_and(|o| o.status.success());
        if !usable {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the network namespace test needs root and iproute2 under CI");
            }
            eprintln!("NOT RUN: network namespaces need root and `ip`; a_host_cut_off_… covers the loopback fallback");
            return None;
        }
        let tag = std::process::id() % 100_000;
        let subnet = 10 + std::process::id() % 200;
        let ns = NetNs { name: format!("as{tag}"), root_if: format!("as{tag}r"), root_addr: format!("10.77.{subnet}.1") };
        let peer = format!("as{tag}n");
        Self::ip(&["netns", "add", &ns.name]);
        Self::ip(&["link", "add", &ns.root_if, "type", "veth", "peer", "name", &peer]);
        Self::ip(&["link", "set", &peer, "netns", &ns.name]);
        Self::ip(&["addr", "add", &format!("{}/24", ns.root_addr), "dev", &ns.root_if]);
        Self::ip(&["link", "set", &ns.root_if, "up"]);
        Self::ip(&["netns", "exec", &ns.name, "ip", "addr", "add", &format!("10.77.{subnet}.2/24"), "dev", &peer]);
        Self::ip(&["netns", "exec", &ns.name, "ip", "link", "set", &peer, "up"]);
        Self::ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// Cut (or restore) the machine's only link.
    fn link(&self, up: bool) {
        Self::ip(&["link", "set", &self.root_if, if up { "up" } else { "down" }]);
    }

    /// Run `authsome ARGS` as `host`, inside the namespace.
    fn run(&self, host: &LoginEnv, args: &[&str]) -> Out {
        let inner = host.cmd(args);
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(inner.get_program()).args(inner.get_args()).env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        finish(c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).output();
        let _ = std::process::Command::new("ip").args(["link", "del", &self.root_if]).output();
    }
}

#[test]
fn a_machine_whose_link_goes_down_fails_clearly_the_others_refresh_and_it_catches_up() {
    let Some(_) = pg::available() else { return };
    let Some(ns) = NetNs::create() else { return };
    let server = pg::PgServer::start_on(Some(&ns.root_addr)).expect("a server reachable from the namespace");
    let team = Team {
        db: pg::fresh_db(&server.admin_url()),
        key: random_key(),
        fake: FakeAs::start(Config { strict_rotation: true, ..Config::default() }),
    };
    let h1 = team.host();
    team.init_and_login(&h1);
    let mut remote = team.host();
    remote.set("AUTHSOME_STORE", &team.db.replace("127.0.0.1", &ns.root_addr));
    let seen = ns.run(&remote, &["get", "discord", "--field", "status"]);
    assert_eq!((seen.code, seen.stdout.trim()), (0, "connected"), "{}", seen.all());

    ns.link(false);
    let start = Instant::now();
    let cut = ns.run(&remote, &["get", "discord"]);
    assert_eq!(cut.code, 1, "{}", cut.all());
    assert!(cut.stderr.contains("cannot reach the team store"), "{}", cut.all());
    assert!(start.elapsed() < Duration::from_secs(30), "fails within the connect patience");
    let other = h1.run(&["refresh", "discord", "--force"], None);
    assert_eq!(other.code, 0, "the other machines are unaffected: {}", other.all());
    let expires = h1.run(&["get", "discord", "--field", "expires_at"], None).stdout;

    ns.link(true);
    let back = ns.run(&remote, &["get", "discord", "--field", "expires_at"]);
    assert_eq!(back.code, 0, "{}", back.all());
    assert_eq!(back.stdout, expires, "after the link is back it reads the refreshed record");
    assert_eq!(refresh_uses(&team.fake).len(), 1);
    assert_no_secrets(&team.fake.secrets(), &[&seen, &cut, &other, &back]);
}

#[test]
fn migrate_copies_a_personal_vault_into_the_store_and_export_copies_it_back() {
    let Some(team) = Team::new(Config::default()) else { return };
    let h1 = team.host();
    let mut personal = same_home(&h1);
    personal.vars.retain(|(k, _)| !k.starts_with("AUTHSOME_STORE"));
    let key = "sk-personalkey-0123456789abcdefghij";
    assert_eq!(personal.run(&["login", "openai"], Some(key)).code, 0);
    assert_eq!(h1.run(&["store", "init"], None).code, 0);
    let none = h1.run(&["get", "openai"], None);
    assert_eq!(none.code, 3, "the store starts empty: {}", none.all());
    let migrate = h1.run(&["store", "migrate", "--from-file"], None);
    assert!(migrate.code == 0 && migrate.stderr.contains("copied 1 records"), "{}", migrate.all());
    let other = team.host();
    let got = other.run(&["get", "openai", "--field", "status"], None);
    assert_eq!((got.code, got.stdout.trim()), (0, "connected"), "{}", got.all());
    assert!(!pg::pg_dump(&team.db).contains("sk-personalkey"));
    // Export into another machine's own vault file, then use it without the store.
    assert_eq!(other.run(&["store", "export"], None).code, 0);
    let mut offline = same_home(&other);
    offline.vars.retain(|(k, _)| !k.starts_with("AUTHSOME_STORE"));
    let local = offline.run(&["get", "openai", "--field", "status"], None);
    assert_eq!((local.code, local.stdout.trim()), (0, "connected"), "{}", local.all());
    assert_no_secrets(&[key.to_owned()], &[&migrate, &got, &local]);
}
