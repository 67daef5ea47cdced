//! The auth-center's outcome metrics, through the `metrics` facade (no HTTP, no exporter
//! here). Every handle is registered once, by [`AuthMetrics::register`], in whatever recorder
//! the caller has made current (the composition root: `service_kit::metrics::Registry::
//! register`); the domain then only increments. Each outcome is counted at the one place
//! where it is decided.

use metrics::{Counter, Gauge, Histogram, Unit};

use super::limits::Rule;

/// How a login ended (`auth_logins_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Tokens were issued.
    Success,
    /// The user exists and the password is wrong.
    WrongPassword,
    /// No such user.
    UnknownUser,
    /// The account is disabled.
    Disabled,
    /// A rate limit refused the attempt.
    RateLimited,
    /// The username or password cannot be one (malformed, too long).
    InvalidRequest,
}

impl LoginOutcome {
    const ALL: [LoginOutcome; 6] = [
        LoginOutcome::Success,
        LoginOutcome::WrongPassword,
        LoginOutcome::UnknownUser,
        LoginOutcome::Disabled,
        LoginOutcome::RateLimited,
        LoginOutcome::InvalidRequest,
    ];

    fn label(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::WrongPassword => "wrong_password",
            LoginOutcome::UnknownUser => "unknown_user",
            LoginOutcome::Disabled => "disabled",
            LoginOutcome::RateLimited => "rate_limited",
            LoginOutcome::InvalidRequest => "invalid_request",
        }
    }
}

/// How a refresh ended (`auth_refreshes_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new refresh token was issued.
    Rotated,
    /// The previous token again within the grace period: the same successor.
    GraceReplay,
    /// An already rotated token after the grace period: the session was revoked.
    ReuseDetected,
    /// A genuine token whose session no longer exists (expired or ended).
    Expired,
    /// Not a refresh token of this server.
    Invalid,
    /// The refresh policy refused it: rotation cap, a changed network or user agent under
    /// `revoke`, a missing or wrong DPoP proof of a bound session.
    PolicyRefused,
    /// A rate limit refused it.
    RateLimited,
}

impl RefreshOutcome {
    const ALL: [RefreshOutcome; 7] = [
        RefreshOutcome::Rotated,
        RefreshOutcome::GraceReplay,
        RefreshOutcome::ReuseDetected,
        RefreshOutcome::Expired,
        RefreshOutcome::Invalid,
        RefreshOutcome::PolicyRefused,
        RefreshOutcome::RateLimited,
    ];

    fn label(self) -> &'static str {
        match self {
            RefreshOutcome::Rotated => "rotated",
            RefreshOutcome::GraceReplay => "grace_replay",
            RefreshOutcome::ReuseDetected => "reuse_detected",
            RefreshOutcome::Expired => "expired",
            RefreshOutcome::Invalid => "invalid",
            RefreshOutcome::PolicyRefused => "policy_refused",
            RefreshOutcome::RateLimited => "rate_limited",
        }
    }
}

/// What opened a session (`auth_sessions_created_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A user's login.
    Login,
    /// A client-credentials token.
    ClientCredentials,
}

impl SessionKind {
    const ALL: [SessionKind; 2] = [SessionKind::Login, SessionKind::ClientCredentials];

    fn label(self) -> &'static str {
        match self {
            SessionKind::Login => "login",
            SessionKind::ClientCredentials => "client_credentials",
        }
    }
}

/// Why sessions ended before their time (`auth_sessions_ended_total{cause}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The user logged out.
    Logout,
    /// The user logged out everywhere.
    LogoutAll,
    /// An admin ended them (force logout, role change, disable).
    Admin,
    /// The rotation cap (`refresh.max_rotations`) was reached.
    Cap,
    /// Presumed theft: refresh-token reuse, another key's DPoP proof, a refresh from
    /// another network or user agent under a `revoke` policy.
    Theft,
    /// The user changed their password (their other sessions).
    PasswordChange,
    /// The user ended one of their sessions from the devices list.
    Device,
    /// A client's token was revoked, or the client disabled or its credentials replaced.
    ClientRevoked,
    /// A new session took the user over `sessions.max_per_user`: the least recently used
    /// ended.
    MaxPerUser,
    /// A new client token took the client over `oauth.max_tokens_per_client`: the sessions
    /// of its least recently issued tokens ended.
    MaxPerClient,
}

impl EndCause {
    const ALL: [EndCause; 10] = [
        EndCause::Logout,
        EndCause::LogoutAll,
        EndCause::Admin,
        EndCause::Cap,
        EndCause::Theft,
        EndCause::PasswordChange,
        EndCause::Device,
        EndCause::ClientRevoked,
        EndCause::MaxPerUser,
        EndCause::MaxPerClient,
    ];

    fn label(self) -> &'static str {
        match self {
            EndCause::Logout => "logout",
            EndCause::LogoutAll => "logout_all",
            EndCause::Admin => "admin",
            EndCause::Cap => "cap",
            EndCause::Theft => "theft",
            EndCause::PasswordChange => "password_change",
            EndCause::Device => "device",
            EndCause::ClientRevoked => "client_revoked",
            EndCause::MaxPerUser => "max_per_user",
            EndCause::MaxPerClient => "max_per_client",
        }
    }
}

/// The index of `item` in `all` (the enums above are small and listed in full).
fn index<T: PartialEq>(all: &[T], item: &T) -> usize {
    all.iter().position(|x| x == item).unwrap_or(0)
}

/// The pre-registered handles of the auth-center's domain metrics.
#[derive(Clone)]
pub struct AuthMetrics {
    logins: [Counter; LoginOutcome::ALL.len()],
    refreshes: [Counter; RefreshOutcome::ALL.len()],
    sessions_created: [Counter; SessionKind::ALL.len()],
    sessions_ended: [Counter; EndCause::ALL.len()],
    refusals: [Counter; Rule::ALL.len()],
    /// The password hasher's.
    pub hashing: HashMetrics,
    /// The revocation self-test's.
    pub selftest: SelftestMetrics,
}

/// How a round of the revocation self-test ended (`auth_selftest_rounds_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundOutcome {
    /// Every verifier that reported in acknowledged the deletion.
    Ok,
    /// At least one verifier did not arm the probe or did not acknowledge its deletion.
    MissedAcks,
    /// No verifier reported in: nothing was measured.
    NoVerifiers,
    /// Another round held the lock (another instance's, or the CLI's).
    Skipped,
    /// Redis failed.
    Error,
}

impl RoundOutcome {
    const ALL: [RoundOutcome; 5] = [
        RoundOutcome::Ok,
        RoundOutcome::MissedAcks,
        RoundOutcome::NoVerifiers,
        RoundOutcome::Skipped,
        RoundOutcome::Error,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RoundOutcome::Ok => "ok",
            RoundOutcome::MissedAcks => "missed_acks",
            RoundOutcome::NoVerifiers => "no_verifiers",
            RoundOutcome::Skipped => "skipped",
            RoundOutcome::Error => "error",
        }
    }
}

/// The revocation self-test's metrics.
#[derive(Clone)]
pub struct SelftestMetrics {
    /// Each acknowledged lag (`auth_selftest_revocation_lag_seconds`).
    lag: Histogram,
    rounds: [Counter; RoundOutcome::ALL.len()],
    /// Verifiers that reported in, at the latest round (`auth_selftest_verifiers`).
    verifiers: Gauge,
    /// Verifiers that reported in but did not arm or acknowledge
    /// (`auth_selftest_missed_acks_total`).
    missed_acks: Counter,
}

impl SelftestMetrics {
    /// A round ended with `outcome`.
    pub fn round(&self, outcome: RoundOutcome) {
        self.rounds[index(&RoundOutcome::ALL, &outcome)].increment(1);
    }

    /// A verifier acknowledged after `lag`.
    pub fn lag(&self, lag: std::time::Duration) {
        self.lag.record(lag.as_secs_f64());
    }

    /// `n` verifiers reported in; `missed` of them did not acknowledge.
    pub fn verifiers(&self, n: usize, missed: usize) {
        #[allow(clippy::cast_precision_loss)] // a count of processes
        self.verifiers.set(n as f64);
        self.missed_acks.increment(missed as u64);
    }
}

/// The password hasher's metrics.
#[derive(Clone)]
pub struct HashMetrics {
    /// How long a caller waited before its hash started, or until it was refused
    /// (`auth_password_hash_queue_wait_seconds`).
    pub queue_wait: Histogram,
    /// How long one Argon2 hash or check took (`auth_password_hash_duration_seconds`).
    pub duration: Histogram,
    /// Hashes allowed at once (`auth_password_hash_slots`).
    pub slots: Gauge,
    /// Hashes running now (`auth_password_hashes_running`).
    pub running: Gauge,
    /// The most that ever ran at once (`auth_password_hashes_running_peak`).
    pub peak: Gauge,
    /// Callers refused as overloaded (`auth_password_hash_refusals_total`).
    pub refused: Counter,
    /// Queued checks skipped because their caller had gone
    /// (`auth_password_hash_abandoned_total`).
    pub abandoned: Counter,
}

impl std::fmt::Debug for AuthMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthMetrics").finish_non_exhaustive()
    }
}

impl Default for AuthMetrics {
    /// Handles of the facade's current recorder (the global one, or none: they then record
    /// nothing).
    fn default() -> Self {
        Self::register()
    }
}

impl AuthMetrics {
    /// Registers every series (each label value, so a scrape shows them from zero) in the
    /// facade's current recorder.
    pub fn register() -> Self {
        describe();
        Self {
            logins: LoginOutcome::ALL
                .map(|o| metrics::counter!("auth_logins_total", "outcome" => o.label())),
            refreshes: RefreshOutcome::ALL
                .map(|o| metrics::counter!("auth_refreshes_total", "outcome" => o.label())),
            sessions_created: SessionKind::ALL
                .map(|k| metrics::counter!("auth_sessions_created_total", "kind" => k.label())),
            sessions_ended: EndCause::ALL
                .map(|c| metrics::counter!("auth_sessions_ended_total", "cause" => c.label())),
            refusals: Rule::ALL
                .map(|r| metrics::counter!("auth_rate_limit_refusals_total", "rule" => r.name())),
            hashing: HashMetrics {
                queue_wait: metrics::histogram!("auth_password_hash_queue_wait_seconds"),
                duration: metrics::histogram!("auth_password_hash_duration_seconds"),
                slots: metrics::gauge!("auth_password_hash_slots"),
                running: metrics::gauge!("auth_password_hashes_running"),
                peak: metrics::gauge!("auth_password_hashes_running_peak"),
                refused: metrics::counter!("auth_password_hash_refusals_total"),
                abandoned: metrics::counter!("auth_password_hash_abandoned_total"),
            },
            selftest: SelftestMetrics {
                lag: metrics::histogram!("auth_selftest_revocation_lag_seconds"),
                rounds: RoundOutcome::ALL.map(
                    |o| metrics::counter!("auth_selftest_rounds_total", "outcome" => o.label()),
                ),
                verifiers: metrics::gauge!("auth_selftest_verifiers"),
                missed_acks: metrics::counter!("auth_selftest_missed_acks_total"),
            },
        }
    }

    /// A login ended with `outcome`.
    pub fn login(&self, outcome: LoginOutcome) {
        self.logins[index(&LoginOutcome::ALL, &outcome)].increment(1);
    }

    /// A refresh ended with `outcome`.
    pub fn refresh(&self, outcome: RefreshOutcome) {
        self.refreshes[index(&RefreshOutcome::ALL, &outcome)].increment(1);
    }

    /// A session of `kind` was opened (and handed out).
    pub fn session_created(&self, kind: SessionKind) {
        self.sessions_created[index(&SessionKind::ALL, &kind)].increment(1);
    }

    /// `n` sessions ended for `cause`.
    pub fn sessions_ended(&self, cause: EndCause, n: u64) {
        self.sessions_ended[index(&EndCause::ALL, &cause)].increment(n);
    }

    /// A rate limit refused a request under `rule`.
    pub fn refused(&self, rule: Rule) {
        self.refusals[index(&Rule::ALL, &rule)].increment(1);
    }
}

fn describe() {
    metrics::describe_counter!("auth_logins_total", "Logins by outcome.");
    metrics::describe_counter!(
        "auth_refreshes_total",
        "Refresh-token rotations by outcome."
    );
    metrics::describe_counter!("auth_sessions_created_total", "Sessions opened, by kind.");
    metrics::describe_counter!(
        "auth_sessions_ended_total",
        "Sessions ended before their time, by cause."
    );
    metrics::describe_counter!(
        "auth_rate_limit_refusals_total",
        "Requests refused by a rate limit, by rule."
    );
    metrics::describe_histogram!(
        "auth_password_hash_queue_wait_seconds",
        Unit::Seconds,
        "Time a password check or hash waited before its hash started (or was refused)."
    );
    metrics::describe_histogram!(
        "auth_password_hash_duration_seconds",
        Unit::Seconds,
        "Time one Argon2 hash or check took on its hashing thread."
    );
    metrics::describe_gauge!(
        "auth_password_hash_slots",
        "Password hashes allowed at once."
    );
    metrics::describe_gauge!(
        "auth_password_hashes_running",
        "Password hashes running now."
    );
    metrics::describe_gauge!(
        "auth_password_hashes_running_peak",
        "The most password hashes that ever ran at once."
    );
    metrics::describe_counter!(
        "auth_password_hash_refusals_total",
        "Password checks refused as overloaded (no place in the hashing queue within the queue wait)."
    );
    metrics::describe_counter!(
        "auth_password_hash_abandoned_total",
        "Queued password checks skipped because the caller had gone."
    );
    metrics::describe_histogram!(
        "auth_selftest_revocation_lag_seconds",
        Unit::Seconds,
        "Revocation self-test: time from the probe session's deletion to each verifier \
         learning of it (an upper bound)."
    );
    metrics::describe_counter!(
        "auth_selftest_rounds_total",
        "Revocation self-test rounds, by outcome."
    );
    metrics::describe_gauge!(
        "auth_selftest_verifiers",
        "Verifiers that reported in to the latest revocation self-test round."
    );
    metrics::describe_counter!(
        "auth_selftest_missed_acks_total",
        "Verifiers that reported in but did not arm or acknowledge a self-test probe."
    );
}
