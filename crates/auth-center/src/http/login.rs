//! `POST /v1/register`, `POST /v1/login` (body or cookie mode) and `GET /v1/me`, over
//! `domain/login.rs`; the token response that login and refresh share.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::cookie;
use super::dpop::DpopProof;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};
use super::json::{UserResponse, rfc3339};
use crate::domain::{AuthService, IssuedTokens};

/// Body of register.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    username: String,
    password: SecretString,
}

/// Body of login: the credentials, and the device token of an earlier login (browsers in
/// cookie mode send it as the `__Host-device` cookie instead).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    username: String,
    password: SecretString,
    device_token: Option<SecretString>,
}

/// The token response (DESIGN.md §4a). In cookie mode the refresh token travels in the
/// cookie only.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    token_type: &'static str,
    expires_in: u64,
    session_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_token: Option<&'a str>,
}

/// Token responses are never cached (RFC 6749 §5.1). With `cookie_max_age`, the
/// refresh token goes into the `__Host-` cookie instead of the body, and a device token
/// into its own cookie for `device_max_age`.
pub(super) fn token_response(
    tokens: &IssuedTokens,
    cookie_max_age: Option<u64>,
    device_max_age: u64,
) -> Response {
    let device_cookie_age = cookie_max_age.map(|_| device_max_age);
    let body = TokenResponse {
        access_token: &tokens.access_token,
        refresh_token: cookie_max_age
            .is_none()
            .then(|| tokens.refresh_token.expose_secret()),
        // RFC 9449 §5: `DPoP` when the access token is DPoP-bound; a session whose refresh
        // token alone is bound still gets `Bearer`.
        token_type: if tokens.dpop_bound { "DPoP" } else { "Bearer" },
        expires_in: tokens.expires_in,
        session_id: &tokens.session_id,
        device_token: device_cookie_age
            .is_none()
            .then_some(tokens.device_token.as_ref())
            .flatten()
            .map(|t| t.expose_secret()),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if let Some(max_age) = cookie_max_age
        && let Some(cookie) =
            cookie::set_refresh_cookie(tokens.refresh_token.expose_secret(), max_age)
    {
        headers.append(header::SET_COOKIE, cookie);
    }
    if let (Some(max_age), Some(token)) = (device_cookie_age, &tokens.device_token)
        && let Some(cookie) = cookie::set_device_cookie(token.expose_secret(), max_age)
    {
        headers.append(header::SET_COOKIE, cookie);
    }
    (headers, Json(body)).into_response()
}

/// In cookie mode (after the CSRF check), the cookie's lifetime: the absolute session
/// lifetime. `None` in body mode.
pub(super) fn cookie_mode(
    auth: &AuthService,
    headers: &HeaderMap,
) -> Result<Option<u64>, ApiError> {
    if !cookie::wants_cookie(headers) {
        return Ok(None);
    }
    cookie::check_csrf(headers, &auth.config().browser.allowed_origins)?;
    Ok(Some(auth.config().sessions.absolute_secs))
}

/// `POST /v1/register`
pub(super) async fn register(
    State(auth): AppState,
    Client(client): Client,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let user = auth
        .register(&body.username, body.password, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(UserResponse::from(user))).into_response())
}

/// `POST /v1/login` (cookie mode with `X-Token-Transport: cookie`). With a valid `DPoP`
/// proof the session is bound to its key.
pub(super) async fn login(
    State(auth): AppState,
    Client(client): Client,
    DpopProof(proof): DpopProof,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let cookie_max_age = cookie_mode(&auth, &headers)?;
    let mut client = client;
    if body.device_token.is_some() {
        client.device_token = body.device_token;
    }
    let tokens = auth
        .login(&body.username, body.password, proof.as_ref(), &client)
        .await?;
    let device_max_age = auth.config().limits.device_token_ttl_secs;
    Ok(token_response(&tokens, cookie_max_age, device_max_age))
}

/// `GET /v1/me`
pub(super) async fn me(
    State(auth): AppState,
    Authenticated(claims): Authenticated,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = auth.me(&claims).await?;
    Ok(Json(json!({
        "id": user.id,
        "username": user.username,
        "roles": user.roles,
        "created_at": rfc3339(user.created_ms),
        "session_id": claims.sid,
    })))
}
