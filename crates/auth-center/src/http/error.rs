//! The one place where errors become HTTP responses: `{"error", "message"}` always.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use verifier::contract::RETRY_AFTER_SECS;
use verifier::{ErrorBody, VerifyError};

use crate::domain::AuthError;

/// An error on its way to the client.
#[derive(Debug)]
pub enum ApiError {
    /// A domain error.
    Domain(AuthError),
    /// A transport-level problem (bad body, unknown route...): status, code, message.
    Http(StatusCode, &'static str, String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Domain(e)
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        ApiError::Domain(AuthError::Token(e))
    }
}

impl ApiError {
    /// A transport-level error.
    pub fn http(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Http(status, code, message.into())
    }
}

/// Builds the JSON error response.
pub(super) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = match self {
            ApiError::Http(status, code, message) => return error_response(status, code, &message),
            ApiError::Domain(e) => e,
        };
        let message = e.to_string();
        let (status, code) = match &e {
            AuthError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            AuthError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AuthError::UsernameTaken => (StatusCode::CONFLICT, "username_taken"),
            AuthError::RegistrationDisabled => (StatusCode::FORBIDDEN, "registration_disabled"),
            // One mapping for token errors, shared with every downstream service.
            AuthError::Token(v) => return v.clone().into_response(),
            AuthError::InvalidRefreshToken => (StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
            AuthError::RefreshTokenReused => (StatusCode::UNAUTHORIZED, "refresh_token_reused"),
            AuthError::SessionNotFound | AuthError::UserNotFound => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AuthError::CsrfRejected(_) => (StatusCode::FORBIDDEN, "csrf_rejected"),
            AuthError::RateLimited {
                retry_after_secs, ..
            } => {
                let mut response =
                    error_response(StatusCode::TOO_MANY_REQUESTS, "rate_limited", &message);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                return response;
            }
            AuthError::Overloaded => {
                let mut response =
                    error_response(StatusCode::SERVICE_UNAVAILABLE, "overloaded", &message);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                return response;
            }
            AuthError::Unavailable(detail) => {
                tracing::warn!(%detail, "backend unavailable");
                let mut response = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a backend is unavailable, retry shortly",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                return response;
            }
            AuthError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error",
                );
            }
        };
        error_response(status, code, &message)
    }
}
