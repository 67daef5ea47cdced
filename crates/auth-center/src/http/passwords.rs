//! `POST /v1/password`, over `domain/passwords.rs`.

use axum::Json;
use axum::extract::State;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};

/// Body of a password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordChange {
    #[schema(value_type = String, format = Password, example = "a long passphrase of yours")]
    current_password: SecretString,
    /// 8 to 128 characters; not on the breached-password list.
    #[schema(value_type = String, format = Password, example = "an even longer new passphrase", min_length = 8, max_length = 128)]
    new_password: SecretString,
}

/// The answer of a password change.
#[derive(Serialize, ToSchema)]
pub(super) struct PasswordChanged {
    /// The caller's other sessions, all ended; the caller's own stays.
    other_sessions_ended: u64,
}

/// `POST /v1/password`
#[utoipa::path(post, path = "/password", tag = "account",
    summary = "Change the caller's password, ending their other sessions",
    request_body = PasswordChange,
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 200, description = "Changed.", body = PasswordChanged),
        (status = 400, description = "`invalid_request`: the new password breaks the policy; a malformed body."),
        (status = 401, description = "`invalid_credentials`: wrong current password; or a token error."),
        (status = 429, description = "`rate_limited`: too many wrong current passwords."),
    ))]
pub(super) async fn change_password(
    State(auth): AppState,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Json<PasswordChanged>, ApiError> {
    let other_sessions_ended = auth
        .change_password(&claims, body.current_password, body.new_password, &client)
        .await?;
    Ok(Json(PasswordChanged {
        other_sessions_ended,
    }))
}
