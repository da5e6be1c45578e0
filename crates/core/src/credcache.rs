//! A short-lived cache of recently verified credentials (as Apache's `mod_authn_socache`).
//!
//! argon2id makes every password check cost tens of milliseconds on purpose. Automation
//! that logs in and out in a loop with the same credentials pays that cost again and
//! again. This cache remembers, for a few minutes, that a user's password was verified:
//! it keeps a keyed SHA-256 of (user, password) under a random key that lives only in
//! this process's memory, together with the stored argon2 hash it was checked against.
//!
//! Threat model:
//! - Only a correct password can hit the cache. A wrong password always pays the full
//!   argon2 cost, so the cache offers no faster guessing and no timing difference between
//!   unknown users and wrong passwords.
//! - Nothing is written to disk, and the key is random per process, so the cache adds
//!   nothing to what an attacker who reads the data directory gets. One who can read the
//!   process's memory can already read passwords as they arrive.
//! - An entry stops matching when the user's stored hash changes (a password change),
//!   is dropped when the user is locked out, and expires after its lifetime; a hit never
//!   extends it. Lockout is checked before the cache is consulted.
//! - It is per process: replicas each verify once.
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept at most; the oldest go first when full.
pub const MAX_ENTRIES: usize = 10_000;

struct Entry {
    mac: [u8; 32],
    phc: String,
    expires: DateTime<Utc>,
}

pub struct CredentialCache {
    key: [u8; 32],
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl CredentialCache {
    /// A cache whose entries live `ttl`; a zero `ttl` disables it.
    pub fn new(ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self {
            key,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `password` was verified for `user` against the hash `phc` within the TTL.
    pub fn hit(&self, user: &str, password: &str, phc: &str, now: DateTime<Utc>) -> bool {
        if self.ttl <= Duration::zero() {
            return false;
        }
        let mac = self.mac(user, password);
        let mut e = self.entries();
        match e.get(user) {
            Some(x) if x.expires > now && x.phc == phc => constant_eq(&x.mac, &mac),
            Some(_) => {
                e.remove(user);
                false
            }
            None => false,
        }
    }

    /// Remembers a successful verification.
    pub fn insert(&self, user: &str, password: &str, phc: &str, now: DateTime<Utc>) {
        if self.ttl <= Duration::zero() {
            return;
        }
        let mac = self.mac(user, password);
        let mut e = self.entries();
        if e.len() >= MAX_ENTRIES && !e.contains_key(user) {
            e.retain(|_, x| x.expires > now);
            if e.len() >= MAX_ENTRIES {
                if let Some(oldest) = e
                    .iter()
                    .min_by_key(|(_, x)| x.expires)
                    .map(|(k, _)| k.clone())
                {
                    e.remove(&oldest);
                }
            }
        }
        e.insert(
            user.to_owned(),
            Entry {
                mac,
                phc: phc.to_owned(),
                expires: now + self.ttl,
            },
        );
    }

    /// Forgets a user (lockout, password change).
    pub fn forget(&self, user: &str) {
        self.entries().remove(user);
    }
}

fn constant_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_the_right_password_for_the_same_hash_within_the_ttl() {
        let c = CredentialCache::new(Duration::seconds(300));
        let t = Utc::now();
        assert!(!c.hit("u", "pw", "h1", t));
        c.insert("u", "pw", "h1", t);
        assert!(c.hit("u", "pw", "h1", t + Duration::seconds(299)));
        assert!(!c.hit("u", "wrong", "h1", t), "a wrong password never hits");
        assert!(!c.hit("v", "pw", "h1", t), "another user never hits");
        assert!(!c.hit("u", "pw", "h2", t), "a changed password hash misses");
        c.insert("u", "pw", "h1", t);
        assert!(
            !c.hit("u", "pw", "h1", t + Duration::seconds(300)),
            "expired"
        );
        c.insert("u", "pw", "h1", t);
        c.forget("u");
        assert!(!c.hit("u", "pw", "h1", t));
        let off = CredentialCache::new(Duration::zero());
        off.insert("u", "pw", "h1", t);
        assert!(!off.hit("u", "pw", "h1", t));
    }

    #[test]
    fn stays_bounded() {
        let c = CredentialCache::new(Duration::seconds(300));
        let t = Utc::now();
        for i in 0..(MAX_ENTRIES + 10) {
            c.insert(
                &format!("u{i}"),
                "pw",
                "h",
                t + Duration::milliseconds(i as i64),
            );
        }
        assert_eq!(c.entries().len(), MAX_ENTRIES);
        assert!(c.hit(&format!("u{}", MAX_ENTRIES + 9), "pw", "h", t));
    }
}
