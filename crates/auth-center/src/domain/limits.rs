//! Brute-force protection: login attempts per client IP, failed logins per account and
//! IP, failed logins per account overall; registrations and refreshes per IP. Counters
//! live in the shared store, so several instances enforce one limit.

use std::sync::Arc;

use verifier::Clock;

use super::error::AuthError;
use super::ports::{RateDecision, RateLimitStore};
use crate::config::LimitsConfig;

/// Applies [`LimitsConfig`] to a [`RateLimitStore`].
pub struct Limiter {
    store: Arc<dyn RateLimitStore>,
    config: LimitsConfig,
    clock: Arc<dyn Clock>,
}

fn window_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000))
        .unwrap_or(i64::MAX)
        .max(1)
}

fn limited(decision: RateDecision) -> AuthError {
    let secs = (decision.reset_in_ms.max(0) + 999) / 1000;
    AuthError::RateLimited {
        retry_after_secs: u64::try_from(secs.max(1)).unwrap_or(1),
    }
}

impl Limiter {
    /// A limiter over `store`.
    pub fn new(
        store: Arc<dyn RateLimitStore>,
        config: LimitsConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            config,
            clock,
        }
    }

    async fn hit(&self, key: &str, max: u64, window_secs: u64) -> Result<(), AuthError> {
        let d = self
            .store
            .hit(key, window_ms(window_secs), self.clock.now_millis())
            .await?;
        if d.count > max {
            Err(limited(d))
        } else {
            Ok(())
        }
    }

    async fn peek(&self, key: &str, max: u64, window_secs: u64) -> Result<(), AuthError> {
        let d = self
            .store
            .peek(key, window_ms(window_secs), self.clock.now_millis())
            .await?;
        if d.count >= max {
            Err(limited(d))
        } else {
            Ok(())
        }
    }

    /// Before any password work: counts the attempt against the IP, and refuses if the
    /// account has failed too often from this IP or overall.
    pub async fn check_login(&self, username: &str, ip: &str) -> Result<(), AuthError> {
        let c = &self.config;
        self.hit(
            &format!("login:ip:{ip}"),
            c.login_ip_max,
            c.login_ip_window_secs,
        )
        .await?;
        self.peek(
            &format!("login:acct-ip:{username}:{ip}"),
            c.login_account_ip_failures_max,
            c.login_account_ip_window_secs,
        )
        .await?;
        self.peek(
            &format!("login:acct:{username}"),
            c.login_account_failures_max,
            c.login_account_window_secs,
        )
        .await
    }

    /// After a failed login.
    pub async fn login_failed(&self, username: &str, ip: &str) -> Result<(), AuthError> {
        let c = &self.config;
        let now = self.clock.now_millis();
        self.store
            .hit(
                &format!("login:acct-ip:{username}:{ip}"),
                window_ms(c.login_account_ip_window_secs),
                now,
            )
            .await?;
        self.store
            .hit(
                &format!("login:acct:{username}"),
                window_ms(c.login_account_window_secs),
                now,
            )
            .await?;
        Ok(())
    }

    /// After a successful login: this IP's failures for the account are forgiven.
    pub async fn login_succeeded(&self, username: &str, ip: &str) -> Result<(), AuthError> {
        let c = &self.config;
        self.store
            .reset(
                &format!("login:acct-ip:{username}:{ip}"),
                window_ms(c.login_account_ip_window_secs),
                self.clock.now_millis(),
            )
            .await?;
        Ok(())
    }

    /// Counts a registration against the IP.
    pub async fn check_register(&self, ip: &str) -> Result<(), AuthError> {
        self.hit(
            &format!("register:ip:{ip}"),
            self.config.register_ip_max,
            self.config.register_ip_window_secs,
        )
        .await
    }

    /// Counts a refresh against the IP.
    pub async fn check_refresh(&self, ip: &str) -> Result<(), AuthError> {
        self.hit(
            &format!("refresh:ip:{ip}"),
            self.config.refresh_ip_max,
            self.config.refresh_ip_window_secs,
        )
        .await
    }
}
