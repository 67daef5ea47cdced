//! Handlers for "your devices", password change, the admin API and introspection.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use verifier::Claims;

use super::error::ApiError;
use super::extract::{self, ApiJson, ApiPath, ApiQuery, Authenticated, Client, MediaType, RawBody};
use super::handlers::{AppState, UserResponse, rfc3339};
use crate::domain::ports::{AuditEvent, SessionRecord};

/// A session as shown to its user or an admin.
#[derive(Serialize)]
struct SessionResponse {
    session_id: String,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    absolute_expires_at: String,
    user_agent: String,
    ip: String,
    current: bool,
}

fn sessions_json(sessions: Vec<SessionRecord>, current_sid: Option<&str>) -> Json<Value> {
    let list: Vec<SessionResponse> = sessions
        .into_iter()
        .map(|s| SessionResponse {
            current: current_sid == Some(s.sid.as_str()),
            session_id: s.sid,
            created_at: rfc3339(s.created_ms),
            last_seen_at: rfc3339(s.last_seen_ms),
            expires_at: rfc3339(s.idle_expiry_ms),
            absolute_expires_at: rfc3339(s.absolute_expiry_ms),
            user_agent: s.user_agent,
            ip: s.ip,
        })
        .collect();
    Json(json!({ "sessions": list }))
}

/// `GET /v1/sessions`
pub(super) async fn my_sessions(
    State(auth): AppState,
    Authenticated(claims): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let sessions = auth.my_sessions(&claims).await?;
    Ok(sessions_json(sessions, Some(&claims.sid)))
}

/// `DELETE /v1/sessions/{sid}`
pub(super) async fn end_my_session(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    ApiPath(sid): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    auth.end_my_session(&claims, &sid, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of a password change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordChange {
    current_password: SecretString,
    new_password: SecretString,
}

/// `POST /v1/password`
pub(super) async fn change_password(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Json<Value>, ApiError> {
    let ended = auth
        .change_password(&claims, body.current_password, body.new_password, &client)
        .await?;
    Ok(Json(json!({ "other_sessions_ended": ended })))
}

/// Paging of admin lists.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    100
}

/// `GET /v1/admin/users`
pub(super) async fn list_users(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let users = auth
        .admin_list_users(&admin, page.limit, page.offset)
        .await?;
    let users: Vec<UserResponse> = users.into_iter().map(UserResponse::from).collect();
    Ok(Json(json!({ "users": users })))
}

/// Body of an admin's user creation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    username: String,
    password: SecretString,
    #[serde(default)]
    roles: Vec<String>,
}

/// `POST /v1/admin/users`
pub(super) async fn create_user(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Response, ApiError> {
    let user = auth
        .admin_create_user(&admin, &body.username, body.password, body.roles, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(UserResponse::from(user))).into_response())
}

/// `GET /v1/admin/users/{id}`
pub(super) async fn get_user(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(UserResponse::from(
        auth.admin_get_user(&admin, &id).await?,
    )))
}

/// Body of a role change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Roles {
    roles: Vec<String>,
}

/// `PUT /v1/admin/users/{id}/roles`
pub(super) async fn set_roles(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Roles>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(UserResponse::from(
        auth.admin_set_roles(&admin, &id, body.roles, &client)
            .await?,
    )))
}

/// `POST /v1/admin/users/{id}/disable`
pub(super) async fn disable_user(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(UserResponse::from(
        auth.admin_set_disabled(&admin, &id, true, &client).await?,
    )))
}

/// `POST /v1/admin/users/{id}/enable`
pub(super) async fn enable_user(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(UserResponse::from(
        auth.admin_set_disabled(&admin, &id, false, &client).await?,
    )))
}

/// `GET /v1/admin/users/{id}/sessions`
pub(super) async fn user_sessions(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(sessions_json(
        auth.admin_user_sessions(&admin, &id).await?,
        None,
    ))
}

/// `DELETE /v1/admin/users/{id}/sessions`
pub(super) async fn force_logout_user(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ended = auth.admin_force_logout(&admin, &id, None, &client).await?;
    Ok(Json(json!({ "sessions_ended": ended })))
}

/// `DELETE /v1/admin/users/{id}/sessions/{sid}`
pub(super) async fn force_logout_session(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath((id, sid)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    auth.admin_force_logout(&admin, &id, Some(&sid), &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Paging of the audit log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    #[serde(default = "default_limit")]
    limit: i64,
}

/// `GET /v1/admin/audit`
pub(super) async fn audit_log(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let events: Vec<Value> = auth
        .admin_audit(&admin, query.limit)
        .await?
        .into_iter()
        .map(audit_json)
        .collect();
    Ok(Json(json!({ "events": events })))
}

fn audit_json(e: AuditEvent) -> Value {
    json!({
        "at": rfc3339(e.at_ms),
        "event": e.event,
        "actor": e.actor,
        "target": e.target,
        "session_id": e.sid,
        "ip": e.ip,
        "detail": e.detail,
    })
}

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
    json!({
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
    })
}
