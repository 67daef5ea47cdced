//! The `jti` replay cache of DPoP proofs: which proofs this process has accepted while they
//! could still be accepted. Bounded, in memory, per process.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use quick_cache::sync::{Cache, EntryAction, EntryResult};

/// Proof ids (`<jkt> <jti>`) with the second after which the proof is stale anyway.
pub(super) struct ReplayCache {
    capacity: usize,
    entries: Cache<String, i64>,
    /// The second of the latest sweep of expired entries.
    last_sweep: AtomicI64,
}

impl ReplayCache {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            entries: Cache::new(capacity),
            last_sweep: AtomicI64::new(i64::MIN),
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records proof `id` until `stale_after` (seconds); `false` when it was recorded
    /// before and has not gone stale: a replay. Check and record are one step, so of two
    /// requests racing with one proof exactly one gets `true`.
    pub(super) fn first_use(&self, id: &str, stale_after: i64, now: i64) -> bool {
        let nearly_full = self.entries.len().saturating_mul(10) >= self.capacity.saturating_mul(9);
        if nearly_full && self.last_sweep.swap(now, Ordering::Relaxed) != now {
            self.entries.retain(|_, until| *until >= now);
        }
        // A zero timeout: another request recording this very id right now is a replay.
        let entry = self.entries.entry(id, Some(Duration::ZERO), |_, until| {
            if *until >= now {
                EntryAction::Retain(())
            } else {
                EntryAction::ReplaceWithGuard
            }
        });
        match entry {
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => {
                // Err only if the placeholder was removed meanwhile (a `clear`): the id is
                // still new to this request.
                let _ = guard.insert(stale_after);
                true
            }
            EntryResult::Retained(()) | EntryResult::Removed(..) | EntryResult::Timeout => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReplayCache;

    #[test]
    fn an_id_counts_once_until_it_is_stale() {
        let cache = ReplayCache::new(10);
        assert!(cache.first_use("k a", 100, 40));
        assert!(!cache.first_use("k a", 100, 41));
        assert!(!cache.first_use("k a", 100, 100));
        assert!(cache.first_use("k b", 100, 41));
        // Stale: the proof itself is refused by then; the slot may be reused.
        assert!(cache.first_use("k a", 200, 101));
    }

    #[test]
    fn a_full_cache_drops_stale_ids_first() {
        let cache = ReplayCache::new(10);
        for i in 0..9 {
            assert!(cache.first_use(&format!("old {i}"), 10, 0));
        }
        assert!(cache.first_use("fresh", 100, 50));
        assert!(!cache.first_use("fresh", 100, 51));
        assert!(cache.entries.len() <= 2, "stale ids swept");
    }
}
