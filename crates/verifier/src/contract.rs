//! The auth-center's side of the wire contract (feature `contract`, off by default).
//!
//! A downstream service needs none of this: it builds a [`Verifier`](crate::Verifier) and uses
//! the layer and extractors. The auth-center, its load generator and the workspace's tests
//! share these pieces with the verifier so that both sides agree byte for byte:
//!
//! * the token validation itself ([`TokenValidator`], [`TokenHeader`], [`MAX_TOKEN_BYTES`],
//!   [`ACCESS_TOKEN_TYP`]) and the crypto provider it needs
//!   ([`install_crypto_provider`]);
//! * the JOSE header hygiene shared by every JWT the auth-center reads, its client
//!   assertions too ([`JoseHeader`], [`JoseError`], [`compact_jws`]);
//! * the Redis key layout of session records ([`SessionKeys`], [`is_identifier`]) and of
//!   the revocation self-test ([`SelftestKeys`], [`SELFTEST_SUBJECT`]);
//! * the one Redis connection type for standalone servers, clusters and Sentinel
//!   ([`RedisConnection`], [`SentinelConnection`], [`RedisOptions`], [`PushHandler`]) and the classification of its
//!   errors ([`RedisFailure`], and [`refused_for_good`] for TLS and credential mistakes)
//!   (feature `redis`);
//! * the `Retry-After` of a `503` ([`RETRY_AFTER_SECS`]) (feature `axum`);
//! * a clock that only moves when told to ([`ManualClock`]), for tests.
//!
//! ```
//! use verifier::contract::{SessionKeys, TokenValidator};
//! use verifier::{Algorithm, KeySet};
//! let validator = TokenValidator::new("https://auth.example", ["api"], [Algorithm::EdDSA]);
//! assert!(validator.validate("garbage", &KeySet::default(), 0).is_err());
//! assert_eq!(SessionKeys::new("auth").session("u1", "s1").as_deref(), Some("auth:s:{u1}:s1"));
//! ```

pub use crate::claims::ACCESS_TOKEN_TYP;
pub use crate::clock::ManualClock;
#[cfg(feature = "axum")]
pub use crate::error::RETRY_AFTER_SECS;
pub use crate::keys::install_crypto_provider;
#[cfg(feature = "redis")]
pub use crate::redis_access::refused_for_good;
#[cfg(feature = "redis")]
pub use crate::redis_conn::{
    PushHandler, RedisConnection, RedisFailure, RedisOptions, SentinelConnection,
};
pub use crate::session_keys::{SELFTEST_SUBJECT, SelftestKeys, SessionKeys, is_identifier};
pub use crate::token::{
    JoseError, JoseHeader, MAX_TOKEN_BYTES, TokenHeader, TokenValidator, compact_jws,
};
