//! Fixed-window rate-limit counters: in Redis (shared by every instance) or in process
//! memory (the embedded default). Windows are aligned to the injected clock; the counter
//! of window `n` lives under `<key>:<n>`, so a new window starts from zero. The same stores
//! keep single-use marks (`first_use`, under `once:<key>`), such as the `jti` of a client
//! assertion, for as long as the value could be replayed.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use redis::Script;
use verifier::contract::RedisConnection;

use crate::domain::error::StoreError;
use crate::domain::ports::{RateCounter, RateDecision, RateLimitStore};
use crate::storage::redis_error;

/// The window `now_ms` falls in: its number, and the ms until it ends.
pub(crate) fn window(window_ms: i64, now_ms: i64) -> (i64, i64) {
    let window_ms = window_ms.max(1);
    let index = now_ms.div_euclid(window_ms);
    (index, (index + 1) * window_ms - now_ms)
}

/// How long a Redis counter is kept: two windows of real time, enough for the window, and it
/// always ends.
pub(crate) fn counter_ttl_ms(window_ms: i64) -> i64 {
    window_ms.max(1).saturating_mul(2)
}

/// The decisions of `counters` from their counts read (`None`: no hit in the window yet), in
/// order; for both stores. (The limiter refuses a shorter answer; Redis answers one count per
/// key.)
fn decisions(
    counters: &[RateCounter<'_>],
    counts: impl Iterator<Item = Option<u64>>,
    now_ms: i64,
) -> Vec<RateDecision> {
    counters
        .iter()
        .zip(counts)
        .map(|(c, count)| RateDecision {
            count: count.unwrap_or(0),
            reset_in_ms: window(c.window_ms, now_ms).1,
        })
        .collect()
}

/// `count(key, ttl)`: INCR, and set the expiry on the first hit (so a counter always has
/// one, set in the script that writes it). Shared by `HIT` and the sessions' `ROTATE`.
pub(crate) const COUNT: &str = r"
local function count(key, ttl)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ttl) end
  return n
end
";

/// KEYS: counters (one hash tag). ARGV: their expiries, ms, in the same order.
const HIT: &str = r"
local counts = {}
for i, key in ipairs(KEYS) do counts[i] = count(key, ARGV[i]) end
return counts
";

/// Counters in Redis, under `<prefix>:rl:`.
pub struct RedisRateLimitStore {
    conn: RedisConnection,
    prefix: String,
    hit: Script,
}

impl RedisRateLimitStore {
    /// Counters on `conn` under `<prefix>:rl:`.
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            prefix: format!("{prefix}:rl:"),
            hit: Script::new(&format!("{COUNT}{HIT}")),
        }
    }

    fn key(&self, key: &str, index: i64) -> String {
        format!("{}{key}:{index}", self.prefix)
    }
}

#[async_trait]
impl RateLimitStore for RedisRateLimitStore {
    async fn hit(
        &self,
        counters: &[RateCounter<'_>],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.hit.prepare_invoke();
        for c in counters {
            let (index, _) = window(c.window_ms, now_ms);
            invocation
                .key(self.key(c.key, index))
                .arg(counter_ttl_ms(c.window_ms));
        }
        let mut conn = self.conn.clone();
        let counts: Vec<u64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(decisions(counters, counts.into_iter().map(Some), now_ms))
    }

    async fn peek(
        &self,
        counters: &[RateCounter<'_>],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for c in counters {
            let (index, _) = window(c.window_ms, now_ms);
            mget.arg(self.key(c.key, index));
        }
        let mut conn = self.conn.clone();
        let counts: Vec<Option<u64>> = mget.query_async(&mut conn).await.map_err(redis_error)?;
        Ok(decisions(counters, counts.into_iter(), now_ms))
    }

    async fn reset(&self, key: &str, window_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        let (index, _) = window(window_ms, now_ms);
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(key, index))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn first_use(&self, key: &str, ttl_ms: i64, _now_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        // One command: set with its expiry, only if absent (`nil` when it was there).
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}once:{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(set.is_some())
    }
}

/// Map size above which counters of ended windows are dropped.
const CLEANUP_THRESHOLD: usize = 100_000;

/// One in-memory counter: its count in the window that ends at `ends_ms`.
#[derive(Debug, Clone, Copy)]
struct Counter {
    ends_ms: i64,
    count: u64,
}

#[derive(Debug)]
pub(crate) struct Counters {
    map: HashMap<String, Counter>,
    /// The size at which the next clean-up runs: twice the live size after the last one,
    /// so cleaning costs O(1) per hit on average even when most counters are live.
    clean_at: usize,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            clean_at: CLEANUP_THRESHOLD,
        }
    }
}

/// Counters in process memory (not shared between instances). Each counter remembers when
/// its own window ends, so a clean-up drops only counters whose window has ended, whatever
/// the windows of the other rules. Memory grows with the counters whose windows are still
/// running (bounded by the request rate times the longest window).
#[derive(Default)]
pub struct MemoryRateLimitStore {
    counters: Mutex<Counters>,
}

impl Counters {
    /// Counts a hit on `key` in the window `now_ms` falls in.
    pub(crate) fn hit(&mut self, key: &str, window_ms: i64, now_ms: i64) -> RateDecision {
        let (_, reset_in_ms) = window(window_ms, now_ms);
        let ends_ms = now_ms + reset_in_ms;
        self.clean(now_ms);
        let entry = self
            .map
            .entry(key.to_string())
            .or_insert(Counter { ends_ms, count: 0 });
        if entry.ends_ms <= now_ms {
            *entry = Counter { ends_ms, count: 0 };
        }
        entry.count += 1;
        RateDecision {
            count: entry.count,
            reset_in_ms: entry.ends_ms - now_ms,
        }
    }

    /// Drops the counters whose window has ended once the map has grown past `clean_at`.
    fn clean(&mut self, now_ms: i64) {
        if self.map.len() >= self.clean_at {
            self.map.retain(|_, c| c.ends_ms > now_ms);
            self.clean_at = (self.map.len() * 2).max(CLEANUP_THRESHOLD);
        }
    }
}

impl MemoryRateLimitStore {
    /// No counters yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> Result<T, StoreError> {
        let mut guard = self
            .counters
            .lock()
            .map_err(|_| StoreError::other("the rate limiter's lock is poisoned"))?;
        Ok(f(&mut guard))
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimitStore {
    async fn hit(
        &self,
        counters: &[RateCounter<'_>],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        self.with(|map| {
            counters
                .iter()
                .map(|c| map.hit(c.key, c.window_ms, now_ms))
                .collect()
        })
    }

    async fn peek(
        &self,
        counters: &[RateCounter<'_>],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        self.with(|map| {
            let counts = counters.iter().map(|c| {
                map.map
                    .get(c.key)
                    .filter(|counter| counter.ends_ms > now_ms)
                    .map(|counter| counter.count)
            });
            decisions(counters, counts, now_ms)
        })
    }

    async fn reset(&self, key: &str, _window_ms: i64, _now_ms: i64) -> Result<(), StoreError> {
        self.with(|counters| {
            counters.map.remove(key);
        })
    }

    async fn first_use(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        let ends_ms = now_ms + ttl_ms.max(1);
        self.with(|counters| {
            counters.clean(now_ms);
            let mark = counters
                .map
                .entry(format!("once:{key}"))
                .or_insert(Counter { ends_ms, count: 0 });
            if mark.ends_ms <= now_ms {
                *mark = Counter { ends_ms, count: 0 };
            }
            mark.count += 1;
            mark.count == 1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    /// One hit on `key`; its count.
    async fn hit(store: &MemoryRateLimitStore, key: &str, window_ms: i64, now_ms: i64) -> u64 {
        let decisions = store
            .hit(&[RateCounter { key, window_ms }], now_ms)
            .await
            .unwrap();
        decisions[0].count
    }

    #[tokio::test]
    async fn a_flood_of_short_window_counters_never_clears_a_long_window_lockout() {
        let store = MemoryRateLimitStore::new();
        let now = 10 * HOUR_MS;
        for _ in 0..5 {
            hit(&store, "login:{alice}:acct", HOUR_MS, now).await;
        }
        for i in 0..=CLEANUP_THRESHOLD {
            hit(&store, &format!("refresh:ip:{i}"), 60_000, now + 1).await;
        }
        hit(&store, "refresh:ip:last", 60_000, now + 2).await;
        let lockout = store
            .peek(
                &[RateCounter {
                    key: "login:{alice}:acct",
                    window_ms: HOUR_MS,
                }],
                now + 3,
            )
            .await
            .unwrap();
        assert_eq!(lockout[0].count, 5, "the hour's failures survive");
    }

    #[tokio::test]
    async fn a_single_use_mark_refuses_a_second_use_until_it_expires() {
        let store = MemoryRateLimitStore::new();
        assert!(store.first_use("jti:a", 1000, 0).await.unwrap());
        assert!(!store.first_use("jti:a", 1000, 999).await.unwrap());
        assert!(store.first_use("jti:b", 1000, 999).await.unwrap());
        // A counter of the same name is another key.
        assert_eq!(hit(&store, "jti:a", 1000, 999).await, 1);
        assert!(store.first_use("jti:a", 1000, 1000).await.unwrap());
    }

    #[tokio::test]
    async fn counters_of_ended_windows_are_dropped_once_the_map_is_large() {
        let store = MemoryRateLimitStore::new();
        for i in 0..CLEANUP_THRESHOLD {
            hit(&store, &format!("old:{i}"), 60_000, 0).await;
        }
        hit(&store, "new", 60_000, 60_000).await;
        let len = store.with(|counters| counters.map.len()).unwrap();
        assert_eq!(len, 1, "only the live counter is kept");
    }
}
