//! The user's own outbound proxy (a corporate egress proxy), as it was in
//! authsome's environment before authsome replaced the proxy variables for
//! the command it runs. Upstream connections of the injecting proxy and of
//! the OAuth client go through it with an HTTP `CONNECT`, honouring
//! `NO_PROXY`, so users behind one keep working. Its credentials stay in
//! authsome: they are sent only to that proxy and never appear in messages.

use crate::error::{Error, Result};
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An `http://[user:pass@]host:port` proxy and the hosts that bypass it.
#[derive(Clone, PartialEq, Eq)]
pub struct Egress {
    host: String,
    port: u16,
    /// `Basic …` value of `Proxy-Authorization`, when the URL has credentials.
    authorization: Option<String>,
    no_proxy: Vec<String>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "Egress({}:{})", self.host, self.port)
    }
}

impl Egress {
    /// From `https_proxy`/`HTTPS_PROXY` (else `all_proxy`/`ALL_PROXY`) and
    /// `no_proxy`/`NO_PROXY`; `None` when no proxy is set.
    pub fn from_env() -> Result<Option<Egress>> {
        let var = |names: &[&str]| names.iter().filter_map(|n| std::env::var(n).ok()).find(|v| !v.trim().is_empty());
        let Some(url) = var(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]) else { return Ok(None) };
        let no_proxy = var(&["no_proxy", "NO_PROXY"]).unwrap_or_default();
        Egress::parse(&url, &no_proxy).map(Some)
    }

    /// Parse a proxy URL (scheme `http`, or none) and a `NO_PROXY` list.
    pub fn parse(url: &str, no_proxy: &str) -> Result<Egress> {
        let with_scheme = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
        let u = url::Url::parse(&with_scheme).map_err(|_| Error::bad_input("HTTPS_PROXY is not a valid proxy URL"))?;
        if u.scheme() != "http" {
            return Err(Error::bad_input(format!("HTTPS_PROXY: {}:// proxies are not supported (use an http:// proxy URL)", u.scheme())));
        }
        let host = u
            .host_str()
            .ok_or_else(|| Error::bad_input("HTTPS_PROXY has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authorization = (!u.username().is_empty()).then(|| {
            let pair = format!("{}:{}", decode(u.username()), decode(u.password().unwrap_or("")));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        });
        let no_proxy = no_proxy.split(',').map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()).collect();
        Ok(Egress { host, port: u.port().unwrap_or(3128), authorization, no_proxy })
    }

    /// Whether a connection to `host:port` goes through the proxy: not for
    /// loopback (a remote proxy cannot reach it) nor for `NO_PROXY` entries
    /// (`*`, a host or domain suffix with or without a leading dot, an IP, any
    /// of them with `:port`).
    pub fn applies_to(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        if crate::text::is_loopback_host(&host) {
            return false;
        }
        !self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            let (name, entry_port) = match entry.rsplit_once(':') {
                Some((n, p)) if !n.contains(':') || n.ends_with(']') => (n, p.parse::<u16>().ok()),
                _ => (entry.as_str(), None),
            };
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name.trim_start_matches("*.").trim_start_matches('.').trim_start_matches('[').trim_end_matches(']');
            host == name || host.ends_with(&format!(".{name}"))
        })
    }

    /// Open a tunnel to `host:port` through the proxy.
    pub async fn tunnel(&self, resolver: &super::Resolver, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let proxy = format!("{}:{}", self.host, self.port);
        let fail = |why: String| std::io::Error::other(format!("through your proxy {proxy}: {why}"));
        let mut stream = match resolver.lookup(&self.host, self.port) {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((self.host.as_str(), self.port)).await,
        }
        .map_err(|e| fail(format!("cannot connect: {e}")))?;
        let target = if host.contains(':') && !host.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(a) = &self.authorization {
            head.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(|e| fail(e.to_string()))?;
        // Read the response head byte by byte: nothing after it may be consumed.
        let mut reply = Vec::new();
        while !reply.ends_with(b"\r\n\r\n") {
            if reply.len() > 16 * 1024 {
                return Err(fail("response head too long".into()));
            }
            let b = stream.read_u8().await.map_err(|e| fail(format!("no answer to CONNECT: {e}")))?;
            reply.push(b);
        }
        let status_line = String::from_utf8_lossy(&reply).lines().next().unwrap_or_default().to_owned();
        let code = status_line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok()).unwrap_or(0);
        match code {
            200..=299 => Ok(stream),
            407 => Err(fail("the proxy wants credentials (407); put them in HTTPS_PROXY as http://user:password@host:port".into())),
            _ => Err(fail(format!("CONNECT {target} refused: {}", status_line.trim()))),
        }
    }
}

/// `%XX` escapes of a URL's user information, decoded.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_entries_match_hosts_domains_and_ports() {
        let e = Egress::parse("http://u:p@corp:3128", "internal.example, .corp.test,api.x.test:8443, 10.1.2.3").unwrap();
        assert!(e.applies_to("api.openai.com", 443));
        assert!(!e.applies_to("internal.example", 443));
        assert!(!e.applies_to("git.internal.example", 443));
        assert!(e.applies_to("notinternal.example", 443));
        assert!(!e.applies_to("a.corp.test", 443));
        assert!(!e.applies_to("api.x.test", 8443));
        assert!(e.applies_to("api.x.test", 443));
        assert!(!e.applies_to("10.1.2.3", 443));
        assert!(!e.applies_to("127.0.0.1", 443), "loopback never goes through a proxy");
        assert!(!e.applies_to("localhost", 443));
        assert!(!Egress::parse("corp:3128", "*").unwrap().applies_to("api.openai.com", 443));
    }

    #[test]
    fn credentials_become_basic_auth_and_never_show_in_debug() {
        let e = Egress::parse("http://corp%40user:s3cr%3At@proxy.corp:8080", "").unwrap();
        assert_eq!(e.port, 8080);
        let expected = base64::engine::general_purpose::STANDARD.encode("corp@user:s3cr:t");
        assert_eq!(e.authorization.as_deref(), Some(format!("Basic {expected}").as_str()));
        assert!(!format!("{e:?}").contains("s3cr"));
        assert!(Egress::parse("socks5://corp:1080", "").unwrap_err().message.contains("not supported"));
    }
}
