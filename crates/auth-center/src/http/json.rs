//! Response shapes that more than one area answers with: timestamps, users, sessions.

use axum::Json;
use serde::Serialize;
use serde_json::{Value, json};

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
#[derive(Serialize)]
pub(super) struct UserResponse {
    id: String,
    username: String,
    roles: Vec<String>,
    created_at: String,
    disabled: bool,
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

/// A session as shown to its user or an admin.
#[derive(Serialize)]
struct SessionResponse {
    session_id: String,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    absolute_expires_at: String,
    user_agent: String,
    ip: String,
    current: bool,
}

pub(super) fn sessions_json(
    sessions: Vec<SessionRecord>,
    current_sid: Option<&str>,
) -> Json<Value> {
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
    Json(json!({ "sessions": list }))
}
