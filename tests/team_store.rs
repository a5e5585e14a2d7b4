//! The team store against a real PostgreSQL (README, "Team store"). Each
//! host is a network namespace with its own authsome home (its own
//! machine-wide refresh lock, no shared files), reaching the database and the
//! fake providers over its own link; without root the hosts are plain
//! processes on loopback (`common::hosts` says so). The fake authorization
//! server runs in strict rotation mode: a second use of any refresh token is
//! `invalid_grant` and revokes the family, so any double spend shows up.

use crate::common::echo::{Echo, Gate};
use crate::common::fake_as::{Config, FakeAs};
use crate::common::hosts::{self, Host};
use crate::common::login_env::{assert_no_secrets, finish, run_with, LoginEnv, Out};
use crate::common::pg;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STORE_ID: &str = "acme";

fn random_key() -> String {
    use base64::Engine as _;
    let mut key = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Run `cmd` again and again until `stop`; returns the output of each failed run.
fn keep_running(cmd: Command, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))).collect();
    let dir = cmd.get_current_dir().map(|d| d.to_owned());
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut failures = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let mut c = Command::new(&prog);
            c.args(&args).env_clear().envs(envs.clone()).stdin(Stdio::null());
            if let Some(d) = &dir {
                c.current_dir(d);
            }
            let out = c.output().unwrap();
            if !out.status.success() {
                failures.push(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
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
        let admin = pg::available_to(hosts::netns())?;
        Some(Team::on(&admin, config))
    }

    /// A team whose store is a fresh database of the server at `admin`.
    fn on(admin: &str, config: Config) -> Team {
        Team { db: pg::fresh_db(admin), key: random_key(), fake: FakeAs::start_on(config, hosts::bind_ip()) }
    }

    /// A host: its own machine and home, the Discord-shaped provider, the store settings.
    fn host(&self) -> Host {
        let mut host = Host::new(LoginEnv::with_discord(&self.fake));
        host.set_store(&self.db);
        host.set("AUTHSOME_STORE_ID", STORE_ID);
        host.set("AUTHSOME_STORE_KEY", &self.key);
        host.reach_local(self.fake.addr().port());
        host
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

    fn refresh_token(&self, host: &LoginEnv) -> String {
        self.records(host).connection("discord", None).unwrap().refresh_token.as_ref().unwrap().expose().to_owned()
    }

    /// Initialise the store from `host` and log in to Discord there.
    fn init_and_login(&self, host: &Host) {
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

    /// Wait until some host holds a refresh lease.
    fn wait_for_lease_holder(&self) {
        let held = || pg::psql(&self.db, "SELECT count(*) FROM authsome_refresh_leases WHERE holder IS NOT NULL").trim() == "1";
        assert!(pg::wait_until(Duration::from_secs(20), held), "a host took the lease");
    }

    /// The refresh-token chain at the provider is one line from `first`: every
    /// use succeeded, each presented the token the previous use issued, no
    /// token was presented twice, and the store holds the last one issued.
    fn assert_linear_chain(&self, first: &str, host: &LoginEnv) -> usize {
        let uses = refresh_uses(&self.fake);
        let rotations = self.fake.rotations();
        assert_eq!(self.fake.reuse_detected(), 0, "no refresh token was presented twice");
        assert_eq!(uses.len(), rotations.len(), "every refresh-token use rotated: {uses:?}");
        let mut expected = first.to_owned();
        for (i, (presented, issued)) in rotations.iter().enumerate() {
            assert_eq!(presented, &expected, "use {i} presented the token issued by the use before it");
            expected = issued.clone();
        }
        assert_eq!(self.refresh_token(host), expected, "the store holds the newest refresh token");
        assert_eq!(self.fake.live_refresh_tokens(), vec![expected], "one live refresh token, the stored one");
        rotations.len()
    }
}

/// Another view of `host`'s home (same files, its own variables), in this namespace.
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

/// Unix time now, with a fraction (what `date +%s.%N` prints).
fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A shell loop for a child behind the proxy: until `stop` exists, print the
/// time, then make one request to `url`. One request at a time, each stamped
/// just before it is sent: the n-th stamp is the n-th request the upstream saw.
fn stamped_requests(url: &str, stop: &Path) -> String {
    format!("while [ ! -e {} ]; do date +%s.%N; curl -s -o /dev/null {url}; sleep 0.05; done", stop.display())
}

/// Each request's stamp paired with the `Authorization` the upstream saw.
fn stamped(out: &Out, echo: &Echo) -> Vec<(f64, String)> {
    let stamps: Vec<f64> = out.stdout.lines().map(|l| l.trim().parse().unwrap()).collect();
    let seen = echo.seen();
    assert_eq!(seen.len(), stamps.len(), "every request reached the upstream");
    stamps.iter().zip(&seen).map(|(t, s)| (*t, s.header("authorization").join(","))).collect()
}

/// Log in to OpenAI with `new` on `by` while `proxy` (a child making
/// [`stamped_requests`] to `echo`) serves `old`; then stop it and check that
/// every request sent more than a second after the login carried the new key.
fn new_key_reaches_the_proxy(by: &Host, proxy: Child, stop_file: &Path, echo: &Echo, (old, new): (&str, &str)) -> Vec<(f64, String)> {
    let login = by.run(&["login", "openai", "--force"], Some(new));
    assert_eq!(login.code, 0, "{}", login.all());
    let at = unix_now();
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(stop_file, "").unwrap();
    let out = finish(proxy);
    assert_eq!(out.code, 0, "{}", out.all());
    let sent = stamped(&out, echo);
    assert!(sent.iter().any(|(_, a)| a == &format!("Bearer {old}")), "the first key was served: {sent:?}");
    let late: Vec<_> = sent.iter().filter(|(t, _)| *t > at + 1.0).collect();
    assert!(!late.is_empty(), "requests after the login: {sent:?}");
    assert!(late.iter().all(|(_, a)| a == &format!("Bearer {new}")), "within 1 s every request carries the new key: {late:?}");
    sent
}

/// A project requiring the team store and Discord, allowed on every host.
fn discord_project(hosts: &[&Host]) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("authsome.toml"), "[providers.discord]\n\n[store]\nid = \"acme\"\n").unwrap();
    for h in hosts {
        let allow = h.run(&["allow", &project.path().display().to_string()], None);
        assert_eq!(allow.code, 0, "{}", allow.all());
    }
    project
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
    // Every other command that writes stops at the key check too.
    let writes: [&[&str]; 6] = [
        &["store", "init"],
        &["refresh", "discord", "--force"],
        &["logout", "discord"],
        &["store", "migrate", "--from-file"],
        &["run", "--", "true"],
        &["log", "--store"],
    ];
    for args in writes {
        let out = intruder.run(args, None);
        assert!(out.code == 4 && out.stderr.contains("key check failed"), "{args:?}: {}", out.all());
    }
    let after = pg::pg_dump(&team.db);
    assert!(pg::same_content(&before, &after), "the database is unchanged:\n{after}");
    assert!(!after.contains("sk-intruder"));
}

#[test]
fn four_hosts_of_25_processes_spend_the_refresh_token_exactly_once() {
    let Some(team) = Team::new(Config { strict_rotation: true, expires_in: Some(60), ..Config::default() }) else { return };
    let hosts: Vec<Host> = (0..4).map(|_| team.host()).collect();
    team.init_and_login(&hosts[0]);
    let before = team.access_token(&hosts[0]);
    team.fake.configure(|c| c.expires_in = Some(3600));
    let children: Vec<_> = hosts.iter().flat_map(|h| (0..25).map(move |_| h.spawn(&["refresh", "discord"]))).collect();
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
fn fifty_expiry_cycles_under_exec_load_from_four_hosts_never_fork_the_refresh_token_chain() {
    // Tokens live 301 s: within the 300 s refresh margin one second after issue.
    let Some(team) = Team::new(Config { strict_rotation: true, expires_in: Some(301), ..Config::default() }) else { return };
    // The API checks every access token it is sent with the provider: issued, unexpired, family not revoked.
    let (valid, refused) = (team.fake.access_token_check(), Arc::new(AtomicUsize::new(0)));
    let counted = refused.clone();
    let gate: Gate = Arc::new(move |seen| {
        let ok = seen.header("authorization").first().and_then(|a| a.strip_prefix("Bearer ")).is_some_and(&valid);
        if !ok {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        ok
    });
    let echo = Echo::start_gated(&["discord.com"], hosts::bind_ip(), Some(gate));
    let mut hosts: Vec<Host> = (0..4).map(|_| team.host()).collect();
    team.init_and_login(&hosts[0]);
    let first = team.refresh_token(&hosts[0]);
    for h in &mut hosts {
        h.upstream(&echo, "discord.com");
    }
    let project = discord_project(&hosts.iter().collect::<Vec<_>>());
    let api = "curl -sf -o /dev/null https://discord.com/api/users/@me";
    let script = format!("{api} && {api} && {api}");
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = hosts
        .iter()
        .flat_map(|h| [h, h])
        .map(|h| {
            let mut c = h.cmd(&["exec", "--", "sh", "-c", &script]);
            c.current_dir(project.path());
            keep_running(c, &stop)
        })
        .collect();
    let done = pg::wait_until(Duration::from_secs(120), || team.fake.rotations().len() >= 50 || refused.load(Ordering::SeqCst) > 0);
    stop.store(true, Ordering::SeqCst);
    let failures: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(done, "50 cycles within the time limit (got {})", team.fake.rotations().len());
    assert_eq!(refused.load(Ordering::SeqCst), 0, "every request carried a then-valid access token");
    assert!(failures.is_empty(), "every exec succeeded: {failures:?}");
    let cycles = team.assert_linear_chain(&first, &hosts[0]);
    assert!(cycles >= 50, "{cycles} cycles");
    let requests = echo.seen().len();
    assert!(requests >= 3 * cycles, "the API was under load throughout: {requests} requests for {cycles} cycles");
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
    let mut holder = h1.spawn(&["refresh", "discord"]);
    team.wait_for_lease_holder();
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
    let spent = team.refresh_token(&h1);
    for h in [&mut h1, &mut h2] {
        h.set("AUTHSOME_REFRESH_LEASE_SECS", "4");
    }
    // The provider rotates, then holds its answer while we kill the holder.
    team.fake.configure(|c| c.token_response_delay = Duration::from_secs(30));
    let mut holder = h1.spawn(&["refresh", "discord"]);
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
    assert!(refresh_uses(&team.fake).iter().all(|u| u == &spent));
    assert!(team.audit().iter().any(|(a, _)| a == "lease_expired_takeover"));
    assert!(team.audit().iter().any(|(a, r)| a == "refresh_failed" && r.contains("invalid_grant")));
}

/// The documented limit: a holder stalled after the provider answered, past
/// its lease (`SIGSTOP`). The next host takes over, gets `invalid_grant` (the
/// provider detects the reuse and revokes the family) and marks the
/// connection expired naming the stalled holder; when the stalled holder
/// wakes, its late answer never replaces that record (it lost the
/// compare-and-set, or its request timed out).
#[test]
fn a_lease_holder_stalled_past_its_lease_never_overwrites_the_outcome() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let Some(team) = Team::new(Config { strict_rotation: true, expires_in: Some(0), ..Config::default() }) else { return };
    let (mut h1, mut h2) = (team.host(), team.host());
    team.init_and_login(&h1);
    for h in [&mut h1, &mut h2] {
        h.set("AUTHSOME_REFRESH_LEASE_SECS", "4");
    }
    // The provider rotates, then answers a second later: the holder is stopped in between.
    team.fake.configure(|c| c.token_response_delay = Duration::from_secs(1));
    let holder = h1.spawn(&["refresh", "discord"]);
    assert!(pg::wait_until(Duration::from_secs(20), || refresh_uses(&team.fake).len() == 1), "the holder sent its request");
    let pid = Pid::from_raw(holder.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    team.fake.configure(|c| c.token_response_delay = Duration::ZERO);
    std::thread::sleep(Duration::from_secs(5));
    let out = h2.run(&["refresh", "discord"], None);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stderr.contains("invalid_grant") && out.stderr.contains("never finished"), "{}", out.all());
    kill(pid, Signal::SIGCONT).unwrap();
    let late = finish(holder);
    let record = team.records(&h1).connection("discord", None).unwrap().clone();
    assert_eq!(record.status, authsome::vault::Status::Expired, "the late holder did not overwrite the outcome: {}", late.all());
    assert!(record.status_reason.as_deref().is_some_and(|r| r.contains("taken over from")), "{:?}", record.status_reason);
    assert!(record.refresh_token.is_none(), "the dead refresh token is gone");
    assert_eq!(team.fake.reuse_detected(), 1, "the provider saw the one reuse the takeover could not avoid");
    // The late holder says so: never a success for a connection that needs a login.
    assert!(late.code != 0 && !late.stderr.contains('✓'), "{}", late.all());
    if team.audit().iter().any(|(a, _)| a == "refresh_discarded") {
        // Its answer arrived and lost the compare-and-set: its orphan tokens were revoked (RFC 7009).
        assert_eq!(late.code, 4, "{}", late.all());
        assert!(late.stderr.contains("has expired") && late.stderr.contains("authsome login discord"), "{}", late.all());
        assert!(!team.fake.requests_to("revoke").is_empty(), "the orphan tokens were revoked");
    }
    assert_no_secrets(&team.fake.secrets(), &[&out, &late]);
}

#[test]
fn a_login_on_one_host_reaches_a_running_proxy_on_another_within_a_second() {
    let Some(team) = Team::new(Config::default()) else { return };
    let echo = Echo::start_gated(&["api.openai.com"], hosts::bind_ip(), None);
    let (h1, mut h2) = (team.host(), team.host());
    let init = h1.run(&["store", "init"], None);
    assert_eq!(init.code, 0, "{}", init.all());
    let key1 = "sk-teamkeyone-0123456789abcdefghij";
    let key2 = "sk-teamkeytwo-0123456789abcdefghij";
    assert_eq!(h1.run(&["login", "openai"], Some(key1)).code, 0);
    h2.upstream(&echo, "api.openai.com");
    // A long cache bound: only a notification can make the proxy see the new key in time.
    h2.set("AUTHSOME_STORE_CACHE_SECS", "60");
    let stop = tempfile::tempdir().unwrap();
    let stop_file = stop.path().join("stop");
    let proxy = h2.spawn(&["run", "--", "sh", "-c", &stamped_requests("https://api.openai.com/v1/models", &stop_file)]);
    std::thread::sleep(Duration::from_millis(2500));
    let sent = new_key_reaches_the_proxy(&h1, proxy, &stop_file, &echo, (key1, key2));
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
fn a_host_whose_link_goes_down_fails_clearly_the_others_refresh_and_it_catches_up() {
    let Some(team) = Team::new(Config { strict_rotation: true, ..Config::default() }) else { return };
    let echo = Echo::start_gated(&["api.openai.com"], hosts::bind_ip(), None);
    let (h1, mut cut) = (team.host(), team.host());
    team.init_and_login(&h1);
    let seen = cut.run(&["get", "discord", "--field", "status"], None);
    assert_eq!((seen.code, seen.stdout.trim()), (0, "connected"), "{}", seen.all());
    // A proxy running on the host before its link goes down: one line per request, its status and, when it failed, the body.
    let key = "sk-cutoffkey-0123456789abcdefghij";
    assert_eq!(h1.run(&["login", "openai"], Some(key)).code, 0);
    cut.upstream(&echo, "api.openai.com");
    let stop = tempfile::tempdir().unwrap();
    let stop_file = stop.path().join("stop");
    let script = format!(
        "while [ ! -e {} ]; do r=$(curl -s --max-time 120 -w ' @%{{http_code}}' https://api.openai.com/v1/models); \
         case \"$r\" in *' @200') echo 200;; *) echo \"$r\" | tr '\\n' ' '; echo;; esac; sleep 0.2; done",
        stop_file.display()
    );
    // No copy kept: every request reads the store, so the cut shows at once.
    cut.set("AUTHSOME_STORE_CACHE_SECS", "0");
    let proxy = cut.spawn(&["run", "--", "sh", "-c", &script]);
    std::thread::sleep(Duration::from_secs(2));

    cut.set_link(false);
    let start = Instant::now();
    let out = cut.run(&["get", "discord"], None);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("cannot reach the team store"), "{}", out.all());
    assert!(start.elapsed() < Duration::from_secs(30), "fails within the connect patience");
    let other = h1.run(&["refresh", "discord", "--force"], None);
    assert_eq!(other.code, 0, "the other machines are unaffected: {}", other.all());
    let expires = h1.run(&["get", "discord", "--field", "expires_at"], None).stdout;
    // The running proxy's requests fail clearly within seconds rather than hang on the dead link.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(start.elapsed()));

    cut.set_link(true);
    let back = cut.run(&["get", "discord", "--field", "expires_at"], None);
    assert_eq!(back.code, 0, "{}", back.all());
    assert_eq!(back.stdout, expires, "after the link is back it reads the refreshed record");
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(&stop_file, "").unwrap();
    let served = finish(proxy);
    let lines: Vec<&str> = served.stdout.lines().map(str::trim).collect();
    assert!(lines.iter().all(|l| *l == "200" || l.ends_with(" @511")), "served, or refused with 511: {}", served.all());
    let refused: Vec<&&str> = lines.iter().filter(|l| l.ends_with(" @511")).collect();
    if cut.is_netns() {
        assert!(!refused.is_empty(), "while cut off, requests failed rather than hung: {}", served.all());
        assert!(refused.iter().all(|l| l.contains("team store")), "the refusal names the team store: {refused:?}");
    } else {
        eprintln!("loopback hosts: a running proxy keeps its route to the store; only new commands were cut off");
        assert!(refused.is_empty(), "{}", served.all());
    }
    assert_eq!(lines.last(), Some(&"200"), "served again once the link is back: {}", served.all());
    assert_eq!(refresh_uses(&team.fake).len(), 1);
    let mut secrets = team.fake.secrets();
    secrets.push(key.to_owned());
    assert_no_secrets(&secrets, &[&seen, &out, &other, &back, &served]);
}

#[test]
fn a_database_restart_under_load_is_ridden_out_and_the_listener_comes_back() {
    let Some(_) = pg::available_to(hosts::netns()) else { return };
    let server = pg::PgServer::start_for(hosts::netns()).expect("a dedicated server for the restart");
    let team = Team::on(&server.admin_url(), Config { strict_rotation: true, expires_in: Some(301), ..Config::default() });
    let hosts: Vec<Host> = (0..3).map(|_| team.host()).collect();
    team.init_and_login(&hosts[0]);
    let first = team.refresh_token(&hosts[0]);
    let (key1, key2) = ("sk-restartone-0123456789abcdefghij", "sk-restarttwo-0123456789abcdefghij");
    assert_eq!(hosts[0].run(&["login", "openai"], Some(key1)).code, 0);
    // A running proxy on another host, serving from its copy only while its listener vouches for it.
    let echo = Echo::start_gated(&["api.openai.com"], hosts::bind_ip(), None);
    let mut proxy_host = team.host();
    proxy_host.upstream(&echo, "api.openai.com");
    proxy_host.set("AUTHSOME_STORE_CACHE_SECS", "60");
    let stop = tempfile::tempdir().unwrap();
    let stop_file = stop.path().join("stop");
    let proxy = proxy_host.spawn(&["run", "--", "sh", "-c", &stamped_requests("https://api.openai.com/v1/models", &stop_file)]);
    let listeners =
        || pg::psql(&team.db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'authsome' AND query LIKE 'LISTEN%'");
    assert!(pg::wait_until(Duration::from_secs(8), || listeners().trim() == "1"), "the proxy listens");
    // Load: every host refreshes the Discord token as it comes due, about once a second.
    let stop_load = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = hosts.iter().map(|h| keep_running(h.cmd(&["refresh", "discord"]), &stop_load)).collect();
    std::thread::sleep(Duration::from_secs(2));
    server.restart();
    assert!(pg::wait_until(Duration::from_secs(8), || listeners().trim() == "1"), "the listener came back after the restart");
    let restarted_uses = refresh_uses(&team.fake).len();
    assert!(pg::wait_until(Duration::from_secs(10), || refresh_uses(&team.fake).len() >= restarted_uses + 2), "refreshes go on");
    stop_load.store(true, Ordering::SeqCst);
    let failures: Vec<String> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(1500));
    // The proxy trusts its copy again, which it does only while its listener is
    // connected: a change made behind the store's back (no notification, and a
    // row that would not even open) goes unseen, and every request still succeeds.
    let behind_its_back = |by: i32| {
        let sql = format!("UPDATE authsome_records SET version = version + {by} WHERE kind = 'connection' AND provider = 'openai'");
        pg::psql(&team.db, &sql);
    };
    behind_its_back(1000);
    std::thread::sleep(Duration::from_millis(1000));
    behind_its_back(-1000);
    // And a login on another host reaches the running proxy by notification.
    new_key_reaches_the_proxy(&hosts[1], proxy, &stop_file, &echo, (key1, key2));
    assert!(failures.is_empty(), "commands reconnected across the restart: {failures:?}");
    team.assert_linear_chain(&first, &hosts[0]);
}

/// Lease expiry and token freshness follow the database's clock, not a
/// host's: a host whose clock is an hour ahead (Debian's `faketime`) neither
/// takes over a lease it thinks lapsed an hour ago, nor refreshes a token it
/// would think expired, and the expiry it writes is right for everyone.
#[test]
fn a_host_an_hour_ahead_follows_the_database_clock() {
    let Some(faketime) = hosts::faketime() else { return };
    let Some(team) = Team::new(Config { strict_rotation: true, expires_in: Some(60), ..Config::default() }) else { return };
    let (mut h1, mut ahead) = (team.host(), team.host());
    team.init_and_login(&h1);
    team.fake.configure(|c| c.expires_in = Some(3600));
    for h in [&mut h1, &mut ahead] {
        h.set("AUTHSOME_REFRESH_LEASE_SECS", "60");
    }
    ahead.set("LD_PRELOAD", &faketime);
    ahead.set("FAKETIME", "+1h");
    ahead.set("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    let status = ahead.run(&["store", "status"], None);
    assert!(status.code == 0 && status.stdout.contains("clock_offset_seconds  -3600"), "its clock is an hour ahead: {}", status.all());

    h1.set("AUTHSOME_TEST_PAUSE_AFTER_LEASE", "3000");
    let holder = h1.spawn(&["refresh", "discord"]);
    team.wait_for_lease_holder();
    let waited = ahead.run(&["refresh", "discord"], None);
    let held = finish(holder);
    assert!(held.code == 0 && held.stderr.contains(": refreshed,"), "{}", held.all());
    assert!(waited.code == 0 && waited.stderr.contains("refreshed by another authsome process"), "{}", waited.all());
    assert_eq!(refresh_uses(&team.fake).len(), 1, "one refresh: the lease held, and the new token is fresh on the host ahead too");
    assert!(!team.audit().iter().any(|(a, _)| a == "lease_expired_takeover"), "no takeover of a held lease");
    let fresh = ahead.run(&["refresh", "discord"], None);
    assert!(fresh.code == 0 && fresh.stderr.contains("token is fresh"), "{}", fresh.all());

    // A refresh by the host ahead stores the expiry the provider meant, for everyone.
    let forced = ahead.run(&["refresh", "discord", "--force"], None);
    assert_eq!(forced.code, 0, "{}", forced.all());
    let expires = team.records(&h1).connection("discord", None).unwrap().expires_at.unwrap() as f64;
    assert!((expires - unix_now() - 3600.0).abs() < 30.0, "an hour from now on the database's clock, not two");
    let fresh = h1.run(&["refresh", "discord"], None);
    assert!(fresh.code == 0 && fresh.stderr.contains("token is fresh"), "{}", fresh.all());
    assert_eq!(refresh_uses(&team.fake).len(), 2);
    assert_eq!(team.fake.reuse_detected(), 0);
    let refreshes = team.audit().into_iter().filter(|(a, _)| a == "refresh").count();
    assert_eq!(refreshes, 2, "both refreshes audited in the store: {:?}", team.audit());
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

/// The README's walkthrough, step by step: an empty database owned by a role
/// of its own; the lead's `store init` (the key saved, mode 0600, and printed
/// once) and login; a teammate's laptop set up by `config.toml` and
/// `store.key`; a CI job from environment variables alone, running
/// `allow .` and `exec` in its checkout. Both use the lead's connection.
#[test]
fn the_readme_walkthrough_takes_a_team_from_an_empty_database_to_a_laptop_and_a_ci_job() {
    let Some(admin) = pg::available_to(hosts::netns()) else { return };
    // 1. A role for authsome with a password, and a database it owns.
    let name = url::Url::parse(&pg::fresh_db(&admin)).unwrap().path().trim_start_matches('/').to_owned();
    pg::psql(&admin, &format!("DROP DATABASE {name}"));
    pg::psql(&admin, &format!("CREATE ROLE {name} LOGIN PASSWORD 'team-db-password'"));
    pg::psql(&admin, &format!("CREATE DATABASE {name} OWNER {name}"));
    pg::require_password(&admin, &name);
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_username(&name).unwrap();
    url.set_path(&format!("/{name}"));
    let fake = FakeAs::start_on(Config::default(), hosts::bind_ip());
    let echo = Echo::start_gated(&["discord.com"], hosts::bind_ip(), None);
    let machine = || {
        let mut h = Host::new(LoginEnv::with_discord(&fake));
        h.reach_local(fake.addr().port());
        h.upstream(&echo, "discord.com");
        h.set("AUTHSOME_STORE_PASSWORD", "team-db-password");
        h
    };

    // 2. The lead: the store, the key printed once, a login.
    let mut lead = machine();
    lead.set_store(url.as_str());
    lead.set("AUTHSOME_STORE_ID", STORE_ID);
    let init = lead.run(&["store", "init"], None);
    assert_eq!(init.code, 0, "{}", init.all());
    let key = init.stdout.trim().to_owned();
    let saved = lead.home().join("store.key");
    assert_eq!(std::fs::read_to_string(&saved).unwrap().trim(), key, "the printed key is the saved one");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(lead.run(&["login", "discord"], None).code, 0);
    let again = lead.run(&["store", "init"], None);
    assert!(again.code == 0 && !again.stdout.contains(&key), "printed once: {}", again.all());

    // 3. A teammate's laptop: config.toml and store.key, nothing in the environment but the password.
    let laptop = machine();
    std::fs::create_dir_all(laptop.home()).unwrap();
    let config = format!("[store]\nurl = \"{}\"\nid  = \"{STORE_ID}\"\n", laptop.seen_url(url.as_str()));
    std::fs::write(laptop.home().join("config.toml"), config).unwrap();
    let key_file = laptop.home().join("store.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut no_password = same_home(&laptop);
    no_password.vars.retain(|(k, _)| k != "AUTHSOME_STORE_PASSWORD");
    let start = Instant::now();
    let refused = no_password.run(&["store", "status"], None);
    assert!(refused.code == 1 && refused.stderr.contains("set AUTHSOME_STORE_PASSWORD"), "the role needs its password: {}", refused.all());
    no_password.set("AUTHSOME_STORE_PASSWORD", "not-the-password");
    let wrong = no_password.run(&["store", "status"], None);
    assert!(wrong.code == 1 && wrong.stderr.contains("password authentication failed"), "{}", wrong.all());
    assert!(start.elapsed() < Duration::from_secs(6), "a refused password is not retried like an outage");
    let status = laptop.run(&["store", "status"], None);
    assert!(status.code == 0 && status.stdout.contains("key_check") && status.stdout.contains("ok"), "{}", status.all());
    let api = "curl -sf -o /dev/null https://discord.com/api/users/@me";
    let run = laptop.run(&["run", "--", "sh", "-c", api], None);
    assert_eq!(run.code, 0, "{}", run.all());

    // 4. A CI job: only environment variables, and the repository's authsome.toml.
    let mut ci = machine();
    ci.set_store(url.as_str());
    ci.set("AUTHSOME_STORE_ID", STORE_ID);
    ci.set("AUTHSOME_STORE_KEY", &key);
    let checkout = tempfile::tempdir().unwrap();
    std::fs::write(checkout.path().join("authsome.toml"), "[providers.discord]\n\n[store]\nid = \"acme\"\n").unwrap();
    let in_checkout = |args: &[&str]| {
        let mut c = ci.cmd(args);
        c.current_dir(checkout.path());
        run_with(c, None)
    };
    let allow = in_checkout(&["allow", "."]);
    assert_eq!(allow.code, 0, "{}", allow.all());
    let exec = in_checkout(&["exec", "--", "sh", "-c", api]);
    assert_eq!(exec.code, 0, "{}", exec.all());

    let token = fake.access_tokens()[0].clone();
    let seen: Vec<String> = echo.seen().iter().map(|s| s.header("authorization").join(",")).collect();
    assert_eq!(seen, vec![format!("Bearer {token}"); 2], "the laptop and the CI job used the lead's connection");
    let mut secrets = fake.secrets();
    secrets.extend(["team-db-password".to_owned(), "not-the-password".to_owned(), key]);
    assert_no_secrets(&secrets, &[&again, &refused, &wrong, &status, &run, &allow, &exec]);
}
