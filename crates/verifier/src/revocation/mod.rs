//! Session-existence checks against Redis: the allowlist. A session key exists ⇔ the
//! tokens of that session are valid. Every-request mode asks Redis each time
//! ([`SessionCheck`]); tracked mode first asks its cache ([`tracked`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, ServerErrorKind};

use crate::error::VerifyError;
use crate::metrics::VerifierMetrics;
use crate::redis_conn::{RedisConnection, RedisFailure};

pub(crate) mod reader;
pub(crate) mod selftest;
pub(crate) mod tracked;

use reader::TrackingReader;
pub(crate) use tracked::SessionMemo;
use tracked::TrackedCache;

/// How a verifier learns about revoked sessions.
///
/// ```
/// use verifier::RevocationMode;
/// assert_eq!(RevocationMode::default(), RevocationMode::Tracked);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevocationMode {
    /// Session existence is cached in-process and invalidated by Redis server-assisted
    /// client-side caching (RESP3 `CLIENT TRACKING`): a `DEL`, `UNLINK` or any write of the
    /// key reaches the verifier within a round trip. An entry lives until the session key's
    /// own expiry at the latest (a miss asks `PTTL`), since Redis pushes an expiry only when
    /// it gets round to deleting the key. Entries also expire after the max-staleness TTL,
    /// and the cache is dropped when the connection drops or Redis stops answering for
    /// longer than the max stall.
    ///
    /// The tracked connection runs on the verifier's own OS thread, `verifier-tracking`
    /// (a current-thread tokio runtime that does nothing else; it ends when the verifier
    /// is dropped): the kernel wakes it when Redis writes an invalidation to the socket,
    /// and it removes the key from the cache at once, whatever load the application's
    /// runtime is under. (On that runtime the push would wait behind the request tasks,
    /// which meanwhile keep answering from the cache.) A cache hit does not touch the
    /// thread; a miss hands its `PTTL` to it, and is cached until the key expires at the latest.
    ///
    /// What remains between a `DEL` and the first refusal: Redis queues the invalidation
    /// while it executes the `DEL`, before the `DEL`'s reply, and writes both in the same
    /// pass of its event loop, in no guaranteed order (Redis 7 writes the client queued
    /// last first, so the reply often leaves a few µs before the push). Then the push
    /// crosses the network to the verifier and the kernel must schedule the reader thread.
    /// The reader runs in the real-time class (`SCHED_FIFO` 1) when allowed, else at nice
    /// −20 ([`tracking_reader_realtime`](crate::VerifierBuilder::tracking_reader_realtime)),
    /// so on a saturated core it preempts the request threads as soon as the push arrives
    /// instead of waiting a scheduler slice (1–3 ms, during which hundreds of cached answers
    /// can go out). A request that reaches a worker in the remaining window (the µs between
    /// Redis's two writes plus the push's network delay and one thread wake-up; more if the
    /// deleter is closer to Redis than the verifier) is still answered from the cache, even
    /// if it was sent after the `DEL` reply. So a revocation is not ordered with requests
    /// sent right after it: it takes effect within one network delay plus one thread
    /// wake-up, not at once. The bound holds only while the reader gets its priority (see
    /// the warning logged when it cannot).
    #[default]
    Tracked,
    /// One Redis `EXISTS` per request.
    EveryRequest,
    /// No revocation check at all: a logged-out token stays valid until it expires.
    /// Explicit opt-in only; the verifier warns loudly at start-up.
    Off,
}

/// The default of [`max_stall`](crate::VerifierBuilder::max_stall): how long tracked mode
/// may keep serving cached answers from a Redis that stopped answering.
///
/// ```
/// assert_eq!(verifier::DEFAULT_MAX_STALL, std::time::Duration::from_millis(200));
/// ```
pub const DEFAULT_MAX_STALL: Duration = Duration::from_millis(200);
/// The default of [`tracking_reader_nice`](crate::VerifierBuilder::tracking_reader_nice):
/// tracked mode's reader thread at the highest priority a nice value gives.
///
/// ```
/// assert_eq!(verifier::DEFAULT_TRACKING_READER_NICE, -20);
/// ```
pub const DEFAULT_TRACKING_READER_NICE: i8 = -20;
/// The shortest accepted max stall (the heartbeat then `PING`s every 5 ms).
pub(crate) const MIN_MAX_STALL: Duration = Duration::from_millis(20);
/// The longest accepted max stall.
pub(crate) const MAX_MAX_STALL: Duration = Duration::from_secs(60);

/// Asks Redis whether a session still exists, failing closed.
#[derive(Debug, Clone)]
pub(crate) struct SessionCheck {
    pub(crate) conn: RedisConnection,
    pub(crate) timeout: Duration,
    /// Tracked mode's cache; `None` in every-request mode.
    pub(crate) tracked: Option<Arc<TrackedCache>>,
    /// Tracked mode's reader thread, where every command on `conn` runs; `None` in
    /// every-request mode (commands run on the caller's runtime).
    pub(crate) reader: Option<TrackingReader>,
    pub(crate) metrics: Arc<VerifierMetrics>,
    /// When Redis last said the ACL user may not run `PTTL`; tracked mode asks `EXISTS` for
    /// [`PTTL_RETRY`] from then on.
    pub(crate) pttl_refused_at: Arc<Mutex<Option<Instant>>>,
}

impl SessionCheck {
    /// `Ok` if the session key exists; `Revoked` if not; `Unavailable` if Redis did not
    /// answer in time or failed. A failure fails closed whatever its [`RedisFailure`]; a
    /// `Fault` (a misconfiguration, such as an ACL without `EXISTS`) is logged as an error,
    /// as it does not pass by itself the way an outage or a failover does.
    ///
    /// Tracked mode asks `PTTL` rather than `EXISTS` on a miss, and caches the answer until
    /// the key's own expiry at the latest (and max staleness): Redis tells the tracking
    /// clients about an expired key only once it deletes it, when a read meets it or its
    /// active expiry cycle reaches it, which in a Redis with millions of keys with a TTL can
    /// lag far behind the expiry. A user whose ACL refuses `PTTL` (one set up before it was
    /// documented) gets `EXISTS` instead, with a warning, and expiries seen within max
    /// staleness as before.
    ///
    /// `cache_hit` is set to whether tracked mode's cache answered (left `None` in
    /// every-request mode), for the caller's metrics.
    pub(crate) async fn check(
        &self,
        session_key: &str,
        cache_hit: &mut Option<bool>,
    ) -> Result<(), VerifyError> {
        let Some(cache) = &self.tracked else {
            return if self.exists(session_key).await? {
                Ok(())
            } else {
                Err(VerifyError::Revoked)
            };
        };
        let hit = cache.hit(session_key);
        *cache_hit = Some(hit);
        if hit {
            return Ok(());
        }
        let epoch = cache.epoch();
        // The TTL counts from when Redis ran the command, after this: an earlier expiry.
        let sent = cache.now_millis();
        let expires = match self.remaining_lifetime(session_key).await? {
            Lifetime::Gone => return Err(VerifyError::Revoked),
            Lifetime::Unknown => None,
            Lifetime::Left(left) => {
                Some(sent.saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX)))
            }
        };
        cache.remember(session_key, epoch, expires);
        Ok(())
    }

    /// How long the session key has left: `PTTL`, or `EXISTS` for [`PTTL_RETRY`] after Redis
    /// said the ACL user may not run `PTTL` (then `PTTL` is tried again, so adding `+pttl`
    /// needs no restart).
    async fn remaining_lifetime(&self, session_key: &str) -> Result<Lifetime, VerifyError> {
        if self.may_try_pttl() {
            let mut cmd = redis::cmd("PTTL");
            cmd.arg(session_key);
            let answer = self.ask::<i64>(cmd).await?;
            let refused = matches!(&answer, Err(e) if refuses_pttl(e));
            self.note_pttl_answer(refused, answer.is_ok());
            match answer {
                Ok(ms) => return Ok(Lifetime::of_pttl(ms)),
                Err(_) if refused => {}
                Err(e) => return Err(failed(e)),
            }
        }
        Ok(if self.exists(session_key).await? {
            Lifetime::Unknown
        } else {
            Lifetime::Gone
        })
    }

    /// Whether to send `PTTL`: never refused, or refused [`PTTL_RETRY`] ago or longer.
    #[allow(clippy::disallowed_methods)] // real time: when to try PTTL again
    fn may_try_pttl(&self) -> bool {
        self.pttl_refused_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|at| at.elapsed() >= PTTL_RETRY)
    }

    /// Remembers what a `PTTL` showed: `refused` (the user may not run it), or `answered`
    /// (it may). A failed connection shows neither and changes nothing.
    #[allow(clippy::disallowed_methods)] // real time: when to try PTTL again
    fn note_pttl_answer(&self, refused: bool, answered: bool) {
        let mut at = self
            .pttl_refused_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if refused {
            if at.is_none() {
                tracing::warn!(
                    "the Redis user may not run PTTL: session checks send EXISTS instead, and a \
                     session that expires unread is refused within max staleness rather than at \
                     its expiry; add +pttl to the user's ACL (tried again every minute)"
                );
            }
            *at = Some(Instant::now());
        } else if answered && at.take().is_some() {
            tracing::info!("the Redis user may run PTTL again");
        }
    }

    /// Whether the session key exists (`EXISTS`).
    async fn exists(&self, session_key: &str) -> Result<bool, VerifyError> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(session_key);
        match self.ask::<i64>(cmd).await? {
            Ok(n) => Ok(n == 1),
            Err(e) => Err(failed(e)),
        }
    }

    /// Sends a session check's command (see [`query`](Self::query)) and counts it.
    async fn ask<T: FromRedisValue + Send + 'static>(
        &self,
        cmd: Cmd,
    ) -> Result<RedisResult<T>, VerifyError> {
        let answer = self.query::<T>(cmd).await;
        self.metrics.redis_request(!matches!(answer, Ok(Ok(_))));
        answer
    }

    /// Whether tracked mode's cache answers for `session_key` at `now` (milliseconds of the
    /// verifier's clock; never in every-request mode): the synchronous fast path, which
    /// touches neither Redis nor the metrics.
    #[inline]
    pub(crate) fn cached(&self, session_key: &str, memo: &SessionMemo, now: i64) -> bool {
        self.tracked
            .as_ref()
            .is_some_and(|c| c.fresh(session_key, memo, now))
    }

    /// `Ok` if Redis answers a `PING` in time; `Unavailable` otherwise.
    pub(crate) async fn ping(&self) -> Result<(), VerifyError> {
        match self.query::<String>(redis::cmd("PING")).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(VerifyError::Unavailable(e.to_string())),
            Err(unanswered) => Err(unanswered),
        }
    }

    /// Sends `cmd` on the connection within the timeout: on the reader thread in tracked
    /// mode (a connection must only ever be driven, and reconnected, there), here otherwise.
    /// The outer `Err` is a timeout, or a reader thread that has ended.
    async fn query<T: FromRedisValue + Send + 'static>(
        &self,
        cmd: Cmd,
    ) -> Result<RedisResult<T>, VerifyError> {
        let mut conn = self.conn.clone();
        let timeout = self.timeout;
        let call = async move { tokio::time::timeout(timeout, cmd.query_async(&mut conn)).await };
        let answer = match &self.reader {
            Some(reader) => reader.run(call).await.ok_or_else(|| {
                VerifyError::Unavailable("the verifier-tracking thread has ended".into())
            })?,
            None => call.await,
        };
        answer.map_err(|_| VerifyError::Unavailable("redis timed out".into()))
    }
}

/// What a session check learnt about the session key.
enum Lifetime {
    /// It does not exist: the session is revoked or expired.
    Gone,
    /// It exists, with no expiry or an unknown one.
    Unknown,
    /// It exists and expires after this.
    Left(Duration),
}

impl Lifetime {
    /// From a `PTTL` reply: -2 no such key, -1 no expiry, else the milliseconds left.
    fn of_pttl(ms: i64) -> Self {
        match ms {
            -1 => Lifetime::Unknown,
            0.. => Lifetime::Left(Duration::from_millis(ms.unsigned_abs())),
            _ => Lifetime::Gone,
        }
    }
}

/// How long tracked mode sends `EXISTS` instead of `PTTL` after Redis refused the user `PTTL`.
pub(crate) const PTTL_RETRY: Duration = Duration::from_secs(60);

/// Whether `e` says the ACL user may not run `PTTL` (`NOPERM ... the 'pttl' command`), as
/// opposed to a key outside the user's patterns (`NOPERM No permissions to access a key`),
/// which `EXISTS` would meet too.
fn refuses_pttl(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm)
        && e.detail().is_some_and(|d| d.contains("'pttl' command"))
}

/// A failed session check, failing closed; a `Fault` is logged as an error.
fn failed(e: RedisError) -> VerifyError {
    if RedisFailure::of(&e) == RedisFailure::Fault {
        tracing::error!(error = %e, "the session check failed, and retrying will not help");
    }
    VerifyError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(reply: &str) -> RedisError {
        redis::parse_redis_value(format!("-{reply}\r\n").as_bytes())
            .unwrap()
            .extract_error()
            .unwrap_err()
    }

    #[test]
    fn a_pttl_reply_says_gone_no_expiry_or_time_left() {
        assert!(matches!(Lifetime::of_pttl(-2), Lifetime::Gone));
        assert!(matches!(Lifetime::of_pttl(-1), Lifetime::Unknown));
        assert!(matches!(Lifetime::of_pttl(0), Lifetime::Left(d) if d.is_zero()));
        assert!(
            matches!(Lifetime::of_pttl(1500), Lifetime::Left(d) if d == Duration::from_millis(1500))
        );
        // Anything else Redis does not send: not a session that exists.
        assert!(matches!(Lifetime::of_pttl(-3), Lifetime::Gone));
    }

    #[test]
    fn only_a_refusal_of_the_pttl_command_turns_the_checks_to_exists() {
        // Redis 7.0 and 7.2+ word it differently.
        for refusal in [
            "NOPERM this user has no permissions to run the 'pttl' command",
            "NOPERM User verifier has no permissions to run the 'pttl' command",
        ] {
            assert!(refuses_pttl(&error(refusal)), "{refusal}");
        }
        for other in [
            "NOPERM No permissions to access a key",
            "NOPERM this user has no permissions to run the 'exists' command",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ] {
            assert!(!refuses_pttl(&error(other)), "{other}");
        }
    }
}
