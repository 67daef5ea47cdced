//! "Your devices": `GET /v1/sessions` and `DELETE /v1/sessions/{sid}`, over
//! `domain/devices.rs`. (Device tokens travel in the login body or the `__Host-device`
//! cookie, read by the `Client` extractor.)

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, Authenticated, Client};
use super::json::sessions_json;

/// `GET /v1/sessions`
pub(super) async fn my_sessions(
    State(auth): AppState,
    Authenticated(claims): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let sessions = auth.my_sessions(&claims).await?;
    Ok(sessions_json(sessions, Some(&claims.sid)))
}

/// `DELETE /v1/sessions/{sid}`
pub(super) async fn end_my_session(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    ApiPath(sid): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    auth.end_my_session(&claims, &sid, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
