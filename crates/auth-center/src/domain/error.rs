//! Domain errors. `http::error` maps each to a status and a stable code.
//!
//! A failure's cause travels as a typed `source()`, never formatted into a message: a
//! [`StoreError`] holds the driver's error, and [`AuthError::Unavailable`] and
//! [`AuthError::Internal`] hold theirs. A log line shows the whole chain ([`Chain`]); a client
//! sees only the fixed message of the outcome.

use std::error::Error;
use std::fmt;

use verifier::VerifyError;
use verifier::dpop::DpopError;

/// The cause of a failure: any error, kept whole for the log.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

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
    /// The session had been rotated `refresh.max_rotations` times: it was ended, and the
    /// user must log in again.
    #[error("the session reached its refresh limit and was ended; log in again")]
    RefreshLimitReached,
    /// The refresh came from another network or user agent than the session's last use,
    /// under a `revoke` policy: the session was ended.
    #[error("the refresh came from another network or user agent; the session was revoked")]
    RefreshContextChanged,
    /// A DPoP proof at login or refresh was invalid, or a refresh of a session bound to a
    /// DPoP key came without one (RFC 9449 §5: `invalid_dpop_proof`). Nothing changed.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(#[source] DpopError),
    /// A genuine refresh token of a session bound to a DPoP key came with a proof from
    /// another key: the token was stolen, and the session was revoked.
    #[error("the DPoP proof is not from the key this session is bound to; the session was revoked")]
    DpopKeyMismatch,
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
    /// Client authentication failed: no or unknown client, a wrong secret, a bad assertion,
    /// a disabled client. One error for all (RFC 6749 §5.2 `invalid_client`).
    #[error("client authentication failed")]
    InvalidClient,
    /// The authenticated client may not do this (RFC 6749 §5.2 `unauthorized_client`).
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    /// A requested scope is unknown or more than the client may receive (`invalid_scope`).
    #[error("{0}")]
    InvalidScope(String),
    /// No such registered client.
    #[error("client not found")]
    ClientNotFound,
    /// A client with this id exists already.
    #[error("client_id is taken")]
    ClientIdTaken,
    /// Every password-hashing slot and its queued place stayed taken for the whole queue
    /// wait: the request was
    /// refused before any password work, and may be retried shortly.
    #[error("too many password checks at once, retry shortly")]
    Overloaded,
    /// Redis or the database is unreachable, or the request could not be finished now; the
    /// source says why.
    #[error("backend unavailable")]
    Unavailable(#[source] Cause),
    /// A bug or an unexpected state; the source says what failed.
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl AuthError {
    /// [`AuthError::Internal`]: `what` went wrong, with no further cause.
    pub fn internal(what: &'static str) -> Self {
        AuthError::Internal(Box::new(Failure::new(what)))
    }

    /// [`AuthError::Internal`]: `what` failed because of `cause`.
    pub fn internal_because(what: &'static str, cause: impl Into<Cause>) -> Self {
        AuthError::Internal(Box::new(Failure::because(what, cause)))
    }

    /// [`AuthError::Unavailable`]: `what` could not be done now.
    pub fn unavailable(what: &'static str) -> Self {
        AuthError::Unavailable(Box::new(Failure::new(what)))
    }
}

/// What failed, with the error that made it fail as its source: a link of a cause chain that
/// names the operation, instead of a message with the cause formatted into it.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct Failure {
    what: &'static str,
    #[source]
    cause: Option<Cause>,
}

impl Failure {
    /// `what` went wrong, with no further cause.
    pub fn new(what: &'static str) -> Self {
        Self { what, cause: None }
    }

    /// `what` failed because of `cause`.
    pub fn because(what: &'static str, cause: impl Into<Cause>) -> Self {
        Self {
            what,
            cause: Some(cause.into()),
        }
    }
}

/// Failures of a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or timed out.
    #[error("the store did not answer")]
    Unavailable(#[source] Cause),
    /// A uniqueness constraint refused the write.
    #[error("unique constraint on {0} violated")]
    Conflict(Unique),
    /// Anything else: a refused statement, a script error, a malformed reply.
    #[error("the store failed")]
    Other(#[source] Cause),
}

impl StoreError {
    /// [`StoreError::Unavailable`]: `what` could not be done now.
    pub fn unavailable(what: &'static str) -> Self {
        StoreError::Unavailable(Box::new(Failure::new(what)))
    }

    /// [`StoreError::Other`]: `what` went wrong, with no further cause.
    pub fn other(what: &'static str) -> Self {
        StoreError::Other(Box::new(Failure::new(what)))
    }

    /// [`StoreError::Other`]: `what` failed because of `cause`.
    pub fn other_because(what: &'static str, cause: impl Into<Cause>) -> Self {
        StoreError::Other(Box::new(Failure::because(what, cause)))
    }
}

/// The uniqueness rules of the schema that the domain tells apart. `storage::sql` maps a
/// database's unique violation to one of these, by constraint name (or, where the database
/// names no constraint, by table and column), in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    /// `users.username`: the canonical username is taken.
    Username,
    /// `users.username_skeleton`: a look-alike of the username is taken (UTS #39).
    UsernameSkeleton,
    /// `signing_keys.scheduled_after`: another instance already scheduled the successor of
    /// this key.
    KeySuccessor,
    /// `clients.id`: the client id is taken.
    ClientId,
}

impl fmt::Display for Unique {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unique::Username => "users.username",
            Unique::UsernameSkeleton => "users.username_skeleton",
            Unique::KeySuccessor => "signing_keys.scheduled_after",
            Unique::ClientId => "clients.id",
        })
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(Unique::Username | Unique::UsernameSkeleton) => {
                AuthError::UsernameTaken
            }
            StoreError::Conflict(Unique::ClientId) => AuthError::ClientIdTaken,
            StoreError::Unavailable(_) => AuthError::Unavailable(Box::new(e)),
            StoreError::Conflict(Unique::KeySuccessor) | StoreError::Other(_) => {
                AuthError::Internal(Box::new(e))
            }
        }
    }
}

/// An error with its whole cause chain, for the log: `error: cause: cause of the cause`. A
/// cause whose text the link before it already shows (some drivers print their source in
/// their own message) is not repeated.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !shown.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            next = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")
    }

    #[test]
    fn a_store_outage_keeps_its_cause_as_the_source_chain() {
        let e = AuthError::from(StoreError::Unavailable(Box::new(refused())));
        assert!(matches!(e, AuthError::Unavailable(_)));
        assert_eq!(
            e.to_string(),
            "backend unavailable",
            "no cause in the message"
        );
        assert_eq!(
            Chain(&e).to_string(),
            "backend unavailable: the store did not answer: connection refused"
        );
        let io = std::iter::successors(Some(&e as &(dyn Error + 'static)), |e| (*e).source())
            .find_map(|e| e.downcast_ref::<std::io::Error>())
            .expect("the io::Error is in the chain, typed");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn only_the_username_constraints_mean_the_username_is_taken() {
        for unique in [Unique::Username, Unique::UsernameSkeleton] {
            let e = AuthError::from(StoreError::Conflict(unique));
            assert!(matches!(e, AuthError::UsernameTaken), "{unique}: {e:?}");
        }
        let e = AuthError::from(StoreError::Conflict(Unique::KeySuccessor));
        assert!(matches!(e, AuthError::Internal(_)), "{e:?}");
        assert_eq!(
            Chain(&e).to_string(),
            "internal error: unique constraint on signing_keys.scheduled_after violated"
        );
        let e = AuthError::from(StoreError::Other("lock poisoned".into()));
        assert_eq!(
            Chain(&e).to_string(),
            "internal error: the store failed: lock poisoned"
        );
    }

    #[test]
    fn a_failure_names_the_operation_and_keeps_its_cause() {
        let e = AuthError::internal_because("start a hashing thread", refused());
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(
            Chain(&e).to_string(),
            "internal error: start a hashing thread: connection refused"
        );
        assert_eq!(
            Chain(&AuthError::internal("no key signs now")).to_string(),
            "internal error: no key signs now"
        );
    }

    #[test]
    fn a_cause_that_the_message_before_already_shows_is_not_repeated() {
        /// Like the database error of sqlx: prints its source in its own message too.
        #[derive(Debug, thiserror::Error)]
        #[error("error returned from database: {0}")]
        struct Echoing(#[source] std::io::Error);
        let e = StoreError::Other(Box::new(Echoing(refused())));
        assert_eq!(
            Chain(&e).to_string(),
            "the store failed: error returned from database: connection refused"
        );
    }
}
