//! Route handlers: translate HTTP to domain calls and back.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::cookie;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};
use crate::domain::{AuthError, AuthService, IssuedTokens, UserView};

pub(super) type AppState = State<Arc<AuthService>>;

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

/// Body of refresh. Without `refresh_token`, the cookie is used (cookie mode).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshRequest {
    refresh_token: Option<SecretString>,
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

/// Token responses are never cached (RFC 6749 §5.1). With `cookie_max_age`, the
/// refresh token goes into the `__Host-` cookie instead of the body, and a device token
/// into its own cookie for `device_max_age`.
fn token_response(
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
        token_type: "Bearer",
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
fn cookie_mode(auth: &AuthService, headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    if !cookie::wants_cookie(headers) {
        return Ok(None);
    }
    cookie::check_csrf(headers, &auth.config().browser.allowed_origins)?;
    Ok(Some(auth.config().sessions.absolute_secs))
}

/// Adds a `Set-Cookie` that clears the refresh cookie when the request carried one.
fn clearing_cookie(request_headers: &HeaderMap, mut response: Response) -> Response {
    if cookie::refresh_cookie(request_headers).is_some() {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, cookie::clear_refresh_cookie());
    }
    response
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

/// `POST /v1/login` (cookie mode with `X-Token-Transport: cookie`).
pub(super) async fn login(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let cookie_max_age = cookie_mode(&auth, &headers)?;
    let mut client = client;
    if body.device_token.is_some() {
        client.device_token = body.device_token;
    }
    let tokens = auth.login(&body.username, body.password, &client).await?;
    let device_max_age = auth.config().limits.device_token_ttl_secs;
    Ok(token_response(&tokens, cookie_max_age, device_max_age))
}

/// `POST /v1/refresh`: the token from the body, or (cookie mode) from the cookie.
pub(super) async fn refresh(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let (wire, cookie_max_age) = match body.refresh_token {
        Some(token) => (token.expose_secret().to_string(), None),
        None => {
            if cookie::refresh_cookies(&headers) > 1 {
                return Err(ApiError::http(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "more than one refresh cookie",
                ));
            }
            let cookie = cookie::refresh_cookie(&headers).ok_or_else(|| {
                ApiError::http(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                )
            })?;
            cookie::check_csrf(&headers, &auth.config().browser.allowed_origins)?;
            (cookie, Some(auth.config().sessions.absolute_secs))
        }
    };
    match auth.refresh(&wire, &client).await {
        Ok(tokens) => Ok(token_response(&tokens, cookie_max_age, 0)),
        // A dead refresh cookie is cleared so the browser stops sending it.
        Err(e @ (AuthError::InvalidRefreshToken | AuthError::RefreshTokenReused))
            if cookie_max_age.is_some() =>
        {
            Ok(clearing_cookie(&headers, ApiError::from(e).into_response()))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /v1/logout` (also clears the refresh cookie).
pub(super) async fn logout(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    auth.logout(&claims, &client).await?;
    Ok(clearing_cookie(
        &headers,
        StatusCode::NO_CONTENT.into_response(),
    ))
}

/// `POST /v1/logout-all` (also clears the refresh cookie).
pub(super) async fn logout_all(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    let n = auth.logout_all(&claims, &client).await?;
    Ok(clearing_cookie(
        &headers,
        Json(json!({ "sessions_ended": n })).into_response(),
    ))
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

/// `GET /.well-known/openid-configuration` (minimal discovery document).
pub(super) async fn openid_configuration(State(auth): AppState) -> Json<serde_json::Value> {
    let issuer = auth.config().issuer.trim_end_matches('/').to_string();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/v1/login"),
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
}

/// `GET /healthz`: the process is up.
pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database and the session store answer.
pub(super) async fn readyz(State(auth): AppState) -> Result<Json<serde_json::Value>, ApiError> {
    auth.ready().await?;
    Ok(Json(json!({ "status": "ready" })))
}
