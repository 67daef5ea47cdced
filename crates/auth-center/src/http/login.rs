//! `POST /v1/register`, `POST /v1/login` (body or cookie mode) and `GET /v1/me`, over
//! `domain/login.rs`; the token response that login and refresh share.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::cookie::{self, CookieModeHeaders};
use super::dpop::{DpopHeader, DpopProof};
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};
use super::json::{UserResponse, rfc3339};
use crate::domain::{AuthService, IssuedTokens};

/// Body of register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    /// 1 to 64 characters once canonicalised (PRECIS UsernameCaseMapped), one script.
    #[schema(example = "alice", min_length = 1, max_length = 64)]
    username: String,
    /// 8 to 128 characters; not on the breached-password list.
    #[schema(value_type = String, format = Password, example = "a long passphrase of yours", min_length = 8, max_length = 128)]
    password: SecretString,
}

/// Body of login: the credentials, and the device token of an earlier login (browsers in
/// cookie mode send it as the `__Host-device` cookie instead).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    #[schema(example = "alice")]
    username: String,
    #[schema(value_type = String, format = Password, example = "a long passphrase of yours")]
    password: SecretString,
    /// The device token an earlier login on this device answered with: it exempts the
    /// device from the per-account lockout.
    #[schema(value_type = Option<String>)]
    device_token: Option<SecretString>,
}

/// The token response (DESIGN.md §4a). In cookie mode the refresh token travels in the
/// cookie only.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsxIn0.eyJzdWIiOiIuLi4ifQ.c2ln",
    "refresh_token": "0b7c1d3e-5f6a-4b8c-9d0e-1f2a3b4c5d6e.a1b2c3d4e5f6.bWFj",
    "token_type": "Bearer",
    "expires_in": 900,
    "session_id": "3q2-7w-f4kZ9s1n0",
    "device_token": "ZGV2aWNl.dG9rZW4"
}))]
pub(super) struct TokenResponse<'a> {
    /// The access JWT (`typ: at+jwt`, EdDSA).
    access_token: &'a str,
    /// The opaque refresh token; absent in cookie mode (it is in the `__Host-refresh`
    /// cookie).
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    /// `Bearer`, or `DPoP` for a DPoP-bound access token.
    #[schema(value_type = String, pattern = "^(Bearer|DPoP)$")]
    token_type: &'static str,
    /// Seconds the access token is valid.
    expires_in: u64,
    /// The session (`sid`).
    session_id: &'a str,
    /// A login's device token for later logins from this device; absent on refresh and
    /// in cookie mode (the `__Host-device` cookie).
    #[serde(skip_serializing_if = "Option::is_none")]
    device_token: Option<&'a str>,
}

/// Who am I.
#[derive(Serialize, ToSchema)]
pub(super) struct MeResponse {
    id: String,
    username: String,
    roles: Vec<String>,
    created_at: String,
    /// The caller's session.
    session_id: String,
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
#[utoipa::path(post, path = "/register", tag = "sessions",
    summary = "Register an account (when registration is enabled)",
    request_body = Credentials,
    responses(
        (status = 201, description = "The new user.", body = UserResponse),
        (status = 400, description = "`invalid_request`: the username or password breaks the rules; a malformed body."),
        (status = 403, description = "`registration_disabled`."),
        (status = 409, description = "`username_taken` (also for a look-alike of an existing name)."),
        (status = 429, description = "`rate_limited`: too many registrations from this network."),
    ))]
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
#[utoipa::path(post, path = "/login", tag = "sessions",
    summary = "Log in: a new session and its tokens",
    request_body = LoginRequest,
    params(CookieModeHeaders, DpopHeader),
    responses(
        (status = 200, description = "The token response; never cached. In cookie mode the refresh token and the device token are in `Set-Cookie` (`__Host-refresh`, `__Host-device`) instead of the body.", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "Cookie mode only."))),
        (status = 400, description = "`invalid_request`, `invalid_json`; `invalid_dpop_proof`: the `DPoP` header is not a valid proof for this request."),
        (status = 401, description = "`invalid_credentials`: wrong username or password (the same answer for an unknown user)."),
        (status = 403, description = "`csrf_rejected`: cookie mode from an `Origin` not allowed."),
        (status = 429, description = "`rate_limited`: too many attempts from this network or on this account; `Retry-After` says when to retry."),
    ))]
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
#[utoipa::path(get, path = "/me", tag = "account",
    summary = "Who am I",
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The caller and their session.", body = MeResponse)))]
pub(super) async fn me(
    State(auth): AppState,
    Authenticated(claims): Authenticated,
) -> Result<Json<MeResponse>, ApiError> {
    let user = auth.me(&claims).await?;
    Ok(Json(MeResponse {
        id: user.id,
        username: user.username,
        roles: user.roles,
        created_at: rfc3339(user.created_ms),
        session_id: claims.sid,
    }))
}
