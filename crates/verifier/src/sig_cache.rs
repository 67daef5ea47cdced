//! Cache of already verified tokens, so a repeat token costs a hash lookup instead of an
//! Ed25519 verification. Keyed by the exact token bytes; bounded; an entry never
//! outlives its token's `exp`; flushed whenever the key set changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::claims::Claims;

/// Bounded map from token to its verified claims.
#[derive(Debug)]
pub(crate) struct SignatureCache {
    capacity: usize,
    entries: RwLock<HashMap<Box<str>, Arc<Claims>>>,
}

impl SignatureCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The claims of `token` if it was verified before and has not expired at `now_secs`
    /// (with `leeway_secs`).
    pub(crate) fn get(&self, token: &str, now_secs: i64, leeway_secs: i64) -> Option<Arc<Claims>> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let claims = entries.get(token)?;
        (claims.exp + leeway_secs > now_secs).then(|| Arc::clone(claims))
    }

    /// Remembers a verified token. When full, expired entries go first; if none have
    /// expired, everything goes (a cheap, bounded policy: a refill costs one verify each).
    pub(crate) fn insert(&self, token: &str, claims: Arc<Claims>, now_secs: i64) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, c| c.exp > now_secs);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.into(), claims);
    }

    /// Forgets everything (the key set changed).
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

    fn claims(exp: i64) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "i".into(),
            sub: "u".into(),
            aud: Audience::One("a".into()),
            exp,
            iat: 0,
            nbf: None,
            jti: "j".into(),
            sid: "s".into(),
            roles: vec![],
        })
    }

    #[test]
    fn an_entry_never_outlives_its_token() {
        let cache = SignatureCache::new(10);
        cache.insert("t", claims(100), 50);
        assert!(cache.get("t", 99, 0).is_some());
        assert!(cache.get("t", 100, 0).is_none());
        assert!(cache.get("t", 104, 5).is_some());
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = SignatureCache::new(3);
        for i in 0..10 {
            cache.insert(&format!("t{i}"), claims(1000), 0);
            assert!(cache.len() <= 3);
        }
        assert!(cache.get("t9", 0, 0).is_some());
    }

    #[test]
    fn expired_entries_are_evicted_before_live_ones() {
        let cache = SignatureCache::new(2);
        cache.insert("old", claims(10), 0);
        cache.insert("live", claims(1000), 0);
        cache.insert("new", claims(1000), 20);
        assert!(cache.get("live", 20, 0).is_some());
        assert!(cache.get("new", 20, 0).is_some());
    }

    #[test]
    fn a_zero_capacity_cache_caches_nothing() {
        let cache = SignatureCache::new(0);
        cache.insert("t", claims(1000), 0);
        assert!(cache.get("t", 0, 0).is_none());
    }
}
