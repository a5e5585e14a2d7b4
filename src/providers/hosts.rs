//! `api_url` entries: which requests may receive a provider's credential.
//!
//! Three forms (README.md, `api_url`): a bare host (`discord.com`), a URL whose path is a
//! prefix constraint (`https://api.example.com/v2`), or `regex:<pattern>`
//! matched against the whole host name. The proxy asks two questions: "may I
//! decrypt this CONNECT?" ([`HostPattern::matches_host`]) and "may this request
//! carry the credential?" ([`HostPattern::matches_request`]).

/// One compiled `api_url` entry.
#[derive(Debug, Clone)]
pub enum HostPattern {
    /// Exact host, any path; `port` restricts the port when given.
    Host {
        /// Lower-case host name.
        host: String,
        /// Port, when the entry names one.
        port: Option<u16>,
    },
    /// Exact host and a path prefix (matched on `/` boundaries).
    Prefix {
        /// Lower-case host name.
        host: String,
        /// Port, when the URL names one.
        port: Option<u16>,
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
            let port = url.port();
            let path = url.path().trim_end_matches('/').to_owned();
            return Ok(if path.is_empty() { HostPattern::Host { host, port } } else { HostPattern::Prefix { host, port, path } });
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p.parse::<u16>().map_err(|_| format!("invalid port in {entry:?}"))?)),
            _ => (entry, None),
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Err(format!("{entry:?} is not a host name (use regex:<pattern> for patterns)"));
        }
        Ok(HostPattern::Host { host: host.to_ascii_lowercase(), port })
    }

    /// Whether a CONNECT to `host:port` is for this entry (path not yet known).
    pub fn matches_host(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self {
            HostPattern::Host { host: h, port: p } | HostPattern::Prefix { host: h, port: p, .. } => {
                *h == host && p.is_none_or(|p| p == port)
            }
            HostPattern::Regex { re, .. } => re.is_match(&host),
        }
    }

    /// Whether a request to `host:port` with `path` (no query) may carry the credential.
    pub fn matches_request(&self, host: &str, port: u16, path: &str) -> bool {
        if !self.matches_host(host, port) {
            return false;
        }
        match self {
            HostPattern::Prefix { path: prefix, .. } => {
                path == prefix || (path.starts_with(prefix.as_str()) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
            }
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
    fn plain_http_is_only_for_loopback() {
        assert!(HostPattern::parse("http://127.0.0.1:8080/api").is_ok());
        assert!(HostPattern::parse("http://api.example.com").is_err());
        assert!(HostPattern::parse("not a host").is_err());
    }
}
