//! Sessions in Redis (standalone or cluster). Every multi-key operation is one Lua
//! script over keys that share the user's hash tag, so it runs atomically on one slot.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::{Script, Value};
use verifier::contract::{RedisConnection, SessionKeys};

use crate::domain::error::StoreError;
use crate::domain::ports::{RotateOutcome, Rotation, SessionRecord, SessionStore};
use crate::storage::redis_error;

/// Keeps the user's index pruned of expired entries and its TTL at the latest expiry.
/// KEYS[2] is the index; `now` is the injected clock's time in ms.
const TOUCH_INDEX: &str = r"
local function touch_index(index, now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. string.format('%d', now))
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if top[2] then
    redis.call('PEXPIRE', index, math.max(1, tonumber(top[2]) - now))
  end
end
";

/// KEYS: session, index. ARGV: sid, now, user, idle_expiry, absolute_expiry, rt, ua, ip,
/// roles, max sessions, session key prefix of the user, nrt (the hash of rt's successor),
/// jkt (the DPoP key thumbprint the session is bound to, '' for none).
const CREATE: &str = r"
local now = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'user', ARGV[3], 'created', ARGV[2], 'last_seen', ARGV[2],
  'idle_expiry', ARGV[4], 'absolute_expiry', ARGV[5], 'rt', ARGV[6], 'generation', '0',
  'ua', ARGV[7], 'ip', ARGV[8], 'roles', ARGV[9], 'nrt', ARGV[12])
if ARGV[13] ~= '' then
  redis.call('HSET', KEYS[1], 'jkt', ARGV[13])
end
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[4]) - now))
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
touch_index(KEYS[2], now)
-- Over the cap: end the sessions closest to idle expiry (the least recently used).
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[10])
if extra > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra)) do
    if extra > 0 and old ~= ARGV[1] then
      redis.call('DEL', ARGV[11] .. old)
      redis.call('ZREM', KEYS[2], old)
      extra = extra - 1
    end
  end
end
return 1
";

/// KEYS: session, index. ARGV: sid, now, presented hash, successor hash, idle ms, grace ms,
/// '1' when a token that is neither current nor a grace replay proves theft, else '0',
/// the successor's successor hash, the thumbprint of the request's verified DPoP key ('' for
/// none).
/// The current token rotates; so does the current token's successor (`nrt`), which the
/// server issued in a rotation that Redis acknowledged and then lost in a failover.
/// Replies `{outcome, roles, jkt}` for `rotated` and `replayed`.
const ROTATE: &str = r"
local s = redis.call('HMGET', KEYS[1], 'rt', 'prev_rt', 'rotated_at', 'idle_expiry',
  'absolute_expiry', 'generation', 'roles', 'nrt', 'jkt')
local now = tonumber(ARGV[2])
if not s[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'not_found'}
end
if now >= tonumber(s[4]) or now >= tonumber(s[5]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'not_found'}
end
local issued = ARGV[7] == '1'
-- A session bound to a DPoP key refreshes only with a proof from that key: without one
-- nothing changes; a genuine token with another key's proof is theft.
local jkt = s[9] or ''
if jkt ~= '' and ARGV[9] ~= jkt then
  if ARGV[9] == '' then
    return {'dpop_required'}
  end
  if not issued then
    return {'not_found'}
  end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'dpop_mismatch'}
end
local current = s[1] == ARGV[3] or (s[8] and s[8] == ARGV[3])
-- A token without a MAC rotates only on a session from before MACs (no nrt): on a newer one
-- its MAC was stripped.
if current and (issued or not s[8]) then
  local idle = math.min(now + tonumber(ARGV[5]), tonumber(s[5]))
  local idle_s = string.format('%d', idle)
  redis.call('HSET', KEYS[1], 'rt', ARGV[4], 'prev_rt', ARGV[3], 'nrt', ARGV[8], 'rotated_at', ARGV[2],
    'last_seen', ARGV[2], 'idle_expiry', idle_s, 'generation', string.format('%d', tonumber(s[6]) + 1))
  redis.call('PEXPIRE', KEYS[1], math.max(1, idle - now))
  redis.call('ZADD', KEYS[2], idle_s, ARGV[1])
  touch_index(KEYS[2], now)
  return {'rotated', s[7], jkt}
end
if s[2] and s[2] == ARGV[3] and s[1] == ARGV[4] and now - tonumber(s[3]) < tonumber(ARGV[6]) then
  return {'replayed', s[7], jkt}
end
-- Theft: a token that is neither current nor a grace replay, and provably issued: by its
-- MAC, or, without one, by its hash being the stored previous one.
if not issued and not (s[2] and s[2] == ARGV[3]) then
  return {'not_found'}
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {'reused'}
";

/// KEYS: index. ARGV: session key prefix (`<prefix>:s:{<user>}:`), now.
/// Returns the HGETALL of every live session, pruning index entries whose record is gone.
const LIST: &str = r"
local now = tonumber(ARGV[2])
touch_index(KEYS[1], now)
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local fields = redis.call('HGETALL', ARGV[1] .. sid)
  if #fields == 0 then
    redis.call('ZREM', KEYS[1], sid)
  else
    table.insert(out, sid)
    table.insert(out, fields)
  end
end
return out
";

/// KEYS: session, index. ARGV: sid.
const DELETE: &str = r"
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
";

/// KEYS: index. ARGV: session key prefix, sid to keep ('' for none).
/// Ends every session in the index but the kept one, and prunes the index to match.
const DELETE_ALL: &str = r"
local n = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if sid ~= ARGV[2] then
    n = n + redis.call('DEL', ARGV[1] .. sid)
    redis.call('ZREM', KEYS[1], sid)
  end
end
return n
";

struct Scripts {
    create: Script,
    rotate: Script,
    list: Script,
    delete: Script,
    delete_all: Script,
}

/// Sessions in Redis.
pub struct RedisSessionStore {
    conn: RedisConnection,
    keys: SessionKeys,
    scripts: Scripts,
}

impl RedisSessionStore {
    /// A store on `conn` with keys under `keys`' prefix.
    pub fn new(conn: RedisConnection, keys: SessionKeys) -> Self {
        let with_index = |body: &str| Script::new(&format!("{TOUCH_INDEX}{body}"));
        Self {
            conn,
            keys,
            scripts: Scripts {
                create: with_index(CREATE),
                rotate: with_index(ROTATE),
                list: with_index(LIST),
                delete: Script::new(DELETE),
                delete_all: Script::new(DELETE_ALL),
            },
        }
    }

    fn session_keys(&self, user_id: &str, sid: &str) -> Result<(String, String), StoreError> {
        match (
            self.keys.session(user_id, sid),
            self.keys.user_index(user_id),
        ) {
            (Some(s), Some(i)) => Ok((s, i)),
            _ => Err(StoreError::other("malformed user or session id")),
        }
    }

    fn index_key(&self, user_id: &str) -> Result<(String, String), StoreError> {
        let index = self
            .keys
            .user_index(user_id)
            .ok_or_else(|| StoreError::other("malformed user id"))?;
        // Session keys of this user are `<session_prefix><sid>`.
        let session_prefix = format!("{}:s:{{{user_id}}}:", self.keys.prefix());
        Ok((index, session_prefix))
    }
}

fn parse_record(user_id: &str, sid: &str, fields: HashMap<String, String>) -> SessionRecord {
    let num = |k: &str| {
        fields
            .get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let text = |k: &str| fields.get(k).cloned().unwrap_or_default();
    SessionRecord {
        user_id: user_id.into(),
        sid: sid.into(),
        created_ms: num("created"),
        last_seen_ms: num("last_seen"),
        idle_expiry_ms: num("idle_expiry"),
        absolute_expiry_ms: num("absolute_expiry"),
        generation: u64::try_from(num("generation")).unwrap_or(0),
        user_agent: text("ua"),
        ip: text("ip"),
        roles: split_roles(&text("roles")),
        dpop_jkt: fields.get("jkt").filter(|j| !j.is_empty()).cloned(),
    }
}

fn split_roles(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect()
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(
        &self,
        s: &SessionRecord,
        refresh_hash: &str,
        next_refresh_hash: &str,
        now_ms: i64,
        max_sessions: u64,
    ) -> Result<(), StoreError> {
        let (key, index) = self.session_keys(&s.user_id, &s.sid)?;
        let (_, session_prefix) = self.index_key(&s.user_id)?;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .scripts
            .create
            .key(key)
            .key(index)
            .arg(&s.sid)
            .arg(now_ms)
            .arg(&s.user_id)
            .arg(s.idle_expiry_ms)
            .arg(s.absolute_expiry_ms)
            .arg(refresh_hash)
            .arg(&s.user_agent)
            .arg(&s.ip)
            .arg(s.roles.join(","))
            .arg(max_sessions)
            .arg(session_prefix)
            .arg(next_refresh_hash)
            .arg(s.dpop_jkt.as_deref().unwrap_or(""))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn rotate(&self, r: &Rotation<'_>) -> Result<RotateOutcome, StoreError> {
        let (key, index) = self.session_keys(r.user_id, r.sid)?;
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .scripts
            .rotate
            .key(key)
            .key(index)
            .arg(r.sid)
            .arg(r.now_ms)
            .arg(r.presented_hash)
            .arg(r.successor_hash)
            .arg(r.idle_ms)
            .arg(r.grace_ms)
            .arg(if r.reuse_revokes { "1" } else { "0" })
            .arg(r.next_successor_hash)
            .arg(r.dpop_jkt.unwrap_or(""))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let roles = || split_roles(reply.get(1).map(String::as_str).unwrap_or(""));
        let dpop_jkt = || reply.get(2).filter(|j| !j.is_empty()).cloned();
        Ok(match reply.first().map(String::as_str) {
            Some("rotated") => RotateOutcome::Rotated {
                roles: roles(),
                dpop_jkt: dpop_jkt(),
            },
            Some("replayed") => RotateOutcome::Replayed {
                roles: roles(),
                dpop_jkt: dpop_jkt(),
            },
            Some("reused") => RotateOutcome::Reused,
            Some("dpop_required") => RotateOutcome::DpopRequired,
            Some("dpop_mismatch") => RotateOutcome::DpopKeyMismatch,
            _ => RotateOutcome::NotFound,
        })
    }

    async fn is_active(&self, user_id: &str, sid: &str, now_ms: i64) -> Result<bool, StoreError> {
        let (key, _) = self.session_keys(user_id, sid)?;
        let mut conn = self.conn.clone();
        let (idle, absolute): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(key)
            .arg("idle_expiry")
            .arg("absolute_expiry")
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(matches!((idle, absolute), (Some(i), Some(a)) if now_ms < i && now_ms < a))
    }

    async fn list(&self, user_id: &str, now_ms: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let (index, session_prefix) = self.index_key(user_id)?;
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = self
            .scripts
            .list
            .key(index)
            .arg(session_prefix)
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let mut out = Vec::new();
        for pair in reply.chunks(2) {
            if let [sid, fields] = pair {
                let sid: String = redis::from_redis_value_ref(sid)
                    .map_err(|e| StoreError::other_because("a malformed session list", e))?;
                let fields: HashMap<String, String> = redis::from_redis_value_ref(fields)
                    .map_err(|e| StoreError::other_because("a malformed session list", e))?;
                let record = parse_record(user_id, &sid, fields);
                if now_ms < record.idle_expiry_ms && now_ms < record.absolute_expiry_ms {
                    out.push(record);
                }
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.last_seen_ms));
        Ok(out)
    }

    async fn delete(&self, user_id: &str, sid: &str) -> Result<bool, StoreError> {
        let (key, index) = self.session_keys(user_id, sid)?;
        let mut conn = self.conn.clone();
        let n: i64 = self
            .scripts
            .delete
            .key(key)
            .key(index)
            .arg(sid)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(n > 0)
    }

    async fn delete_all(&self, user_id: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        let (index, session_prefix) = self.index_key(user_id)?;
        let mut conn = self.conn.clone();
        let n: u64 = self
            .scripts
            .delete_all
            .key(index)
            .arg(session_prefix)
            .arg(keep.unwrap_or(""))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(n)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }
}
