//! Tracked mode's cache of "this session exists" answers, invalidated by Redis's RESP3
//! client-tracking pushes, and the heartbeat that drops it when Redis stops answering.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use redis::{PushInfo, PushKind, Value};

use super::reader::TrackingReader;
use super::selftest::SelftestSignal;
use crate::metrics::{DropCause, VerifierMetrics};
use crate::redis_conn::RedisConnection;

/// Most session keys remembered by the tracked cache. When it is full, the cache evicts
/// what it judges least useful (quick_cache's S3-FIFO: a session seen once goes before
/// sessions that keep coming back).
const TRACKED_CAPACITY: usize = 100_000;

/// Heartbeats per max stall: a `PING` is sent every `max_stall / HEARTBEATS_PER_STALL`.
const HEARTBEATS_PER_STALL: u32 = 4;

/// "This session existed a moment ago", per session key, for tracked mode. Entries are
/// removed by Redis invalidation pushes (any `DEL`/`UNLINK`/expiry/write of the key),
/// everything is dropped on disconnect, `FLUSHALL` or a stall (see [`spawn_heartbeat`]),
/// and an entry lives at most `ttl` (max staleness) in any case.
pub(crate) struct TrackedCache {
    ttl: Duration,
    /// Bumped (under the write side of `gate`) by every invalidation: a reply is only
    /// cached if no invalidation was handled since its request was sent, so an invalidation
    /// that overtakes the reply on its way to the cache cannot be lost.
    invalidations: AtomicU64,
    /// Set while the heartbeat finds Redis stalled: nothing is cached until it answers.
    stalled: AtomicBool,
    /// Orders invalidations against `remember`: a push handler holds the write side while
    /// it bumps `invalidations` and removes entries; `remember` holds the read side while
    /// it checks the epoch and inserts. Hits do not take it.
    gate: RwLock<()>,
    /// Session key → until when the answer may be served.
    entries: Cache<Box<[u8]>, Instant>,
    metrics: Arc<VerifierMetrics>,
    /// The revocation self-test's keys, when it runs: invalidations are also shown to it.
    selftest: OnceLock<Arc<SelftestSignal>>,
    /// The name of the thread that handled the latest push (tests: it is the reader's).
    #[cfg(test)]
    pub(crate) last_push_thread: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for TrackedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl TrackedCache {
    pub(crate) fn new(ttl: Duration, metrics: Arc<VerifierMetrics>) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            invalidations: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            gate: RwLock::new(()),
            entries: Cache::new(TRACKED_CAPACITY),
            metrics,
            selftest: OnceLock::new(),
            #[cfg(test)]
            last_push_thread: std::sync::Mutex::new(None),
        })
    }

    /// Shows every invalidation to the revocation self-test too (once, at build).
    pub(crate) fn watch_for_selftest(&self, signal: Arc<SelftestSignal>) {
        let _ = self.selftest.set(signal);
    }

    /// Whether `key` is cached and fresh; a cached entry past the max staleness counts as
    /// a `staleness` drop.
    #[allow(clippy::disallowed_methods)] // real time: a safety-net TTL of cached answers, not domain time
    pub(crate) fn hit(&self, key: &str) -> bool {
        let Some(until) = self.entries.get(key.as_bytes()) else {
            return false;
        };
        let fresh = Instant::now() < until;
        if !fresh {
            self.metrics.cache_drop(DropCause::Staleness);
        }
        fresh
    }

    /// Whether `key` is cached and fresh, without counting anything: the synchronous fast
    /// path asks this first and leaves every other case to [`hit`](Self::hit).
    #[allow(clippy::disallowed_methods)] // real time: a safety-net TTL of cached answers, not domain time
    #[inline]
    pub(crate) fn fresh(&self, key: &str) -> bool {
        self.entries
            .get(key.as_bytes())
            .is_some_and(|until| Instant::now() < until)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.invalidations.load(Ordering::Acquire)
    }

    /// Caches "`key` exists" until max staleness from now, or `expires` (the key's own
    /// expiry) if earlier; not at all if an invalidation was handled since `epoch`, while
    /// stalled, or if `expires` has passed.
    #[allow(clippy::disallowed_methods)] // real time: a safety-net TTL of cached answers, not domain time
    pub(crate) fn remember(&self, key: &str, epoch: u64, expires: Option<Instant>) {
        let now = Instant::now();
        let until = expires.map_or(now + self.ttl, |e| e.min(now + self.ttl));
        if until <= now {
            return;
        }
        let Ok(_gate) = self.gate.read() else {
            return;
        };
        if self.invalidations.load(Ordering::Acquire) != epoch
            || self.stalled.load(Ordering::Acquire)
        {
            return;
        }
        self.entries.insert(key.as_bytes().into(), until);
    }

    /// Applies a push message from the tracked connection.
    pub(crate) fn on_push(&self, push: &PushInfo) {
        #[cfg(test)]
        if let Ok(mut last) = self.last_push_thread.lock() {
            *last = std::thread::current().name().map(String::from);
        }
        let Ok(_gate) = self.gate.write() else {
            return;
        };
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        match (&push.kind, push.data.first()) {
            (PushKind::Invalidate, Some(Value::Array(keys))) => {
                self.metrics.invalidation();
                for key in keys {
                    if let Value::BulkString(key) = key {
                        self.entries.remove(key.as_slice());
                    }
                }
                if let Some(selftest) = self.selftest.get() {
                    selftest.on_invalidated(keys);
                }
            }
            // `FLUSHALL`/`FLUSHDB` (a nil key list), a dropped connection (no more
            // invalidations can arrive), or anything unexpected: forget everything.
            (PushKind::Invalidate, _) => {
                self.metrics.invalidation();
                self.metrics.cache_drop(DropCause::Flush);
                self.entries.clear();
            }
            (PushKind::Disconnection, _) => {
                self.metrics.cache_drop(DropCause::Disconnect);
                self.entries.clear();
            }
            _ => {}
        }
    }

    /// Drops every entry, for `cause`: invalidations may have been missed.
    fn forget_all(&self, cause: DropCause) {
        let Ok(_gate) = self.gate.write() else {
            return;
        };
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        self.metrics.cache_drop(cause);
        self.entries.clear();
    }

    /// Redis stopped answering: drop everything and cache nothing until [`resume`](Self::resume).
    fn stall(&self) {
        self.stalled.store(true, Ordering::Release);
        self.forget_all(DropCause::Heartbeat);
    }

    /// Redis answered a heartbeat: caching may resume.
    fn resume(&self) {
        self.stalled.store(false, Ordering::Release);
    }

    fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// Until when `key` may be served, if cached.
    #[cfg(test)]
    pub(crate) fn cached_until(&self, key: &str) -> Option<Instant> {
        self.entries.get(key.as_bytes())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
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
/// however late this task runs. It runs on the reader thread with the connection (see
/// [`reader`](super::reader)), not on the application's runtime: a starved application
/// runtime does not delay it, a thread the kernel does not schedule does. The task ends
/// with the verifier.
#[allow(clippy::disallowed_methods)] // real time: the heartbeat measures how long Redis has not answered
pub(crate) fn spawn_heartbeat(
    reader: &TrackingReader,
    conn: RedisConnection,
    cache: &Arc<TrackedCache>,
    max_stall: Duration,
) {
    let cache = Arc::downgrade(cache);
    reader.spawn(async move {
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
    #[allow(clippy::disallowed_methods)] // real time: the cache's entries are real-time deadlines
    fn an_entry_is_served_until_the_keys_expiry_when_that_comes_before_max_staleness() {
        let cache = TrackedCache::new(
            Duration::from_secs(60),
            Arc::new(VerifierMetrics::register()),
        );
        let now = Instant::now();
        cache.remember("expired", cache.epoch(), Some(now));
        cache.remember("soon", cache.epoch(), Some(now + Duration::from_millis(50)));
        cache.remember(
            "later",
            cache.epoch(),
            Some(now + Duration::from_secs(3600)),
        );
        cache.remember("no-ttl", cache.epoch(), None);
        assert!(!cache.fresh("expired"));
        assert_eq!(cache.len(), 3, "an expired key is not cached at all");
        assert_eq!(
            cache.entries.get("soon".as_bytes()),
            Some(now + Duration::from_millis(50)),
            "until the key's expiry"
        );
        for key in ["later", "no-ttl"] {
            let until = cache.entries.get(key.as_bytes()).unwrap();
            assert!(
                until <= Instant::now() + Duration::from_secs(60),
                "{key}: max staleness"
            );
        }
        assert!(cache.fresh("later") && cache.fresh("no-ttl"));
    }

    #[test]
    fn an_invalidation_removes_exactly_its_keys() {
        let cache = TrackedCache::new(
            Duration::from_secs(60),
            Arc::new(VerifierMetrics::register()),
        );
        cache.remember("a", cache.epoch(), None);
        cache.remember("b", cache.epoch(), None);
        cache.on_push(&invalidate(&["a"]));
        assert!(!cache.hit("a"));
        assert!(cache.hit("b"));
    }

    #[test]
    fn a_reply_overtaken_by_an_invalidation_is_not_cached() {
        let cache = TrackedCache::new(
            Duration::from_secs(60),
            Arc::new(VerifierMetrics::register()),
        );
        let epoch = cache.epoch(); // request sent
        cache.on_push(&invalidate(&["a"])); // DEL's invalidation handled first
        cache.remember("a", epoch, None); // then the (stale) "exists" reply
        assert!(!cache.hit("a"));
    }

    #[test]
    fn a_disconnect_or_flush_forgets_everything() {
        let cache = TrackedCache::new(
            Duration::from_secs(60),
            Arc::new(VerifierMetrics::register()),
        );
        cache.remember("a", cache.epoch(), None);
        cache.on_push(&PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        });
        assert_eq!(cache.len(), 0);
        cache.remember("b", cache.epoch(), None);
        cache.on_push(&PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Nil],
        });
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_stalled_redis_empties_the_cache_and_nothing_is_cached_until_it_answers_again() {
        let cache = TrackedCache::new(
            Duration::from_secs(60),
            Arc::new(VerifierMetrics::register()),
        );
        cache.remember("a", cache.epoch(), None);
        cache.stall();
        assert!(!cache.hit("a"));
        cache.remember("b", cache.epoch(), None); // a PTTL answered while stalled
        assert!(!cache.hit("b"));
        cache.resume();
        cache.remember("b", cache.epoch(), None);
        assert!(cache.hit("b"));
    }

    #[test]
    fn a_hot_session_survives_a_flood_of_one_off_sessions() {
        let cache = TrackedCache::new(
            Duration::from_secs(60),
            Arc::new(VerifierMetrics::register()),
        );
        cache.remember("hot", cache.epoch(), None);
        for i in 0..2 * TRACKED_CAPACITY {
            assert!(
                cache.hit("hot"),
                "the hot session was dropped after {i} one-off sessions"
            );
            cache.remember(&format!("one-off-{i}"), cache.epoch(), None);
        }
        assert!(cache.len() <= TRACKED_CAPACITY);
        assert!(cache.len() > TRACKED_CAPACITY / 2, "{}", cache.len());
    }

    #[test]
    fn entries_expire_after_the_max_staleness() {
        let cache = TrackedCache::new(Duration::ZERO, Arc::new(VerifierMetrics::register()));
        cache.remember("a", cache.epoch(), None);
        assert!(!cache.hit("a"));
    }
}
