//! Storage adapters: SQL (sqlx) and sessions (Redis, memory). Implements the traits of
//! `domain::ports`; nothing above this module sees sqlx or Redis types.

pub mod metered;
pub mod rate_limit;
pub mod selftest;
pub mod sessions;
pub mod sql;

use verifier::contract::RedisFailure;

use crate::domain::error::StoreError;

/// A failed Redis call as a store error, by the verifier's [`RedisFailure`] (shared with every
/// Redis caller): `Unavailable` (503 with `Retry-After`) for connection and cluster-topology
/// failures, `Other` (500) for logic errors such as a script bug.
pub(crate) fn redis_error(e: redis::RedisError) -> StoreError {
    match RedisFailure::of(&e) {
        RedisFailure::Unavailable => StoreError::Unavailable(Box::new(e)),
        RedisFailure::Fault => StoreError::Other(Box::new(e)),
    }
}
