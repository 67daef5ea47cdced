//! `POST /v1/refresh` (body or cookie), `POST /v1/logout` and `POST /v1/logout-all`, over
//! `domain/refresh.rs`. In cookie mode a dead refresh cookie, and every logout, clears the
//! cookie.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::cookie::{self, CookieModeHeaders};
use super::dpop::{DpopHeader, DpopProof};
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Client};
use super::json::SessionsEnded;
use super::login::{TokenResponse, token_response};
use crate::domain::AuthError;

/// Body of refresh. Without `refresh_token`, the cookie is used (cookie mode).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshRequest {
    /// The refresh token of the last token response; left out in cookie mode.
    #[schema(value_type = Option<String>, example = "0b7c1d3e-5f6a-4b8c-9d0e-1f2a3b4c5d6e.a1b2c3d4e5f6.bWFj")]
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
#[utoipa::path(post, path = "/refresh", tag = "sessions",
    summary = "Rotate the refresh token: new tokens for the same session",
    request_body = RefreshRequest,
    params(CookieModeHeaders, DpopHeader),
    security((), ("refresh_cookie" = [])),
    responses(
        (status = 200, description = "The token response (no device token), never cached; in cookie mode the new refresh token is in `Set-Cookie`.", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "Cookie mode only."))),
        (status = 400, description = "`invalid_request` (no refresh token, or more than one refresh cookie), `invalid_json`; `invalid_dpop_proof`: an invalid proof, or none or another key's for a session bound to a DPoP key."),
        (status = 401, description = "`invalid_refresh_token`, `refresh_token_reused` (the session is ended), `refresh_limit_reached`, `refresh_context_changed`; in cookie mode the dead cookie is cleared."),
        (status = 403, description = "`csrf_rejected`: cookie mode without `X-Token-Transport: cookie` or from an `Origin` not allowed."),
        (status = 429, description = "`rate_limited`: too many refreshes from this network."),
    ))]
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
#[utoipa::path(post, path = "/logout", tag = "sessions",
    summary = "End the caller's session",
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 204, description = "The session is ended; a refresh cookie sent with the request is cleared.",
        headers(("Set-Cookie" = String, description = "Clears `__Host-refresh` when it was sent.")))))]
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
#[utoipa::path(post, path = "/logout-all", tag = "sessions",
    summary = "End every session of the caller",
    security(("bearer" = []), ("dpop" = [])),
    responses((status = 200, description = "How many sessions ended; a refresh cookie sent with the request is cleared.", body = SessionsEnded,
        headers(("Set-Cookie" = String, description = "Clears `__Host-refresh` when it was sent.")))))]
pub(super) async fn logout_all(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    let n = auth.logout_all(&claims, &client).await?;
    Ok(clearing_cookie(
        &headers,
        Json(SessionsEnded { sessions_ended: n }).into_response(),
    ))
}
