//! The one place where errors become HTTP responses: `{"error", "message"}` always.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use verifier::{ErrorBody, RETRY_AFTER_SECS, VerifyError};

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
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = match self {
            ApiError::Http(status, code, message) => return error_response(status, code, &message),
            ApiError::Domain(e) => e,
        };
        let (status, code, message): (StatusCode, &str, String) = match &e {
            AuthError::InvalidInput(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.clone()),
            AuthError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                e.to_string(),
            ),
            AuthError::UsernameTaken => (StatusCode::CONFLICT, "username_taken", e.to_string()),
            AuthError::RegistrationDisabled => (
                StatusCode::FORBIDDEN,
                "registration_disabled",
                e.to_string(),
            ),
            // One mapping for token errors, shared with every downstream service.
            AuthError::Token(v) => return v.clone().into_response(),
            AuthError::InvalidRefreshToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                e.to_string(),
            ),
            AuthError::RefreshTokenReused => (
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                e.to_string(),
            ),
            AuthError::SessionNotFound => (StatusCode::NOT_FOUND, "not_found", e.to_string()),
            AuthError::Unavailable(detail) => {
                tracing::warn!(%detail, "backend unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a backend is unavailable, retry shortly".into(),
                )
            }
            AuthError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error".into(),
                )
            }
        };
        let mut response = error_response(status, code, &message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}
