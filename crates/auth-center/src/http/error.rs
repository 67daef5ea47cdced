//! The one place where errors become HTTP responses: `{"error", "message"}` always.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use verifier::contract::RETRY_AFTER_SECS;
use verifier::{ErrorBody, VerifyError};

use crate::domain::AuthError;
use crate::domain::error::Chain;

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

    /// A cookie-mode request that fails the CSRF check (see `cookie::check_csrf`): `403
    /// csrf_rejected` with the rule it broke.
    pub(super) fn csrf_rejected(rule: &'static str) -> Self {
        ApiError::http(StatusCode::FORBIDDEN, "csrf_rejected", rule)
    }
}

/// Logs the cause chain of an outage or an internal error (the client sees neither).
pub(super) fn log_cause(e: &AuthError) {
    match e {
        AuthError::Unavailable(_) => tracing::warn!(error = %Chain(e), "backend unavailable"),
        AuthError::Internal(_) => tracing::error!(error = %Chain(e), "internal error"),
        _ => {}
    }
}

/// The challenge of a failed client authentication (RFC 6749 §5.2, RFC 7617).
pub(super) fn basic_challenge() -> HeaderValue {
    HeaderValue::from_static(r#"Basic realm="auth-center", charset="UTF-8""#)
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
            AuthError::RefreshLimitReached => (StatusCode::UNAUTHORIZED, "refresh_limit_reached"),
            AuthError::RefreshContextChanged => {
                (StatusCode::UNAUTHORIZED, "refresh_context_changed")
            }
            // RFC 9449 §5: a token-endpoint error (RFC 6749 §5.2), so 400.
            AuthError::InvalidDpopProof(_) | AuthError::DpopKeyMismatch => {
                (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
            }
            AuthError::SessionNotFound | AuthError::UserNotFound => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AuthError::InvalidClient => {
                let mut response =
                    error_response(StatusCode::UNAUTHORIZED, "invalid_client", &message);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, basic_challenge());
                return response;
            }
            AuthError::UnauthorizedClient(_) => (StatusCode::FORBIDDEN, "unauthorized_client"),
            AuthError::InvalidScope(_) => (StatusCode::BAD_REQUEST, "invalid_scope"),
            AuthError::ClientNotFound => (StatusCode::NOT_FOUND, "not_found"),
            AuthError::ClientIdTaken => (StatusCode::CONFLICT, "client_id_taken"),
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
            // The cause chain goes to the log only; the client gets a fixed message.
            AuthError::Unavailable(_) => {
                log_cause(&e);
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
            AuthError::Internal(_) => {
                log_cause(&e);
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

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::domain::StoreError;

    /// Log output captured while `f` runs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    async fn answer_and_log(e: AuthError) -> (StatusCode, serde_json::Value, String) {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let response =
            tracing::subscriber::with_default(subscriber, || ApiError::from(e).into_response());
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        (status, serde_json::from_slice(&body).unwrap(), logs)
    }

    /// A cause with things a client must never see: a password, an address, a file path.
    const CAUSE: &str = "connect to redis://:hunter2@10.0.0.7:6379 refused; see /var/lib/auth";

    #[tokio::test]
    async fn an_outage_answers_a_fixed_body_and_logs_the_whole_cause_chain() {
        let cause = io::Error::new(io::ErrorKind::ConnectionRefused, CAUSE);
        let e = AuthError::from(StoreError::Unavailable(Box::new(cause)));
        let (status, body, logs) = answer_and_log(e).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            serde_json::json!({
                "error": "unavailable",
                "message": "a backend is unavailable, retry shortly",
            })
        );
        assert!(
            logs.contains(&format!(
                "backend unavailable: the store did not answer: {CAUSE}"
            )),
            "{logs}"
        );
    }

    #[tokio::test]
    async fn an_internal_error_answers_a_fixed_body_and_logs_the_whole_cause_chain() {
        let cause = io::Error::other(CAUSE);
        let e = AuthError::internal_because("start a hashing thread", cause);
        let (status, body, logs) = answer_and_log(e).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            serde_json::json!({ "error": "internal_error", "message": "internal error" })
        );
        assert!(
            logs.contains(&format!("internal error: start a hashing thread: {CAUSE}")),
            "{logs}"
        );
    }
}
