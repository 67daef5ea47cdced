//! Response shapes that more than one area answers with: timestamps, users, sessions.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::UserView;
use crate::domain::ports::SessionRecord;

/// Milliseconds since the epoch as an RFC 3339 UTC timestamp.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A user as JSON.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "5f0c6f9e-8d1c-4b7e-9a35-2f6d1e0b9c47",
    "username": "alice",
    "roles": ["admin"],
    "created_at": "2026-01-15T09:30:00Z",
    "disabled": false
}))]
pub(super) struct UserResponse {
    /// The user's id, a UUID.
    id: String,
    /// The canonical username.
    username: String,
    /// Sorted, without duplicates.
    roles: Vec<String>,
    /// RFC 3339, UTC.
    created_at: String,
    disabled: bool,
}

/// A page of users, ordered by username.
#[derive(Serialize, ToSchema)]
pub(super) struct UserList {
    pub(super) users: Vec<UserResponse>,
}

/// How many sessions a request ended.
#[derive(Serialize, ToSchema)]
pub(super) struct SessionsEnded {
    pub(super) sessions_ended: u64,
}

impl From<UserView> for UserResponse {
    fn from(u: UserView) -> Self {
        Self {
            id: u.id,
            username: u.username,
            roles: u.roles,
            created_at: rfc3339(u.created_ms),
            disabled: u.disabled,
        }
    }
}

/// A session as shown to its user or an admin. Times are RFC 3339, UTC; `user_agent` and
/// `ip` are those of its last use (its login or latest refresh).
#[derive(Serialize, ToSchema)]
pub(super) struct SessionResponse {
    session_id: String,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    absolute_expires_at: String,
    user_agent: String,
    ip: String,
    /// Whether this is the caller's own session (always false for an admin's view).
    current: bool,
}

/// Sessions, most recently used first.
#[derive(Serialize, ToSchema)]
pub(super) struct SessionList {
    sessions: Vec<SessionResponse>,
}

pub(super) fn sessions_json(
    sessions: Vec<SessionRecord>,
    current_sid: Option<&str>,
) -> Json<SessionList> {
    let list: Vec<SessionResponse> = sessions
        .into_iter()
        .map(|s| SessionResponse {
            current: current_sid == Some(s.sid.as_str()),
            session_id: s.sid,
            created_at: rfc3339(s.created_ms),
            last_seen_at: rfc3339(s.last_seen_ms),
            expires_at: rfc3339(s.idle_expiry_ms),
            absolute_expires_at: rfc3339(s.absolute_expiry_ms),
            user_agent: s.user_agent,
            ip: s.ip,
        })
        .collect();
    Json(SessionList { sessions: list })
}
