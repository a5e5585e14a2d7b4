//! Sealing of vault records: ChaCha20-Poly1305 per record, with the record's
//! key as associated data (so ciphertexts cannot be swapped between records or
//! profiles), and an HMAC over the whole file (so records cannot be dropped,
//! duplicated or rolled back one by one). Both keys are derived from the master
//! key with HKDF, never used directly.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};

/// The 32-byte master key of a vault.
#[derive(Clone)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut k = [0u8; 32];
        SystemRandom::new().fill(&mut k).expect("system randomness");
        MasterKey(k)
    }
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn derive(master: &MasterKey, label: &[u8]) -> [u8; 32] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"authsome-vault").extract(&master.0);
    let mut out = [0u8; 32];
    prk.expand(&[label], Len32).and_then(|okm| okm.fill(&mut out)).expect("HKDF output of 32 bytes");
    out
}

/// Record sealing and file authentication keys for one vault.
pub struct Sealer {
    aead: LessSafeKey,
    mac: hmac::Key,
    rng: SystemRandom,
}

/// Decryption or authentication failed: wrong key or tampered data.
#[derive(Debug)]
pub struct Tampered;

impl Sealer {
    /// Derive both subkeys from the master key.
    pub fn new(master: &MasterKey) -> Sealer {
        let aead_key = derive(master, b"record-aead-v1");
        let mac_key = derive(master, b"file-mac-v1");
        Sealer {
            aead: LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &aead_key).expect("32-byte key")),
            mac: hmac::Key::new(hmac::HMAC_SHA256, &mac_key),
            rng: SystemRandom::new(),
        }
    }

    /// Encrypt `plain`, bound to `aad`; output is nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, aad: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut buf = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad.as_bytes()), &mut buf)
            .expect("sealing cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// Decrypt a value made by [`Sealer::seal`] with the same `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, Tampered> {
        if sealed.len() < NONCE_LEN {
            return Err(Tampered);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Tampered)?;
        let mut buf = ct.to_vec();
        let plain = self.aead.open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf).map_err(|_| Tampered)?;
        Ok(plain.to_vec())
    }

    /// Authentication tag over the whole serialized body.
    pub fn mac(&self, body: &[u8]) -> Vec<u8> {
        hmac::sign(&self.mac, body).as_ref().to_vec()
    }

    /// Constant-time check of a tag made by [`Sealer::mac`].
    pub fn verify(&self, body: &[u8], tag: &[u8]) -> Result<(), Tampered> {
        hmac::verify(&self.mac, body, tag).map_err(|_| Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_bound_to_their_key() {
        let s = Sealer::new(&MasterKey::generate());
        let sealed = s.seal("conn/discord/default", b"secret");
        assert_eq!(s.open("conn/discord/default", &sealed).unwrap(), b"secret");
        assert!(s.open("conn/discord/work", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[14] ^= 1;
        assert!(s.open("conn/discord/default", &flipped).is_err());
    }

    #[test]
    fn another_key_cannot_open_or_forge() {
        let a = Sealer::new(&MasterKey::generate());
        let b = Sealer::new(&MasterKey::generate());
        assert!(b.open("k", &a.seal("k", b"x")).is_err());
        assert!(b.verify(b"body", &a.mac(b"body")).is_err());
    }
}
