//! Session-existence checks against Redis: the allowlist. A session key exists ⇔ the
//! tokens of that session are valid.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::{PushInfo, PushKind, Value};

use crate::error::VerifyError;
use crate::redis_conn::{RedisConnection, RedisFailure};

/// How a verifier learns about revoked sessions.
///
/// ```
/// use verifier::RevocationMode;
/// assert_eq!(RevocationMode::default(), RevocationMode::Tracked);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevocationMode {
    /// Session existence is cached in-process and invalidated by Redis server-assisted
    /// client-side caching (RESP3 `CLIENT TRACKING`): a `DEL`, `UNLINK` or expiry
    /// reaches the verifier within a round trip. Entries also expire after the
    /// max-staleness TTL, and the cache is dropped when the connection drops or Redis
    /// stops answering for longer than the max stall.
    #[default]
    Tracked,
    /// One Redis `EXISTS` per request.
    EveryRequest,
    /// No revocation check at all: a logged-out token stays valid until it expires.
    /// Explicit opt-in only; the verifier warns loudly at start-up.
    Off,
}

/// Most session keys remembered by the tracked cache (it is cleared when full).
const TRACKED_CAPACITY: usize = 100_000;

/// The default of [`max_stall`](crate::VerifierBuilder::max_stall): how long tracked mode
/// may keep serving cached answers from a Redis that stopped answering.
pub const DEFAULT_MAX_STALL: Duration = Duration::from_millis(200);
/// The shortest accepted max stall (the heartbeat then `PING`s every 5 ms).
pub(crate) const MIN_MAX_STALL: Duration = Duration::from_millis(20);
/// The longest accepted max stall.
pub(crate) const MAX_MAX_STALL: Duration = Duration::from_secs(60);
/// Heartbeats per max stall: a `PING` is sent every `max_stall / HEARTBEATS_PER_STALL`.
const HEARTBEATS_PER_STALL: u32 = 4;

/// "This session existed a moment ago", per session key, for tracked mode. Entries are
/// removed by Redis invalidation pushes (any `DEL`/`UNLINK`/expiry/write of the key),
/// everything is dropped on disconnect, `FLUSHALL` or a stall (see [`spawn_heartbeat`]),
/// and an entry lives at most `ttl` (max staleness) in any case.
#[derive(Debug)]
pub(crate) struct TrackedCache {
    ttl: Duration,
    /// Bumped (under the write lock) by every invalidation: a reply is only cached if
    /// no invalidation was handled since its request was sent, so an invalidation that
    /// overtakes the reply on its way to the cache cannot be lost.
    invalidations: AtomicU64,
    /// Set while the heartbeat finds Redis stalled: nothing is cached until it answers.
    stalled: AtomicBool,
    entries: RwLock<HashMap<Box<[u8]>, Instant>>,
}

impl TrackedCache {
    pub(crate) fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            invalidations: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            entries: RwLock::new(HashMap::new()),
        })
    }

    #[allow(clippy::disallowed_methods)] // real time: a safety-net TTL of cached answers, not domain time
    fn hit(&self, key: &str) -> bool {
        let Ok(entries) = self.entries.read() else {
            return false;
        };
        entries
            .get(key.as_bytes())
            .is_some_and(|until| Instant::now() < *until)
    }

    fn epoch(&self) -> u64 {
        self.invalidations.load(Ordering::Acquire)
    }

    #[allow(clippy::disallowed_methods)] // real time: a safety-net TTL of cached answers, not domain time
    fn remember(&self, key: &str, epoch: u64) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if self.invalidations.load(Ordering::Acquire) != epoch
            || self.stalled.load(Ordering::Acquire)
        {
            return;
        }
        if entries.len() >= TRACKED_CAPACITY {
            entries.clear();
        }
        entries.insert(key.as_bytes().into(), Instant::now() + self.ttl);
    }

    /// Applies a push message from the tracked connection.
    pub(crate) fn on_push(&self, push: &PushInfo) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        match (&push.kind, push.data.first()) {
            (PushKind::Invalidate, Some(Value::Array(keys))) => {
                for key in keys {
                    if let Value::BulkString(key) = key {
                        entries.remove(key.as_slice());
                    }
                }
            }
            // `FLUSHALL`/`FLUSHDB` (a nil key list), a dropped connection (no more
            // invalidations can arrive), or anything unexpected: forget everything.
            (PushKind::Invalidate, _) | (PushKind::Disconnection, _) => entries.clear(),
            _ => {}
        }
    }

    /// Drops every entry: invalidations may have been missed.
    pub(crate) fn forget_all(&self) {
        self.on_push(&PushInfo {
            kind: PushKind::Disconnection,
            data: Vec::new(),
        });
    }

    /// Redis stopped answering: drop everything and cache nothing until [`resume`](Self::resume).
    fn stall(&self) {
        self.stalled.store(true, Ordering::Release);
        self.forget_all();
    }

    /// Redis answered a heartbeat: caching may resume.
    fn resume(&self) {
        self.stalled.store(false, Ordering::Release);
    }

    fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }
}

/// Tracked mode's liveness check, bounding how long cached answers outlive a Redis that
/// stopped answering. A paused, partitioned or overloaded Redis sends no invalidations and
/// no disconnect, so a `PING` goes out every `max_stall / 4`, and the cache is dropped
/// (and nothing cached) as soon as `max_stall` has passed since the latest answered `PING`
/// was sent, without waiting for the pending one to fail. Its own task sleeps on a timer;
/// the request path does no extra work.
///
/// The `PING` shares the tracked connection on purpose: replies and invalidation pushes
/// arrive in order on it, so a `PONG` proves that every invalidation Redis produced before
/// the `PING` has reached the cache. A `PONG` on another connection would only prove that
/// the server runs, not that this connection's pushes still flow. On a cluster the `PING`
/// goes to every primary and counts only when all of them answer.
///
/// So a cached answer is served at most `max_stall` after Redis stopped answering, plus
/// however late the runtime runs this task: a runtime starved of worker threads or timer
/// ticks delays the drop by as much. The task ends with the verifier.
#[allow(clippy::disallowed_methods)] // real time: the heartbeat measures how long Redis has not answered
pub(crate) fn spawn_heartbeat(
    conn: RedisConnection,
    cache: &Arc<TrackedCache>,
    max_stall: Duration,
) {
    let cache = Arc::downgrade(cache);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(max_stall / HEARTBEATS_PER_STALL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When the latest answered PING was sent; the cache starts empty, as if just checked.
        let mut confirmed = tokio::time::Instant::now();
        loop {
            ticks.tick().await;
            let Some(cache) = cache.upgrade() else { return };
            let sent = tokio::time::Instant::now();
            // While stalled nothing is cached: this PING just gets `max_stall` to answer.
            let deadline = if cache.is_stalled() { sent } else { confirmed } + max_stall;
            let mut conn = conn.clone();
            let ping = redis::cmd("PING");
            match tokio::time::timeout_at(deadline, ping.query_async::<String>(&mut conn)).await {
                Ok(Ok(_)) => {
                    confirmed = sent;
                    cache.resume();
                }
                _ => cache.stall(),
            }
        }
    });
}

/// Asks Redis whether a session still exists, failing closed.
#[derive(Debug, Clone)]
pub(crate) struct SessionCheck {
    pub(crate) conn: RedisConnection,
    pub(crate) timeout: Duration,
    /// Tracked mode's cache; `None` in every-request mode.
    pub(crate) tracked: Option<Arc<TrackedCache>>,
}

impl SessionCheck {
    /// `Ok` if the session key exists; `Revoked` if not; `Unavailable` if Redis did not
    /// answer in time or failed. A failure fails closed whatever its [`RedisFailure`]; a
    /// `Fault` (a misconfiguration, such as an ACL without `EXISTS`) is logged as an error,
    /// as it does not pass by itself the way an outage or a failover does.
    pub(crate) async fn check(&self, session_key: &str) -> Result<(), VerifyError> {
        if self.tracked.as_ref().is_some_and(|c| c.hit(session_key)) {
            return Ok(());
        }
        let epoch = self.tracked.as_ref().map(|c| c.epoch());
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(session_key);
        match tokio::time::timeout(self.timeout, cmd.query_async::<i64>(&mut conn)).await {
            Ok(Ok(1)) => {
                if let (Some(cache), Some(epoch)) = (&self.tracked, epoch) {
                    cache.remember(session_key, epoch);
                }
                Ok(())
            }
            Ok(Ok(_)) => Err(VerifyError::Revoked),
            Ok(Err(e)) => {
                if RedisFailure::of(&e) == RedisFailure::Fault {
                    tracing::error!(error = %e, "the session check failed, and retrying will not help");
                }
                Err(VerifyError::Unavailable(e.to_string()))
            }
            Err(_) => Err(VerifyError::Unavailable("redis timed out".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalidate(keys: &[&str]) -> PushInfo {
        let keys = keys
            .iter()
            .map(|k| Value::BulkString(k.as_bytes().to_vec()))
            .collect();
        PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(keys)],
        }
    }

    #[test]
    fn an_invalidation_removes_exactly_its_keys() {
        let cache = TrackedCache::new(Duration::from_secs(60));
        cache.remember("a", cache.epoch());
        cache.remember("b", cache.epoch());
        cache.on_push(&invalidate(&["a"]));
        assert!(!cache.hit("a"));
        assert!(cache.hit("b"));
    }

    #[test]
    fn a_reply_overtaken_by_an_invalidation_is_not_cached() {
        let cache = TrackedCache::new(Duration::from_secs(60));
        let epoch = cache.epoch(); // request sent
        cache.on_push(&invalidate(&["a"])); // DEL's invalidation handled first
        cache.remember("a", epoch); // then the (stale) "exists" reply
        assert!(!cache.hit("a"));
    }

    #[test]
    fn a_disconnect_or_flush_forgets_everything() {
        let cache = TrackedCache::new(Duration::from_secs(60));
        cache.remember("a", cache.epoch());
        cache.on_push(&PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        });
        assert_eq!(cache.len(), 0);
        cache.remember("b", cache.epoch());
        cache.on_push(&PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Nil],
        });
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_stalled_redis_empties_the_cache_and_nothing_is_cached_until_it_answers_again() {
        let cache = TrackedCache::new(Duration::from_secs(60));
        cache.remember("a", cache.epoch());
        cache.stall();
        assert!(!cache.hit("a"));
        cache.remember("b", cache.epoch()); // an EXISTS answered while stalled
        assert!(!cache.hit("b"));
        cache.resume();
        cache.remember("b", cache.epoch());
        assert!(cache.hit("b"));
    }

    #[test]
    fn entries_expire_after_the_max_staleness() {
        let cache = TrackedCache::new(Duration::ZERO);
        cache.remember("a", cache.epoch());
        assert!(!cache.hit("a"));
    }
}
