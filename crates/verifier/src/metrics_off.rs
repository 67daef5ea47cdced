//! Without the `metrics` feature: the same calls, recording nothing.

use crate::error::VerifyError;

pub(crate) use crate::drop_cause::DropCause;

/// No handles: every call does nothing.
#[derive(Debug)]
pub(crate) struct VerifierMetrics;

#[allow(clippy::unused_self)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl VerifierMetrics {
    pub(crate) fn register() -> Self {
        Self
    }
    #[inline]
    pub(crate) fn token<T>(&self, _: &Result<T, VerifyError>) {}
    #[inline]
    pub(crate) fn signature_cache(&self, _: bool) {}
    #[inline]
    pub(crate) fn session_cache(&self, _: bool) {}
    pub(crate) fn invalidation(&self) {}
    pub(crate) fn cache_drop(&self, _: DropCause) {}
    pub(crate) fn redis_request(&self, _: bool) {}
}
