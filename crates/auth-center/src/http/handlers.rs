//! Route handlers: translate HTTP to domain calls and back.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};
use crate::domain::{AuthService, IssuedTokens, UserView};

type AppState = State<Arc<AuthService>>;

/// Body of register and login.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: SecretString,
}

/// Body of refresh.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: SecretString,
}

/// The token response (DESIGN.md §4a).
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    session_id: &'a str,
}

/// A user as JSON.
#[derive(Serialize)]
pub struct UserResponse {
    id: String,
    username: String,
    roles: Vec<String>,
    created_at: String,
}

impl From<UserView> for UserResponse {
    fn from(u: UserView) -> Self {
        Self {
            id: u.id,
            username: u.username,
            roles: u.roles,
            created_at: rfc3339(u.created_ms),
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

/// Token responses are never cached (RFC 6749 §5.1).
fn token_response(tokens: &IssuedTokens) -> Response {
    let body = TokenResponse {
        access_token: &tokens.access_token,
        refresh_token: tokens.refresh_token.expose_secret(),
        token_type: "Bearer",
        expires_in: tokens.expires_in,
        session_id: &tokens.session_id,
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    (headers, Json(body)).into_response()
}

/// `POST /v1/register`
pub async fn register(
    State(auth): AppState,
    Client(client): Client,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let user = auth
        .register(&body.username, body.password, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(UserResponse::from(user))).into_response())
}

/// `POST /v1/login`
pub async fn login(
    State(auth): AppState,
    Client(client): Client,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let tokens = auth.login(&body.username, body.password, &client).await?;
    Ok(token_response(&tokens))
}

/// `POST /v1/refresh`
pub async fn refresh(
    State(auth): AppState,
    Client(client): Client,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let tokens = auth
        .refresh(body.refresh_token.expose_secret(), &client)
        .await?;
    Ok(token_response(&tokens))
}

/// `POST /v1/logout`
pub async fn logout(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(claims): Authenticated,
) -> Result<StatusCode, ApiError> {
    auth.logout(&claims, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/logout-all`
pub async fn logout_all(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(claims): Authenticated,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = auth.logout_all(&claims, &client).await?;
    Ok(Json(json!({ "sessions_ended": n })))
}

/// `GET /v1/me`
pub async fn me(
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

/// `GET /.well-known/jwks.json`
pub async fn jwks(State(auth): AppState) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    (headers, Json(auth.keys().jwks())).into_response()
}

/// `GET /.well-known/openid-configuration` (minimal discovery document).
pub async fn openid_configuration(State(auth): AppState) -> Json<serde_json::Value> {
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
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database and the session store answer.
pub async fn readyz(State(auth): AppState) -> Result<Json<serde_json::Value>, ApiError> {
    auth.ready().await?;
    Ok(Json(json!({ "status": "ready" })))
}
