//! The revocation self-test in Redis (standalone, Cluster or Sentinel). Every key is under
//! the hash tag `{_selftest}` ([`SelftestKeys`]), so each script runs on one slot; the times
//! are Redis's own (`TIME`), the one clock every verifier shares whatever its host.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::Script;
use verifier::contract::{RedisConnection, SELFTEST_SUBJECT, SelftestKeys};

use crate::domain::error::StoreError;
use crate::domain::ports::{ProbeAck, SelftestStore};
use crate::storage::redis_error;

/// KEYS: verifiers, probe, probe session. ARGV: sid, TTL (ms), staleness (ms), subject.
/// Prunes the verifiers that have not reported in since `now - staleness` and answers the
/// others; if any, creates the probe session and points the probe at it, both with the TTL.
const START: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf',
  '(' .. string.format('%d', now - tonumber(ARGV[3])))
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
if #live == 0 then
  return live
end
redis.call('HSET', KEYS[3], 'user', ARGV[4], 'probe', '1', 'created', string.format('%d', now))
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return live
";

/// KEYS: probe session, deleted, probe. ARGV: TTL (ms), sid. Records Redis `TIME` (µs),
/// then deletes the probe session (its invalidation reaches the verifiers that armed it) and
/// the pointer, if it still names this probe.
const DELETE: &str = r"
local t = redis.call('TIME')
redis.call('SET', KEYS[2], string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])),
  'PX', ARGV[1])
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
end
return 1
";

/// KEYS: lock. ARGV: token. Deletes the lock if the token owns it.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The self-test's store on the auth-center's Redis connection.
pub struct RedisSelftestStore {
    conn: RedisConnection,
    keys: SelftestKeys,
    start: Script,
    delete: Script,
    unlock: Script,
}

impl RedisSelftestStore {
    /// The store for keys under `prefix`.
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            keys: SelftestKeys::new(prefix),
            start: Script::new(START),
            delete: Script::new(DELETE),
            unlock: Script::new(UNLOCK),
        }
    }

    /// The keys of probe `sid`: session, armed, deleted, acks.
    fn probe_keys(&self, sid: &str) -> Result<[String; 4], StoreError> {
        match (
            self.keys.probe_session(sid),
            self.keys.armed(sid),
            self.keys.deleted(sid),
            self.keys.acks(sid),
        ) {
            (Some(session), Some(armed), Some(deleted), Some(acks)) => {
                Ok([session, armed, deleted, acks])
            }
            _ => Err(StoreError::other("a malformed probe id")),
        }
    }

    async fn hash(&self, key: String) -> Result<HashMap<String, String>, StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)
    }
}

#[async_trait]
impl SelftestStore for RedisSelftestStore {
    async fn lock(&self, token: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.lock())
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(set.is_some())
    }

    async fn unlock(&self, token: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .unlock
            .key(self.keys.lock())
            .arg(token)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn start_probe(
        &self,
        sid: &str,
        ttl_ms: u64,
        stale_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let [session, ..] = self.probe_keys(sid)?;
        let mut conn = self.conn.clone();
        self.start
            .key(self.keys.verifiers())
            .key(self.keys.probe())
            .key(session)
            .arg(sid)
            .arg(ttl_ms)
            .arg(stale_ms)
            .arg(SELFTEST_SUBJECT)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)
    }

    async fn armed(&self, sid: &str) -> Result<Vec<String>, StoreError> {
        let [_, armed, ..] = self.probe_keys(sid)?;
        Ok(self.hash(armed).await?.into_keys().collect())
    }

    async fn delete_probe(&self, sid: &str, ttl_ms: u64) -> Result<(), StoreError> {
        let [session, _, deleted, _] = self.probe_keys(sid)?;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .delete
            .key(session)
            .key(deleted)
            .key(self.keys.probe())
            .arg(ttl_ms)
            .arg(sid)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn acks(&self, sid: &str) -> Result<Vec<(String, ProbeAck)>, StoreError> {
        let [.., acks] = self.probe_keys(sid)?;
        let mut out = Vec::new();
        for (instance, value) in self.hash(acks).await? {
            let mut numbers = value.split(' ').map(str::parse::<u64>);
            match (numbers.next(), numbers.next(), numbers.next()) {
                (Some(Ok(lag_us)), Some(Ok(error_us)), None) => {
                    out.push((instance, ProbeAck { lag_us, error_us }));
                }
                _ => tracing::warn!(%instance, %value, "a malformed self-test acknowledgement"),
            }
        }
        Ok(out)
    }
}
