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

mod claims;
mod clock;
mod error;
#[cfg(feature = "redis")]
mod redis_conn;
mod session_keys;
mod token;

pub use claims::{ACCESS_TOKEN_TYP, Audience, Claims};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorBody, VerifyError};
pub use jsonwebtoken::Algorithm;
pub use jsonwebtoken::jwk::JwkSet;
#[cfg(feature = "redis")]
pub use redis_conn::{RedisConnection, RedisOptions, RedisTarget};
pub use session_keys::{SessionKeys, is_identifier};
pub use token::{
    DEFAULT_LEEWAY_SECS, KeyError, KeySet, MAX_TOKEN_BYTES, TokenHeader, TokenValidator,
    VerifyingKey, algorithm_name, install_crypto_provider,
};
