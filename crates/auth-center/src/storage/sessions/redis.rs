//! Sessions in Redis (standalone or cluster). Every multi-key operation is one Lua
//! script over keys that share the user's hash tag, so it runs atomically on one slot.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, Value};
use verifier::contract::{RedisConnection, SessionKeys};

use crate::domain::error::StoreError;
use crate::domain::ports::{
    ContextChange, RateDecision, RotateOutcome, Rotation, SessionRecord, SessionStore,
};
use crate::storage::rate_limit::{COUNT, counter_ttl_ms, window};
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
/// jkt (the DPoP key thumbprint the session is bound to, '' for none). Returns how many
/// other sessions it ended to stay within the max.
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
local ended = 0
if extra > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra)) do
    if extra > 0 and old ~= ARGV[1] then
      ended = ended + redis.call('DEL', ARGV[11] .. old)
      redis.call('ZREM', KEYS[2], old)
      extra = extra - 1
    end
  end
end
return ended
";

/// The refresh policy's comparisons, the Lua twins of those in `domain::refresh_policy`.
/// `network(ip, v4, v6)` is the network of an address as the auth-center writes it (IPv4
/// dotted, IPv6 as Rust prints it, mapped IPv4 already as IPv4): its first v4 or v6 bits,
/// as a string equal for every address of the network; nil for anything else, which is
/// never compared. `networks_differ` is `refresh_policy::network_changed`, and
/// `agent_shape` is what `refresh_policy::user_agent_changed` compares: every run of digits
/// read as one '0'.
const CONTEXT: &str = r"
local function network(ip, v4, v6)
  local a, b, c, d = string.match(ip or '', '^(%d+)%.(%d+)%.(%d+)%.(%d+)$')
  if a then
    local n = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
    return '4/' .. math.floor(n / 2 ^ (32 - v4))
  end
  -- IPv6: eight groups of hex digits, '::' standing for the missing zero groups.
  local groups, head, tail = {}, string.match(ip or '', '^([%x:]*)::([%x:]*)$')
  for g in string.gmatch(head or ip or '', '[^:]+') do table.insert(groups, g) end
  if tail then
    local rest = {}
    for g in string.gmatch(tail, '[^:]+') do table.insert(rest, g) end
    for _ = 1, 8 - #groups - #rest do table.insert(groups, '0') end
    for _, g in ipairs(rest) do table.insert(groups, g) end
  end
  if #groups ~= 8 then return nil end
  local out = {'6'}
  for i, g in ipairs(groups) do
    local value = tonumber(g, 16)
    if not value or #g > 4 then return nil end
    local bits = math.max(0, math.min(16, v6 - (i - 1) * 16))
    table.insert(out, math.floor(value / 2 ^ (16 - bits)))
  end
  return table.concat(out, ':')
end
local function networks_differ(previous, current, v4, v6)
  local p, c = network(previous, v4, v6), network(current, v4, v6)
  return p ~= nil and c ~= nil and p ~= c
end
local function agent_shape(ua)
  return (string.gsub(ua or '', '%d+', '0'))
end
";

/// KEYS: session, index, and, when the per-IP refresh limit is on, its counter
/// (`<prefix>:rl:{<user_id>}:refresh-ip:<ip bucket>:<window>`, in the user's slot).
///
/// ARGV, in the order `RedisSessionStore::rotate` passes them:
///
/// - 1 sid, 2 now (ms), 3 presented hash, 4 successor hash, 5 idle ms, 6 grace ms, 7 '1'
///   when the presented token's MAC verified (else '0'), 8 the successor's successor hash;
/// - 9 the thumbprint of the request's verified DPoP key ('' for none);
/// - 10 the caller's ip, 11 its user agent (stored as the session's last-seen client when it
///   rotates);
/// - 12 max rotations (0: no cap), 13 on network change, 14 on user agent change ('allow',
///   'audit' or 'revoke'), 15 and 16 the IPv4 and IPv6 prefix lengths of a network;
/// - 17 the refresh limit's max per window, 18 its counter's TTL in ms (both '0' when off).
///
/// The current token rotates; so does the current token's successor (`nrt`), which the
/// server issued in a rotation that Redis acknowledged and then lost in a failover.
///
/// The checks, in this order (the memory store keeps the same one):
///
/// 0. the per-IP refresh limit (KEYS[3]): every refresh counts, first, in the script that
///    also sets the counter's TTL; over the max: 'rate_limited' with the count, and nothing
///    else is read or written (a refused refresh neither rotates nor ends the session);
/// 1. the session: none, or expired (then deleted): 'not_found';
/// 2. what the token is: `issued` (its MAC verified) and `current` (rt, or nrt);
/// 3. the DPoP key of a bound session (field `jkt`), before anything that changes or ends
///    the session, so a request without the key can do neither: no proof is
///    'dpop_required' and changes nothing; another key's proof with an issued token is
///    theft ('dpop_mismatch', the session is deleted); with a forged token, 'not_found';
/// 4. for the current token and for a grace replay, the network / user-agent policy
///    (`judge`): under 'revoke' a change ends the session ('context_revoked'). It comes
///    before the cap, so a change that ends the session is reported (and audited) as that
///    change, not as a routine cap;
/// 5. for the current token only, the rotation cap ('limit_reached', the session is
///    deleted); a grace replay rotates nothing, so it is not capped;
/// 6. rotate ('rotated'), or answer the grace replay ('replayed');
/// 7. anything else is theft when provably issued ('reused', the session is deleted), else
///    'not_found'.
///
/// Replies `{outcome, roles, jkt, <change>}` for 'rotated' and 'replayed' (jkt: the DPoP key
/// the session is bound to, '' for none), `{outcome, <change>}` for 'limit_reached' and
/// 'context_revoked' (the session was ended), `{outcome}` for the others. `<change>` is what
/// `refresh_policy::judge` returns: network changed ('1' or '0'), user agent changed, the
/// last-seen ip and user agent.
const ROTATE: &str = r"
-- 0. The per-IP refresh limit.
if KEYS[3] then
  local n = count(KEYS[3], ARGV[18])
  if n > tonumber(ARGV[17]) then
    return {'rate_limited', tostring(n)}
  end
end
local s = redis.call('HMGET', KEYS[1], 'rt', 'prev_rt', 'rotated_at', 'idle_expiry',
  'absolute_expiry', 'generation', 'roles', 'nrt', 'jkt', 'ip', 'ua')
local now = tonumber(ARGV[2])
local dpop_jkt = ARGV[9]
local caller_ip, caller_ua = ARGV[10], ARGV[11]
local max_rotations, on_network, on_agent = tonumber(ARGV[12]), ARGV[13], ARGV[14]
local v4_prefix, v6_prefix = tonumber(ARGV[15]), tonumber(ARGV[16])
local bound_jkt, last_ip, last_ua = s[9] or '', s[10], s[11]
-- 1. The session.
if not s[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'not_found'}
end
if now >= tonumber(s[4]) or now >= tonumber(s[5]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'not_found'}
end
-- The caller against the session's last-seen client (refresh_policy::judge): what changed,
-- for each attribute whose policy is not 'allow', and whether that ends the session.
local function judge()
  local moved = on_network ~= 'allow' and networks_differ(last_ip, caller_ip, v4_prefix, v6_prefix)
  local agent = on_agent ~= 'allow' and agent_shape(last_ua) ~= agent_shape(caller_ua)
  local revoke = (moved and on_network == 'revoke') or (agent and on_agent == 'revoke')
  return {moved and '1' or '0', agent and '1' or '0', last_ip or '', last_ua or ''}, revoke
end
local function ended(outcome, change)
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {outcome, unpack(change)}
end
-- 2. What the token is.
local issued = ARGV[7] == '1'
local current = s[1] == ARGV[3] or (s[8] and s[8] == ARGV[3])
-- 3. A session bound to a DPoP key refreshes only with a proof from that key: without one
-- nothing changes; a genuine token with another key's proof is theft.
if bound_jkt ~= '' and dpop_jkt ~= bound_jkt then
  if dpop_jkt == '' then
    return {'dpop_required'}
  end
  if not issued then
    return {'not_found'}
  end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'dpop_mismatch'}
end
-- A token without a MAC rotates only on a session from before MACs (no nrt): on a newer one
-- its MAC was stripped.
if current and (issued or not s[8]) then
  -- 4. The network / user-agent policy, then 5. the cap.
  local change, revoke = judge()
  if revoke then
    return ended('context_revoked', change)
  end
  if max_rotations > 0 and tonumber(s[6]) >= max_rotations then
    return ended('limit_reached', change)
  end
  -- 6. Rotate.
  local idle = math.min(now + tonumber(ARGV[5]), tonumber(s[5]))
  local idle_s = string.format('%d', idle)
  redis.call('HSET', KEYS[1], 'rt', ARGV[4], 'prev_rt', ARGV[3], 'nrt', ARGV[8], 'rotated_at', ARGV[2],
    'last_seen', ARGV[2], 'idle_expiry', idle_s, 'generation', string.format('%d', tonumber(s[6]) + 1),
    'ip', caller_ip, 'ua', caller_ua)
  redis.call('PEXPIRE', KEYS[1], math.max(1, idle - now))
  redis.call('ZADD', KEYS[2], idle_s, ARGV[1])
  touch_index(KEYS[2], now)
  return {'rotated', s[7] or '', bound_jkt, unpack(change)}
end
if s[2] and s[2] == ARGV[3] and s[1] == ARGV[4] and now - tonumber(s[3]) < tonumber(ARGV[6]) then
  -- 4. The policy judges a grace replay too (no cap: it rotates nothing); 6. the replay.
  local change, revoke = judge()
  if revoke then
    return ended('context_revoked', change)
  end
  return {'replayed', s[7] or '', bound_jkt, unpack(change)}
end
-- 7. Theft: a token that is neither current nor a grace replay, and provably issued: by its
-- MAC, or, without one, by its hash being the stored previous one.
if not issued and not (s[2] and s[2] == ARGV[3]) then
  return {'not_found'}
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {'reused'}
";

/// Checks that every session in the index (KEYS[1]) has its key among the declared ones
/// (KEYS[2..]); ARGV[1] is the session key prefix, `keep` a sid that needs no key. The scripts
/// over a user's index declare every key they touch, so Redis checks them all before the
/// script runs: while the user's slot moves between Cluster masters it refuses the call
/// (`TRYAGAIN`, `ASK`), where a script reaching for an undeclared key that has already moved
/// would fail half-way.
const DECLARED: &str = r"
local function undeclared(sids, keep)
  local declared = {}
  for i = 2, #KEYS do declared[KEYS[i]] = true end
  for _, sid in ipairs(sids) do
    if sid ~= keep and not declared[ARGV[1] .. sid] then return true end
  end
  return false
end
";

/// KEYS: index, then the key of every session the caller found in it. ARGV: session key
/// prefix (`<prefix>:s:{<user>}:`), now. Returns `{'changed'}` when the index holds a
/// session the caller did not declare (added since it read the index), else `{'ok', sid,
/// HGETALL, ...}` of every live session, pruning index entries whose record is gone.
const LIST: &str = r"
local now = tonumber(ARGV[2])
touch_index(KEYS[1], now)
local sids = redis.call('ZRANGE', KEYS[1], 0, -1)
if undeclared(sids, nil) then return {'changed'} end
local out = {'ok'}
for _, sid in ipairs(sids) do
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

/// KEYS: index, then the key of every session the caller found in it. ARGV: session key
/// prefix, sid to keep ('' for none). Returns `{'changed'}`, writing nothing, when the index
/// holds a session the caller did not declare (a login since it read the index), else
/// `{'ok', n}`: it ended the n sessions in the index but the kept one, and pruned the index
/// to match.
const DELETE_ALL: &str = r"
local sids = redis.call('ZRANGE', KEYS[1], 0, -1)
if undeclared(sids, ARGV[2]) then return {'changed'} end
local n = 0
for _, sid in ipairs(sids) do
  if sid ~= ARGV[2] then
    n = n + redis.call('DEL', ARGV[1] .. sid)
    redis.call('ZREM', KEYS[1], sid)
  end
end
return {'ok', n}
";

/// How often [`RedisSessionStore::over_index`] reads a user's index again when sessions
/// keep appearing between its read and its script.
const INDEX_ATTEMPTS: usize = 5;

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
    /// Replicas that must acknowledge a new session, and how long to wait for them.
    durability: Option<(u32, Duration)>,
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
                rotate: Script::new(&format!("{TOUCH_INDEX}{CONTEXT}{COUNT}{ROTATE}")),
                list: with_index(&format!("{DECLARED}{LIST}")),
                delete: Script::new(DELETE),
                delete_all: Script::new(&format!("{DECLARED}{DELETE_ALL}")),
            },
            durability: None,
        }
    }

    /// This store, with every new session acknowledged by `replicas` replicas within
    /// `timeout` (`WAIT`) before `create` succeeds; `0` replicas: no waiting.
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.durability = (replicas > 0).then_some((replicas, timeout));
        self
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

    /// Runs `script` (`LIST`, `DELETE_ALL`) with the user's index and the key of every
    /// session in it declared, then the session key prefix and `arg`; returns what follows
    /// its `'ok'`. Reads the index first, and again when the script finds a session it was
    /// not given (added in between), at most [`INDEX_ATTEMPTS`] times.
    async fn over_index(
        &self,
        script: &Script,
        user_id: &str,
        arg: impl redis::ToRedisArgs,
    ) -> Result<Vec<Value>, StoreError> {
        let (index, session_prefix) = self.index_key(user_id)?;
        let mut conn = self.conn.clone();
        for _ in 0..INDEX_ATTEMPTS {
            let sids: Vec<String> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            let mut invocation = script.key(&index);
            for sid in &sids {
                invocation.key(format!("{session_prefix}{sid}"));
            }
            let reply: Vec<Value> = invocation
                .arg(&session_prefix)
                .arg(&arg)
                .invoke_async(&mut conn)
                .await
                .map_err(redis_error)?;
            match reply.split_first() {
                Some((Value::BulkString(tag), rest)) if tag.as_slice() == b"ok" => {
                    return Ok(rest.to_vec());
                }
                Some((Value::BulkString(tag), [])) if tag.as_slice() == b"changed" => {}
                _ => {
                    return Err(StoreError::other(
                        "a malformed reply over a user's sessions",
                    ));
                }
            }
        }
        Err(StoreError::unavailable(
            "a user's sessions kept changing while they were read",
        ))
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

/// The `<change>` part of a `ROTATE` reply: network changed, user agent changed, the
/// last-seen ip and user agent.
fn context_change(fields: &[String]) -> ContextChange {
    let field = |i: usize| fields.get(i).cloned().unwrap_or_default();
    ContextChange {
        network: field(0) == "1",
        user_agent: field(1) == "1",
        previous_ip: field(2),
        previous_user_agent: field(3),
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
    ) -> Result<u64, StoreError> {
        let (key, index) = self.session_keys(&s.user_id, &s.sid)?;
        let (_, session_prefix) = self.index_key(&s.user_id)?;
        let mut conn = self.conn.clone();
        let ended: u64 = self
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
        let Some((replicas, timeout)) = self.durability else {
            return Ok(ended);
        };
        let (key, _) = self.session_keys(&s.user_id, &s.sid)?;
        let acknowledged = conn.wait_for_replicas(&key, replicas, timeout).await;
        match acknowledged {
            Ok(n) if n >= replicas => Ok(ended),
            outcome => {
                tracing::warn!(
                    acknowledged = ?outcome.as_ref().ok(),
                    required = replicas,
                    "a new session was not acknowledged by enough Redis replicas in time: \
                     the login fails closed (503)"
                );
                // No tokens are handed out for it: take it back (best effort).
                let _ = self.delete(&s.user_id, &s.sid).await;
                match outcome {
                    Err(e) => Err(redis_error(e)),
                    Ok(_) => Err(StoreError::unavailable(
                        "too few Redis replicas acknowledged the new session",
                    )),
                }
            }
        }
    }

    async fn rotate(&self, r: &Rotation<'_>) -> Result<RotateOutcome, StoreError> {
        let (key, index) = self.session_keys(r.user_id, r.sid)?;
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.rotate.key(key);
        invocation.key(index);
        // The refresh limit's counter, in the user's slot, and its window.
        let limit = r.limit.as_ref().map(|l| {
            let (n, reset_in_ms) = window(l.window_ms, r.now_ms);
            let counter = format!(
                "{}:rl:{{{}}}:refresh-ip:{}:{n}",
                self.keys.prefix(),
                r.user_id,
                l.ip_bucket
            );
            (counter, l.max, counter_ttl_ms(l.window_ms), reset_in_ms)
        });
        if let Some((counter, ..)) = &limit {
            invocation.key(counter);
        }
        let (max, ttl) = limit
            .as_ref()
            .map_or((0, 0), |(_, max, ttl, _)| (*max, *ttl));
        let reply: Vec<String> = invocation
            // ARGV in the order the script documents: the token (1-8), the DPoP key (9), the
            // caller (10-11), the refresh policy (12-16), the refresh limit (17-18).
            .arg(r.sid)
            .arg(r.now_ms)
            .arg(r.presented_hash)
            .arg(r.successor_hash)
            .arg(r.idle_ms)
            .arg(r.grace_ms)
            .arg(if r.reuse_revokes { "1" } else { "0" })
            .arg(r.next_successor_hash)
            .arg(r.dpop_jkt.unwrap_or(""))
            .arg(r.caller.ip)
            .arg(r.caller.user_agent)
            .arg(r.policy.max_rotations)
            .arg(r.policy.on_network_change.as_str())
            .arg(r.policy.on_user_agent_change.as_str())
            .arg(r.policy.ipv4_prefix)
            .arg(r.policy.ipv6_prefix)
            .arg(max)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let (outcome, rest) = match reply.split_first() {
            Some((outcome, rest)) => (outcome.as_str(), rest),
            None => ("", &[][..]),
        };
        let bound = |jkt: &String| Some(jkt.clone()).filter(|j| !j.is_empty());
        Ok(match (outcome, rest) {
            ("rotated", [roles, jkt, change @ ..]) => RotateOutcome::Rotated {
                roles: split_roles(roles),
                dpop_jkt: bound(jkt),
                change: context_change(change),
            },
            ("replayed", [roles, jkt, change @ ..]) => RotateOutcome::Replayed {
                roles: split_roles(roles),
                dpop_jkt: bound(jkt),
                change: context_change(change),
            },
            ("limit_reached", change) => RotateOutcome::LimitReached {
                change: context_change(change),
            },
            ("context_revoked", change) => RotateOutcome::ContextRevoked {
                change: context_change(change),
            },
            ("rate_limited", [n]) => RotateOutcome::RateLimited(RateDecision {
                count: n.parse().unwrap_or(u64::MAX),
                reset_in_ms: limit.map_or(0, |(.., reset_in_ms)| reset_in_ms),
            }),
            ("reused", _) => RotateOutcome::Reused,
            ("dpop_required", _) => RotateOutcome::DpopRequired,
            ("dpop_mismatch", _) => RotateOutcome::DpopKeyMismatch,
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
        let reply = self.over_index(&self.scripts.list, user_id, now_ms).await?;
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
        let reply = self
            .over_index(&self.scripts.delete_all, user_id, keep.unwrap_or(""))
            .await?;
        match reply.as_slice() {
            [n] => redis::from_redis_value_ref(n)
                .map_err(|e| StoreError::other_because("a malformed logout-all reply", e)),
            _ => Err(StoreError::other("a malformed logout-all reply")),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::refresh_policy::{network_changed, user_agent_changed};

    /// The scripts over a user's index declare every session key they touch, and when the
    /// index holds one the caller did not declare (a login since the caller read it), they
    /// write nothing and say so, for the caller to read the index again.
    #[tokio::test]
    async fn the_list_and_logout_all_scripts_refuse_an_index_with_an_undeclared_session() {
        let target = verifier::RedisTarget::Standalone(test_support::shared_redis_url());
        let mut conn =
            RedisConnection::connect(&target, verifier::contract::RedisOptions::default())
                .await
                .unwrap();
        let prefix = format!("test-declared-{}", uuid::Uuid::new_v4().simple());
        let store = RedisSessionStore::new(conn.clone(), SessionKeys::new(prefix));
        let user = uuid::Uuid::new_v4().to_string();
        let (index, session_prefix) = store.index_key(&user).unwrap();
        let (first, second) = (format!("{session_prefix}a"), format!("{session_prefix}b"));
        for (key, sid) in [(&first, "a"), (&second, "b")] {
            let _: () = redis::cmd("HSET")
                .arg(key)
                .arg("user")
                .arg(&user)
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: () = redis::cmd("ZADD")
                .arg(&index)
                .arg(4_000_000_000_000_i64) // an expiry in 2096, ms
                .arg(sid)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        let changed = vec![Value::BulkString(b"changed".to_vec())];
        let count = |conn: &mut RedisConnection| {
            let mut conn = conn.clone();
            let (first, second, index) = (first.clone(), second.clone(), index.clone());
            async move {
                let sessions: i64 = redis::cmd("EXISTS")
                    .arg(&first)
                    .arg(&second)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let indexed: i64 = redis::cmd("ZCARD")
                    .arg(&index)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                (sessions, indexed)
            }
        };

        // Only the first session declared: both scripts refuse and nothing changes (for a
        // logout-all keeping "a", the kept session needs no key, the other one does).
        let scripts = &store.scripts;
        for (script, arg) in [
            (&scripts.list, "0"),
            (&scripts.delete_all, ""),
            (&scripts.delete_all, "a"),
        ] {
            let reply: Vec<Value> = script
                .key(&index)
                .key(&first)
                .arg(&session_prefix)
                .arg(arg)
                .invoke_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(reply, changed, "{arg:?}");
            assert_eq!(count(&mut conn).await, (2, 2));
        }

        // Through the store, which declares both: the list, then a logout-all.
        assert_eq!(
            store.list(&user, 0).await.unwrap().len(),
            0,
            "no expiry fields"
        );
        assert_eq!(store.delete_all(&user, None).await.unwrap(), 2);
        assert_eq!(count(&mut conn).await, (0, 0));
    }

    /// The Lua twins of the refresh policy's rules answer as the Rust ones do, on a real
    /// Redis, for addresses as the auth-center writes them and prefixes across the range.
    #[tokio::test]
    async fn the_scripts_network_and_user_agent_rules_agree_with_the_domain() {
        let target = verifier::RedisTarget::Standalone(test_support::shared_redis_url());
        let mut conn =
            RedisConnection::connect(&target, verifier::contract::RedisOptions::default())
                .await
                .unwrap();
        let networks = Script::new(&format!(
            "{CONTEXT}return networks_differ(ARGV[1], ARGV[2], tonumber(ARGV[3]), \
             tonumber(ARGV[4])) and 1 or 0"
        ));
        let agents = Script::new(&format!(
            "{CONTEXT}return agent_shape(ARGV[1]) ~= agent_shape(ARGV[2]) and 1 or 0"
        ));
        // As `client_ip` writes them: canonical, mapped IPv4 as IPv4; plus unknown ones.
        let addresses: Vec<String> = [
            "198.51.100.7",
            "198.51.100.200",
            "198.51.101.7",
            "10.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::ffff:198.51.100.9",
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:db8:1:2::10",
            "2001:db8:1:2:ffff::1",
            "2001:db8:1:3::1",
            "2001:db8:0:0:1::1",
            "fe80::1:0:0:0",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8:8000::",
        ]
        .iter()
        .map(|a| {
            let ip: std::net::IpAddr = a.parse().unwrap();
            ip.to_canonical().to_string()
        })
        .chain(["".to_string(), "unknown".to_string()])
        .collect();
        let prefixes = [
            (0, 0),
            (1, 1),
            (8, 16),
            (15, 17),
            (16, 33),
            (17, 47),
            (24, 48),
            (25, 56),
            (31, 63),
            (32, 64),
            (24, 65),
            (24, 127),
            (24, 128),
        ];
        for (v4, v6) in prefixes {
            for a in &addresses {
                for b in &addresses {
                    let lua: i64 = networks
                        .arg(a)
                        .arg(b)
                        .arg(v4)
                        .arg(v6)
                        .invoke_async(&mut conn)
                        .await
                        .unwrap();
                    let rust = network_changed(a, b, v4, v6);
                    assert_eq!(lua == 1, rust, "{a} -> {b} at /{v4} /{v6}");
                }
            }
        }
        let user_agents = [
            "",
            "curl/8.5.0",
            "curl/8.6",
            "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0 Safari/537.36",
            "Ünïcödé/1 ½ ٣",
            "7",
        ];
        for a in user_agents {
            for b in user_agents {
                let lua: i64 = agents.arg(a).arg(b).invoke_async(&mut conn).await.unwrap();
                assert_eq!(lua == 1, user_agent_changed(a, b), "{a:?} -> {b:?}");
            }
        }
    }
}
