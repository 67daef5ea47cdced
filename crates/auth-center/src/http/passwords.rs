//! `POST /v1/password`, over `domain/passwords.rs`.

use axum::Json;
use axum::extract::State;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};

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
