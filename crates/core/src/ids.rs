//! Secret session ids versus public session keys.
//!
//! A [`SessionId`] is a bearer credential (the `vmware_soap_session` cookie, the
//! `vmware-api-session-id` header). It is never logged and never stored: stores keep its
//! SHA-256 [`IdDigest`]. A [`SessionKey`] is the public `UserSession.key` that appears in
//! session lists and that TerminateSession takes.
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Longest token accepted from a client, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// A secret bearer token: 160 random bits from [`csprng`], as 40 lowercase hex digits
/// (the shape vCenter's own `vmware_soap_session` values have).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    pub fn generate() -> Self {
        Self(random_hex(20))
    }

    /// Accepts a token presented by a client: 1..=4096 visible ASCII characters.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > MAX_TOKEN_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        Some(Self(s.to_owned()))
    }

    /// The secret itself; only for writing it to the client that owns it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> IdDigest {
        IdDigest::of(&self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.digest().short())
    }
}

/// SHA-256 of a secret token, as stored and as logged (shortened).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdDigest(pub [u8; 32]);

impl IdDigest {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Eight hex digits: enough to correlate log lines, useless to an attacker.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for IdDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdDigest({})", self.short())
    }
}

impl Serialize for IdDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for IdDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad digest"))
    }
}

/// The public `UserSession.key`: a UUID whose first byte is 0x52, like vCenter's.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct SessionKey(pub String);

impl SessionKey {
    pub fn generate() -> Self {
        let mut b = [0u8; 16];
        csprng().fill_bytes(&mut b);
        b[0] = 0x52;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Self(uuid::Uuid::from_bytes(b).to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The generator of session ids, keys and tickets: `rand`'s `ThreadRng`, ChaCha12 keyed
/// from the OS CSPRNG (`getrandom`) and rekeyed from it after every 64 KiB of output and
/// after a fork. Unlike reading the OS generator directly it costs no system call per id
/// (a Login needs two).
pub fn csprng() -> impl RngCore + rand::CryptoRng {
    rand::thread_rng()
}

/// `n` random bytes from [`csprng`] as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = [0u8; 64];
    let mut big = Vec::new();
    let b = if n <= buf.len() {
        &mut buf[..n]
    } else {
        big.resize(n, 0);
        &mut big[..]
    };
    csprng().fill_bytes(b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_long_and_distinct_from_keys() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 40);
        let k = SessionKey::generate();
        assert!(k.as_str().starts_with("52"));
        assert_eq!(k.as_str().len(), 36);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let a = SessionId::generate();
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(a.expose()));
    }

    #[test]
    fn parse_rejects_empty_huge_and_control() {
        assert!(SessionId::parse("").is_none());
        assert!(SessionId::parse(&"a".repeat(MAX_TOKEN_LEN + 1)).is_none());
        assert!(SessionId::parse("a b").is_none());
        assert!(SessionId::parse(&"a".repeat(MAX_TOKEN_LEN)).is_some());
    }

    #[test]
    fn digest_roundtrips_hex() {
        let d = IdDigest::of("x");
        assert_eq!(IdDigest::from_hex(&d.to_hex()), Some(d));
    }
}
