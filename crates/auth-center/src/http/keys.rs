//! The keys as HTTP: the JWKS, and the admin key routes (rotate, list the keys with their
//! states), over `domain/keys.rs`. (The RFC 8414 metadata that points at the JWKS is in
//! `oauth.rs`.)

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};
use super::json::rfc3339;
use crate::domain::keys::{KeyRotation, KeyStatus};

/// Body of `POST /v1/admin/keys/rotate`; no body at all is a delayed rotation.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateRequest {
    /// Sign with the new key at once (an emergency).
    #[serde(default)]
    now: bool,
    /// With `now`: also withdraw every earlier key from the JWKS at once (compromise).
    #[serde(default)]
    revoke_previous: bool,
}

/// A signing key and its state; times are RFC 3339, UTC.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "kid": "k-2026-01-15", "alg": "EdDSA", "state": "signing",
    "created_at": "2026-01-15T09:30:00Z", "activates_at": "2026-01-15T10:30:00Z",
    "retires_at": null, "unpublished_at": null, "revoked_at": null
}))]
pub(super) struct KeyResponse {
    kid: String,
    alg: String,
    /// `pending`, `signing`, `retired`, `unpublished` or `revoked`.
    #[schema(value_type = String, pattern = "^(pending|signing|retired|unpublished|revoked)$")]
    state: &'static str,
    created_at: String,
    /// When it signs (published before).
    activates_at: String,
    /// `null` until known.
    retires_at: Option<String>,
    /// `null` until known.
    unpublished_at: Option<String>,
    /// `null` unless revoked.
    revoked_at: Option<String>,
}

/// The signing keys, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct KeyList {
    keys: Vec<KeyResponse>,
}

/// `POST /v1/admin/keys/rotate`
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "keys",
    summary = "Rotate the signing key",
    request_body(content = Option<RotateRequest>, description = "No body (or `{}`): a delayed rotation, the new key published before it signs. `{\"now\": true}` signs with it at once; `{\"now\": true, \"revoke_previous\": true}` also withdraws every earlier key (a compromise)."),
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 200, description = "The new key: `pending` until `activates_at`, or `signing` with `now`.", body = KeyResponse),
        (status = 400, description = "`invalid_request`: `revoke_previous` without `now`; a malformed body."),
    ))]
pub(super) async fn rotate(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    body: Option<ApiJson<RotateRequest>>,
) -> Result<Json<KeyResponse>, ApiError> {
    let request = body.map(|ApiJson(r)| r).unwrap_or_default();
    let rotation = match (request.now, request.revoke_previous) {
        (false, false) => KeyRotation::Delayed,
        (true, false) => KeyRotation::Immediate,
        (true, true) => KeyRotation::RevokePrevious,
        (false, true) => {
            return Err(ApiError::http(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_request",
                "revoke_previous needs now: true",
            ));
        }
    };
    let key = auth.admin_rotate_key(&admin, rotation, &client).await?;
    Ok(Json(KeyResponse::from(&key)))
}

/// `GET /v1/admin/keys`
#[utoipa::path(get, path = "/admin/keys", tag = "keys",
    summary = "The signing keys and their states",
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "Every key, newest first.", body = KeyList)))]
pub(super) async fn list(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
) -> Result<Json<KeyList>, ApiError> {
    let keys = auth
        .admin_list_keys(&admin)
        .await?
        .iter()
        .map(KeyResponse::from)
        .collect();
    Ok(Json(KeyList { keys }))
}

impl From<&KeyStatus> for KeyResponse {
    fn from(k: &KeyStatus) -> Self {
        Self {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            state: k.state.as_str(),
            created_at: rfc3339(k.created_ms),
            activates_at: rfc3339(k.activates_ms),
            retires_at: k.retires_ms.map(rfc3339),
            unpublished_at: k.unpublished_ms.map(rfc3339),
            revoked_at: k.revoked_ms.map(rfc3339),
        }
    }
}

/// `GET /.well-known/jwks.json`, cacheable for `keys.jwks_max_age_secs`, which is
/// shorter than the publication delay of a new key.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    summary = "The published verification keys (JWKS)",
    responses((status = 200, description = "The JWK Set; `Cache-Control: public, max-age=` `keys.jwks_max_age_secs`.", body = ref("#/components/schemas/Jwks"))))]
pub(super) async fn jwks(State(auth): AppState) -> Response {
    let cache_control = format!("public, max-age={}", auth.config().keys.jwks_max_age_secs);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    (headers, Json(auth.keys().jwks())).into_response()
}
