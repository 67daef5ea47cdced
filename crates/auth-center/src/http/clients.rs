//! The admin API of registered clients under `/v1/admin/clients`, over `domain/clients.rs`.
//! A new secret is in the answer that made it, and nowhere else, ever.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, Authenticated, Client};
use super::json::rfc3339;
use crate::domain::clients::{ClientView, ClientWithSecret, NewClient};

/// Body of `POST /v1/admin/clients`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"client_id": "billing-service", "roles": ["introspect"], "scopes": ["invoices:read"]}))]
pub(super) struct NewClientRequest {
    /// 1 to 64 of `[A-Za-z0-9_-]`, never UUID-shaped.
    client_id: String,
    /// What it is, for people (default: the id).
    name: Option<String>,
    /// `confidential` (default) or `public`.
    #[serde(default)]
    client_type: ClientType,
    /// Roles its tokens carry.
    #[serde(default)]
    roles: Vec<String>,
    /// Scopes it may ask for.
    #[serde(default)]
    scopes: Vec<String>,
    /// Public keys (a JWK Set, RFC 7517) for `private_key_jwt`; without it a confidential
    /// client gets a secret.
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    /// Whether it may call `/v1/introspect`.
    #[serde(default)]
    introspect: bool,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
}

/// Whether a client can keep a secret (RFC 6749 §2.1).
#[derive(Default, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum ClientType {
    #[default]
    Confidential,
    Public,
}

/// Body of `PUT /v1/admin/clients/{id}/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct KeysRequest {
    /// A JWK Set (RFC 7517) of the client's public keys.
    #[schema(value_type = Object, example = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "k1"}]}))]
    jwks: Value,
}

/// A registered client as JSON (never a secret or a hash), or, in the answer that made a
/// new secret, with it (`client_secret`), shown this once.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "client_id": "billing-service", "name": "billing-service", "client_type": "confidential",
    "token_endpoint_auth_methods": ["client_secret_basic", "client_secret_post"],
    "roles": ["introspect"], "scopes": ["invoices:read"], "introspect": false,
    "redirect_uris": [], "allowed_origins": [], "jwks": null, "disabled": false,
    "built_in": false, "created_at": "2026-01-15T09:30:00Z", "secret_rotated_at": null
}))]
pub(super) struct ClientResponse {
    client_id: String,
    name: String,
    /// `confidential` or `public`.
    client_type: &'static str,
    /// How it authenticates: `client_secret_basic` and `client_secret_post`,
    /// `private_key_jwt`, or `none` (a public client).
    #[schema(value_type = Vec<String>)]
    token_endpoint_auth_methods: &'static [&'static str],
    roles: Vec<String>,
    scopes: Vec<String>,
    introspect: bool,
    redirect_uris: Vec<String>,
    allowed_origins: Vec<String>,
    /// Its public keys (`private_key_jwt`), or `null`.
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    disabled: bool,
    /// The built-in `first-party` client.
    built_in: bool,
    /// RFC 3339, UTC.
    created_at: String,
    /// RFC 3339, UTC; `null` if the secret was never rotated.
    secret_rotated_at: Option<String>,
    /// Only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl From<&ClientView> for ClientResponse {
    fn from(c: &ClientView) -> Self {
        Self {
            client_id: c.id.clone(),
            name: c.name.clone(),
            client_type: c.kind.as_str(),
            token_endpoint_auth_methods: c.auth_methods,
            roles: c.roles.clone(),
            scopes: c.scopes.clone(),
            introspect: c.introspect,
            redirect_uris: c.redirect_uris.clone(),
            allowed_origins: c.allowed_origins.clone(),
            jwks: c.jwks.clone(),
            disabled: c.disabled,
            built_in: c.built_in,
            created_at: rfc3339(c.created_ms),
            secret_rotated_at: c.secret_rotated_ms.map(rfc3339),
            client_secret: None,
        }
    }
}

/// A client with its new secret (`client_secret`), shown this once.
fn with_secret(made: &ClientWithSecret) -> ClientResponse {
    ClientResponse {
        client_secret: made.secret.as_ref().map(|s| s.expose_secret().to_string()),
        ..ClientResponse::from(&made.client)
    }
}

/// The registered clients, ordered by id.
#[derive(Serialize, ToSchema)]
pub(super) struct ClientList {
    clients: Vec<ClientResponse>,
}

/// The path of one client.
const CLIENT_ID: &str = "The client's `client_id`.";

/// `GET /v1/admin/clients`
#[utoipa::path(get, path = "/admin/clients", tag = "clients",
    summary = "List the registered clients",
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "Every client, ordered by id; never a secret.", body = ClientList)))]
pub(super) async fn list_clients(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
) -> Result<Json<ClientList>, ApiError> {
    let clients = auth
        .admin_list_clients(&admin)
        .await?
        .iter()
        .map(ClientResponse::from)
        .collect();
    Ok(Json(ClientList { clients }))
}

/// `POST /v1/admin/clients`: `201` with the client and, for a client with a secret,
/// `client_secret`.
#[utoipa::path(post, path = "/admin/clients", tag = "clients",
    summary = "Register a client",
    request_body = NewClientRequest,
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 201, description = "The client; a confidential client without `jwks` also gets `client_secret`, shown this once.", body = ClientResponse),
        (status = 409, description = "`client_id_taken`."),
    ))]
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
#[utoipa::path(get, path = "/admin/clients/{id}", tag = "clients",
    summary = "One client",
    params(("id" = String, Path, description = CLIENT_ID)),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The client.", body = ClientResponse)))]
pub(super) async fn get_client(
    State(auth): AppState,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ClientResponse>, ApiError> {
    Ok(Json(ClientResponse::from(
        &auth.admin_get_client(&admin, &id).await?,
    )))
}

/// `POST /v1/admin/clients/{id}/secret`: a new secret, in this answer only.
#[utoipa::path(post, path = "/admin/clients/{id}/secret", tag = "clients",
    summary = "A new secret, ending the sessions of the client's tokens",
    params(("id" = String, Path, description = CLIENT_ID)),
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 200, description = "The client with its new `client_secret`, shown this once.", body = ClientResponse),
        (status = 400, description = "`invalid_request`: a public client has no secret."),
    ))]
pub(super) async fn rotate_secret(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ClientResponse>, ApiError> {
    let made = auth
        .admin_rotate_client_secret(&admin, &id, &client)
        .await?;
    Ok(Json(with_secret(&made)))
}

/// `PUT /v1/admin/clients/{id}/keys`
#[utoipa::path(put, path = "/admin/clients/{id}/keys", tag = "clients",
    summary = "Set the client's public keys (`private_key_jwt`), ending the sessions of its tokens",
    params(("id" = String, Path, description = CLIENT_ID)),
    request_body = KeysRequest,
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The client; a secret it had stops working.", body = ClientResponse)))]
pub(super) async fn set_keys(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<KeysRequest>,
) -> Result<Json<ClientResponse>, ApiError> {
    let view = auth
        .admin_set_client_keys(&admin, &id, &body.jwks, &client)
        .await?;
    Ok(Json(ClientResponse::from(&view)))
}

/// `POST /v1/admin/clients/{id}/disable`
#[utoipa::path(post, path = "/admin/clients/{id}/disable", tag = "clients",
    summary = "Disable a client, ending the sessions of all its tokens",
    params(("id" = String, Path, description = CLIENT_ID)),
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 200, description = "The client.", body = ClientResponse),
        (status = 400, description = "`invalid_request`: the built-in `first-party` client cannot be disabled."),
    ))]
pub(super) async fn disable_client(
    state: AppState,
    client: Client,
    admin: Authenticated,
    id: ApiPath<String>,
) -> Result<Json<ClientResponse>, ApiError> {
    set_disabled(state, client, admin, id, true).await
}

/// `POST /v1/admin/clients/{id}/enable`
#[utoipa::path(post, path = "/admin/clients/{id}/enable", tag = "clients",
    summary = "Enable a client",
    params(("id" = String, Path, description = CLIENT_ID)),
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "The client.", body = ClientResponse)))]
pub(super) async fn enable_client(
    state: AppState,
    client: Client,
    admin: Authenticated,
    id: ApiPath<String>,
) -> Result<Json<ClientResponse>, ApiError> {
    set_disabled(state, client, admin, id, false).await
}

async fn set_disabled(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(admin): Authenticated,
    ApiPath(id): ApiPath<String>,
    disabled: bool,
) -> Result<Json<ClientResponse>, ApiError> {
    let view = auth
        .admin_set_client_disabled(&admin, &id, disabled, &client)
        .await?;
    Ok(Json(ClientResponse::from(&view)))
}
