//! Session-existence checks against Redis: the allowlist. A session key exists ⇔ the
//! tokens of that session are valid. Every-request mode asks Redis each time
//! ([`SessionCheck`]); tracked mode first asks its cache ([`tracked`]).

use std::sync::Arc;
use std::time::Duration;

use crate::error::VerifyError;
use crate::metrics::VerifierMetrics;
use crate::redis_conn::{RedisConnection, RedisFailure};

pub(crate) mod selftest;
pub(crate) mod tracked;

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

/// The default of [`max_stall`](crate::VerifierBuilder::max_stall): how long tracked mode
/// may keep serving cached answers from a Redis that stopped answering.
///
/// ```
/// assert_eq!(verifier::DEFAULT_MAX_STALL, std::time::Duration::from_millis(200));
/// ```
pub const DEFAULT_MAX_STALL: Duration = Duration::from_millis(200);
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
    pub(crate) metrics: Arc<VerifierMetrics>,
}

impl SessionCheck {
    /// `Ok` if the session key exists; `Revoked` if not; `Unavailable` if Redis did not
    /// answer in time or failed. A failure fails closed whatever its [`RedisFailure`]; a
    /// `Fault` (a misconfiguration, such as an ACL without `EXISTS`) is logged as an error,
    /// as it does not pass by itself the way an outage or a failover does.
    ///
    /// `cache_hit` is set to whether tracked mode's cache answered (left `None` in
    /// every-request mode), for the caller's metrics.
    pub(crate) async fn check(
        &self,
        session_key: &str,
        cache_hit: &mut Option<bool>,
    ) -> Result<(), VerifyError> {
        if let Some(cache) = &self.tracked {
            let hit = cache.hit(session_key);
            *cache_hit = Some(hit);
            if hit {
                return Ok(());
            }
        }
        let epoch = self.tracked.as_ref().map(|c| c.epoch());
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(session_key);
        let answer = tokio::time::timeout(self.timeout, cmd.query_async::<i64>(&mut conn)).await;
        self.metrics.redis_request(!matches!(answer, Ok(Ok(_))));
        match answer {
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

    /// Whether tracked mode's cache answers for `session_key` now (never in every-request
    /// mode): the synchronous fast path, which touches neither Redis nor the metrics.
    #[inline]
    pub(crate) fn cached(&self, session_key: &str) -> bool {
        self.tracked.as_ref().is_some_and(|c| c.fresh(session_key))
    }

    /// `Ok` if Redis answers a `PING` in time; `Unavailable` otherwise.
    pub(crate) async fn ping(&self) -> Result<(), VerifyError> {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.timeout, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(VerifyError::Unavailable(e.to_string())),
            Err(_) => Err(VerifyError::Unavailable("redis timed out".into())),
        }
    }
}
