//! `GET /healthz` and `GET /readyz`.

use axum::Json;
use axum::extract::State;
use serde_json::json;

use super::AppState;
use super::error::ApiError;

/// `GET /healthz`: the process is up.
pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database and the session store answer.
pub(super) async fn readyz(State(auth): AppState) -> Result<Json<serde_json::Value>, ApiError> {
    auth.ready().await?;
    Ok(Json(json!({ "status": "ready" })))
}
