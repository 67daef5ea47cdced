//! The admin API under `/v1/admin/users` and `/v1/admin/audit`, over `domain/admin.rs`
//! (the key routes are in `keys.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, Client};
use super::json::{SessionList, SessionsEnded, UserList, UserResponse, rfc3339, sessions_json};
use crate::domain::ports::AuditEvent;

/// Paging of admin lists.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct Page {
    /// 1 to 500.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: i64,
    /// How many to skip.
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    offset: i64,
}

fn default_limit() -> i64 {
    100
}

/// `GET /v1/admin/users`
#[utoipa::path(get, path = "/admin/users", tag = "admin",
    summary = "List users, ordered by username",
    params(Page),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "A page of users.", body = UserList)))]
pub(super) async fn list_users(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<UserList>, ApiError> {
    let users = auth
        .admin_list_users(&admin, page.limit, page.offset)
        .await?;
    let users = users.into_iter().map(UserResponse::from).collect();
    Ok(Json(UserList { users }))
}

/// Body of an admin's user creation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    #[schema(example = "bob")]
    username: String,
    #[schema(value_type = String, format = Password, example = "a long passphrase of yours")]
    password: SecretString,
    /// Role names: 1 to 64 of `[A-Za-z0-9_-]`, at most 32.
    #[serde(default)]
    #[schema(example = json!(["introspect"]))]
    roles: Vec<String>,
}

/// `POST /v1/admin/users`
#[utoipa::path(post, path = "/admin/users", tag = "admin",
    summary = "Create a user",
    request_body = NewUser,
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 201, description = "The new user.", body = UserResponse),
        (status = 409, description = "`username_taken` (also for a look-alike of an existing name)."),
    ))]
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

/// The path of one user.
const USER_ID: &str = "The user's id, a UUID.";

/// `GET /v1/admin/users/{id}`
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin",
    summary = "One user",
    params(("id" = String, Path, description = USER_ID)),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The user.", body = UserResponse)))]
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
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Roles {
    /// At most 32 role names of 1 to 64 characters `[A-Za-z0-9_-]`.
    #[schema(example = json!(["admin", "introspect"]))]
    roles: Vec<String>,
}

/// `PUT /v1/admin/users/{id}/roles`
#[utoipa::path(put, path = "/admin/users/{id}/roles", tag = "admin",
    summary = "Set a user's roles, ending all of their sessions",
    params(("id" = String, Path, description = USER_ID)),
    request_body = Roles,
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The user, roles sorted and deduplicated.", body = UserResponse)))]
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
#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = "admin",
    summary = "Disable a user, ending all of their sessions",
    params(("id" = String, Path, description = USER_ID)),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The user.", body = UserResponse)))]
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
#[utoipa::path(post, path = "/admin/users/{id}/enable", tag = "admin",
    summary = "Enable a user",
    params(("id" = String, Path, description = USER_ID)),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The user.", body = UserResponse)))]
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
#[utoipa::path(get, path = "/admin/users/{id}/sessions", tag = "admin",
    summary = "A user's live sessions",
    params(("id" = String, Path, description = USER_ID)),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The sessions, most recently used first (`current` always false).", body = SessionList)))]
pub(super) async fn user_sessions(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionList>, ApiError> {
    Ok(sessions_json(
        auth.admin_user_sessions(&admin, &id).await?,
        None,
    ))
}

/// `DELETE /v1/admin/users/{id}/sessions`
#[utoipa::path(delete, path = "/admin/users/{id}/sessions", tag = "admin",
    summary = "Force logout: end every session of a user",
    params(("id" = String, Path, description = USER_ID)),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "How many sessions ended.", body = SessionsEnded)))]
pub(super) async fn force_logout_user(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionsEnded>, ApiError> {
    let sessions_ended = auth.admin_force_logout(&admin, &id, None, &client).await?;
    Ok(Json(SessionsEnded { sessions_ended }))
}

/// `DELETE /v1/admin/users/{id}/sessions/{sid}`
#[utoipa::path(delete, path = "/admin/users/{id}/sessions/{sid}", tag = "admin",
    summary = "End one session of a user",
    params(("id" = String, Path, description = USER_ID), ("sid" = String, Path, description = "The session id.")),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 204, description = "The session is ended.")))]
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
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// 1 to 500.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: i64,
}

/// One entry of the audit log.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "at": "2026-01-15T09:30:00Z",
    "event": "login.success",
    "actor": "5f0c6f9e-8d1c-4b7e-9a35-2f6d1e0b9c47",
    "target": null,
    "session_id": "3q2-7w-f4kZ9s1n0",
    "ip": "203.0.113.7",
    "request_id": "01HZX3J5K9Q8W2E4R6T8Y0U2I4",
    "detail": null
}))]
pub(super) struct AuditEntry {
    /// RFC 3339, UTC.
    at: String,
    /// What happened, e.g. `login.success`, `refresh.reuse_detected`.
    event: String,
    /// Who did it (a user id, a client id, `cli`), if known.
    actor: Option<String>,
    /// Whom it concerns, if anyone.
    target: Option<String>,
    session_id: Option<String>,
    ip: Option<String>,
    /// The `X-Request-Id` of the request that caused it; `null` for the CLI and scheduled
    /// tasks.
    request_id: Option<String>,
    /// Extra detail, never a secret.
    detail: Option<String>,
}

impl From<AuditEvent> for AuditEntry {
    fn from(e: AuditEvent) -> Self {
        Self {
            at: rfc3339(e.at_ms),
            event: e.event,
            actor: e.actor,
            target: e.target,
            session_id: e.sid,
            ip: e.ip,
            request_id: e.request_id,
            detail: e.detail,
        }
    }
}

/// The audit log, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditLog {
    events: Vec<AuditEntry>,
}

/// `GET /v1/admin/audit`
#[utoipa::path(get, path = "/admin/audit", tag = "admin",
    summary = "The audit log, newest first",
    params(AuditQuery),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The newest events.", body = AuditLog)))]
pub(super) async fn audit_log(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditLog>, ApiError> {
    let events = auth
        .admin_audit(&admin, query.limit)
        .await?
        .into_iter()
        .map(AuditEntry::from)
        .collect();
    Ok(Json(AuditLog { events }))
}
