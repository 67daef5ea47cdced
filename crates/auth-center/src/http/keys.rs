//! The keys as HTTP: the JWKS, and the admin key routes (rotate, list the keys with their
//! states), over `domain/keys.rs`. (The RFC 8414 metadata that points at the JWKS is in
//! `oauth.rs`.)

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};
use super::json::rfc3339;
use crate::domain::keys::{KeyRotation, KeyStatus};

/// Body of `POST /v1/admin/keys/rotate`; no body at all is a delayed rotation.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateRequest {
    /// Sign with the new key at once (an emergency).
    #[serde(default)]
    now: bool,
    /// With `now`: also withdraw every earlier key from the JWKS at once (compromise).
    #[serde(default)]
    revoke_previous: bool,
}

/// `POST /v1/admin/keys/rotate`
pub(super) async fn rotate(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    body: Option<ApiJson<RotateRequest>>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(key_json(&key)))
}

/// `GET /v1/admin/keys`
pub(super) async fn list(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let keys: Vec<Value> = auth
        .admin_list_keys(&admin)
        .await?
        .iter()
        .map(key_json)
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

fn key_json(k: &KeyStatus) -> Value {
    json!({
        "kid": k.kid,
        "alg": k.alg,
        "state": k.state,
        "created_at": rfc3339(k.created_ms),
        "activates_at": rfc3339(k.activates_ms),
        "retires_at": k.retires_ms.map(rfc3339),
        "unpublished_at": k.unpublished_ms.map(rfc3339),
        "revoked_at": k.revoked_ms.map(rfc3339),
    })
}

/// `GET /.well-known/jwks.json`, cacheable for `keys.jwks_max_age_secs`, which is
/// shorter than the publication delay of a new key.
pub(super) async fn jwks(State(auth): AppState) -> Response {
    let cache_control = format!("public, max-age={}", auth.config().keys.jwks_max_age_secs);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    (headers, Json(auth.keys().jwks())).into_response()
}
