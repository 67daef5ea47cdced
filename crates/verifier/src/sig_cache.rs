//! Cache of already verified tokens, so a repeat token costs a hash lookup instead of an
//! Ed25519 verification. Bounded; an entry never outlives its token's `exp`; flushed
//! whenever the key set changes.
//!
//! The map is keyed by a keyed hash (random per process) of the token's last bytes —
//! its signature, which differs for every token — and a hit still compares the whole
//! token, so a collision is only ever a miss.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, RwLock};

use crate::claims::Claims;

/// A verified token: its claims and the Redis key of its session (built once).
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) claims: Arc<Claims>,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) session_key: Option<Box<str>>,
}

struct Entry {
    token: Box<str>,
    verified: Arc<Verified>,
}

/// The map's keys are already hashes; don't hash them again.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// How many trailing bytes of a token are hashed (an Ed25519 signature is 86).
const HASHED_SUFFIX: usize = 48;

/// Bounded map from token to its verification. Its `Debug` shows no token.
pub(crate) struct SignatureCache {
    capacity: usize,
    seed: RandomState,
    entries: RwLock<HashMap<u64, Entry, BuildHasherDefault<PassThrough>>>,
}

impl std::fmt::Debug for SignatureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl SignatureCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seed: RandomState::new(),
            entries: RwLock::new(HashMap::default()),
        }
    }

    fn slot(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        self.seed
            .hash_one(&bytes[bytes.len().saturating_sub(HASHED_SUFFIX)..])
    }

    /// The verification of `token` if it was verified before and has not expired at
    /// `now_secs` (with `leeway_secs`).
    pub(crate) fn get(
        &self,
        token: &str,
        now_secs: i64,
        leeway_secs: i64,
    ) -> Option<Arc<Verified>> {
        if self.capacity == 0 {
            return None;
        }
        let slot = self.slot(token);
        let entries = self.entries.read().ok()?;
        let entry = entries.get(&slot).filter(|e| &*e.token == token)?;
        (entry.verified.claims.exp + leeway_secs > now_secs).then(|| Arc::clone(&entry.verified))
    }

    /// Remembers a verified token. When full, expired entries go first; if none have
    /// expired, everything goes (a cheap, bounded policy: a refill costs one verify each).
    pub(crate) fn insert(&self, token: &str, verified: Arc<Verified>, now_secs: i64) {
        if self.capacity == 0 {
            return;
        }
        let slot = self.slot(token);
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.verified.claims.exp > now_secs);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            slot,
            Entry {
                token: token.into(),
                verified,
            },
        );
    }

    /// Forgets everything (the key set changed).
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Audience;

    fn verified(exp: i64) -> Arc<Verified> {
        Arc::new(Verified {
            claims: Arc::new(Claims {
                iss: "i".into(),
                sub: "u".into(),
                aud: Audience::One("a".into()),
                exp,
                iat: 0,
                nbf: None,
                jti: "j".into(),
                sid: "s".into(),
                roles: vec![],
                client_id: None,
                scope: None,
            }),
            session_key: None,
        })
    }

    #[test]
    fn an_entry_never_outlives_its_token() {
        let cache = SignatureCache::new(10);
        cache.insert("t", verified(100), 50);
        assert!(cache.get("t", 99, 0).is_some());
        assert!(cache.get("t", 100, 0).is_none());
        assert!(cache.get("t", 104, 5).is_some());
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = SignatureCache::new(3);
        for i in 0..10 {
            cache.insert(&format!("t{i}"), verified(1000), 0);
            assert!(cache.len() <= 3);
        }
        assert!(cache.get("t9", 0, 0).is_some());
    }

    #[test]
    fn expired_entries_are_evicted_before_live_ones() {
        let cache = SignatureCache::new(2);
        cache.insert("old", verified(10), 0);
        cache.insert("live", verified(1000), 0);
        cache.insert("new", verified(1000), 20);
        assert!(cache.get("live", 20, 0).is_some());
        assert!(cache.get("new", 20, 0).is_some());
    }

    #[test]
    fn tokens_sharing_a_signature_suffix_are_told_apart() {
        let cache = SignatureCache::new(10);
        let sig = "x".repeat(HASHED_SUFFIX);
        cache.insert(&format!("header-a.payload.{sig}"), verified(1000), 0);
        assert!(
            cache
                .get(&format!("header-b.payload.{sig}"), 0, 0)
                .is_none()
        );
        assert!(
            cache
                .get(&format!("header-a.payload.{sig}"), 0, 0)
                .is_some()
        );
    }

    #[test]
    fn a_zero_capacity_cache_caches_nothing() {
        let cache = SignatureCache::new(0);
        cache.insert("t", verified(1000), 0);
        assert!(cache.get("t", 0, 0).is_none());
    }
}
