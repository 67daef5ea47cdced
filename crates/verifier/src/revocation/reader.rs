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
//! `EXISTS` of a cache miss, the readiness `PING`, the heartbeat, the revocation self-test.
//! A cache hit does not touch it: the request path is unchanged.
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
    /// Starts the thread and its runtime.
    pub(crate) async fn start() -> std::io::Result<(Self, ReaderThread)> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, handle) = oneshot::channel::<std::io::Result<Handle>>();
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
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
            let (reader, thread) = TrackingReader::start().await.unwrap();
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
        let verifier = builder(&redis.url())
            .revocation_selftest(false)
            // Only an invalidation, never the safety-net TTL, may empty the cache here.
            .max_staleness(Duration::from_secs(600))
            .build()
            .await
            .unwrap();
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

    #[tokio::test]
    async fn a_task_on_an_ended_reader_answers_none() {
        let (reader, thread) = TrackingReader::start().await.unwrap();
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
