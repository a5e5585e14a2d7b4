//! A throwaway PostgreSQL for the team-store tests, on loopback with trust
//! authentication. `.ci/run` starts one and exports `AUTHSOME_TEST_PG_URL`;
//! without it a test binary starts its own (`initdb` into a temporary
//! directory, as the `postgres` user when running as root, `pg_ctl start`) and
//! a watchdog stops it when the binary exits. Every test gets its own database.
//! Under `CI=true` a missing PostgreSQL fails the test; elsewhere the test says
//! plainly that it did not run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A PostgreSQL server this test binary started.
pub struct PgServer {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    lab: bool,
    _tmp: Option<tempfile::TempDir>,
}

/// Where `initdb`, `pg_ctl` and `postgres` live: `PG_BIN`, the Debian layout, or `PATH`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(d));
    }
    for v in ["17", "16", "15", "14", "13"] {
        let d = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
        if d.join("initdb").exists() {
            return Some(d);
        }
    }
    which_dir("initdb")
}

fn which_dir(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(tool)).find(|f| f.exists()))
        .and_then(|f| std::fs::canonicalize(f).ok())
        .and_then(|f| f.parent().map(Path::to_path_buf))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Run `tool` from the PostgreSQL bin dir as the unprivileged `postgres` user when we are root.
fn pg_cmd(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgServer {
    /// Start a fresh server, or the reason it cannot be started (PostgreSQL not installed).
    pub fn start() -> Result<PgServer, String> {
        Self::start_for(false)
    }

    /// Start a fresh server; with `lab` it also listens on every address of
    /// this machine and trusts the hosts of the lab's network
    /// ([`super::hosts::LAB_NET`]), so processes in the lab's network
    /// namespaces reach it through their links.
    pub fn start_for(lab: bool) -> Result<PgServer, String> {
        let bin = bin_dir().ok_or("PostgreSQL is not installed (no initdb; apt-get install postgresql)")?;
        let tmp = tempfile::Builder::new().prefix("authsome-pg").tempdir().map_err(|e| e.to_string())?;
        let dir = tmp.path().join("data");
        if is_root() {
            // The server (and its watchdog, which removes the directory) runs as `postgres`.
            let pg = nix::unistd::User::from_name("postgres").ok().flatten().ok_or("no `postgres` user to run the server as")?;
            std::os::unix::fs::chown(tmp.path(), Some(pg.uid.as_raw()), Some(pg.gid.as_raw())).map_err(|e| e.to_string())?;
        }
        let out = pg_cmd(&bin, "initdb")
            .args(["-D"])
            .arg(&dir)
            .args(["-U", "authsome", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        if lab {
            use std::io::Write;
            let mut hba = std::fs::OpenOptions::new().append(true).open(dir.join("pg_hba.conf")).unwrap();
            writeln!(hba, "host all all {} trust", super::hosts::LAB_NET).unwrap();
        }
        let server = PgServer { dir, port: free_port(), bin, lab, _tmp: Some(tmp) };
        server.pg_ctl_start()?;
        Ok(server)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let listen = if self.lab { "'*'" } else { "127.0.0.1" };
        let opts = format!(
            "-p {} -c listen_addresses={listen} -c unix_socket_directories='' -c max_connections=400 -c fsync=off -c shared_buffers=16MB",
            self.port
        );
        let out = pg_cmd(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("../server.log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("../server.log")).unwrap_or_default();
            return Err(format!("pg_ctl start failed: {}{log}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// The server's admin URL (database `postgres`).
    pub fn admin_url(&self) -> String {
        format!("postgres://authsome@127.0.0.1:{}/postgres?sslmode=disable", self.port)
    }

    /// `pg_ctl restart -m fast`.
    pub fn restart(&self) {
        let out = pg_cmd(&self.bin, "pg_ctl").arg("-D").arg(&self.dir).args(["-m", "fast", "-w", "stop"]).output().unwrap();
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
        self.pg_ctl_start().unwrap();
    }

    /// Stop the server now.
    pub fn stop(&self) {
        let _ = pg_cmd(&self.bin, "pg_ctl").arg("-D").arg(&self.dir).args(["-m", "immediate", "stop"]).output();
    }

    /// Stop the server when this process is gone, even if it dies without
    /// running destructors (a panicking test binary, a killed `cargo test`).
    fn watchdog(&self) {
        let stop = format!(
            "(while [ -d /proc/{pid} ]; do sleep 0.5; done; {pg_ctl} -D {dir} -m immediate stop; rm -rf {tmp}) >/dev/null 2>&1 &",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            dir = self.dir.display(),
            tmp = self.dir.parent().expect("data dir has a parent").display()
        );
        // The shell backgrounds the watcher and exits at once, so it can be waited for.
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", &stop]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", &stop]);
            c
        };
        let status = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
        assert!(status.success(), "the PostgreSQL watchdog did not start");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server every test of this binary shares: `AUTHSOME_TEST_PG_URL` (from `.ci/run`) or one started here.
fn shared_admin_url() -> Result<String, String> {
    static SHARED: OnceLock<Result<String, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if let Some(url) = std::env::var("AUTHSOME_TEST_PG_URL").ok().filter(|u| !u.is_empty()) {
                return Ok(url);
            }
            kept(PgServer::start()?)
        })
        .clone()
}

/// The server the lab's hosts share (one per test binary, reachable from the
/// lab's network namespaces).
fn lab_admin_url() -> Result<String, String> {
    static LAB: OnceLock<Result<String, String>> = OnceLock::new();
    LAB.get_or_init(|| kept(PgServer::start_for(true)?)).clone()
}

/// Keep `server` until the process exits (its watchdog stops it then); its admin URL.
fn kept(server: PgServer) -> Result<String, String> {
    server.watchdog();
    let url = server.admin_url();
    std::mem::forget(server);
    Ok(url)
}

/// `Some(admin URL)`, or `None` after saying why the test cannot run (a failure under CI).
pub fn available() -> Option<String> {
    report(shared_admin_url())
}

/// [`available`] for tests whose hosts are network namespaces when `netns`:
/// a server they can all reach.
pub fn available_to(netns: bool) -> Option<String> {
    if netns {
        report(lab_admin_url())
    } else {
        available()
    }
}

fn report(url: Result<String, String>) -> Option<String> {
    match url {
        Ok(u) => Some(u),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("team store tests need PostgreSQL under CI: {why}"),
        Err(why) => {
            eprintln!("NOT RUN: this team store test needs PostgreSQL: {why}");
            None
        }
    }
}

/// Run SQL with `psql` against `url`; returns stdout.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql").args([url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql]).output().expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Make the server of `admin_url` ask `role` for its password (scram) from
/// every address, ahead of the trust rules, and reload its configuration.
pub fn require_password(admin_url: &str, role: &str) {
    let hba = psql(admin_url, "SHOW hba_file");
    let path = hba.trim();
    let old = std::fs::read_to_string(path).expect("the test server's pg_hba.conf is readable");
    std::fs::write(path, format!("host all {role} all scram-sha-256\n{old}")).expect("pg_hba.conf is writable");
    assert_eq!(psql(admin_url, "SELECT pg_reload_conf()").trim(), "t");
}

/// A new empty database on the server of `admin_url`; returns its URL.
pub fn fresh_db(admin_url: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    psql(admin_url, &format!("CREATE DATABASE {name}"));
    let mut u = url::Url::parse(admin_url).unwrap();
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// `pg_dump` of the database at `url`, as text.
pub fn pg_dump(url: &str) -> String {
    let out = Command::new("pg_dump").arg(url).output().expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether two dumps hold the same schema and rows (pg_dump's per-dump `\restrict` keys aside).
pub fn same_content(a: &str, b: &str) -> bool {
    let lines = |d: &str| {
        d.lines().filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")).map(str::to_owned).collect::<Vec<_>>()
    };
    lines(a) == lines(b)
}

/// Wait until `f` holds, up to `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
