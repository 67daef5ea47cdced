//! `GET /healthz` and `GET /readyz`.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use verifier::contract::RETRY_AFTER_SECS;

use super::AppState;

/// The answer of `/healthz`.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    summary = "Liveness: the process is up",
    responses((status = 200, description = "Up.", body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: the database and the session store answer; each check by name
/// (`service_kit::ready`).
#[utoipa::path(get, path = "/readyz", tag = "health",
    summary = "Readiness: the database and the session store answer",
    responses(
        (status = 200, description = "Ready: every check `ok` (`database`; `redis`, or `memory` for in-process sessions).", body = ref("#/components/schemas/Readiness")),
        (status = 503, description = "Not ready: the failed checks say why; `Retry-After`.", body = ref("#/components/schemas/Readiness")),
    ))]
pub(super) async fn readyz(State(auth): AppState) -> Response {
    service_kit::ready::response(&auth.readiness().await, RETRY_AFTER_SECS)
}
