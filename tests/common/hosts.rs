//! Machines for the multi-host tests of the team store. Each [`Host`] is its
//! own network namespace, joined to the test's namespace by a veth pair, with
//! its own authsome home (its own machine-wide refresh lock, no shared files).
//! The services a test starts (PostgreSQL, the fake authorization server,
//! echo upstreams) listen in the test's namespace on every address, and a
//! host reaches them on the test-side address of its own link: cutting that
//! link (`ip link set … down`) cuts that host off and nobody else.
//!
//! Namespaces need root and `ip netns`. Without them (or with
//! `AUTHSOME_TEST_HOSTS=loopback`) the hosts are plain processes on loopback,
//! each with its own home, and the lab says so; a cut link then becomes a
//! store address that leads nowhere.

use super::login_env::{run_with, LoginEnv, Out};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The network the lab's links are carved from (/30 each), as PostgreSQL's
/// `pg_hba.conf` writes it: the lab's server trusts exactly these clients.
pub const LAB_NET: &str = "10.213.0.0/16";

/// Whether hosts are network namespaces in this run (decided once, said once when not).
pub fn netns() -> bool {
    static NETNS: OnceLock<bool> = OnceLock::new();
    *NETNS.get_or_init(|| {
        let asked = std::env::var("AUTHSOME_TEST_HOSTS").is_ok_and(|v| v == "loopback");
        let root = nix::unistd::geteuid().is_root();
        let ip = Command::new("ip").args(["netns", "list"]).output().is_ok_and(|o| o.status.success());
        let why = match (asked, root, ip) {
            (true, _, _) => "AUTHSOME_TEST_HOSTS=loopback asks for it",
            (_, false, _) => "this is not root",
            (_, _, false) => "`ip netns` is unavailable (install iproute2)",
            _ => return true,
        };
        // Straight to stderr, past the test harness's capture: the run's log says it.
        let line = format!("hosts: FALLING BACK to plain processes on loopback: {why}, so no network namespaces\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        false
    })
}

/// Where the services of a test listen so that every host reaches them.
pub fn bind_ip() -> IpAddr {
    if netns() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    }
}

/// The multi-threaded libfaketime to preload for a host with a skewed clock
/// (Debian's `faketime`); `None`, after saying so, when it is not installed
/// (a failure under CI, where `.ci/run` installs it).
pub fn faketime() -> Option<String> {
    let found = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    match found {
        Some(p) => Some(p.to_owned()),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the clock skew test needs libfaketime under CI (apt-get install faketime)")
        }
        None => {
            eprintln!("NOT RUN: the clock skew test needs libfaketime (apt-get install faketime)");
            None
        }
    }
}

/// One host's link: a namespace and the veth pair joining it to ours.
struct Link {
    ns: String,
    root_if: String,
    root_addr: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Link {
    /// A fresh namespace with a /30 of [`LAB_NET`]: ours is `.1`, the host's `.2`.
    fn create() -> Link {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        // A /30 of the /16 per host, 64 per process from a block chosen by
        // pid, skipping any another test run already uses.
        let (n, root_addr, host_addr) = loop {
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let block = ((pid % 256) * 64 + n) % 16_384;
            let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + block * 4;
            let (root_addr, host_addr) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
            let used = Command::new("ip").args(["-4", "-o", "addr", "show", "to", &format!("{root_addr}/30")]).output();
            if used.is_ok_and(|o| o.stdout.is_empty()) {
                break (n, root_addr, host_addr);
            }
        };
        let ns = format!("as{pid}x{n}");
        let (root_if, host_if) = (format!("{ns}r"), format!("{ns}h"));
        // Leftovers of a killed run with the same pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let _ = Command::new("ip").args(["link", "del", &root_if]).output();
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &root_if, "type", "veth", "peer", "name", &host_if]);
        ip(&["link", "set", &host_if, "netns", &ns]);
        ip(&["addr", "add", &format!("{root_addr}/30"), "dev", &root_if]);
        ip(&["link", "set", &root_if, "up"]);
        ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{host_addr}/30"), "dev", &host_if]);
        ip(&["netns", "exec", &ns, "ip", "link", "set", &host_if, "up"]);
        ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        Link { ns, root_if, root_addr }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip").args(["link", "del", &self.root_if]).output();
    }
}

/// A machine: an authsome home, and a namespace when the lab has them.
pub struct Host {
    env: LoginEnv,
    link: Option<Link>,
    /// `AUTHSOME_RESOLVE` entries: how this host reaches the test's services.
    routes: Vec<String>,
    /// The team store URL as seen from the test's namespace.
    store: Option<String>,
    up: bool,
}

impl std::ops::Deref for Host {
    type Target = LoginEnv;
    fn deref(&self) -> &LoginEnv {
        &self.env
    }
}

impl std::ops::DerefMut for Host {
    fn deref_mut(&mut self) -> &mut LoginEnv {
        &mut self.env
    }
}

impl Host {
    /// A new machine with home `env`.
    pub fn new(env: LoginEnv) -> Host {
        let link = netns().then(Link::create);
        Host { env, link, routes: Vec::new(), store: None, up: true }
    }

    /// Whether this host is a network namespace (on loopback, cutting the
    /// link reaches only processes started afterwards).
    pub fn is_netns(&self) -> bool {
        self.link.is_some()
    }

    /// The address at which this host reaches the test's services.
    pub fn gateway(&self) -> String {
        self.link.as_ref().map_or_else(|| "127.0.0.1".to_owned(), |l| l.root_addr.to_string())
    }

    /// Use the team store at `url` (a URL on 127.0.0.1 of the test's namespace).
    pub fn set_store(&mut self, url: &str) {
        self.store = Some(url.to_owned());
        self.apply_store();
    }

    /// `url`, a URL on 127.0.0.1 of the test's namespace, as this host reaches it.
    pub fn seen_url(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some(&self.gateway())).unwrap();
        u.to_string()
    }

    fn apply_store(&mut self) {
        let Some(url) = self.store.clone() else { return };
        let mut u = url::Url::parse(&self.seen_url(&url)).unwrap();
        if !self.up && self.link.is_none() {
            // Loopback fallback of a cut link: an address where nothing listens.
            let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            u.set_port(Some(dead)).unwrap();
        }
        self.env.set("AUTHSOME_STORE", u.as_str());
    }

    /// Reach the test's HTTP service on 127.0.0.1:`port` (a fake
    /// authorization server named by that URL in provider files) from
    /// authsome and from the BROWSER stand-in.
    pub fn reach_local(&mut self, port: u16) {
        if self.link.is_none() {
            return;
        }
        let entry = format!("127.0.0.1:{port}:{}:{port}", self.gateway());
        self.env.set("FAKE_BROWSER_RESOLVE", &entry);
        self.add_route(entry);
    }

    /// Send this host's connections to `name:443` to `echo`, trusting its CA.
    pub fn upstream(&mut self, echo: &super::echo::Echo, name: &str) {
        self.env.set("AUTHSOME_UPSTREAM_CA", &echo.ca_path.display().to_string());
        self.add_route(format!("{name}:443:{}:{}", self.gateway(), echo.port));
    }

    fn add_route(&mut self, entry: String) {
        self.routes.push(entry);
        let all = self.routes.join(",");
        self.env.set("AUTHSOME_RESOLVE", &all);
    }

    /// Cut (`false`) or restore this machine's only link to the others.
    pub fn set_link(&mut self, up: bool) {
        self.up = up;
        match &self.link {
            Some(l) => ip(&["link", "set", &l.root_if, if up { "up" } else { "down" }]),
            None => self.apply_store(),
        }
    }

    /// `authsome ARGS` on this machine (in its namespace), environment as [`LoginEnv::cmd`].
    pub fn cmd(&self, args: &[&str]) -> Command {
        let inner = self.env.cmd(args);
        let Some(link) = &self.link else { return inner };
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &link.ns]).arg(inner.get_program()).args(inner.get_args()).env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        if let Some(dir) = inner.get_current_dir() {
            c.current_dir(dir);
        }
        c
    }

    /// Start `authsome ARGS` with piped output and no input.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// Run to completion with stdin from `/dev/null` (or `input` when given).
    pub fn run(&self, args: &[&str], input: Option<&str>) -> Out {
        run_with(self.cmd(args), input)
    }
}
