//! Injected time, so tests can expire tokens and sessions without sleeping.

// The one place that reads the wall clock (see `disallowed-methods` in clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in milliseconds since the Unix epoch.
///
/// Everything that compares against an expiry takes its time from a `Clock`
/// instead of calling [`SystemTime::now`] itself.
///
/// ```
/// use verifier::{Clock, SystemClock};
/// let now = SystemClock.now_millis();
/// assert!(now > 1_700_000_000_000);
/// ```
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    /// Whole seconds since the Unix epoch (JWT `NumericDate`). An override must agree with
    /// `now_millis` (`now_millis().div_euclid(1000)`): the verifier's fast path derives the
    /// seconds from the milliseconds it already read.
    fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

/// The real wall clock.
///
/// ```
/// use verifier::{Clock, SystemClock};
/// assert_eq!(SystemClock.now_secs(), SystemClock.now_millis() / 1000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
///
/// ```
/// use verifier::Clock;
/// use verifier::contract::ManualClock;
/// use std::time::Duration;
/// let clock = ManualClock::starting_now();
/// let before = clock.now_millis();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now_millis(), before + 60_000);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A manual clock set to the current wall-clock time.
    ///
    /// ```
    /// use verifier::{Clock, SystemClock};
    /// use verifier::contract::ManualClock;
    /// let clock = ManualClock::starting_now();
    /// assert!(clock.now_millis() <= SystemClock.now_millis());
    /// ```
    pub fn starting_now() -> Self {
        Self(Arc::new(AtomicI64::new(SystemClock.now_millis())))
    }

    /// Moves the clock forward.
    ///
    /// ```
    /// use verifier::Clock;
    /// let clock = verifier::contract::ManualClock::starting_now();
    /// let before = clock.now_secs();
    /// clock.advance(std::time::Duration::from_secs(15 * 60));
    /// assert_eq!(clock.now_secs(), before + 900);
    /// ```
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
