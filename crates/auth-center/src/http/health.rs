//! `GET /healthz` and `GET /readyz`.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use verifier::contract::RETRY_AFTER_SECS;

use super::AppState;

/// `GET /healthz`: the process is up.
pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database and the session store answer; each check by name
/// (`service_kit::ready`).
pub(super) async fn readyz(State(auth): AppState) -> Response {
    service_kit::ready::response(&auth.readiness().await, RETRY_AFTER_SECS)
}
