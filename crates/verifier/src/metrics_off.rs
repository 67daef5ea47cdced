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
    pub(crate) fn valid(&self, _: bool, _: Option<bool>) {}
    pub(crate) fn failed(&self, _: bool, _: Option<bool>, _: &VerifyError) {}
    pub(crate) fn flush(&self) {}
    pub(crate) fn invalidation(&self) {}
    pub(crate) fn cache_drop(&self, _: DropCause) {}
    pub(crate) fn redis_request(&self, _: bool) {}
    pub(crate) fn revocation_lag(&self, _: std::time::Duration) {}
    pub(crate) fn selftest_error(&self) {}
}
