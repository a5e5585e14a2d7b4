//! `api_url` entries: which requests may receive a provider's credential.
//!
//! Three forms (README.md, `api_url`): a bare host (`discord.com`), a URL whose path is a
//! prefix constraint (`https://api.example.com/v2`), or `regex:<pattern>`
//! matched against the whole host name. The proxy asks two questions: "may I
//! decrypt this CONNECT?" ([`HostPattern::matches_host`]) and "may this request
//! carry the credential?" ([`HostPattern::matches_request`]).
//!
//! Both answers are conservative: an entry covers only its declared port (443
//! unless it names one), and paths are compared after normalisation
//! ([`path_forms`]) so `..`, `//` and percent-escapes cannot step out of a
//! prefix; a request gets the credential only when every plausible reading of
//! its path is inside the prefix.

/// One compiled `api_url` entry.
#[derive(Debug, Clone)]
pub enum HostPattern {
    /// Exact host, any path, on one port.
    Host {
        /// Lower-case host name.
        host: String,
        /// The port the entry names, else 443 (80 for a loopback `http://` URL).
        port: u16,
    },
    /// Exact host and a path prefix (matched on `/` boundaries).
    Prefix {
        /// Lower-case host name.
        host: String,
        /// The port the URL names, else its scheme's default.
        port: u16,
        /// Path prefix without trailing slash (`/v2`).
        path: String,
    },
    /// Whole-host regular expression.
    Regex {
        /// The pattern as written after `regex:`.
        source: String,
        /// Compiled, anchored at both ends.
        re: regex_lite::Regex,
    },
}

impl HostPattern {
    /// Parse one `api_url` entry; the error is a one-line reason.
    pub fn parse(entry: &str) -> Result<HostPattern, String> {
        if let Some(pat) = entry.strip_prefix("regex:") {
            let re = regex_lite::Regex::new(&format!("^(?:{pat})$")).map_err(|e| format!("invalid regex {pat:?}: {e}"))?;
            return Ok(HostPattern::Regex { source: pat.to_owned(), re });
        }
        if entry.contains("://") {
            let url = url::Url::parse(entry).map_err(|e| format!("invalid URL {entry:?}: {e}"))?;
            if url.scheme() != "https" && !(url.scheme() == "http" && crate::text::is_loopback_host(url.host_str().unwrap_or(""))) {
                return Err(format!("{entry:?} must use https"));
            }
            let host = url.host_str().ok_or_else(|| format!("{entry:?} has no host"))?.to_ascii_lowercase();
            let port = url.port_or_known_default().unwrap_or(443);
            let path = url.path().trim_end_matches('/').to_owned();
            return Ok(if path.is_empty() { HostPattern::Host { host, port } } else { HostPattern::Prefix { host, port, path } });
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse::<u16>().map_err(|_| format!("invalid port in {entry:?}"))?),
            _ => (entry, 443),
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Err(format!("{entry:?} is not a host name (use regex:<pattern> for patterns)"));
        }
        Ok(HostPattern::Host { host: host.to_ascii_lowercase(), port })
    }

    /// Whether a CONNECT to `host:port` is for this entry (path not yet known).
    /// Only the declared port counts; any other port of the host is somebody
    /// else's service and is tunnelled blind.
    pub fn matches_host(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self {
            HostPattern::Host { host: h, port: p } | HostPattern::Prefix { host: h, port: p, .. } => *h == host && *p == port,
            HostPattern::Regex { re, .. } => port == 443 && re.is_match(&host),
        }
    }

    /// Whether a request to `host:port` with `path` (no query) may carry the credential.
    pub fn matches_request(&self, host: &str, port: u16, path: &str) -> bool {
        if !self.matches_host(host, port) {
            return false;
        }
        match self {
            HostPattern::Prefix { path: prefix, .. } => path_forms(path).iter().all(|p| under_prefix(p, prefix)),
            _ => true,
        }
    }

    /// How specific a match on this entry is, for the shared-host rule: a path
    /// prefix beats a bare host (longer prefixes first), which beats a regex.
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            HostPattern::Prefix { path, .. } => (2, path.len()),
            HostPattern::Host { .. } => (1, 0),
            HostPattern::Regex { .. } => (0, 0),
        }
    }

    /// Where this entry lets the credential go, for people: `api.acme.test`,
    /// `api.acme.test:8443`, `api.acme.test/v2/*`, `hosts matching <regex>`
    /// (the port only when it is not 443).
    pub fn describe(&self) -> String {
        let at = |host: &str, port: u16| if port == 443 { host.to_owned() } else { format!("{host}:{port}") };
        match self {
            HostPattern::Host { host, port } => at(host, *port),
            HostPattern::Prefix { host, port, path } => format!("{}{path}/*", at(host, *port)),
            HostPattern::Regex { source, .. } => format!("hosts matching {source}"),
        }
    }

    /// The DNS subtree a certificate authority may be constrained to for this
    /// entry: the host itself, or the literal domain suffix a regex ends with.
    /// `None` when a regex has no such suffix (it cannot be constrained).
    pub fn dns_constraint(&self) -> Option<String> {
        match self {
            HostPattern::Host { host, .. } | HostPattern::Prefix { host, .. } => Some(host.clone()),
            HostPattern::Regex { source, .. } => literal_suffix(source),
        }
    }
}

/// `path` equals `prefix` or lies below it on a `/` boundary.
pub fn under_prefix(path: &str, prefix: &str) -> bool {
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// The readings an upstream may give a request path, each normalised (dot
/// segments resolved, repeated slashes collapsed, no trailing slash):
/// every escape decoded (`%2f` and `\` as `/`, as many servers do), and every
/// escape but an encoded slash decoded (as the rest do). A credential decision
/// must hold for both.
pub fn path_forms(path: &str) -> [String; 2] {
    [resolve_dots(&percent_decode(path, true)), resolve_dots(&percent_decode(path, false))]
}

/// Decode `%XX` escapes; an encoded `/` or `\` only when `slashes`.
fn percent_decode(path: &str, slashes: bool) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                let c = (h * 16 + l) as u8;
                if slashes || (c != b'/' && c != b'\\') {
                    out.push(c);
                } else {
                    out.extend_from_slice(&bytes[i..i + 3]);
                }
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    let s = String::from_utf8_lossy(&out).into_owned();
    if slashes {
        s.replace('\\', "/")
    } else {
        s
    }
}

/// Resolve `.` and `..` segments (never above the root), collapse empty
/// segments, drop the trailing slash: `/a//./b/../c/` → `/a/c`.
fn resolve_dots(path: &str) -> String {
    let mut segs: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    format!("/{}", segs.join("/"))
}

/// The longest literal domain suffix of a regex (`.*\.linear\.app` → `linear.app`),
/// requiring at least two labels so a pattern can never widen to a whole TLD.
fn literal_suffix(pattern: &str) -> Option<String> {
    let pat = pattern.strip_suffix('$').unwrap_or(pattern);
    let mut out = Vec::new();
    let bytes = pat.as_bytes();
    let mut i = bytes.len();
    while i > 0 {
        let c = bytes[i - 1];
        if i >= 2 && bytes[i - 2] == b'\\' && c == b'.' {
            out.push(b'.');
            i -= 2;
        } else if c.is_ascii_alphanumeric() || c == b'-' {
            if i >= 2 && bytes[i - 2] == b'\\' {
                break;
            }
            out.push(c.to_ascii_lowercase());
            i -= 1;
        } else {
            break;
        }
    }
    out.reverse();
    let s = String::from_utf8(out).ok()?;
    // Only whole labels count: the suffix must start right after a literal dot.
    let s = s.strip_prefix('.')?;
    (s.split('.').count() >= 2 && s.split('.').all(|l| !l.is_empty())).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entries_match_exactly() {
        let p = HostPattern::parse("discord.com").unwrap();
        assert!(p.matches_host("discord.com", 443));
        assert!(p.matches_host("Discord.COM.", 443));
        assert!(!p.matches_host("evil-discord.com", 443));
        assert!(!p.matches_host("discord.com.evil.net", 443));
    }

    #[test]
    fn url_entries_constrain_the_path_on_segment_boundaries() {
        let p = HostPattern::parse("https://api.example.com/v2/").unwrap();
        assert!(p.matches_request("api.example.com", 443, "/v2"));
        assert!(p.matches_request("api.example.com", 443, "/v2/users"));
        assert!(!p.matches_request("api.example.com", 443, "/v20"));
        assert!(!p.matches_request("api.example.com", 443, "/v1/users"));
        assert!(p.matches_host("api.example.com", 443));
    }

    #[test]
    fn prefixes_hold_for_every_reading_of_the_path() {
        let p = HostPattern::parse("https://api.acme.test/tenant-a").unwrap();
        assert!(p.matches_request("api.acme.test", 443, "/tenant-a/x"));
        assert!(p.matches_request("api.acme.test", 443, "/tenant-a/./x//y"));
        for evil in ["/tenant-a/../tenant-b/x", "/tenant-a/..%2ftenant-b/x", "/tenant-a/%2e%2e/tenant-b/x", "/tenant-a/..%5ctenant-b"] {
            assert!(!p.matches_request("api.acme.test", 443, evil), "{evil}");
        }
        assert!(!p.matches_request("api.acme.test", 443, "/x%2f..%2f..%2ftenant-a/y"), "decoded and raw readings disagree");
        assert_eq!(path_forms("/a//./b/../%63/"), ["/a/c".to_owned(), "/a/c".to_owned()]);
    }

    #[test]
    fn only_the_declared_port_matches() {
        assert!(HostPattern::parse("api.openai.com").unwrap().matches_host("api.openai.com", 443));
        assert!(!HostPattern::parse("api.openai.com").unwrap().matches_host("api.openai.com", 8443));
        assert!(HostPattern::parse("api.acme.test:8443").unwrap().matches_host("api.acme.test", 8443));
        assert!(!HostPattern::parse("https://api.acme.test/v1").unwrap().matches_host("api.acme.test", 444));
        assert!(!HostPattern::parse(r"regex:[a-z]+\.acme\.test").unwrap().matches_host("x.acme.test", 8443));
    }

    #[test]
    fn regex_entries_are_anchored() {
        let p = HostPattern::parse(r"regex:[a-z]+[0-9]+\.api\.mailchimp\.com").unwrap();
        assert!(p.matches_host("us21.api.mailchimp.com", 443));
        assert!(!p.matches_host("us21.api.mailchimp.com.evil.net", 443));
        assert!(!p.matches_host("api.mailchimp.com", 443));
        assert_eq!(p.dns_constraint().as_deref(), Some("api.mailchimp.com"));
    }

    #[test]
    fn regex_without_a_domain_suffix_cannot_be_constrained() {
        assert_eq!(HostPattern::parse("regex:.*googleapis.*").unwrap().dns_constraint(), None);
        assert_eq!(HostPattern::parse(r"regex:.*\.linear\.app").unwrap().dns_constraint().as_deref(), Some("linear.app"));
        assert_eq!(HostPattern::parse(r"regex:.*\.com").unwrap().dns_constraint(), None);
    }

    #[test]
    fn descriptions_name_host_port_and_path() {
        assert_eq!(HostPattern::parse("api.acme.test").unwrap().describe(), "api.acme.test");
        assert_eq!(HostPattern::parse("api.acme.test:8443").unwrap().describe(), "api.acme.test:8443");
        assert_eq!(HostPattern::parse("https://api.acme.test/v2/").unwrap().describe(), "api.acme.test/v2/*");
        assert_eq!(HostPattern::parse(r"regex:[a-z]+\.acme\.test").unwrap().describe(), r"hosts matching [a-z]+\.acme\.test");
    }

    #[test]
    fn plain_http_is_only_for_loopback() {
        assert!(HostPattern::parse("http://127.0.0.1:8080/api").is_ok());
        assert!(HostPattern::parse("http://api.example.com").is_err());
        assert!(HostPattern::parse("not a host").is_err());
    }
}
