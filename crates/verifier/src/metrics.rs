//! The verifier's metrics, through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`, on by default).
//!
//! **The hook**: the verifier records into whatever `metrics` recorder the embedding
//! process has installed (`metrics::set_global_recorder`, or an exporter's `install`, such
//! as `metrics-exporter-prometheus`) when the verifier is built; with none installed,
//! recording does nothing and costs a branch. The workspace's demo-service and gateway
//! install a Prometheus recorder before they build their verifier and serve it at
//! `/metrics`.
//!
//! The series:
//!
//! | Name | Labels | What it counts |
//! |---|---|---|
//! | `verifier_tokens_total` | `outcome`: `valid`, `invalid`, `expired`, `revoked`, `unavailable`, `dpop_invalid` | tokens verified, by answer |
//! | `verifier_signature_cache_total` | `result`: `hit`, `miss` | signature-cache lookups |
//! | `verifier_session_cache_total` | `result`: `hit`, `miss` | tracked mode's session-cache lookups |
//! | `verifier_invalidations_total` | | invalidation pushes received from Redis |
//! | `verifier_cache_drops_total` | `cause`: `disconnect`, `flush`, `heartbeat`, `staleness` | session-cache entries dropped wholesale (`disconnect`, `flush`, `heartbeat`) or one expired entry found (`staleness`) |
//! | `verifier_redis_requests_total` | | session checks sent to Redis (`PTTL` in tracked mode, `EXISTS` in every-request mode or when the user may not run `PTTL`) |
//! | `verifier_redis_errors_total` | | of those, failed or timed out |
//! | `verifier_revocation_lag_seconds` | | histogram: a deleted session's refusal delay, measured by the revocation self-test (tracked mode) or given to [`record_revocation_lag`] |
//! | `verifier_selftest_errors_total` | | revocation self-test steps that failed (Redis down, an ACL without the self-test's permissions); verification is not affected |
//!
//! Every handle is registered once, when the verifier is built. The hot path (a repeat token:
//! signature-cache hit, session-cache hit or no session check, valid) adds to **one**
//! atomic of the verifier's own instead of three counters; those counts are folded into
//! the three series (`valid`, the two cache hits) by the next verification that takes any
//! other path, and at the latest every second by a background task (with the `redis` or
//! `jwks` feature) or by [`Verifier::flush_metrics`](crate::Verifier::flush_metrics). Other
//! paths count directly. See `docs/benchmarks.md` for what it costs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::metrics::{Counter, Histogram, Unit};

use crate::error::VerifyError;

const TOKENS: &str = "verifier_tokens_total";
const SIGNATURE_CACHE: &str = "verifier_signature_cache_total";
const SESSION_CACHE: &str = "verifier_session_cache_total";
const INVALIDATIONS: &str = "verifier_invalidations_total";
const CACHE_DROPS: &str = "verifier_cache_drops_total";
const REDIS_REQUESTS: &str = "verifier_redis_requests_total";
const REDIS_ERRORS: &str = "verifier_redis_errors_total";
const SELFTEST_ERRORS: &str = "verifier_selftest_errors_total";
/// The name of the revocation-lag histogram.
pub const REVOCATION_LAG: &str = "verifier_revocation_lag_seconds";

/// Records one revocation lag: the time from a session's deletion in Redis to this verifier
/// refusing its token, as measured by a probe (the auth-center's revocation self-test), into
/// the `verifier_revocation_lag_seconds` histogram of the installed recorder.
///
/// ```
/// use std::time::Duration;
/// verifier::metrics::record_revocation_lag(Duration::from_micros(350));
/// ```
pub fn record_revocation_lag(lag: Duration) {
    describe_revocation_lag();
    ::metrics::histogram!(REVOCATION_LAG).record(lag.as_secs_f64());
}

fn describe_revocation_lag() {
    ::metrics::describe_histogram!(
        REVOCATION_LAG,
        Unit::Seconds,
        "Time from a session's deletion to the verifier refusing its token."
    );
}

pub(crate) use crate::drop_cause::DropCause;

/// The verifier's pre-registered handles. (Without `redis`, the session-check series stay
/// at zero.)
#[derive(Debug)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct VerifierMetrics {
    /// By outcome: valid, invalid, expired, revoked, unavailable, dpop_invalid (the indexes
    /// of [`failed`](Self::failed)).
    tokens: [Counter; 6],
    sig_hit: Counter,
    sig_miss: Counter,
    session_hit: Counter,
    session_miss: Counter,
    invalidations: Counter,
    /// By [`DropCause`], in its order.
    drops: [Counter; 5],
    redis_requests: Counter,
    redis_errors: Counter,
    /// The revocation self-test's measurements.
    revocation_lag: Histogram,
    selftest_errors: Counter,
    /// Hot-path verifications not yet folded in: signature and session cache hits, valid.
    fast_checked: AtomicU64,
    /// The same without a session check (revocation off): signature-cache hit, valid.
    fast_unchecked: AtomicU64,
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl VerifierMetrics {
    /// Registers every series in the facade's current recorder.
    pub(crate) fn register() -> Self {
        ::metrics::describe_counter!(TOKENS, "Tokens verified, by outcome.");
        ::metrics::describe_counter!(SIGNATURE_CACHE, "Signature-cache lookups, by result.");
        ::metrics::describe_counter!(SESSION_CACHE, "Session-cache lookups, by result.");
        ::metrics::describe_counter!(INVALIDATIONS, "Invalidation pushes received from Redis.");
        ::metrics::describe_counter!(CACHE_DROPS, "Session-cache drops, by cause.");
        ::metrics::describe_counter!(REDIS_REQUESTS, "Session checks sent to Redis.");
        ::metrics::describe_counter!(REDIS_ERRORS, "Session checks that failed or timed out.");
        ::metrics::describe_counter!(
            SELFTEST_ERRORS,
            "Revocation self-test steps that failed (verification is not affected)."
        );
        describe_revocation_lag();
        Self {
            tokens: [
                "valid",
                "invalid",
                "expired",
                "revoked",
                "unavailable",
                "dpop_invalid",
            ]
            .map(|outcome| ::metrics::counter!(TOKENS, "outcome" => outcome)),
            sig_hit: ::metrics::counter!(SIGNATURE_CACHE, "result" => "hit"),
            sig_miss: ::metrics::counter!(SIGNATURE_CACHE, "result" => "miss"),
            session_hit: ::metrics::counter!(SESSION_CACHE, "result" => "hit"),
            session_miss: ::metrics::counter!(SESSION_CACHE, "result" => "miss"),
            invalidations: ::metrics::counter!(INVALIDATIONS),
            drops: ["disconnect", "flush", "heartbeat", "staleness", "replaced"]
                .map(|cause| ::metrics::counter!(CACHE_DROPS, "cause" => cause)),
            redis_requests: ::metrics::counter!(REDIS_REQUESTS),
            redis_errors: ::metrics::counter!(REDIS_ERRORS),
            revocation_lag: ::metrics::histogram!(REVOCATION_LAG),
            selftest_errors: ::metrics::counter!(SELFTEST_ERRORS),
            fast_checked: AtomicU64::new(0),
            fast_unchecked: AtomicU64::new(0),
        }
    }

    /// A valid token, its signature from the cache or not, its session from tracked mode's
    /// cache (`Some(true)`), from Redis (`Some(false)`) or not checked there (`None`). The
    /// hot path (both from the caches, or the signature with no session check) is one
    /// atomic add.
    #[inline]
    pub(crate) fn valid(&self, signature_cached: bool, session_cached: Option<bool>) {
        if signature_cached {
            match session_cached {
                Some(true) => {
                    self.fast_checked.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                None => {
                    self.fast_unchecked.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(false) => {}
            }
        }
        self.count(signature_cached, session_cached, 0);
    }

    /// A refused token (`error`), the caches as in [`valid`](Self::valid).
    pub(crate) fn failed(
        &self,
        signature_cached: bool,
        session_cached: Option<bool>,
        error: &VerifyError,
    ) {
        let outcome = match error {
            VerifyError::Invalid(_) => 1,
            VerifyError::Expired => 2,
            VerifyError::Revoked => 3,
            VerifyError::Unavailable(_) => 4,
            VerifyError::InvalidDpopProof(_) | VerifyError::DpopBinding(_) => 5,
        };
        self.count(signature_cached, session_cached, outcome);
    }

    /// Off the hot path: folds the hot path's counts in, then counts this verification.
    fn count(&self, signature_cached: bool, session_cached: Option<bool>, outcome: usize) {
        self.flush();
        self.tokens[outcome].increment(1);
        if signature_cached {
            &self.sig_hit
        } else {
            &self.sig_miss
        }
        .increment(1);
        match session_cached {
            Some(true) => self.session_hit.increment(1),
            Some(false) => self.session_miss.increment(1),
            None => {}
        }
    }

    /// Folds the hot path's counts into their series.
    pub(crate) fn flush(&self) {
        for (fast, checked) in [(&self.fast_checked, true), (&self.fast_unchecked, false)] {
            if fast.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let n = fast.swap(0, Ordering::Relaxed);
            self.tokens[0].increment(n);
            self.sig_hit.increment(n);
            if checked {
                self.session_hit.increment(n);
            }
        }
    }

    pub(crate) fn invalidation(&self) {
        self.invalidations.increment(1);
    }

    pub(crate) fn cache_drop(&self, cause: DropCause) {
        let i = match cause {
            DropCause::Disconnect => 0,
            DropCause::Flush => 1,
            DropCause::Heartbeat => 2,
            DropCause::Staleness => 3,
            DropCause::Replaced => 4,
        };
        self.drops[i].increment(1);
    }

    pub(crate) fn redis_request(&self, failed: bool) {
        self.redis_requests.increment(1);
        if failed {
            self.redis_errors.increment(1);
        }
    }

    /// The revocation self-test measured `lag`.
    pub(crate) fn revocation_lag(&self, lag: Duration) {
        self.revocation_lag.record(lag.as_secs_f64());
    }

    /// A step of the revocation self-test failed.
    pub(crate) fn selftest_error(&self) {
        self.selftest_errors.increment(1);
    }
}
