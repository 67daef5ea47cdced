//! Session-existence checks against Redis: the allowlist. A session key exists ⇔ the
//! tokens of that session are valid.

use std::time::Duration;

use crate::error::VerifyError;
use crate::redis_conn::RedisConnection;
use crate::session_keys::SessionKeys;

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
    /// max-staleness TTL, and the cache is dropped when the connection drops.
    #[default]
    Tracked,
    /// One Redis `EXISTS` per request.
    EveryRequest,
    /// No revocation check at all: a logged-out token stays valid until it expires.
    /// Explicit opt-in only; the verifier warns loudly at start-up.
    Off,
}

/// Asks Redis whether a session still exists, failing closed.
#[derive(Debug, Clone)]
pub(crate) struct SessionCheck {
    pub(crate) conn: RedisConnection,
    pub(crate) keys: SessionKeys,
    pub(crate) timeout: Duration,
}

impl SessionCheck {
    /// `Ok` if the session exists; `Revoked` if not; `Unavailable` if Redis did not
    /// answer in time.
    pub(crate) async fn check(&self, user_id: &str, sid: &str) -> Result<(), VerifyError> {
        let key = self
            .keys
            .session(user_id, sid)
            .ok_or(VerifyError::Invalid("malformed sub or sid"))?;
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(key);
        match tokio::time::timeout(self.timeout, cmd.query_async::<i64>(&mut conn)).await {
            Ok(Ok(1)) => Ok(()),
            Ok(Ok(_)) => Err(VerifyError::Revoked),
            Ok(Err(e)) => Err(VerifyError::Unavailable(e.to_string())),
            Err(_) => Err(VerifyError::Unavailable("redis timed out".into())),
        }
    }
}
