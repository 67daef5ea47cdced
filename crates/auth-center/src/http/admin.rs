//! The admin API under `/v1/admin/users` and `/v1/admin/audit`, over `domain/admin.rs`
//! (the key routes are in `keys.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, Client};
use super::json::{UserResponse, rfc3339, sessions_json};
use crate::domain::ports::AuditEvent;

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
        "request_id": e.request_id,
        "detail": e.detail,
    })
}
