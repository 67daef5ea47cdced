//! "Your devices": `GET /v1/sessions` and `DELETE /v1/sessions/{sid}`, over
//! `domain/devices.rs`. (Device tokens travel in the login body or the `__Host-device`
//! cookie, read by the `Client` extractor.)

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, Authenticated, Client};
use super::json::{SessionList, sessions_json};

/// `GET /v1/sessions`
#[utoipa::path(get, path = "/sessions", tag = "account",
    summary = "Your devices: the caller's live sessions",
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "Every live session of the caller, most recently used first; `current` marks the caller's own.", body = SessionList)))]
pub(super) async fn my_sessions(
    State(auth): AppState,
    Authenticated(claims): Authenticated,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = auth.my_sessions(&claims).await?;
    Ok(sessions_json(sessions, Some(&claims.sid)))
}

/// `DELETE /v1/sessions/{sid}`
#[utoipa::path(delete, path = "/sessions/{sid}", tag = "account",
    summary = "End one of the caller's sessions (it may be the current one)",
    params(("sid" = String, Path, description = "The session id.")),
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 204, description = "The session is ended."),
        (status = 404, description = "`not_found`: the caller has no such session (also for another user's)."),
    ))]
pub(super) async fn end_my_session(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    ApiPath(sid): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    auth.end_my_session(&claims, &sid, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
