//! Storage adapters: SQL (sqlx) and sessions (Redis, memory). Implements the traits of
//! `domain::ports`; nothing above this module sees sqlx or Redis types.

pub mod rate_limit;
pub mod sessions;
pub mod sql;
