//! Sessions in process memory: the embedded default. Same semantics as Redis, but not
//! shared between instances and lost on restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::error::StoreError;
use crate::domain::ports::{RotateOutcome, Rotation, SessionRecord, SessionStore};
use crate::domain::refresh_policy::judge;
use crate::storage::rate_limit::Counters;

struct Entry {
    record: SessionRecord,
    refresh_hash: String,
    /// The hash of the current token's successor (see `Rotation::next_successor_hash`).
    next_hash: String,
    previous_hash: Option<String>,
    rotated_ms: i64,
}

impl Entry {
    fn is_live(&self, now_ms: i64) -> bool {
        now_ms < self.record.idle_expiry_ms && now_ms < self.record.absolute_expiry_ms
    }
}

/// Sessions of every user, by user then sid. One lock: every operation is atomic.
#[derive(Default)]
pub struct MemorySessionStore {
    users: Mutex<HashMap<String, BTreeMap<String, Entry>>>,
    /// The per-IP refresh limit's counters (`Rotation::limit`), by user and IP bucket,
    /// counted before the rotation looks at the session, as `ROTATE` does.
    refresh_counters: Mutex<Counters>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, BTreeMap<String, Entry>>) -> T,
    ) -> Result<T, StoreError> {
        let mut guard = self
            .users
            .lock()
            .map_err(|_| StoreError::other("the session store's lock is poisoned"))?;
        Ok(f(&mut guard))
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(
        &self,
        s: &SessionRecord,
        refresh_hash: &str,
        next_refresh_hash: &str,
        now_ms: i64,
        max_sessions: u64,
    ) -> Result<u64, StoreError> {
        self.with(|users| {
            let sessions = users.entry(s.user_id.clone()).or_default();
            sessions.retain(|_, e| e.is_live(now_ms));
            sessions.insert(
                s.sid.clone(),
                Entry {
                    record: s.clone(),
                    refresh_hash: refresh_hash.into(),
                    next_hash: next_refresh_hash.into(),
                    previous_hash: None,
                    rotated_ms: 0,
                },
            );
            // Over the cap: end the sessions closest to idle expiry.
            let max = usize::try_from(max_sessions).unwrap_or(usize::MAX);
            let mut ended = 0;
            while sessions.len() > max {
                let oldest = sessions
                    .iter()
                    .filter(|(sid, _)| **sid != s.sid)
                    .min_by_key(|(_, e)| e.record.idle_expiry_ms)
                    .map(|(sid, _)| sid.clone());
                match oldest {
                    Some(sid) => sessions.remove(&sid),
                    None => break,
                };
                ended += 1;
            }
            ended
        })
    }

    async fn rotate(&self, r: &Rotation<'_>) -> Result<RotateOutcome, StoreError> {
        // 0. The per-IP refresh limit: every refresh counts; over it nothing else happens.
        if let Some(limit) = &r.limit {
            let decision = self
                .refresh_counters
                .lock()
                .map_err(|_| StoreError::other("the refresh counters' lock is poisoned"))?
                .hit(
                    &format!("{}:{}", r.user_id, limit.ip_bucket),
                    limit.window_ms,
                    r.now_ms,
                );
            if decision.count > limit.max {
                return Ok(RotateOutcome::RateLimited(decision));
            }
        }
        self.with(|users| {
            let Some(sessions) = users.get_mut(r.user_id) else {
                return RotateOutcome::NotFound;
            };
            let Some(e) = sessions.get_mut(r.sid) else {
                return RotateOutcome::NotFound;
            };
            if !e.is_live(r.now_ms) {
                sessions.remove(r.sid);
                return RotateOutcome::NotFound;
            }
            // The checks in the order of the ROTATE script (see `SessionStore::rotate`): the
            // session (above), what the token is, the DPoP key, the network / user-agent
            // policy, the rotation cap, then the rotation or the grace replay.
            // Sessions here always post-date refresh-token MACs: a MAC-less token never rotates.
            let current = e.refresh_hash == r.presented_hash || e.next_hash == r.presented_hash;
            // Bound to a DPoP key: only a proof from that key refreshes, and this comes before
            // anything that could change or end the session. No proof: refused, untouched.
            // Another key with a genuine token: theft, the session ends. With a forged token:
            // merely invalid.
            if let Some(bound) = &e.record.dpop_jkt
                && r.dpop_jkt != Some(bound.as_str())
            {
                if r.dpop_jkt.is_none() {
                    return RotateOutcome::DpopRequired;
                }
                if !r.reuse_revokes {
                    return RotateOutcome::NotFound;
                }
                sessions.remove(r.sid);
                return RotateOutcome::DpopKeyMismatch;
            }
            // The caller against the last-seen client, as the script's `judge`. A `revoke`
            // goes before the cap, so a session that both changes hands and reaches its cap
            // is reported as the change.
            let judged = || judge(&r.policy, &e.record.ip, &e.record.user_agent, &r.caller);
            if current && r.reuse_revokes {
                let (change, revoke) = judged();
                if revoke {
                    sessions.remove(r.sid);
                    return RotateOutcome::ContextRevoked { change };
                }
                if r.policy.max_rotations > 0 && e.record.generation >= r.policy.max_rotations {
                    sessions.remove(r.sid);
                    return RotateOutcome::LimitReached { change };
                }
                e.previous_hash = Some(r.presented_hash.into());
                e.refresh_hash = r.successor_hash.into();
                e.next_hash = r.next_successor_hash.into();
                e.rotated_ms = r.now_ms;
                e.record.last_seen_ms = r.now_ms;
                e.record.idle_expiry_ms = (r.now_ms + r.idle_ms).min(e.record.absolute_expiry_ms);
                e.record.generation += 1;
                e.record.ip = r.caller.ip.into();
                e.record.user_agent = r.caller.user_agent.into();
                return RotateOutcome::Rotated {
                    roles: e.record.roles.clone(),
                    dpop_jkt: e.record.dpop_jkt.clone(),
                    change,
                };
            }
            if e.previous_hash.as_deref() == Some(r.presented_hash)
                && e.refresh_hash == r.successor_hash
                && r.now_ms - e.rotated_ms < r.grace_ms
            {
                let (change, revoke) = judged();
                if revoke {
                    sessions.remove(r.sid);
                    return RotateOutcome::ContextRevoked { change };
                }
                return RotateOutcome::Replayed {
                    roles: e.record.roles.clone(),
                    dpop_jkt: e.record.dpop_jkt.clone(),
                    change,
                };
            }
            let previous = e.previous_hash.as_deref() == Some(r.presented_hash);
            if !r.reuse_revokes && !previous {
                return RotateOutcome::NotFound;
            }
            sessions.remove(r.sid);
            RotateOutcome::Reused
        })
    }

    async fn is_active(&self, user_id: &str, sid: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.with(|users| {
            users
                .get(user_id)
                .and_then(|s| s.get(sid))
                .is_some_and(|e| e.is_live(now_ms))
        })
    }

    async fn list(&self, user_id: &str, now_ms: i64) -> Result<Vec<SessionRecord>, StoreError> {
        self.with(|users| {
            let mut out: Vec<SessionRecord> = users
                .get(user_id)
                .map(|s| {
                    s.values()
                        .filter(|e| e.is_live(now_ms))
                        .map(|e| e.record.clone())
                        .collect()
                })
                .unwrap_or_default();
            out.sort_by_key(|s| std::cmp::Reverse(s.last_seen_ms));
            out
        })
    }

    async fn delete(&self, user_id: &str, sid: &str) -> Result<bool, StoreError> {
        self.with(|users| users.get_mut(user_id).and_then(|s| s.remove(sid)).is_some())
    }

    async fn delete_all(&self, user_id: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        self.with(|users| {
            let Some(sessions) = users.get_mut(user_id) else {
                return 0;
            };
            let before = sessions.len();
            sessions.retain(|sid, _| Some(sid.as_str()) == keep);
            (before - sessions.len()) as u64
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
