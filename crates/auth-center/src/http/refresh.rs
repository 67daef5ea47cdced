//! `POST /v1/refresh` (body or cookie), `POST /v1/logout` and `POST /v1/logout-all`, over
//! `domain/refresh.rs`. In cookie mode a dead refresh cookie, and every logout, clears the
//! cookie.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::cookie;
use super::dpop::DpopProof;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};
use super::login::token_response;
use crate::domain::AuthError;

/// Body of refresh. Without `refresh_token`, the cookie is used (cookie mode).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshRequest {
    refresh_token: Option<SecretString>,
}

/// Adds a `Set-Cookie` that clears the refresh cookie when the request carried one.
fn clearing_cookie(request_headers: &HeaderMap, mut response: Response) -> Response {
    if cookie::refresh_cookie(request_headers).is_some()
        && let Some(clear) = cookie::clear_refresh_cookie()
    {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    response
}

/// `POST /v1/refresh`: the token from the body, or (cookie mode) from the cookie; the
/// `DPoP` proof, if any, from its header.
pub(super) async fn refresh(
    State(auth): AppState,
    Client(client): Client,
    DpopProof(proof): DpopProof,
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
    match auth.refresh(&wire, proof.as_ref(), &client).await {
        Ok(tokens) => Ok(token_response(&tokens, cookie_max_age, 0)),
        // A dead refresh cookie is cleared so the browser stops sending it.
        Err(e) if cookie_max_age.is_some() && ends_refresh_cookie(&e) => {
            Ok(clearing_cookie(&headers, ApiError::from(e).into_response()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether a refresh failed because the token is dead for good (unknown, reused, capped,
/// revoked by the refresh policy or a DPoP mismatch): its cookie is of no more use.
pub(super) fn ends_refresh_cookie(e: &AuthError) -> bool {
    matches!(
        e,
        AuthError::InvalidRefreshToken
            | AuthError::RefreshTokenReused
            | AuthError::RefreshLimitReached
            | AuthError::RefreshContextChanged
            | AuthError::DpopKeyMismatch
    )
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
