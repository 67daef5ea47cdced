//! Domain errors. `http::error` maps each to a status and a stable code.

use verifier::VerifyError;

/// Everything an auth operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Bad input; the message names the field and the rule.
    #[error("{0}")]
    InvalidInput(String),
    /// Unknown user, wrong password or disabled account: one error for all three.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Registration with a username that is taken.
    #[error("username is not available")]
    UsernameTaken,
    /// Registration is switched off.
    #[error("registration is disabled")]
    RegistrationDisabled,
    /// An access token was not accepted.
    #[error(transparent)]
    Token(#[from] VerifyError),
    /// A refresh token was malformed, unknown, expired or its session ended.
    #[error("refresh token is invalid")]
    InvalidRefreshToken,
    /// A refresh token was used again after rotation: the session was revoked.
    #[error("refresh token reuse detected; the session was revoked")]
    RefreshTokenReused,
    /// No such session for this user.
    #[error("session not found")]
    SessionNotFound,
    /// Too many attempts; retry after this many seconds.
    #[error("too many attempts, retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the window resets.
        retry_after_secs: u64,
        /// The rule that refused (see [`super::limits::Rule`]).
        rule: super::limits::Rule,
        /// Whether this refusal is worth an audit event: the first of its rule, key and
        /// window.
        audit: bool,
    },
    /// The caller lacks a role this operation needs.
    #[error("this operation needs the {0} role")]
    Forbidden(&'static str),
    /// No such user.
    #[error("user not found")]
    UserNotFound,
    /// Cross-site request refused (cookie mode).
    #[error("{0}")]
    CsrfRejected(&'static str),
    /// Every password-hashing slot stayed busy for the whole queue wait: the request was
    /// refused before any password work, and may be retried shortly.
    #[error("too many password checks at once, retry shortly")]
    Overloaded,
    /// Redis or the database is unreachable.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Failures of a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or timed out.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness constraint was hit.
    #[error("conflict")]
    Conflict,
    /// Anything else.
    #[error("storage error: {0}")]
    Other(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => AuthError::Unavailable(m),
            StoreError::Conflict => AuthError::UsernameTaken,
            StoreError::Other(m) => AuthError::Internal(m),
        }
    }
}
