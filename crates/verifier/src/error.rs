//! Verification errors and the JSON error body every service answers with.

use serde::{Deserialize, Serialize};

use crate::dpop::DpopError;

/// Why a token was not accepted. Callers act on the kind: `Invalid`, `Expired`, `Revoked`,
/// `InvalidDpopProof` and `DpopBinding` mean 401; `Unavailable` means 503 (the session
/// could not be checked).
///
/// ```
/// use verifier::VerifyError;
/// assert_eq!(VerifyError::Revoked.code(), "session_revoked");
/// assert!(VerifyError::Unavailable("redis down".into()).is_unavailable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Malformed, forged, wrongly signed or otherwise unacceptable token.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The token's session no longer exists (logout, revocation, expiry).
    #[error("session revoked")]
    Revoked,
    /// The session store could not be asked; fail closed.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The token came with the DPoP scheme and its proof is missing or invalid (RFC 9449
    /// §7.1: `invalid_dpop_proof`).
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(DpopError),
    /// The token does not fit how it was presented (RFC 9449 §7.1-7.2): a DPoP-bound token
    /// as a bearer token, a token that is not bound with the DPoP scheme, a proof from
    /// another key, or DPoP at a verifier not set up for it. `invalid_token`.
    #[error("DPoP binding: {0}")]
    DpopBinding(&'static str),
}

impl VerifyError {
    /// The stable error code used in the JSON body.
    ///
    /// ```
    /// assert_eq!(verifier::VerifyError::Expired.code(), "token_expired");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Invalid(_) => "invalid_token",
            VerifyError::Expired => "token_expired",
            VerifyError::Revoked => "session_revoked",
            VerifyError::Unavailable(_) => "unavailable",
            VerifyError::InvalidDpopProof(_) => "invalid_dpop_proof",
            VerifyError::DpopBinding(_) => "invalid_token",
        }
    }

    /// A message safe to show to the caller (no internals).
    ///
    /// ```
    /// let e = verifier::VerifyError::Invalid("bad signature");
    /// assert_eq!(e.public_message(), "the access token is invalid"); // the reason stays in logs
    /// ```
    pub fn public_message(&self) -> &'static str {
        match self {
            VerifyError::Invalid(_) => "the access token is invalid",
            VerifyError::Expired => "the access token has expired",
            VerifyError::Revoked => "the session has ended",
            VerifyError::Unavailable(_) => "the session store is unavailable, retry shortly",
            VerifyError::InvalidDpopProof(_) => "the DPoP proof is invalid",
            VerifyError::DpopBinding(_) => {
                "the access token does not fit the DPoP proof it came with, or lacks one"
            }
        }
    }

    /// Whether this is the fail-closed outage case (503, not 401).
    ///
    /// ```
    /// use verifier::VerifyError;
    /// assert!(VerifyError::Unavailable("timeout".into()).is_unavailable());
    /// assert!(!VerifyError::Revoked.is_unavailable());
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VerifyError::Unavailable(_))
    }
}

/// The JSON body of every error response: `{"error": "<stable_code>", "message": "..."}`.
///
/// ```
/// use verifier::ErrorBody;
/// let body = ErrorBody::new("invalid_token", "the access token is invalid");
/// assert_eq!(serde_json::to_string(&body).unwrap(),
///            r#"{"error":"invalid_token","message":"the access token is invalid"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub error: String,
    /// Human-readable text.
    pub message: String,
}

impl ErrorBody {
    /// A body with the given code and message.
    ///
    /// ```
    /// let body = verifier::ErrorBody::new("insufficient_role", "this route needs a role");
    /// assert_eq!(body.error, "insufficient_role");
    /// ```
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
        }
    }
}

impl From<&VerifyError> for ErrorBody {
    fn from(e: &VerifyError) -> Self {
        ErrorBody::new(e.code(), e.public_message())
    }
}

/// Seconds a client is told to wait after a `503`.
///
/// ```
/// assert_eq!(verifier::contract::RETRY_AFTER_SECS, 1);
/// ```
#[cfg(feature = "axum")]
#[cfg_attr(not(feature = "contract"), allow(unreachable_pub))]
pub const RETRY_AFTER_SECS: u64 = 1;

#[cfg(feature = "axum")]
impl ErrorBody {
    /// This body as a JSON response with `status`.
    pub(crate) fn into_response_with(
        self,
        status: http::StatusCode,
    ) -> axum_core::response::Response {
        use axum_core::response::IntoResponse as _;
        use http::{HeaderValue, header};
        // Two strings always serialise; the fallback is never used.
        let json = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response()
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for VerifyError {
    /// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750), or, for the DPoP
    /// errors, `DPoP error="invalid_dpop_proof"` or `DPoP error="invalid_token"` with the
    /// accepted `algs` (RFC 9449 §7.1); 503 with `Retry-After` when the session store could
    /// not be asked; the common JSON body.
    ///
    /// ```
    /// use axum::response::IntoResponse as _;
    /// use verifier::{VerifyError, dpop::DpopError};
    /// let response = VerifyError::InvalidDpopProof(DpopError::Stale).into_response();
    /// assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
    /// let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    /// assert_eq!(challenge, r#"DPoP error="invalid_dpop_proof", algs="ES256 EdDSA PS256 RS256""#);
    /// ```
    fn into_response(self) -> axum_core::response::Response {
        use http::{HeaderValue, StatusCode, header};
        let body = ErrorBody::from(&self);
        if self.is_unavailable() {
            tracing::warn!(error = %self, "session check unavailable; failing closed");
            let mut response = body.into_response_with(StatusCode::SERVICE_UNAVAILABLE);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            return response;
        }
        let challenge = match &self {
            VerifyError::InvalidDpopProof(_) | VerifyError::DpopBinding(_) => {
                HeaderValue::from_str(&format!(
                    r#"DPoP error="{}", algs="{}""#,
                    self.code(),
                    crate::dpop::supported_alg_names()
                ))
                .unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
            }
            _ => HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        };
        let mut response = body.into_response_with(StatusCode::UNAUTHORIZED);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
        response
    }
}
