//! The admin API of registered clients under `/v1/admin/clients`, over `domain/clients.rs`.
//! A new secret is in the answer that made it, and nowhere else, ever.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, Authenticated, Client};
use super::json::rfc3339;
use crate::domain::clients::{ClientView, ClientWithSecret, NewClient};

/// Body of `POST /v1/admin/clients`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewClientRequest {
    client_id: String,
    name: Option<String>,
    /// `confidential` (default) or `public`.
    #[serde(default)]
    client_type: ClientType,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    jwks: Option<Value>,
    #[serde(default)]
    introspect: bool,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
}

#[derive(Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ClientType {
    #[default]
    Confidential,
    Public,
}

/// Body of `PUT /v1/admin/clients/{id}/keys`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeysRequest {
    jwks: Value,
}

/// A client as JSON (never a secret or a hash).
pub(super) fn client_json(c: &ClientView) -> Value {
    json!({
        "client_id": c.id,
        "name": c.name,
        "client_type": c.kind.as_str(),
        "token_endpoint_auth_methods": c.auth_methods,
        "roles": c.roles,
        "scopes": c.scopes,
        "introspect": c.introspect,
        "redirect_uris": c.redirect_uris,
        "allowed_origins": c.allowed_origins,
        "jwks": c.jwks,
        "disabled": c.disabled,
        "built_in": c.built_in,
        "created_at": rfc3339(c.created_ms),
        "secret_rotated_at": c.secret_rotated_ms.map(rfc3339),
    })
}

/// A client with its new secret (`client_secret`), shown this once.
fn with_secret(made: &ClientWithSecret) -> Value {
    let mut body = client_json(&made.client);
    if let Some(secret) = &made.secret {
        body["client_secret"] = secret.expose_secret().into();
    }
    body
}

/// `GET /v1/admin/clients`
pub(super) async fn list_clients(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let clients: Vec<Value> = auth
        .admin_list_clients(&admin)
        .await?
        .iter()
        .map(client_json)
        .collect();
    Ok(Json(json!({ "clients": clients })))
}

/// `POST /v1/admin/clients`: `201` with the client and, for a client with a secret,
/// `client_secret`.
pub(super) async fn create_client(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiJson(body): ApiJson<NewClientRequest>,
) -> Result<Response, ApiError> {
    let new = NewClient {
        id: body.client_id,
        name: body.name,
        public: body.client_type == ClientType::Public,
        roles: body.roles,
        scopes: body.scopes,
        jwks: body.jwks,
        introspect: body.introspect,
        redirect_uris: body.redirect_uris,
        allowed_origins: body.allowed_origins,
    };
    let made = auth.admin_create_client(&admin, new, &client).await?;
    Ok((StatusCode::CREATED, Json(with_secret(&made))).into_response())
}

/// `GET /v1/admin/clients/{id}`
pub(super) async fn get_client(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(client_json(
        &auth.admin_get_client(&admin, &id).await?,
    )))
}

/// `POST /v1/admin/clients/{id}/secret`: a new secret, in this answer only.
pub(super) async fn rotate_secret(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let made = auth
        .admin_rotate_client_secret(&admin, &id, &client)
        .await?;
    Ok(Json(with_secret(&made)))
}

/// `PUT /v1/admin/clients/{id}/keys`
pub(super) async fn set_keys(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<KeysRequest>,
) -> Result<Json<Value>, ApiError> {
    let view = auth
        .admin_set_client_keys(&admin, &id, &body.jwks, &client)
        .await?;
    Ok(Json(client_json(&view)))
}

/// `POST /v1/admin/clients/{id}/disable`
pub(super) async fn disable_client(
    state: AppState,
    client: Client,
    admin: Authenticated,
    id: ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(state, client, admin, id, true).await
}

/// `POST /v1/admin/clients/{id}/enable`
pub(super) async fn enable_client(
    state: AppState,
    client: Client,
    admin: Authenticated,
    id: ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(state, client, admin, id, false).await
}

async fn set_disabled(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
    disabled: bool,
) -> Result<Json<Value>, ApiError> {
    let view = auth
        .admin_set_client_disabled(&admin, &id, disabled, &client)
        .await?;
    Ok(Json(client_json(&view)))
}
