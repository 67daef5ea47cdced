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

/// The address a per-IP limit counts against: IPv4 as is, IPv6 by its /64 (one
/// subscriber usually holds a whole /64, so per-address limits would be no limit).
fn ip_bucket(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => ip.to_string(),
    }
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
            &format!("login:ip:{}", ip_bucket(ip)),
            c.login_ip_max,
            c.login_ip_window_secs,
        )
        .await?;
        self.peek(
            &format!("login:acct-ip:{username}:{}", ip_bucket(ip)),
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
                &format!("login:acct-ip:{username}:{}", ip_bucket(ip)),
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
                &format!("login:acct-ip:{username}:{}", ip_bucket(ip)),
                window_ms(c.login_account_ip_window_secs),
                self.clock.now_millis(),
            )
            .await?;
        Ok(())
    }

    /// Counts a registration against the IP.
    pub async fn check_register(&self, ip: &str) -> Result<(), AuthError> {
        self.hit(
            &format!("register:ip:{}", ip_bucket(ip)),
            self.config.register_ip_max,
            self.config.register_ip_window_secs,
        )
        .await
    }

    /// Counts a refresh against the IP.
    /// `refresh_ip_max = 0` switches this limit off, making a refresh one Redis round
    /// trip (the rotation script) instead of two.
    pub async fn check_refresh(&self, ip: &str) -> Result<(), AuthError> {
        if self.config.refresh_ip_max == 0 {
            return Ok(());
        }
        self.hit(
            &format!("refresh:ip:{}", ip_bucket(ip)),
            self.config.refresh_ip_max,
            self.config.refresh_ip_window_secs,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::ip_bucket;

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        assert_eq!(
            ip_bucket("2001:db8:1:2:aaaa::1"),
            ip_bucket("2001:db8:1:2:bbbb::9")
        );
        assert_ne!(ip_bucket("2001:db8:1:2::1"), ip_bucket("2001:db8:1:3::1"));
        assert_eq!(ip_bucket("192.0.2.7"), "192.0.2.7");
    }
}
