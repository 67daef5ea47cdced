//! Tracked mode's cache of "this session exists" answers, invalidated by Redis's RESP3
//! client-tracking pushes, and the heartbeat that drops it when Redis stops answering.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering, fence};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use quick_cache::sync::Cache;
use redis::{ErrorKind, PushInfo, PushKind, ServerErrorKind, Value};

use super::reader::TrackingReader;
use super::selftest::SelftestSignal;
use crate::clock::Clock;
use crate::metrics::{DropCause, VerifierMetrics};
use crate::redis_conn::RedisConnection;

/// Most session keys remembered by the tracked cache. When it is full, the cache evicts
/// what it judges least useful (quick_cache's S3-FIFO: a session seen once goes before
/// sessions that keep coming back).
const TRACKED_CAPACITY: usize = 100_000;

/// Heartbeats per max stall: a probe is sent every `max_stall / HEARTBEATS_PER_STALL`.
const HEARTBEATS_PER_STALL: u32 = 4;

/// A test's code run inside the cache.
#[cfg(test)]
type TestHook = Box<dyn FnOnce(&TrackedCache) + Send>;

/// How many invalidation generations the session keys are spread over (see [`SessionMemo`]).
const GENERATIONS: usize = 1024;

/// The generation counter a session key's invalidations bump: FNV-1a of its bytes. Fixed
/// (not seeded), as pushes and tokens must agree; a collision only costs a memo.
fn generation_of(key: &[u8]) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    // The remainder is below GENERATIONS, so it fits.
    usize::try_from(hash % GENERATIONS as u64).unwrap_or(0)
}

/// A verified token's copy of its session's tracked answer, so a repeat request checks its
/// session without looking the key up in the [`TrackedCache`]: the span of the entry it was
/// copied from and the invalidation generation of its key when it was copied.
///
/// It is served only while that generation has not moved: every invalidation bumps the
/// generation of its keys after removing them, and everything that empties the cache
/// (flush, disconnect, stall) bumps every generation after emptying it. A copy is taken only
/// from an entry found fresh after reading the generation, so a copy made from an entry an
/// invalidation was about to remove carries the generation from before that invalidation
/// and is dead once it is handled. A copy does not depend on its entry staying in the cache:
/// Redis tracks a key until it sends its invalidation, whether or not the cache evicted it.
///
/// The three words are written together under a sequence number (a seqlock made of atomics):
/// a reader that sees a write in progress or a torn read does not use the copy.
///
/// A memo is only ever shown to the cache it was copied from: the signature cache holding it
/// and the tracked cache are made once, together, when the verifier is built, and a new cache
/// (whose generations start again at 0) would read an old copy as live.
#[derive(Debug)]
pub(crate) struct SessionMemo {
    generation_index: usize,
    /// Odd while a write is in progress.
    seq: AtomicU64,
    generation: AtomicU64,
    made: AtomicI64,
    until: AtomicI64,
}

impl SessionMemo {
    /// An empty memo for the session key `key`.
    pub(crate) fn new(key: &str) -> Self {
        Self {
            generation_index: generation_of(key.as_bytes()),
            seq: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            // Serves at no time.
            made: AtomicI64::new(i64::MAX),
            until: AtomicI64::new(i64::MIN),
        }
    }

    /// The copy and its generation, unless a write is in progress or was made meanwhile.
    #[inline]
    fn read(&self) -> Option<(u64, Span)> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let generation = self.generation.load(Ordering::Relaxed);
        let made = self.made.load(Ordering::Relaxed);
        let until = self.until.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == before).then_some((generation, Span { made, until }))
    }

    /// Replaces the copy, unless another thread is writing it (the copy is only a shortcut).
    fn write(&self, generation: u64, span: Span) {
        let before = self.seq.load(Ordering::Relaxed);
        if before & 1 == 1
            || self
                .seq
                .compare_exchange(before, before + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        self.generation.store(generation, Ordering::Relaxed);
        self.made.store(span.made, Ordering::Relaxed);
        self.until.store(span.until, Ordering::Relaxed);
        self.seq.store(before + 2, Ordering::Release);
    }
}

/// "This session existed a moment ago", per session key, for tracked mode. Entries are
/// removed by Redis invalidation pushes (any `DEL`/`UNLINK`/expiry/write of the key),
/// everything is dropped on disconnect, `FLUSHALL` or a stall (see [`spawn_heartbeat`]),
/// and an entry lives at most `ttl` (max staleness) of the verifier's clock in any case.
///
/// Its times are milliseconds of the verifier's [`Clock`], the one that checks the tokens'
/// expiry, so a repeat request reads one clock for both (and tests expire entries without
/// sleeping). That clock is the wall clock by default, which can be stepped: an entry is
/// served only from when it was made until its end, so a step back to before it was made
/// drops it, a step forward ends it early, and a step back that lands inside that span
/// lengthens its life by the step at most (at most `ttl`, or what the key's `PTTL` left).
pub(crate) struct TrackedCache {
    /// Max staleness, in milliseconds.
    ttl: i64,
    clock: Arc<dyn Clock>,
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
    /// Session key → when the answer may be served: from when it was cached until its end
    /// (milliseconds of `clock`).
    entries: Cache<Box<[u8]>, Span>,
    /// Invalidation generations ([`SessionMemo`]): bumped after the entries they cover are
    /// removed.
    generations: Box<[AtomicU64]>,
    metrics: Arc<VerifierMetrics>,
    /// The revocation self-test's keys, when it runs: invalidations are also shown to it.
    selftest: OnceLock<Arc<SelftestSignal>>,
    /// The name of the thread that handled the latest push (tests: it is the reader's).
    #[cfg(test)]
    pub(crate) last_push_thread: std::sync::Mutex<Option<String>>,
    /// Run once by `fresh` between reading the generation and looking the key up (tests:
    /// an invalidation handled right there).
    #[cfg(test)]
    between_generation_and_lookup: std::sync::Mutex<Option<TestHook>>,
    /// Tells caches apart for the tests' memos (an address can be reused).
    #[cfg(test)]
    id: u64,
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
    pub(crate) fn new(
        ttl: Duration,
        metrics: Arc<VerifierMetrics>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            ttl: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            clock,
            invalidations: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            gate: RwLock::new(()),
            entries: Cache::new(TRACKED_CAPACITY),
            generations: (0..GENERATIONS).map(|_| AtomicU64::new(0)).collect(),
            metrics,
            selftest: OnceLock::new(),
            #[cfg(test)]
            last_push_thread: std::sync::Mutex::new(None),
            #[cfg(test)]
            between_generation_and_lookup: std::sync::Mutex::new(None),
            #[cfg(test)]
            id: {
                static CACHES: AtomicU64 = AtomicU64::new(0);
                CACHES.fetch_add(1, Ordering::Relaxed)
            },
        })
    }

    /// Shows every invalidation to the revocation self-test too (once, at build).
    pub(crate) fn watch_for_selftest(&self, signal: Arc<SelftestSignal>) {
        let _ = self.selftest.set(signal);
    }

    /// Whether `key` is cached and fresh now; a cached entry past the max staleness counts
    /// as a `staleness` drop.
    pub(crate) fn hit(&self, key: &str) -> bool {
        let Some(span) = self.entries.get(key.as_bytes()) else {
            return false;
        };
        let fresh = span.serves(self.clock.now_millis());
        if !fresh {
            self.metrics.cache_drop(DropCause::Staleness);
        }
        fresh
    }

    /// Whether `key` is cached and fresh at `now` (milliseconds of the verifier's clock),
    /// without counting anything: the synchronous fast path asks this first, with the
    /// reading it checked the token's expiry with, and leaves every other case to
    /// [`hit`](Self::hit). `memo` is the token's copy of the answer (made for `key`): a live
    /// copy answers without looking `key` up; otherwise a fresh entry is copied into it.
    #[inline]
    pub(crate) fn fresh(&self, key: &str, memo: &SessionMemo, now: i64) -> bool {
        let Some(generation) = self.generations.get(memo.generation_index) else {
            return false;
        };
        if let Some((copied, span)) = memo.read()
            && copied == generation.load(Ordering::Acquire)
            && span.serves(now)
        {
            return true;
        }
        // Read before the entry: an invalidation removes the entry before it bumps this.
        let current = generation.load(Ordering::Acquire);
        #[cfg(test)]
        if let Some(between) = self
            .between_generation_and_lookup
            .lock()
            .ok()
            .and_then(|mut hook| hook.take())
        {
            between(self);
        }
        match self.entries.get(key.as_bytes()) {
            Some(span) if span.serves(now) => {
                memo.write(current, span);
                true
            }
            _ => false,
        }
    }

    /// Now, on the clock the deadlines are in: read it before asking Redis how long a key
    /// has left.
    pub(crate) fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.invalidations.load(Ordering::Acquire)
    }

    /// Caches "`key` exists" until max staleness from now, or `expires` (the key's own
    /// expiry, in milliseconds of the verifier's clock) if earlier; not at all if an
    /// invalidation was handled since `epoch`, while stalled, or if `expires` has passed.
    pub(crate) fn remember(&self, key: &str, epoch: u64, expires: Option<i64>) {
        let now = self.clock.now_millis();
        let latest = now.saturating_add(self.ttl);
        let until = expires.map_or(latest, |e| e.min(latest));
        let span = Span { made: now, until };
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
        self.entries.insert(key.as_bytes().into(), span);
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
                        // After the removal: see `fresh`.
                        if let Some(generation) = self.generations.get(generation_of(key)) {
                            generation.fetch_add(1, Ordering::AcqRel);
                        }
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
                self.clear();
            }
            (PushKind::Disconnection, _) => {
                self.metrics.cache_drop(DropCause::Disconnect);
                self.clear();
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
        self.clear();
    }

    /// Empties the cache, then kills every [`SessionMemo`] (under the write side of `gate`).
    fn clear(&self) {
        self.entries.clear();
        for generation in &self.generations {
            generation.fetch_add(1, Ordering::AcqRel);
        }
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
    pub(crate) fn cached_until(&self, key: &str) -> Option<i64> {
        self.entries.get(key.as_bytes()).map(|span| span.until)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// When a cached answer may be served, in milliseconds of the verifier's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    /// When it was cached.
    made: i64,
    /// Its end: max staleness after `made`, or the key's own expiry if earlier.
    until: i64,
}

impl Span {
    /// Whether it is served at `now`: not before it was made (a clock stepped back), and
    /// before its end.
    #[inline]
    fn serves(self, now: i64) -> bool {
        self.made <= now && now < self.until
    }
}

/// Tracked mode's liveness check, bounding how long cached answers outlive a Redis that
/// stopped answering. A paused, partitioned or overloaded Redis sends no invalidations and
/// no disconnect, so a `PING` goes out every `max_stall / 4`, and the cache is dropped
/// (and nothing cached) as soon as `max_stall` has passed since the latest answered `PING`
/// was sent, without waiting for the pending one to fail. Its own task sleeps on a timer;
/// the request path does no extra work.
///
/// The probe (`CLIENT ID`, see [`Probe`]) shares the tracked connection on purpose: replies
/// and invalidation pushes arrive in order on it, so its answer proves that every
/// invalidation Redis produced before it has reached the cache. An answer on another
/// connection would only prove that the server runs, not that this connection's pushes still
/// flow. On a cluster it goes to every primary and counts only when all of them answer. A
/// changed `CLIENT ID` drops the cache: the connection the entries were tracked on is gone.
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
        // When the latest answered probe was sent; the cache starts empty, as if just checked.
        let mut confirmed = tokio::time::Instant::now();
        let mut probe = Probe::default();
        loop {
            ticks.tick().await;
            let Some(cache) = cache.upgrade() else { return };
            let sent = tokio::time::Instant::now();
            // While stalled nothing is cached: this probe just gets `max_stall` to answer.
            let deadline = if cache.is_stalled() { sent } else { confirmed } + max_stall;
            match tokio::time::timeout_at(deadline, probe.ask(&conn)).await {
                Ok(Ok(replaced)) => {
                    if replaced {
                        cache.forget_all(DropCause::Replaced);
                    }
                    confirmed = sent;
                    cache.resume();
                }
                _ => cache.stall(),
            }
        }
    });
}

/// The heartbeat's question to Redis: each data node's `CLIENT ID` for the tracked
/// connection to it. It answers whether Redis answers, and whether a connection was replaced
/// since the last answer: redis-rs's cluster client can swap a node's connection for a new
/// one (when it rebuilds its view of the cluster) without a disconnection push, and the keys
/// read on the old one are then tracked by no connection. A user whose ACL lacks `CLIENT ID`
/// gets `PING` instead, with one warning, and `CLIENT ID` again [`PTTL_RETRY`] later (an ACL
/// rolled out node by node needs no restart); meanwhile a replaced connection goes unnoticed
/// until an entry's `max_staleness`, so the first `CLIENT ID` answered after such a spell
/// drops the cache.
#[derive(Debug, Default)]
struct Probe {
    /// The ids of the latest answer.
    ids: Option<Vec<(String, i64)>>,
    /// When Redis last refused the user `CLIENT ID`.
    refused_at: Option<std::time::Instant>,
}

impl Probe {
    /// Whether a connection was replaced since the latest answer; an error when Redis did
    /// not answer.
    #[allow(clippy::disallowed_methods)] // real time: the retry interval
    async fn ask(&mut self, conn: &RedisConnection) -> redis::RedisResult<bool> {
        let retry = self
            .refused_at
            .is_none_or(|at| at.elapsed() >= super::PTTL_RETRY);
        if retry {
            match conn.connection_ids().await {
                Ok(ids) => {
                    // After a spell of PINGs, swaps may have gone unseen.
                    let replaced = self.refused_at.take().is_some()
                        || self.ids.as_ref().is_some_and(|before| *before != ids);
                    self.ids = Some(ids);
                    return Ok(replaced);
                }
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) => {
                    if self.refused_at.is_none() {
                        tracing::warn!(
                            error = %e,
                            "the Redis user may not run CLIENT ID: tracked mode's heartbeat \
                             sends PING instead, and asks again every minute, and meanwhile \
                             cannot tell when the client replaced a connection; allow \
                             +client|id (see docs/operations.md)"
                        );
                    }
                    self.refused_at = Some(std::time::Instant::now());
                }
                Err(e) => return Err(e),
            }
        }
        let mut conn = conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(false)
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

    /// A clock the test sets, forward or back.
    #[derive(Debug)]
    struct SetClock(std::sync::atomic::AtomicI64);

    impl SetClock {
        fn at(millis: i64) -> Arc<Self> {
            Arc::new(Self(std::sync::atomic::AtomicI64::new(millis)))
        }
        fn set(&self, millis: i64) {
            self.0.store(millis, Ordering::SeqCst);
        }
    }

    impl Clock for SetClock {
        fn now_millis(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    const T0: i64 = 1_800_000_000_000;

    thread_local! {
        /// The memo of each (cache, key), kept across calls as a token's is.
        static MEMOS: std::cell::RefCell<std::collections::HashMap<(u64, String), Arc<SessionMemo>>> =
            std::cell::RefCell::default();
    }

    /// [`TrackedCache::fresh`] with the memo this test thread keeps for `key` in `cache`, asked
    /// twice: as the memo is, then once the first call may have refreshed it. Both answers
    /// agree, so every test of the cache's answers tests the memo's too.
    fn fresh(cache: &TrackedCache, key: &str, now: i64) -> bool {
        let memo = MEMOS.with(|memos| {
            let id = (cache.id, key.to_owned());
            Arc::clone(
                memos
                    .borrow_mut()
                    .entry(id)
                    .or_insert_with(|| Arc::new(SessionMemo::new(key))),
            )
        });
        let first = cache.fresh(key, &memo, now);
        let second = cache.fresh(key, &memo, now);
        assert_eq!(
            first, second,
            "{key} at {now}: the memo disagrees with the cache"
        );
        first
    }

    fn cache_with(ttl: Duration, clock: Arc<dyn Clock>) -> Arc<TrackedCache> {
        TrackedCache::new(ttl, Arc::new(VerifierMetrics::register()), clock)
    }

    fn cache(ttl: Duration) -> Arc<TrackedCache> {
        cache_with(ttl, SetClock::at(T0))
    }

    #[test]
    fn an_entry_is_served_until_the_keys_expiry_when_that_comes_before_max_staleness() {
        let clock = SetClock::at(T0);
        let cache = cache_with(Duration::from_secs(60), clock.clone());
        cache.remember("expired", cache.epoch(), Some(T0));
        cache.remember("soon", cache.epoch(), Some(T0 + 50));
        cache.remember("later", cache.epoch(), Some(T0 + 3_600_000));
        cache.remember("no-ttl", cache.epoch(), None);
        assert!(!fresh(&cache, "expired", T0));
        assert_eq!(cache.len(), 3, "an expired key is not cached at all");
        assert_eq!(
            cache.cached_until("soon"),
            Some(T0 + 50),
            "until the key's expiry"
        );
        for key in ["later", "no-ttl"] {
            assert_eq!(
                cache.cached_until(key),
                Some(T0 + 60_000),
                "{key}: max staleness"
            );
        }
        assert!(fresh(&cache, "soon", T0 + 49) && !fresh(&cache, "soon", T0 + 50));
        clock.set(T0 + 50);
        assert!(!cache.hit("soon"));
        assert!(cache.hit("later") && cache.hit("no-ttl"));
    }

    #[test]
    fn entries_expire_when_the_verifiers_clock_passes_max_staleness_without_any_sleep() {
        let clock = SetClock::at(T0);
        let cache = cache_with(Duration::from_secs(5), clock.clone());
        cache.remember("a", cache.epoch(), None);
        clock.set(T0 + 4_999);
        assert!(cache.hit("a"));
        clock.set(T0 + 5_000);
        assert!(!cache.hit("a") && !fresh(&cache, "a", T0 + 5_000));
    }

    #[test]
    fn a_clock_stepped_back_before_an_entry_was_made_drops_it() {
        let clock = SetClock::at(T0);
        let cache = cache_with(Duration::from_secs(5), clock.clone());
        cache.remember("a", cache.epoch(), None); // until T0 + 5 s
        clock.set(T0 + 2_000);
        // Stepped back by less than the time left: still within max staleness of its end.
        clock.set(T0 + 500);
        assert!(cache.hit("a"));
        // Stepped back before the entry was made: its end is further than max staleness.
        clock.set(T0 - 1);
        assert!(!cache.hit("a"));
        clock.set(T0 - 3_600_000);
        assert!(!fresh(&cache, "a", T0 - 3_600_000));
    }

    #[test]
    fn an_entry_bounded_by_its_keys_expiry_is_dropped_when_the_clock_steps_back_before_it_was_made()
    {
        let clock = SetClock::at(T0);
        let cache = cache_with(Duration::from_secs(5), clock.clone());
        cache.remember("a", cache.epoch(), Some(T0 + 1_000)); // PTTL: 1 s left
        clock.set(T0 + 900);
        assert!(cache.hit("a"));
        // Stepped back 4 s: before the entry was made, so not served (its key expires 0.1 s
        // from now on Redis's clock, not 4.1 s).
        clock.set(T0 - 3_100);
        assert!(!cache.hit("a"));
        assert!(!fresh(&cache, "a", T0 - 1));
        assert!(fresh(&cache, "a", T0) && !fresh(&cache, "a", T0 + 1_000));
    }

    #[test]
    fn a_clock_that_reads_before_the_epoch_or_at_the_extremes_serves_nothing_wrongly() {
        for start in [i64::MIN, -5_000, 0, i64::MAX - 1] {
            let clock = SetClock::at(start);
            let cache = cache_with(Duration::from_secs(5), clock.clone());
            cache.remember("a", cache.epoch(), None);
            for now in [i64::MIN, start.saturating_sub(1), i64::MAX] {
                if now != start {
                    assert!(!fresh(&cache, "a", now), "made at {start}, asked at {now}");
                }
            }
        }
    }

    #[test]
    fn an_invalidation_removes_exactly_its_keys() {
        let cache = cache(Duration::from_secs(60));
        cache.remember("a", cache.epoch(), None);
        cache.remember("b", cache.epoch(), None);
        cache.on_push(&invalidate(&["a"]));
        assert!(!cache.hit("a"));
        assert!(cache.hit("b"));
    }

    #[test]
    fn a_reply_overtaken_by_an_invalidation_is_not_cached() {
        let cache = cache(Duration::from_secs(60));
        let epoch = cache.epoch(); // request sent
        cache.on_push(&invalidate(&["a"])); // DEL's invalidation handled first
        cache.remember("a", epoch, None); // then the (stale) "exists" reply
        assert!(!cache.hit("a"));
    }

    #[test]
    fn a_disconnect_or_flush_forgets_everything() {
        let cache = cache(Duration::from_secs(60));
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
        let cache = cache(Duration::from_secs(60));
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
        let cache = cache(Duration::from_secs(60));
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

    /// `key`'s memo, copied from its fresh entry, which then leaves the cache without an
    /// invalidation (as an eviction does): from then on only the memo can answer.
    fn memo_alone(cache: &TrackedCache, key: &str) -> SessionMemo {
        let memo = SessionMemo::new(key);
        cache.remember(key, cache.epoch(), None);
        assert!(cache.fresh(key, &memo, T0), "{key} is cached");
        cache.entries.remove(key.as_bytes());
        assert!(cache.fresh(key, &memo, T0), "{key}'s memo answers alone");
        memo
    }

    #[test]
    fn a_memo_dies_with_its_keys_invalidation_even_once_the_cache_has_evicted_the_key() {
        let cache = cache(Duration::from_secs(60));
        let memo = memo_alone(&cache, "a");
        cache.on_push(&invalidate(&["a"]));
        assert!(!cache.fresh("a", &memo, T0));
        // Cached again after a new read: served again, through a new copy.
        cache.remember("a", cache.epoch(), None);
        assert!(cache.fresh("a", &memo, T0));
        cache.entries.remove(b"a".as_slice());
        assert!(cache.fresh("a", &memo, T0));
        cache.on_push(&invalidate(&["x", "a", "y"]));
        assert!(!cache.fresh("a", &memo, T0));
    }

    #[test]
    fn a_memo_keeps_its_span() {
        let cache = cache(Duration::from_secs(5));
        let memo = memo_alone(&cache, "a");
        assert!(cache.fresh("a", &memo, T0 + 4_999));
        assert!(!cache.fresh("a", &memo, T0 + 5_000));
        assert!(
            !cache.fresh("a", &memo, T0 - 1),
            "a clock stepped back before it was made"
        );
    }

    #[test]
    fn every_memo_dies_when_the_cache_is_emptied() {
        let flush = PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Nil],
        };
        let disconnection = PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        };
        type Emptying<'a> = (&'a str, &'a dyn Fn(&TrackedCache));
        let events: [Emptying; 3] = [
            ("flush", &|c| c.on_push(&flush)),
            ("disconnection", &|c| c.on_push(&disconnection)),
            ("stall", &|c| c.stall()),
        ];
        for (what, empty) in events {
            let cache = cache(Duration::from_secs(60));
            let memos: Vec<_> = (0..50)
                .map(|i| (i, memo_alone(&cache, &format!("k{i}"))))
                .collect();
            empty(&cache);
            for (i, memo) in &memos {
                assert!(
                    !cache.fresh(&format!("k{i}"), memo, T0),
                    "{what}: k{i} still served"
                );
            }
        }
    }

    #[test]
    fn an_invalidation_of_a_key_in_another_generation_leaves_a_memo_alone() {
        let cache = cache(Duration::from_secs(60));
        let memo = memo_alone(&cache, "a");
        let other = (0..)
            .map(|i| format!("b{i}"))
            .find(|b| generation_of(b.as_bytes()) != generation_of(b"a"))
            .expect("another generation");
        cache.on_push(&invalidate(&[&other]));
        assert!(cache.fresh("a", &memo, T0));
    }

    /// The invalidation handled between `fresh` reading the generation and looking the key up:
    /// the lookup misses, and nothing is copied that could answer later.
    #[test]
    fn an_invalidation_handled_while_a_memo_is_being_copied_leaves_it_dead() {
        let cache = cache(Duration::from_secs(60));
        cache.remember("a", cache.epoch(), None);
        let memo = SessionMemo::new("a");
        if let Ok(mut hook) = cache.between_generation_and_lookup.lock() {
            *hook = Some(Box::new(|c: &TrackedCache| c.on_push(&invalidate(&["a"]))));
        }
        let _ = cache.fresh("a", &memo, T0);
        assert!(
            cache
                .between_generation_and_lookup
                .lock()
                .is_ok_and(|hook| hook.is_none()),
            "the invalidation ran"
        );
        // Cached again by a later read, then evicted: only a (wrong) copy could answer.
        assert!(!cache.fresh("a", &memo, T0));
        cache.remember("a", cache.epoch(), None);
        cache.entries.remove(b"a".as_slice());
        assert!(
            !cache.fresh("a", &memo, T0),
            "a copy made across the invalidation answered"
        );
    }

    /// Readers copy the entry into a shared memo and read it back while an invalidation is
    /// handled: once `on_push` has returned, no check that starts answers yes.
    #[test]
    fn no_check_that_starts_after_an_invalidation_was_handled_is_answered_from_a_memo() {
        use std::sync::atomic::AtomicUsize;
        let cache = cache(Duration::from_secs(60));
        for round in 0..300 {
            let key = format!("session-{round}");
            cache.remember(&key, cache.epoch(), None);
            let memo = SessionMemo::new(&key);
            let handled = AtomicBool::new(false);
            let checks = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        loop {
                            let after = handled.load(Ordering::SeqCst);
                            let fresh = cache.fresh(&key, &memo, T0);
                            checks.fetch_add(1, Ordering::SeqCst);
                            if after {
                                assert!(!fresh, "{key}: served after its invalidation");
                                break;
                            }
                        }
                    });
                }
                while checks.load(Ordering::SeqCst) < 20 {
                    std::hint::spin_loop();
                }
                cache.on_push(&invalidate(&[&key]));
                handled.store(true, Ordering::SeqCst);
            });
        }
    }

    #[test]
    fn entries_expire_after_the_max_staleness() {
        let cache = cache(Duration::ZERO);
        cache.remember("a", cache.epoch(), None);
        assert!(!cache.hit("a"));
    }

    /// A connection whose commands wait up to 5 s, not 500 ms: a busy test machine must not
    /// fail a probe that only counts answers.
    fn options() -> crate::redis_conn::RedisOptions {
        crate::redis_conn::RedisOptions {
            response_timeout: Duration::from_secs(5),
            ..Default::default()
        }
    }

    async fn standalone(redis: &test_support::RedisServer) -> RedisConnection {
        let target = crate::RedisTarget::Standalone(redis.url());
        RedisConnection::connect(&target, options()).await.unwrap()
    }

    /// What the heartbeat exists to catch on a cluster, where redis-rs can swap a node's
    /// connection without a disconnection push: the same question asked over another
    /// connection is a replaced one. The first answer is the baseline.
    #[tokio::test]
    async fn the_probe_finds_a_replaced_connection_by_its_client_id_and_nothing_else() {
        let redis = test_support::RedisServer::start().unwrap();
        let (first, second) = (standalone(&redis).await, standalone(&redis).await);
        let mut probe = Probe::default();
        assert!(!probe.ask(&first).await.unwrap(), "the baseline");
        assert!(!probe.ask(&first).await.unwrap(), "the same connection");
        assert!(probe.ask(&second).await.unwrap(), "another connection");
        assert!(!probe.ask(&second).await.unwrap(), "the new baseline");
    }

    /// A connection Redis closed and the client opened again is a replaced one too: its
    /// first answer after the reconnection says so, whether or not a command failed first.
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // real time: a bounded wait for the reconnection
    async fn the_first_probe_answered_after_a_reconnection_reports_it() {
        let redis = test_support::RedisServer::start().unwrap();
        let conn = standalone(&redis).await;
        let mut probe = Probe::default();
        assert!(!probe.ask(&conn).await.unwrap());
        let [(_, id)] = conn.connection_ids().await.unwrap()[..] else {
            panic!("one id")
        };
        let killed: i64 = redis
            .query(redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id))
            .unwrap();
        assert_eq!(killed, 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let replaced = loop {
            if let Ok(replaced) = probe.ask(&conn).await {
                break replaced;
            }
            assert!(std::time::Instant::now() < deadline, "no reconnection");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(replaced, "the reconnection went unnoticed");
        assert!(!probe.ask(&conn).await.unwrap());
    }

    /// While the user may not run `CLIENT ID`, the probe `PING`s and cannot see a swap; once
    /// allowed (asked again after [`PTTL_RETRY`](super::super::PTTL_RETRY)), its first answer
    /// counts as one, since a swap during the spell went unseen.
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // real time: the retry interval, moved back by hand
    async fn after_a_spell_of_pings_the_first_client_id_answer_counts_as_a_replacement() {
        let redis = test_support::RedisServer::start().unwrap();
        let acl = |rules: &[&str]| redis.set_user("v", rules).unwrap();
        acl(&["on", ">pw", "~*", "+@all", "-client|id"]);
        let options = crate::redis_conn::RedisOptions {
            credentials: Some(crate::RedisCredentials::new(Some("v"), "pw")),
            ..options()
        };
        let conn = RedisConnection::connect(&crate::RedisTarget::Standalone(redis.url()), options)
            .await
            .unwrap();
        let mut probe = Probe::default();
        assert!(!probe.ask(&conn).await.unwrap(), "PING answers");
        assert!(probe.refused_at.is_some());
        assert!(!probe.ask(&conn).await.unwrap(), "PING again");

        acl(&["+client|id"]);
        // Allowed now, but not asked before the minute is up: still PING, still no answer
        // that counts as a replacement.
        assert!(
            !probe.ask(&conn).await.unwrap(),
            "CLIENT ID asked within the minute"
        );
        assert!(
            probe.refused_at.is_some(),
            "the refusal's time kept until the minute is up"
        );
        probe.refused_at = std::time::Instant::now().checked_sub(super::super::PTTL_RETRY);
        assert!(
            probe.ask(&conn).await.unwrap(),
            "the spell's swaps are unknown"
        );
        assert!(probe.refused_at.is_none());
        assert!(!probe.ask(&conn).await.unwrap(), "the baseline is set");
    }
}
