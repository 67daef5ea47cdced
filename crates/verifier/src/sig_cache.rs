//! Cache of already verified tokens, so a repeat token costs a hash lookup instead of an
//! Ed25519 verification. Bounded, with real eviction: when it is nearly full, expired
//! entries go first (swept at most once a second), then quick_cache's S3-FIFO picks (a token
//! seen once goes before tokens that keep coming back). An entry is never served past its
//! token's `exp`; the cache is emptied whenever the key set changes.
//!
//! The map is keyed by the whole token, hashed with a seeded hash (random per process) of
//! the token's last bytes only — its signature, which differs for every token — so a
//! lookup hashes 48 bytes, and a hit still compares the whole token.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, UnitWeighter};

use crate::claims::Claims;

/// A verified token: its claims and, when the verifier checks sessions, its session.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) claims: Arc<Claims>,
    #[cfg(feature = "redis")]
    pub(crate) session: Option<Session>,
}

/// A verified token's session: its Redis key (built once) and tracked mode's copy of its
/// answer.
#[cfg(feature = "redis")]
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) key: Box<str>,
    pub(crate) memo: crate::revocation::SessionMemo,
}

/// How many trailing bytes of a token are hashed (an Ed25519 signature is 86).
const HASHED_SUFFIX: usize = 48;

/// Hashes a token (its bytes) by its last [`HASHED_SUFFIX`] bytes only, with the cache's own
/// seeded hasher (random per process).
#[derive(Clone, Default)]
struct SuffixHash(DefaultHashBuilder);

impl BuildHasher for SuffixHash {
    type Hasher = SuffixHasher;
    fn build_hasher(&self) -> SuffixHasher {
        SuffixHasher(self.0.build_hasher())
    }
}

struct SuffixHasher(<DefaultHashBuilder as BuildHasher>::Hasher);

impl Hasher for SuffixHasher {
    fn finish(&self) -> u64 {
        self.0.finish()
    }
    /// `[u8]`'s `Hash` writes its length (a `usize`, through here), then its bytes.
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_SUFFIX)..]);
    }
    fn write_u8(&mut self, byte: u8) {
        self.0.write_u8(byte);
    }
}

/// Keyed by the token's bytes: a request's bearer token is looked up before it is checked
/// to be ASCII, which is sound because every key passed the compact-JWS format check
/// (base64url segments and dots only) and verification; `insert` asserts the format in
/// debug builds.
type Entries = Cache<Box<[u8]>, Arc<Verified>, UnitWeighter, SuffixHash>;

/// Bounded map from token to its verification. Its `Debug` shows no token.
pub(crate) struct SignatureCache {
    capacity: usize,
    /// `None` when the capacity is 0: nothing is cached.
    entries: Option<Entries>,
    /// The second (of the verifier's clock) of the latest sweep of expired entries.
    last_sweep: AtomicI64,
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
        let entries = (capacity > 0).then(|| {
            Cache::with(
                capacity,
                u64::try_from(capacity).unwrap_or(u64::MAX),
                UnitWeighter,
                SuffixHash::default(),
                DefaultLifecycle::default(),
            )
        });
        Self {
            capacity,
            entries,
            last_sweep: AtomicI64::new(i64::MIN),
        }
    }

    /// The verification of `token` if it was verified before and has not expired at
    /// `now_secs` (with `leeway_secs`).
    pub(crate) fn get(
        &self,
        token: &[u8],
        now_secs: i64,
        leeway_secs: i64,
    ) -> Option<Arc<Verified>> {
        let verified = self.entries.as_ref()?.get(token)?;
        (verified.claims.exp + leeway_secs > now_secs).then_some(verified)
    }

    /// Remembers a verified token at `now_secs`. When the cache is nearly full (9/10), the
    /// entries expired by then go first, at most once a second; beyond that the cache evicts
    /// what it judges least useful (a token seen once before one that keeps coming back).
    pub(crate) fn insert(&self, token: &str, verified: Arc<Verified>, now_secs: i64) {
        // The request path looks tokens up by their raw bytes (`extract::bearer_bytes`): that
        // only matches what the full header check accepts while every key has this format.
        debug_assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
            "only compact JWS tokens are cached"
        );
        let Some(entries) = &self.entries else {
            return;
        };
        let nearly_full = entries.len().saturating_mul(10) >= self.capacity.saturating_mul(9);
        if nearly_full && self.last_sweep.swap(now_secs, Ordering::Relaxed) != now_secs {
            entries.retain(|_, e| e.claims.exp > now_secs);
        }
        entries.insert(token.as_bytes().into(), verified);
    }

    /// Forgets everything (the key set changed).
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    pub(crate) fn clear(&self) {
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
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
                cnf: None,
            }),
            #[cfg(feature = "redis")]
            session: None,
        })
    }

    #[test]
    fn an_entry_never_outlives_its_token() {
        let cache = SignatureCache::new(10);
        cache.insert("t", verified(100), 50);
        assert!(cache.get(b"t", 99, 0).is_some());
        assert!(cache.get(b"t", 100, 0).is_none());
        assert!(cache.get(b"t", 104, 5).is_some());
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = SignatureCache::new(3);
        for i in 0..10 {
            cache.insert(&format!("t{i}"), verified(1000), 0);
            assert!(cache.len() <= 3);
        }
        assert!(cache.get(b"t9", 0, 0).is_some());
    }

    #[test]
    fn a_hot_token_survives_a_flood_of_one_off_tokens() {
        let cache = SignatureCache::new(100);
        cache.insert("hot", verified(1000), 0);
        for i in 0..1000 {
            assert!(
                cache.get(b"hot", 0, 0).is_some(),
                "the hot token was dropped after {i} one-off tokens"
            );
            cache.insert(&format!("one-off-{i}"), verified(1000), 0);
            assert!(cache.len() <= 100);
        }
        // Some of the latest one-off tokens are still there: the cache did not empty.
        assert!(cache.len() > 50, "{}", cache.len());
    }

    #[test]
    fn expired_entries_are_evicted_before_live_ones() {
        let cache = SignatureCache::new(2);
        cache.insert("old", verified(10), 0);
        cache.insert("live", verified(1000), 0);
        cache.insert("new", verified(1000), 20);
        assert!(cache.get(b"live", 20, 0).is_some());
        assert!(cache.get(b"new", 20, 0).is_some());
    }

    #[test]
    fn tokens_sharing_a_signature_suffix_are_told_apart() {
        let cache = SignatureCache::new(10);
        let sig = "x".repeat(HASHED_SUFFIX);
        cache.insert(&format!("header-a.payload.{sig}"), verified(1000), 0);
        assert!(
            cache
                .get(format!("header-b.payload.{sig}").as_bytes(), 0, 0)
                .is_none()
        );
        assert!(
            cache
                .get(format!("header-a.payload.{sig}").as_bytes(), 0, 0)
                .is_some()
        );
    }

    #[test]
    fn a_zero_capacity_cache_caches_nothing() {
        let cache = SignatureCache::new(0);
        cache.insert("t", verified(1000), 0);
        assert!(cache.get(b"t", 0, 0).is_none());
    }
}
