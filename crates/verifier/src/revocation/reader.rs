//! Tracked mode's dedicated reader: the tracked Redis connection runs on its own OS thread,
//! [`THREAD_NAME`], with a current-thread tokio runtime of its own, so an invalidation push
//! is read and applied to the cache as soon as the kernel runs that thread, however busy the
//! runtime that handles requests is.
//!
//! On the application's runtime the push handler runs inside redis-rs's connection driver
//! task, one task among the request tasks: under load it waits until the runtime polls its
//! IO driver again (every ~61 task polls) and then behind the tasks already queued (the LIFO
//! slot first), while those tasks keep answering from the cache. Here the thread does
//! nothing but the tracked connection: it sleeps in `epoll_wait` on the connection's socket
//! and wakes up when Redis writes to it.
//!
//! redis-rs spawns its connection driver (and a [`ConnectionManager`]'s reconnects, and a
//! cluster's or a sentinel connection's background tasks) with `tokio::spawn` on whichever
//! runtime is current when it connects or reconnects, and a command may trigger a reconnect.
//! So everything that touches the tracked connection runs on this runtime: the connect, the
//! `PTTL` of a cache miss, the readiness `PING`, the heartbeat, the revocation self-test.
//! A cache hit does not touch it: the request path is unchanged.
//!
//! A thread of its own is not enough when the request threads keep every core busy: the
//! kernel's fair scheduler (EEVDF) lets a running thread finish its slice (about 1–3 ms)
//! before a woken thread of equal weight, and meanwhile the request threads answer the
//! revoked session from the cache (measured: up to 264 such answers in one trial, with 32
//! connections on one saturated core). So the thread raises its own priority when it starts
//! ([`ReaderPriority`]): the real-time class (`SCHED_FIFO` 1) by default, in which a woken
//! reader always preempts request threads at once, else nice −20, at which it usually does
//! (a few trials in a thousand still waited for a busy thread's slice). Both need
//! `CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` / `RLIMIT_NICE` allowing them; without, the thread
//! takes the lowest nice value allowed and logs what it could not get.
//!
//! [`ConnectionManager`]: redis::aio::ConnectionManager

use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The name of tracked mode's reader thread (`/proc/<pid>/task/*/comm` shows its first 15
/// bytes, `verifier-tracki`).
pub(crate) const THREAD_NAME: &str = "verifier-tracking";

/// A handle on the reader thread's runtime. Cheap to clone; does not keep the thread alive.
#[derive(Debug, Clone)]
pub(crate) struct TrackingReader {
    handle: Handle,
}

/// Keeps the reader thread running; dropping it (with the verifier) ends the thread, and
/// with it every task of its runtime (the connection driver, the heartbeat, the self-test).
#[derive(Debug)]
pub(crate) struct ReaderThread {
    _stop: oneshot::Sender<()>,
}

impl TrackingReader {
    /// Starts the thread, at the priority `wanted` or as close to it as allowed, and its
    /// runtime.
    pub(crate) async fn start(wanted: ReaderPriority) -> std::io::Result<(Self, ReaderThread)> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, handle) = oneshot::channel::<std::io::Result<Handle>>();
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                wanted.apply();
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                if started.send(Ok(runtime.handle().clone())).is_ok() {
                    // Until the verifier is dropped (the sender with it).
                    let _ = runtime.block_on(stopped);
                }
                // Drops every task now; a DNS look-up still running on a blocking thread
                // is not waited for.
                runtime.shutdown_background();
            })?;
        let handle = handle
            .await
            .map_err(|_| std::io::Error::other("the thread ended before its runtime started"))??;
        Ok((Self { handle }, ReaderThread { _stop: stop }))
    }

    /// Runs `task` on the reader's runtime and waits for its output; `None` if the runtime
    /// has ended (the verifier is being dropped). A panic in `task` is resumed here.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        match self.handle.spawn(task).await {
            Ok(output) => Some(output),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }

    /// Starts `task` on the reader's runtime.
    pub(crate) fn spawn(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        self.handle.spawn(task)
    }
}

/// The priority tracked mode's reader thread asks for: SCHED_FIFO if `realtime` (and
/// allowed), else (or when refused) nice value `nice`, or the closest value allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReaderPriority {
    pub(crate) realtime: bool,
    pub(crate) nice: i8,
}

/// The priority the reader thread got.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GotPriority {
    /// SCHED_FIFO, priority 1.
    Realtime,
    /// The fair class, at this nice value.
    Nice(i32),
}

impl ReaderPriority {
    /// Elsewhere a nice value is the process's, not a thread's, and there is no `SCHED_FIFO`
    /// to ask for: the thread stays as it is.
    #[cfg(not(target_os = "linux"))]
    fn apply(self) {}

    /// Applies it to the calling thread, and says in the log what it could not get.
    #[cfg(target_os = "linux")]
    fn apply(self) {
        match self.set() {
            Ok(GotPriority::Realtime) => {}
            Ok(GotPriority::Nice(got)) if got > i32::from(self.nice) => tracing::warn!(
                tracking_reader_nice = self.nice,
                nice = got,
                "tracked mode's reader thread could not raise its priority that far (it \
                 needs CAP_SYS_NICE, or an RLIMIT_RTPRIO or RLIMIT_NICE allowing it): on \
                 saturated cores an invalidation can wait a scheduler slice, during which a \
                 revoked session is still accepted"
            ),
            Ok(GotPriority::Nice(got)) if self.realtime => tracing::info!(
                nice = got,
                "tracked mode's reader thread runs at a nice value, not SCHED_FIFO (that needs \
                 CAP_SYS_NICE or RLIMIT_RTPRIO >= 1): on saturated cores an invalidation can \
                 occasionally wait for a busy request thread's slice"
            ),
            Ok(GotPriority::Nice(_)) => {}
            Err(e) => tracing::warn!(
                error = %e,
                tracking_reader_nice = self.nice,
                "tracked mode's reader thread could not set its priority"
            ),
        }
    }

    #[cfg(target_os = "linux")]
    fn set(self) -> std::io::Result<GotPriority> {
        use thread_priority::{
            RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        if self.realtime
            && set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Min,
                ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
            )
            .is_ok()
        {
            return Ok(GotPriority::Realtime);
        }
        set_own_nice(self.nice).map(GotPriority::Nice)
    }
}

/// Lowers the calling thread's nice value to `wanted`, or, when a value that low is not
/// allowed, to the lowest one `RLIMIT_NICE` allows; never raises it (a thread started at a
/// higher priority than asked for keeps it). Returns the value the thread has now. On Linux
/// the nice value belongs to each thread, and a new thread starts with its creator's.
#[cfg(target_os = "linux")]
fn set_own_nice(wanted: i8) -> std::io::Result<i32> {
    use rustix::process::{Resource, getpriority_process, getrlimit, setpriority_process};
    let me = Some(rustix::thread::gettid());
    let (wanted, now) = (i32::from(wanted), getpriority_process(me)?);
    if wanted >= now {
        return Ok(now);
    }
    if setpriority_process(me, wanted).is_ok() {
        return Ok(wanted);
    }
    let best = wanted.max(nice_floor(getrlimit(Resource::Nice).current));
    if best < now {
        setpriority_process(me, best)?;
        return Ok(best);
    }
    Ok(now)
}

/// The lowest nice value an unprivileged thread may set under an `RLIMIT_NICE` of `limit`
/// (`20 - limit`; none means unlimited).
#[cfg(target_os = "linux")]
fn nice_floor(limit: Option<u64>) -> i32 {
    let limit = limit.unwrap_or(40).min(40);
    20 - i32::try_from(limit).unwrap_or(40)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::*;

    /// The `/proc/self/task/<tid>` directory of the reader thread.
    async fn task_dir(reader: &TrackingReader) -> PathBuf {
        let link = reader
            .run(async { std::fs::read_link("/proc/thread-self") })
            .await
            .and_then(Result::ok)
            .unwrap_or_default();
        let tid = link.file_name().unwrap_or_default();
        PathBuf::from("/proc/self/task").join(tid)
    }

    /// Whether the thread of `dir` is (still) the reader: the directory exists and its
    /// `comm` is the first 15 bytes of [`THREAD_NAME`].
    fn is_reader(dir: &std::path::Path) -> bool {
        std::fs::read_to_string(dir.join("comm"))
            .is_ok_and(|comm| comm.trim_end() == &THREAD_NAME[..15])
    }

    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // real time: a bounded wait for the thread to end
    async fn the_thread_runs_tasks_and_ends_when_its_guard_is_dropped() {
        let mut dirs = Vec::new();
        for _ in 0..20 {
            let (reader, thread) = TrackingReader::start(ReaderPriority {
                realtime: false,
                nice: 0,
            })
            .await
            .unwrap();
            let name = reader
                .run(async { std::thread::current().name().map(String::from) })
                .await
                .flatten();
            assert_eq!(name.as_deref(), Some(THREAD_NAME));
            let dir = task_dir(&reader).await;
            assert!(is_reader(&dir), "{}", dir.display());
            drop(thread);
            dirs.push(dir);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while dirs.iter().any(|dir| is_reader(dir)) {
            assert!(
                Instant::now() < deadline,
                "a reader thread outlived its guard"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn builder(redis_url: &str) -> crate::VerifierBuilder {
        crate::Verifier::builder()
            .issuer("https://auth.example")
            .audience("api")
            .static_keys(crate::KeySet::from_keys([crate::VerifyingKey::ed25519(
                "k1", &[7u8; 32],
            )]))
            .redis(crate::RedisTarget::Standalone(redis_url.into()))
    }

    /// A tracked verifier without the self-test whose safety nets (max staleness 10 min, max
    /// stall 1 min) never empty the cache within a test: only invalidations, the keys'
    /// expiries and a dropped connection may.
    async fn tracked_verifier(redis_url: &str) -> crate::Verifier {
        builder(redis_url)
            .revocation_selftest(false)
            .max_staleness(Duration::from_secs(600))
            // Nor a heartbeat answered late on a busy machine.
            .max_stall(Duration::from_secs(60))
            .build()
            .await
            .unwrap()
    }

    /// Polls `probe` every 10 ms until it is true, at most 15 s.
    #[allow(clippy::disallowed_methods)] // real time: a bounded wait
    async fn eventually<F: Future<Output = bool>>(what: &str, mut probe: impl FnMut() -> F) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !probe().await {
            assert!(Instant::now() < deadline, "{what}: not within 15 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_tracked_verifier_has_a_reader_thread_that_ends_with_it_and_every_request_has_none() {
        let mut dirs = Vec::new();
        for _ in 0..5 {
            // A dead (lazy) Redis: the thread starts all the same, with the self-test task.
            let verifier = builder("redis://127.0.0.1:1").build().await.unwrap();
            let check = verifier.inner.session_check.as_ref().unwrap();
            let dir = task_dir(check.reader.as_ref().unwrap()).await;
            assert!(is_reader(&dir), "{}", dir.display());
            let clone = verifier.clone();
            drop(verifier);
            assert!(is_reader(&dir), "a clone keeps the thread");
            drop(clone);
            dirs.push(dir);
        }
        eventually("every reader thread ended with its verifier", || {
            let gone = !dirs.iter().any(|dir| is_reader(dir));
            async move { gone }
        })
        .await;
        let every_request = builder("redis://127.0.0.1:1")
            .revocation(super::super::RevocationMode::EveryRequest)
            .build()
            .await
            .unwrap();
        assert!(
            every_request
                .inner
                .session_check
                .as_ref()
                .unwrap()
                .reader
                .is_none()
        );
    }

    #[tokio::test]
    async fn pushes_are_handled_on_the_reader_thread_and_still_invalidate_after_a_redis_restart() {
        let mut redis = test_support::RedisServer::start().unwrap();
        let verifier = tracked_verifier(&redis.url()).await;
        let check = &verifier.inner.session_check.as_ref().unwrap().check;
        let cache = check.tracked.as_deref().unwrap();
        let key = "auth:s:{u1}:s1";
        for restarted in [false, true] {
            redis
                .query::<()>(redis::cmd("SET").arg(key).arg(1))
                .unwrap();
            // After the restart: once the connection is back, on the reader's runtime.
            eventually("the session is cached", move || async move {
                check.check(key, &mut None).await.is_ok() && cache.hit(key)
            })
            .await;
            *cache.last_push_thread.lock().unwrap() = None;
            assert_eq!(redis.query::<i64>(redis::cmd("DEL").arg(key)).unwrap(), 1);
            eventually(
                "the DEL invalidates the cached session",
                move || async move { !cache.hit(key) },
            )
            .await;
            assert!(matches!(
                check.check(key, &mut None).await,
                Err(crate::VerifyError::Revoked)
            ));
            assert_eq!(
                cache.last_push_thread.lock().unwrap().as_deref(),
                Some(THREAD_NAME),
                "restarted: {restarted}"
            );
            if !restarted {
                redis.restart().unwrap();
            }
        }
    }

    /// Redis deletes an expired key, and only then tells the tracking clients, when a read
    /// meets it or when its active expiry cycle reaches it; in a Redis holding millions of
    /// keys with a TTL that cycle can lag minutes behind. Turned off here, nobody deletes the
    /// key: the cache itself must stop answering at the key's expiry, not at max staleness.
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // real time: Redis expires keys in real time
    async fn a_session_key_that_expires_unread_is_refused_from_its_expiry_on() {
        let redis = test_support::RedisServer::start().unwrap();
        redis
            .query::<()>(redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(0))
            .unwrap();
        let verifier = tracked_verifier(&redis.url()).await;
        let check = &verifier.inner.session_check.as_ref().unwrap().check;
        let cache = check.tracked.as_deref().unwrap();
        let (lasting, expiring) = ("auth:s:{u1}:lasting", "auth:s:{u1}:expiring");
        redis
            .query::<()>(redis::cmd("SET").arg(lasting).arg(1))
            .unwrap();
        redis
            .query::<()>(redis::cmd("SET").arg(expiring).arg(1).arg("PX").arg(2000))
            .unwrap();
        let set = Instant::now();
        for key in [expiring, lasting] {
            check.check(key, &mut None).await.unwrap();
            assert!(cache.hit(key), "{key} is cached");
        }

        tokio::time::sleep_until((set + Duration::from_millis(2100)).into()).await;
        assert!(
            !cache.hit(expiring),
            "the cache answers past the key's expiry"
        );
        assert!(matches!(
            check.check(expiring, &mut None).await,
            Err(crate::VerifyError::Revoked)
        ));
        assert!(cache.hit(lasting), "a key without a TTL stays cached");
    }

    /// A user refused `CLIENT ID` (an ACL set up before the heartbeat asked it) keeps a
    /// working cache: the heartbeat falls back to `PING` instead of finding Redis stalled, and
    /// invalidations still arrive.
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // real time: several heartbeats must pass
    async fn a_user_refused_client_id_keeps_its_cache_with_ping_heartbeats() {
        let redis = test_support::RedisServer::start().unwrap();
        redis
            .set_user("v", &["on", ">pw", "~*", "+@all", "-client|id"])
            .unwrap();
        let max_stall = Duration::from_millis(200);
        let verifier = builder(&redis.url())
            .redis_credentials(crate::RedisCredentials::new(Some("v"), "pw"))
            .revocation_selftest(false)
            .max_stall(max_stall)
            .build()
            .await
            .unwrap();
        let check = &verifier.inner.session_check.as_ref().unwrap().check;
        let cache = check.tracked.as_deref().unwrap();
        let key = "auth:s:{u1}:a";
        redis
            .query::<()>(redis::cmd("SET").arg(key).arg(1))
            .unwrap();
        check.check(key, &mut None).await.unwrap();

        // Long enough for several heartbeats, and for a refused probe to stall the cache.
        tokio::time::sleep(max_stall * 4).await;
        assert!(cache.hit(key), "the heartbeat stalled the cache");
        redis.query::<()>(redis::cmd("DEL").arg(key)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.hit(key) {
            assert!(Instant::now() < deadline, "the DEL was not pushed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A user refused `PTTL` gets `EXISTS`, and `PTTL` again once an operator allows it and
    /// the retry interval has passed, without a restart.
    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // real time: the retry interval, moved back by hand
    async fn a_user_refused_pttl_gets_exists_and_pttl_again_once_allowed() {
        let redis = test_support::RedisServer::start().unwrap();
        let acl = |rules: &[&str]| redis.set_user("v", rules).unwrap();
        acl(&["on", ">pw", "~*", "+@all", "-pttl"]);
        let verifier = builder(&redis.url())
            .redis_credentials(crate::RedisCredentials::new(Some("v"), "pw"))
            .revocation_selftest(false)
            .build()
            .await
            .unwrap();
        let check = &verifier.inner.session_check.as_ref().unwrap().check;
        let cache = check.tracked.as_deref().unwrap();
        // Both expire in 2 s, well before the default max staleness (5 s): only an entry made
        // from a PTTL answer ends with the key.
        for key in ["auth:s:{u1}:a", "auth:s:{u1}:b"] {
            redis
                .query::<()>(redis::cmd("SET").arg(key).arg(1).arg("PX").arg(2000))
                .unwrap();
        }
        let cached_until = |key: &str| cache.cached_until(key).unwrap();

        let asked = verifier.inner.clock.now_millis();
        check.check("auth:s:{u1}:a", &mut None).await.unwrap();
        assert!(
            check.pttl_refused_at.lock().unwrap().is_some(),
            "the refusal is remembered"
        );
        assert!(
            cached_until("auth:s:{u1}:a") > asked + 4_000,
            "EXISTS: cached for max staleness"
        );

        acl(&["+pttl"]);
        *check.pttl_refused_at.lock().unwrap() =
            Instant::now().checked_sub(super::super::PTTL_RETRY);
        let asked = verifier.inner.clock.now_millis();
        check.check("auth:s:{u1}:b", &mut None).await.unwrap();
        assert!(check.pttl_refused_at.lock().unwrap().is_none());
        assert!(
            cached_until("auth:s:{u1}:b") <= asked + 2_000,
            "PTTL again: cached until the key expires"
        );
    }

    /// Field `n` (1-based, as in proc(5)) of the `stat` of the thread whose `/proc` task
    /// directory is `dir`.
    fn stat_field(dir: &std::path::Path, n: usize) -> i64 {
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // The fields after the command name in parentheses start with field 3, the state.
        let fields = &stat[stat.rfind(')').unwrap() + 2..];
        fields.split(' ').nth(n - 3).unwrap().parse().unwrap()
    }

    /// (scheduling policy, real-time priority, nice value) of a thread.
    fn priority_of(dir: &std::path::Path) -> (i64, i64, i64) {
        (
            stat_field(dir, 41),
            stat_field(dir, 40),
            stat_field(dir, 19),
        )
    }

    const SCHED_OTHER: i64 = 0;
    const SCHED_FIFO: i64 = 1;

    /// What a thread of this process gets when it asks for `wanted`, found by a probe
    /// thread trying it: SCHED_FIFO 1 if allowed and asked for, else the nice value if
    /// allowed, else the lowest nice value RLIMIT_NICE allows, if below the current one.
    fn reachable(wanted: ReaderPriority) -> (i64, i64, i64) {
        std::thread::spawn(move || {
            use rustix::process::{Resource, getpriority_process, getrlimit, setpriority_process};
            use thread_priority::{
                RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
                set_thread_priority_and_policy, thread_native_id,
            };
            let me = Some(rustix::thread::gettid());
            let now = i64::from(getpriority_process(me).unwrap());
            if wanted.realtime
                && set_thread_priority_and_policy(
                    thread_native_id(),
                    ThreadPriority::Min,
                    ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
                )
                .is_ok()
            {
                return (SCHED_FIFO, 1, now);
            }
            let nice = i64::from(wanted.nice);
            if nice >= now {
                return (SCHED_OTHER, 0, now);
            }
            if setpriority_process(me, wanted.nice.into()).is_ok() {
                return (SCHED_OTHER, 0, nice);
            }
            let limit = getrlimit(Resource::Nice).current.unwrap_or(40).min(40);
            let floor = 20 - i64::try_from(limit).unwrap();
            (SCHED_OTHER, 0, nice.max(floor).min(now))
        })
        .join()
        .unwrap()
    }

    /// The reader thread of a tracked verifier built by `builder`.
    async fn reader_priority(builder: crate::VerifierBuilder) -> (i64, i64, i64) {
        let verifier = builder.build().await.unwrap();
        let check = verifier.inner.session_check.as_ref().unwrap();
        priority_of(&task_dir(check.reader.as_ref().unwrap()).await)
    }

    #[tokio::test]
    async fn the_reader_thread_raises_its_priority_above_the_request_threads_as_far_as_allowed() {
        // Raised, a woken reader preempts busy request threads at once instead of waiting a
        // scheduler slice while they answer revoked sessions from the cache.
        assert_eq!(
            reader_priority(builder("redis://127.0.0.1:1")).await,
            reachable(ReaderPriority {
                realtime: true,
                nice: -20
            }),
            "the default: SCHED_FIFO, else nice -20"
        );
        assert_eq!(
            reader_priority(builder("redis://127.0.0.1:1").tracking_reader_realtime(false)).await,
            reachable(ReaderPriority {
                realtime: false,
                nice: -20
            }),
            "without SCHED_FIFO: nice -20"
        );
    }

    #[tokio::test]
    async fn a_reader_at_nice_zero_without_realtime_stays_at_normal_priority() {
        let builder = builder("redis://127.0.0.1:1")
            .tracking_reader_realtime(false)
            .tracking_reader_nice(0);
        let expected = reachable(ReaderPriority {
            realtime: false,
            nice: 0,
        });
        assert_eq!(reader_priority(builder).await, expected);
    }

    #[test]
    fn the_reader_never_takes_a_lower_priority_than_the_thread_that_built_it() {
        // Built from a thread at nice 5 (raising one's own nice needs no privilege) and asked
        // for nice 10: it stays at 5, above the request threads the builder's thread would
        // start, instead of dropping below them.
        let got = std::thread::spawn(|| {
            use rustix::process::setpriority_process;
            setpriority_process(Some(rustix::thread::gettid()), 5).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(reader_priority(
                builder("redis://127.0.0.1:1")
                    .tracking_reader_realtime(false)
                    .tracking_reader_nice(10),
            ))
        })
        .join()
        .unwrap();
        assert_eq!(got, (SCHED_OTHER, 0, 5));
    }

    #[test]
    fn the_nice_floor_follows_rlimit_nice() {
        assert_eq!(
            nice_floor(Some(0)),
            20,
            "no RLIMIT_NICE: nothing below the current value"
        );
        assert_eq!(nice_floor(Some(20)), 0);
        assert_eq!(nice_floor(Some(30)), -10);
        assert_eq!(nice_floor(Some(40)), -20);
        assert_eq!(nice_floor(None), -20, "unlimited");
    }

    #[tokio::test]
    async fn a_task_on_an_ended_reader_answers_none() {
        let (reader, thread) = TrackingReader::start(ReaderPriority {
            realtime: false,
            nice: 0,
        })
        .await
        .unwrap();
        drop(thread);
        // The runtime shuts down: the spawn is refused or the task dropped, never run.
        let mut ended = false;
        for _ in 0..1000 {
            if reader.run(async {}).await.is_none() {
                ended = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(ended);
    }
}
