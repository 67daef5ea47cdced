//! Brute-force protection: login attempts per client IP, failed logins per account and
//! IP, failed logins per account overall, failed logins per trusted device; registrations
//! and refreshes per IP; failed client authentications per IP. Counters live in the shared store, so several instances enforce
//! one limit.

use std::sync::Arc;

use verifier::Clock;

use super::error::{AuthError, StoreError};
use super::metrics::AuthMetrics;
use super::ports::{RateCounter, RateDecision, RateLimitStore, RefreshLimit};
use crate::config::LimitsConfig;

/// Trusted devices together may fail this many times the account-wide limit.
pub const DEVICE_CEILING_FACTOR: u64 = 2;

/// A rate-limit rule, as named in metrics and audit events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Login attempts per client IP.
    LoginIp,
    /// Failed logins per account and IP.
    LoginAccountIp,
    /// Failed logins per account.
    LoginAccount,
    /// Failed logins per trusted device.
    LoginDevice,
    /// Registrations per IP.
    RegisterIp,
    /// Refreshes per IP.
    RefreshIp,
    /// Failed client authentications per IP.
    ClientAuthIp,
}

impl Rule {
    /// Every rule, in metric order.
    pub const ALL: [Rule; 7] = [
        Rule::LoginIp,
        Rule::LoginAccountIp,
        Rule::LoginAccount,
        Rule::LoginDevice,
        Rule::RegisterIp,
        Rule::RefreshIp,
        Rule::ClientAuthIp,
    ];

    /// The stable name (metric label, audit detail).
    pub fn name(self) -> &'static str {
        match self {
            Rule::LoginIp => "login_ip",
            Rule::LoginAccountIp => "login_account_ip",
            Rule::LoginAccount => "login_account",
            Rule::LoginDevice => "login_device",
            Rule::RegisterIp => "register_ip",
            Rule::RefreshIp => "refresh_ip",
            Rule::ClientAuthIp => "client_auth_ip",
        }
    }
}

/// Applies [`LimitsConfig`] to a [`RateLimitStore`].
pub struct Limiter {
    store: Arc<dyn RateLimitStore>,
    config: LimitsConfig,
    clock: Arc<dyn Clock>,
    metrics: AuthMetrics,
}

/// One rule's counter for one client, with the rule's limit.
struct Limit {
    rule: Rule,
    key: String,
    max: u64,
    window_ms: i64,
}

impl Limit {
    fn counter(&self) -> RateCounter<'_> {
        RateCounter {
            key: &self.key,
            window_ms: self.window_ms,
        }
    }
}

/// What [`Limiter::check_login_failures`] saw of the client's own failure counter, for
/// [`Limiter::login_succeeded`]: it forgives those failures, and writes nothing when there
/// were none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct SeenFailures {
    client: u64,
}

/// The store's decisions, checked to be one per counter asked: a short answer must not
/// skip a limit.
fn answered(decisions: Vec<RateDecision>, asked: usize) -> Result<Vec<RateDecision>, StoreError> {
    if decisions.len() == asked {
        Ok(decisions)
    } else {
        Err(StoreError::other(
            "the rate-limit store answered another number of counters",
        ))
    }
}

/// The one decision of a one-counter call.
fn only(decisions: Vec<RateDecision>) -> Result<RateDecision, StoreError> {
    Ok(answered(decisions, 1)?[0])
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

fn limited(decision: RateDecision, rule: Rule, audit: bool) -> AuthError {
    let secs = (decision.reset_in_ms.max(0) + 999) / 1000;
    AuthError::RateLimited {
        retry_after_secs: u64::try_from(secs.max(1)).unwrap_or(1),
        rule,
        audit,
    }
}

impl Limiter {
    /// A limiter over `store`, counting its refusals in `metrics`.
    pub fn new(
        store: Arc<dyn RateLimitStore>,
        config: LimitsConfig,
        clock: Arc<dyn Clock>,
        metrics: AuthMetrics,
    ) -> Self {
        Self {
            store,
            config,
            clock,
            metrics,
        }
    }

    /// The one place a refusal is decided (and counted).
    fn refuse(&self, decision: RateDecision, rule: Rule, audit: bool) -> AuthError {
        self.metrics.refused(rule);
        limited(decision, rule, audit)
    }

    /// Counts a hit; over `max` refuses (audited once per window: the first refusal).
    async fn hit(
        &self,
        rule: Rule,
        key: &str,
        max: u64,
        window_secs: u64,
    ) -> Result<(), AuthError> {
        let counter = RateCounter {
            key,
            window_ms: window_ms(window_secs),
        };
        let decisions = self.store.hit(&[counter], self.clock.now_millis()).await?;
        let d = only(decisions)?;
        if d.count > max {
            Err(self.refuse(d, rule, d.count == max.saturating_add(1)))
        } else {
            Ok(())
        }
    }

    /// Refuses once a failure counter has reached its `max`, the limits checked in order and
    /// all read in one step (their keys share a hash tag); the counts read, in order. The
    /// first refusal of a window is audited, found by counting refusals under
    /// `refused:<key>` (a store write on refusals only), so a flood against a locked
    /// account writes one audit event, not one each.
    async fn check_failures(&self, limits: &[&Limit]) -> Result<Vec<u64>, AuthError> {
        let counters: Vec<_> = limits.iter().map(|l| l.counter()).collect();
        let now = self.clock.now_millis();
        let decisions = answered(self.store.peek(&counters, now).await?, limits.len())?;
        for (limit, d) in limits.iter().zip(&decisions) {
            if d.count >= limit.max {
                let key = format!("refused:{}", limit.key);
                let refused = RateCounter {
                    key: &key,
                    window_ms: limit.window_ms,
                };
                let refusals = self.store.hit(&[refused], now).await?;
                return Err(self.refuse(*d, limit.rule, only(refusals)?.count == 1));
            }
        }
        Ok(decisions.iter().map(|d| d.count).collect())
    }

    /// Before any password work: [`Self::check_login_ip`], then
    /// [`Self::check_login_failures`].
    pub async fn check_login(
        &self,
        username: &str,
        ip: &str,
        device: Option<&str>,
    ) -> Result<SeenFailures, AuthError> {
        self.check_login_ip(ip).await?;
        self.check_login_failures(username, ip, device).await
    }

    /// Counts a login attempt against the client IP (every client, trusted or not).
    pub async fn check_login_ip(&self, ip: &str) -> Result<(), AuthError> {
        let c = &self.config;
        self.hit(
            Rule::LoginIp,
            &format!("login:ip:{}", ip_bucket(ip)),
            c.login_ip_max,
            c.login_ip_window_secs,
        )
        .await
    }

    /// Refuses if the client has failed too often. An unknown client is refused when the
    /// account has failed too often from this IP or overall. A trusted device (`device`:
    /// the id of a verified device token for this account) is exempt from both limits and
    /// is refused when it has failed too often itself, so nobody can lock the owner out of
    /// a device they have logged in from before; and, so that many device tokens cannot
    /// multiply the guesses, when the account has failed [`DEVICE_CEILING_FACTOR`] times
    /// its limit (trusted devices' failures count toward it too). Both counters are read in
    /// one step; what was seen goes to [`Self::login_succeeded`].
    pub async fn check_login_failures(
        &self,
        username: &str,
        ip: &str,
        device: Option<&str>,
    ) -> Result<SeenFailures, AuthError> {
        let [client, account] = self.failure_limits(username, ip, device);
        let counts = self.check_failures(&[&client, &account]).await?;
        Ok(SeenFailures {
            client: counts.first().copied().unwrap_or(0),
        })
    }

    /// The failure limits of a login to `username` from this client: the client's own (the
    /// trusted device's, else the account's from this IP), then the account's. Their keys
    /// begin alike, `login:{user:<username>}`, up to the end of the username, so Redis Cluster
    /// finds the same hash tag in both (the `user:` keeps it non-empty when a username begins
    /// with `}`), and both are read, or counted, in one step.
    fn failure_limits(&self, username: &str, ip: &str, device: Option<&str>) -> [Limit; 2] {
        let c = &self.config;
        let tagged = format!("login:{{user:{username}}}");
        let account = |max| Limit {
            rule: Rule::LoginAccount,
            key: format!("{tagged}:acct"),
            max,
            window_ms: window_ms(c.login_account_window_secs),
        };
        match device {
            Some(device) => [
                Limit {
                    rule: Rule::LoginDevice,
                    key: format!("{tagged}:device:{device}"),
                    max: c.login_device_failures_max,
                    window_ms: window_ms(c.login_device_window_secs),
                },
                account(
                    c.login_account_failures_max
                        .saturating_mul(DEVICE_CEILING_FACTOR),
                ),
            ],
            None => [
                Limit {
                    rule: Rule::LoginAccountIp,
                    key: format!("{tagged}:acct-ip:{}", ip_bucket(ip)),
                    max: c.login_account_ip_failures_max,
                    window_ms: window_ms(c.login_account_ip_window_secs),
                },
                account(c.login_account_failures_max),
            ],
        }
    }

    /// After a failed login: counts against the account, and against this IP for the
    /// account, or, for a trusted device, against the device; in one step.
    pub async fn login_failed(
        &self,
        username: &str,
        ip: &str,
        device: Option<&str>,
    ) -> Result<(), AuthError> {
        let limits = self.failure_limits(username, ip, device);
        let counters = limits.each_ref().map(Limit::counter);
        self.store.hit(&counters, self.clock.now_millis()).await?;
        Ok(())
    }

    /// After a successful login: this IP's (or this device's) failures for the account are
    /// forgiven. Nothing is written when [`Self::check_login_failures`] saw none (a failure
    /// counted in between stays counted).
    pub async fn login_succeeded(
        &self,
        username: &str,
        ip: &str,
        device: Option<&str>,
        seen: SeenFailures,
    ) -> Result<(), AuthError> {
        if seen.client == 0 {
            return Ok(());
        }
        let [client, _] = self.failure_limits(username, ip, device);
        self.store
            .reset(&client.key, client.window_ms, self.clock.now_millis())
            .await?;
        Ok(())
    }

    /// Counts a registration against the IP.
    pub async fn check_register(&self, ip: &str) -> Result<(), AuthError> {
        self.hit(
            Rule::RegisterIp,
            &format!("register:ip:{}", ip_bucket(ip)),
            self.config.register_ip_max,
            self.config.register_ip_window_secs,
        )
        .await
    }

    /// The per-IP refresh limit for a client at `ip`, which the session store counts inside
    /// the rotation, per IP *and* user, so a refresh stays one Redis round trip (see
    /// `Rotation::limit`); `None` when `refresh_ip_max = 0` switches it off.
    pub fn refresh_limit(&self, ip: &str) -> Option<RefreshLimit> {
        (self.config.refresh_ip_max > 0).then(|| RefreshLimit {
            ip_bucket: ip_bucket(ip),
            max: self.config.refresh_ip_max,
            window_ms: window_ms(self.config.refresh_ip_window_secs),
        })
    }

    /// A refresh the store refused under [`Self::refresh_limit`]: counted, and audited on
    /// the first refusal of the window, like every limit.
    pub fn refresh_refused(&self, decision: RateDecision) -> AuthError {
        let first = decision.count == self.config.refresh_ip_max.saturating_add(1);
        self.refuse(decision, Rule::RefreshIp, first)
    }

    /// Counts a refresh against the IP alone, in a counter of its own (one more Redis round
    /// trip). Only for a token in the form from before refresh-token MACs, which nothing
    /// proves the server issued: its user id may be made up, so a per-user count would not
    /// bound it. Off with the limit.
    pub async fn check_unproven_refresh(&self, ip: &str) -> Result<(), AuthError> {
        if self.config.refresh_ip_max == 0 {
            return Ok(());
        }
        self.hit(
            Rule::RefreshIp,
            &format!("refresh:ip:{}", ip_bucket(ip)),
            self.config.refresh_ip_max,
            self.config.refresh_ip_window_secs,
        )
        .await
    }
}

impl Limiter {
    /// Refuses a client IP that has failed client authentication too often in the window,
    /// before any credential is looked at.
    pub async fn check_client_auth(&self, ip: &str) -> Result<(), AuthError> {
        self.check_failures(&[&self.client_auth_limit(ip)])
            .await
            .map(|_| ())
    }

    /// After a failed client authentication: counts against the client IP.
    pub async fn client_auth_failed(&self, ip: &str) -> Result<(), AuthError> {
        let limit = self.client_auth_limit(ip);
        self.store
            .hit(&[limit.counter()], self.clock.now_millis())
            .await?;
        Ok(())
    }

    /// The failed-client-authentication limit of a client IP.
    fn client_auth_limit(&self, ip: &str) -> Limit {
        Limit {
            rule: Rule::ClientAuthIp,
            key: format!("client-auth:ip:{}", ip_bucket(ip)),
            max: self.config.client_auth_ip_failures_max,
            window_ms: window_ms(self.config.client_auth_ip_window_secs),
        }
    }

    /// Marks a single-use value (an assertion's `jti`) as used for `ttl_ms`: `false` if it
    /// was used before, in the shared store.
    pub async fn first_use(&self, key: &str, ttl_ms: i64) -> Result<bool, AuthError> {
        Ok(self
            .store
            .first_use(key, ttl_ms, self.clock.now_millis())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use async_trait::async_trait;
    use verifier::contract::ManualClock;

    use super::*;

    /// A store that answers one decision (count 99) whatever it is asked.
    struct ShortStore;

    #[async_trait]
    impl RateLimitStore for ShortStore {
        async fn hit(
            &self,
            _: &[RateCounter<'_>],
            _: i64,
        ) -> Result<Vec<RateDecision>, StoreError> {
            Ok(vec![RateDecision {
                count: 99,
                reset_in_ms: 1,
            }])
        }
        async fn peek(
            &self,
            counters: &[RateCounter<'_>],
            now_ms: i64,
        ) -> Result<Vec<RateDecision>, StoreError> {
            self.hit(counters, now_ms).await
        }
        async fn reset(&self, _: &str, _: i64, _: i64) -> Result<(), StoreError> {
            Ok(())
        }
        async fn first_use(&self, _: &str, _: i64, _: i64) -> Result<bool, StoreError> {
            Ok(true)
        }
    }

    #[tokio::test]
    async fn a_store_answering_fewer_counters_than_asked_is_an_error_not_a_pass() {
        let limiter = Limiter::new(
            Arc::new(ShortStore),
            LimitsConfig {
                login_account_ip_failures_max: 100,
                ..LimitsConfig::default()
            },
            Arc::new(ManualClock::starting_now()),
            AuthMetrics::default(),
        );
        // One decision for two counters: the account's limit was never read.
        let checked = limiter
            .check_login_failures("alice", "192.0.2.7", None)
            .await;
        assert!(
            matches!(checked, Err(AuthError::Internal(_))),
            "{checked:?}"
        );
    }

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
