//! The per-run certificate authorities.
//!
//! Each CA is an ECDSA P-256 key generated in memory (it never touches disk)
//! whose certificate carries X.509 name constraints: it may only vouch for the
//! DNS subtrees of the declared hosts, and for no IP address at all. A stolen
//! copy of the bundle therefore cannot impersonate any other site. Leaf
//! certificates are minted on demand and cached per host, least recently used
//! first out beyond [`LEAF_CACHE`] hosts: a regex provider lets a client name
//! any number of hosts, and each leaf costs tens of kilobytes.
//!
//! Routes can grow while a proxy runs (project mode), so a [`CaSet`] keeps a
//! list: a host outside every existing CA's constraints gets a new CA, and each
//! leaf is minted by the CA whose constraints cover it.

use crate::error::{Error, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a run CA is valid; generous so long-running daemons keep working.
pub const CA_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// How many hosts' leaves are kept.
pub const LEAF_CACHE: usize = 256;
/// Clock skew tolerated on `not_before`.
const BACKDATE: Duration = Duration::from_secs(3600);

/// One in-memory certificate authority with its name constraints.
pub struct RunCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pem: String,
    constraints: Vec<String>,
    not_after_unix: u64,
}

/// Set a certificate's validity window from Unix times.
fn set_validity(params: &mut CertificateParams, not_before: u64, not_after: u64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(not_before);
    params.not_after = epoch + Duration::from_secs(not_after);
}

impl RunCa {
    /// A new CA permitted to vouch only for `constraints` (DNS subtrees, e.g.
    /// `api.github.com`). An empty list is refused: an unconstrained CA is
    /// exactly what this design exists to avoid.
    pub fn new(constraints: &[String]) -> Result<RunCa> {
        if constraints.is_empty() {
            return Err(Error::other("a run CA needs at least one name constraint"));
        }
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| Error::other(format!("CA key generation failed: {e}")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "authsome run CA (constrained, in-memory)");
        params.distinguished_name.push(DnType::OrganizationName, "authsome");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: constraints.iter().map(|c| GeneralSubtree::DnsName(c.clone())).collect(),
            excluded_subtrees: vec![
                GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix([0; 4], 0)),
                GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix([0; 16], 0)),
            ],
        });
        let now = crate::fsutil::now_unix();
        let not_after = now + CA_VALIDITY.as_secs();
        set_validity(&mut params, now.saturating_sub(BACKDATE.as_secs()), not_after);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(|e| Error::other(format!("CA certificate generation failed: {e}")))?;
        Ok(RunCa {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
            constraints: constraints.to_vec(),
            not_after_unix: not_after,
        })
    }

    /// The CA certificate, PEM (what goes into the child's bundle).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The permitted DNS subtrees.
    pub fn constraints(&self) -> &[String] {
        &self.constraints
    }

    /// Whether `host` lies inside this CA's permitted subtrees.
    pub fn covers(&self, host: &str) -> bool {
        let host = normalize(host);
        self.constraints.iter().any(|c| in_subtree(&host, c))
    }

    /// Mint a leaf certificate for `host` and return (certificate chain, key).
    /// Minting does not check the constraints — relying parties do, which is
    /// the point: a leaf for a host outside them is useless.
    pub fn issue(&self, host: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let host = normalize(host);
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| Error::other(format!("leaf key generation failed: {e}")))?;
        let mut params =
            CertificateParams::new(vec![host.clone()]).map_err(|e| Error::other(format!("invalid host name {host:?}: {e}")))?;
        params.distinguished_name.push(DnType::CommonName, host.clone());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = crate::fsutil::now_unix();
        set_validity(&mut params, now.saturating_sub(BACKDATE.as_secs()), self.not_after_unix);
        params.serial_number = Some(random_serial());
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| Error::other(format!("leaf certificate for {host} failed: {e}")))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone()], key))
    }
}

fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
    bytes[0] &= 0x7f;
    rcgen::SerialNumber::from_slice(&bytes)
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// RFC 5280 DNS subtree membership: the name itself or any name below it.
fn in_subtree(host: &str, subtree: &str) -> bool {
    host == subtree || (host.len() > subtree.len() && host.ends_with(subtree) && host.as_bytes()[host.len() - subtree.len() - 1] == b'.')
}

/// Every CA of a proxy plus the per-host leaf cache.
#[derive(Default)]
pub struct CaSet {
    inner: Mutex<CaSetInner>,
}

#[derive(Default)]
struct CaSetInner {
    cas: Vec<Arc<RunCa>>,
    leaves: Leaves,
}

/// The leaf cache: server configurations by host, with the tick of their last
/// use; beyond [`LEAF_CACHE`] entries the least recently used is dropped.
#[derive(Default)]
struct Leaves {
    tick: u64,
    map: HashMap<String, (Arc<ServerConfig>, u64)>,
}

impl Leaves {
    fn get(&mut self, host: &str) -> Option<Arc<ServerConfig>> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(host).map(|(cfg, used)| {
            *used = tick;
            cfg.clone()
        })
    }

    fn insert(&mut self, host: String, cfg: Arc<ServerConfig>) {
        self.tick += 1;
        self.map.insert(host, (cfg, self.tick));
        if self.map.len() > LEAF_CACHE {
            if let Some(oldest) = self.map.iter().min_by_key(|(_, (_, used))| *used).map(|(h, _)| h.clone()) {
                self.map.remove(&oldest);
            }
        }
    }
}

impl CaSet {
    /// Make sure every constraint in `needed` is covered, creating one new CA
    /// for those that are not. Returns whether a CA was added (the bundle
    /// file must then be rewritten).
    pub fn cover(&self, needed: &[String]) -> Result<bool> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut missing: Vec<String> = needed.iter().map(|n| normalize(n)).filter(|n| !inner.cas.iter().any(|ca| ca.covers(n))).collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(false);
        }
        inner.cas.push(Arc::new(RunCa::new(&missing)?));
        Ok(true)
    }

    /// Whether some CA may vouch for `host`.
    pub fn covers(&self, host: &str) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).cas.iter().any(|ca| ca.covers(host))
    }

    /// The CA certificates, PEM, oldest first.
    pub fn pems(&self) -> Vec<String> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).cas.iter().map(|c| c.pem().to_owned()).collect()
    }

    /// The CAs themselves (tests, benchmarks).
    pub fn cas(&self) -> Vec<Arc<RunCa>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).cas.clone()
    }

    /// A TLS server configuration presenting a leaf for `host` (minted by the
    /// covering CA on first use, then cached), offering ALPN h2 and http/1.1.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>> {
        let host = normalize(host);
        let ca = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(cfg) = inner.leaves.get(&host) {
                return Ok(cfg.clone());
            }
            inner.cas.iter().find(|ca| ca.covers(&host)).cloned().ok_or_else(|| Error::other(format!("no run CA may vouch for {host}")))?
        };
        let (chain, key) = ca.issue(&host)?;
        let mut cfg = ServerConfig::builder_with_provider(crate::net::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::other(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| Error::other(format!("leaf for {host} unusable: {e}")))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).leaves.insert(host, cfg.clone());
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtrees_match_on_label_boundaries() {
        assert!(in_subtree("api.github.com", "api.github.com"));
        assert!(in_subtree("x.api.github.com", "api.github.com"));
        assert!(!in_subtree("evilapi.github.com", "api.github.com"));
        assert!(!in_subtree("github.com", "api.github.com"));
    }

    #[test]
    fn new_hosts_get_a_new_ca_and_leaves_come_from_the_covering_one() {
        let set = CaSet::default();
        assert!(set.cover(&["api.a.test".into()]).unwrap());
        assert!(!set.cover(&["api.a.test".into()]).unwrap());
        assert!(set.cover(&["api.a.test".into(), "api.b.test".into()]).unwrap());
        assert_eq!(set.cas().len(), 2);
        assert_eq!(set.cas()[1].constraints(), ["api.b.test"]);
        assert!(set.server_config("api.b.test").is_ok());
        assert!(set.server_config("other.test").is_err());
        assert!(RunCa::new(&[]).is_err());
    }

    #[test]
    fn the_leaf_cache_keeps_the_recently_used_hosts_and_is_bounded() {
        let set = CaSet::default();
        set.cover(&["mc.test".into()]).unwrap();
        let first = set.server_config("h0.mc.test").unwrap();
        for i in 1..=LEAF_CACHE {
            set.server_config(&format!("h{i}.mc.test")).unwrap();
            // h0 stays in use throughout.
            assert!(Arc::ptr_eq(&first, &set.server_config("h0.mc.test").unwrap()), "a host in use keeps its leaf");
        }
        let inner = set.inner.lock().unwrap();
        assert_eq!(inner.leaves.map.len(), LEAF_CACHE);
        assert!(!inner.leaves.map.contains_key("h1.mc.test"), "the least recently used host was dropped");
        assert!(inner.leaves.map.contains_key(&format!("h{LEAF_CACHE}.mc.test")));
    }
}
