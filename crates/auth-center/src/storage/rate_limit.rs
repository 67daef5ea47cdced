//! Fixed-window rate-limit counters: in Redis (shared by every instance) or in process
//! memory (the embedded default). Windows are aligned to the injected clock; the counter
//! of window `n` lives under `<key>:<n>`, so a new window starts from zero.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use redis::Script;
use verifier::RedisConnection;

use crate::domain::error::StoreError;
use crate::domain::ports::{RateDecision, RateLimitStore};
use crate::storage::redis_error;

fn window(window_ms: i64, now_ms: i64) -> (i64, i64) {
    let window_ms = window_ms.max(1);
    let index = now_ms.div_euclid(window_ms);
    (index, (index + 1) * window_ms - now_ms)
}

/// KEYS: counter. ARGV: expiry ms. INCR, and set the expiry on the first hit.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
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
            hit: Script::new(HIT),
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
        key: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        let (index, reset_in_ms) = window(window_ms, now_ms);
        let mut conn = self.conn.clone();
        // Kept for two windows of real time: enough for the window, and it always ends.
        let count: u64 = self
            .hit
            .key(self.key(key, index))
            .arg(window_ms.max(1) * 2)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(RateDecision { count, reset_in_ms })
    }

    async fn peek(
        &self,
        key: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        let (index, reset_in_ms) = window(window_ms, now_ms);
        let mut conn = self.conn.clone();
        let count: Option<u64> = redis::cmd("GET")
            .arg(self.key(key, index))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(RateDecision {
            count: count.unwrap_or(0),
            reset_in_ms,
        })
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
}

/// Counters in process memory (not shared between instances).
#[derive(Default)]
pub struct MemoryRateLimitStore {
    counters: Mutex<HashMap<String, (i64, u64)>>,
}

impl MemoryRateLimitStore {
    /// No counters yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, (i64, u64)>) -> T,
    ) -> Result<T, StoreError> {
        let mut guard = self
            .counters
            .lock()
            .map_err(|_| StoreError::Other("rate limiter lock poisoned".into()))?;
        Ok(f(&mut guard))
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimitStore {
    async fn hit(
        &self,
        key: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        let (index, reset_in_ms) = window(window_ms, now_ms);
        self.with(|counters| {
            if counters.len() > 100_000 {
                // Bounded memory: drop counters of past windows.
                counters.retain(|_, (i, _)| *i >= index);
            }
            let entry = counters.entry(key.to_string()).or_insert((index, 0));
            if entry.0 != index {
                *entry = (index, 0);
            }
            entry.1 += 1;
            RateDecision {
                count: entry.1,
                reset_in_ms,
            }
        })
    }

    async fn peek(
        &self,
        key: &str,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        let (index, reset_in_ms) = window(window_ms, now_ms);
        self.with(|counters| {
            let count = counters
                .get(key)
                .filter(|(i, _)| *i == index)
                .map_or(0, |(_, c)| *c);
            RateDecision { count, reset_in_ms }
        })
    }

    async fn reset(&self, key: &str, _window_ms: i64, _now_ms: i64) -> Result<(), StoreError> {
        self.with(|counters| {
            counters.remove(key);
        })
    }
}
