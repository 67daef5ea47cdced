//! # verifier
//!
//! Verifies the access tokens the auth-center issues, and is the wire contract between
//! the auth-center and every downstream service: the [`Claims`], the Redis
//! [`SessionKeys`] layout and the JSON [`ErrorBody`].
//!
//! ```
//! use verifier::{Algorithm, KeySet, TokenValidator};
//! let validator = TokenValidator::new("https://auth.example", ["api"], [Algorithm::EdDSA]);
//! assert!(validator.validate("garbage", &KeySet::default(), 0).is_err());
//! ```

#[cfg(feature = "axum")]
mod axum_glue;
mod claims;
mod clock;
mod error;
#[cfg(feature = "jwks")]
mod jwks;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "redis")]
mod revocation;
mod session_keys;
mod sig_cache;
mod token;
mod verifier;

#[cfg(feature = "axum")]
pub use axum_glue::{
    Authenticated, RETRY_AFTER_SECS, RequireRole, RequireRoleLayer, ResponseFuture, VerifierLayer,
    VerifierService, bearer_token, require_role,
};
pub use claims::{ACCESS_TOKEN_TYP, Audience, Claims};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorBody, VerifyError};
pub use jsonwebtoken::Algorithm;
pub use jsonwebtoken::jwk::JwkSet;
#[cfg(feature = "redis")]
pub use redis_conn::{PushHandler, RedisConnection, RedisFailure, RedisOptions, RedisTarget};
#[cfg(feature = "redis")]
pub use revocation::{DEFAULT_MAX_STALL, RevocationMode};
pub use session_keys::{SessionKeys, is_identifier};
pub use token::{
    DEFAULT_LEEWAY_SECS, KeyError, KeySet, MAX_TOKEN_BYTES, TokenHeader, TokenValidator,
    VerifyingKey, algorithm_name, install_crypto_provider,
};
pub use verifier::{BuildError, Verifier, VerifierBuilder};
