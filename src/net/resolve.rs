//! `AUTHSOME_RESOLVE=host:port:addr[:port2][,…]`, curl's `--resolve` /
//! `--connect-to` in one variable: connections to `host:port` go to `addr`
//! (and `port2` when given). IPv6 addresses are written in brackets.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Parsed overrides; empty when the variable is unset.
///
/// It also carries the user's own egress proxy (see [`super::egress`]): both
/// decide where a connection to `host:port` really goes.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    map: HashMap<(String, u16), SocketAddr>,
    egress: Option<super::egress::Egress>,
}

impl Resolver {
    /// Overrides from `AUTHSOME_RESOLVE` and the proxy of `HTTPS_PROXY`/`NO_PROXY`;
    /// a malformed entry is an error naming it.
    pub fn from_env() -> Result<Resolver> {
        let mut r = match std::env::var("AUTHSOME_RESOLVE") {
            Ok(v) => Resolver::parse(&v)?,
            Err(_) => Resolver::default(),
        };
        r.egress = super::egress::Egress::from_env()?;
        Ok(r)
    }

    /// Send connections through `egress` (tests, embedders).
    pub fn with_egress(mut self, egress: Option<super::egress::Egress>) -> Resolver {
        self.egress = egress;
        self
    }

    /// The egress proxy a connection to `host:port` must use, if any (an
    /// `AUTHSOME_RESOLVE` override always connects directly).
    pub fn egress_for(&self, host: &str, port: u16) -> Option<&super::egress::Egress> {
        if self.lookup(host, port).is_some() {
            return None;
        }
        self.egress.as_ref().filter(|e| e.applies_to(host, port))
    }

    /// Parse the variable's value.
    pub fn parse(spec: &str) -> Result<Resolver> {
        let mut map = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || Error::bad_input(format!("AUTHSOME_RESOLVE: {entry:?} is not host:port:addr[:port2]"));
            let (host, rest) = entry.split_once(':').ok_or_else(bad)?;
            let (port, rest) = rest.split_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let (addr, port2) = if let Some(v6) = rest.strip_prefix('[') {
                let (a, after) = v6.split_once(']').ok_or_else(bad)?;
                (a, after.strip_prefix(':'))
            } else {
                match rest.split_once(':') {
                    Some((a, p)) => (a, Some(p)),
                    None => (rest, None),
                }
            };
            let ip: IpAddr = addr.parse().map_err(|_| bad())?;
            let target_port = match port2 {
                Some(p) => p.parse().map_err(|_| bad())?,
                None => port,
            };
            map.insert((host.to_ascii_lowercase(), port), SocketAddr::new(ip, target_port));
        }
        Ok(Resolver { map, egress: None })
    }

    /// The override for `host:port`, if any.
    pub fn lookup(&self, host: &str, port: u16) -> Option<SocketAddr> {
        self.map.get(&(host.trim_end_matches('.').to_ascii_lowercase(), port)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_v6_and_port_remaps() {
        let r = Resolver::parse("api.github.com:443:127.0.0.1:8443, discord.com:443:[::1] ,x.test:80:127.0.0.2").unwrap();
        assert_eq!(r.lookup("API.github.com", 443), Some("127.0.0.1:8443".parse().unwrap()));
        assert_eq!(r.lookup("discord.com", 443), Some("[::1]:443".parse().unwrap()));
        assert_eq!(r.lookup("x.test", 80), Some("127.0.0.2:80".parse().unwrap()));
        assert_eq!(r.lookup("discord.com", 80), None);
    }

    #[test]
    fn rejects_malformed_entries() {
        assert!(Resolver::parse("nohost").is_err());
        assert!(Resolver::parse("a:443:not-an-ip").is_err());
        assert!(Resolver::parse("a:x:127.0.0.1").is_err());
    }
}
