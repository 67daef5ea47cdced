//! `POST /v1/introspect` (RFC 7662 style), over `domain/introspection.rs`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use verifier::Claims;

use super::AppState;
use super::error::ApiError;
use super::extract::{self, Authenticated, MediaType, RawBody};

/// Body of an introspection request (RFC 7662): form-encoded or JSON.
#[derive(Deserialize)]
pub(super) struct IntrospectRequest {
    token: String,
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// `POST /v1/introspect` (RFC 7662 style; the caller needs the `introspect` or `admin`
/// role). Anything but an active access token is `{"active": false}`.
pub(super) async fn introspect(
    State(auth): AppState,
    Authenticated(caller): Authenticated,
    RawBody(media, body): RawBody,
) -> Result<Response, ApiError> {
    // Every problem with the body is `invalid_request` here, a syntax error included.
    let request: IntrospectRequest = match media {
        MediaType::Form => extract::form(&body),
        MediaType::Json => extract::json_object(&body),
    }
    .map_err(|e| e.into_api_error("invalid_request"))?;
    let body = match auth.introspect(&caller, &request.token).await? {
        Some(c) => active_json(&c),
        None => json!({ "active": false }),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

fn active_json(c: &Claims) -> Value {
    let mut body = json!({
        "active": true,
        "token_type": "access_token",
        "iss": c.iss,
        "sub": c.sub,
        "aud": c.aud,
        "exp": c.exp,
        "iat": c.iat,
        "nbf": c.nbf,
        "jti": c.jti,
        "sid": c.sid,
        "roles": c.roles,
    });
    // A DPoP-bound token: its key, so a resource server can check the proof (RFC 9449 §6.2).
    if let Some(cnf) = &c.cnf {
        body["cnf"] = json!({ "jkt": cnf.jkt });
    }
    body
}
