//! The Redis key layout of session records, shared by the auth-center and the verifiers.
//!
//! ```text
//! <prefix>:s:{<user_id>}:<sid>   HASH  one session
//! <prefix>:u:{<user_id>}         ZSET  sid -> expiry (ms), the user's index
//! ```
//! Everything of one user shares the hash tag `{<user_id>}`, so scripts touching a
//! session and the user's index run on one Redis Cluster slot.
//!
//! The revocation self-test ([`SelftestKeys`]) uses the subject [`SELFTEST_SUBJECT`], so its
//! keys share one slot too:
//!
//! ```text
//! <prefix>:s:{_selftest}:<sid>                  HASH  the probe session (a real session key)
//! <prefix>:selftest:{_selftest}:verifiers       ZSET  instance -> last report (Redis TIME, ms)
//! <prefix>:selftest:{_selftest}:probe           STRING the current probe's sid
//! <prefix>:selftest:{_selftest}:lock            STRING the round lock (its owner's token)
//! <prefix>:selftest:{_selftest}:<sid>:armed     HASH  instance -> when it armed (ms)
//! <prefix>:selftest:{_selftest}:<sid>:deleted   STRING when the probe was deleted (Redis TIME, µs)
//! <prefix>:selftest:{_selftest}:<sid>:acks      HASH  instance -> "<lag µs> <error bound µs>"
//! ```

/// Builds session-record keys under a configured prefix.
///
/// ```
/// use verifier::contract::SessionKeys;
/// let keys = SessionKeys::new("auth");
/// assert_eq!(keys.session("u1", "s1").as_deref(), Some("auth:s:{u1}:s1"));
/// assert_eq!(keys.user_index("u1").as_deref(), Some("auth:u:{u1}"));
/// assert_eq!(keys.session("u{1}", "s1"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    prefix: String,
}

impl SessionKeys {
    /// Keys under `prefix` (for example `auth`; both sides must use the same one).
    ///
    /// ```
    /// let keys = verifier::contract::SessionKeys::new("auth");
    /// ```
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The configured prefix.
    ///
    /// ```
    /// assert_eq!(verifier::contract::SessionKeys::new("auth").prefix(), "auth");
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of one session record, or `None` if an id is not a well-formed identifier.
    ///
    /// ```
    /// let keys = verifier::contract::SessionKeys::new("auth");
    /// assert_eq!(keys.session("u1", "s1").as_deref(), Some("auth:s:{u1}:s1"));
    /// assert_eq!(keys.session("u1", "s:1"), None);
    /// ```
    pub fn session(&self, user_id: &str, sid: &str) -> Option<String> {
        (is_identifier(user_id) && is_identifier(sid))
            .then(|| format!("{}:s:{{{user_id}}}:{sid}", self.prefix))
    }

    /// The key of the user's session index, or `None` if the id is not well-formed.
    ///
    /// ```
    /// let keys = verifier::contract::SessionKeys::new("auth");
    /// assert_eq!(keys.user_index("u1").as_deref(), Some("auth:u:{u1}"));
    /// ```
    pub fn user_index(&self, user_id: &str) -> Option<String> {
        is_identifier(user_id).then(|| format!("{}:u:{{{user_id}}}", self.prefix))
    }
}

/// User ids and session ids are 1..=64 characters of `[A-Za-z0-9_-]`, so they can never
/// break out of the key layout (no `:`, `{`, `}`), whoever minted the token.
///
/// ```
/// assert!(verifier::contract::is_identifier("0f3c-ab_Z"));
/// assert!(!verifier::contract::is_identifier("a:b"));
/// assert!(!verifier::contract::is_identifier(""));
/// ```
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The subject (`sub`) of the revocation self-test's probe sessions, and the hash tag of all
/// its keys. It is an identifier, so the probe session is an ordinary session key that every
/// verifier checks as it checks any; it is never a user id (user ids are UUIDs) and never a
/// client id (the auth-center refuses it as one).
///
/// ```
/// assert!(verifier::contract::is_identifier(verifier::contract::SELFTEST_SUBJECT));
/// ```
pub const SELFTEST_SUBJECT: &str = "_selftest";

/// The keys of the revocation self-test under a prefix (see the module's table), all on the
/// hash tag `{_selftest}`: one Redis Cluster slot, so every script of the self-test runs
/// on one node.
///
/// ```
/// use verifier::contract::SelftestKeys;
/// let keys = SelftestKeys::new("auth");
/// assert_eq!(keys.probe_session("p1").as_deref(), Some("auth:s:{_selftest}:p1"));
/// assert_eq!(keys.verifiers(), "auth:selftest:{_selftest}:verifiers");
/// assert_eq!(keys.acks("p1").as_deref(), Some("auth:selftest:{_selftest}:p1:acks"));
/// assert_eq!(keys.acks("p:1"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelftestKeys {
    prefix: String,
}

impl SelftestKeys {
    /// The self-test's keys under `prefix` (the session-key prefix).
    ///
    /// ```
    /// let keys = verifier::contract::SelftestKeys::new("auth");
    /// ```
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The probe session `sid`: `<prefix>:s:{_selftest}:<sid>`, or `None` if `sid` is not an
    /// identifier.
    ///
    /// ```
    /// let keys = verifier::contract::SelftestKeys::new("auth");
    /// assert_eq!(keys.probe_session("p1").as_deref(), Some("auth:s:{_selftest}:p1"));
    /// ```
    pub fn probe_session(&self, sid: &str) -> Option<String> {
        SessionKeys::new(self.prefix.clone()).session(SELFTEST_SUBJECT, sid)
    }

    /// The verifiers that report in: a ZSET of instance names scored by their last report.
    ///
    /// ```
    /// let keys = verifier::contract::SelftestKeys::new("auth");
    /// assert_eq!(keys.verifiers(), "auth:selftest:{_selftest}:verifiers");
    /// ```
    pub fn verifiers(&self) -> String {
        self.fixed("verifiers")
    }

    /// The current probe: its sid, while a round runs.
    ///
    /// ```
    /// let keys = verifier::contract::SelftestKeys::new("auth");
    /// assert_eq!(keys.probe(), "auth:selftest:{_selftest}:probe");
    /// ```
    pub fn probe(&self) -> String {
        self.fixed("probe")
    }

    /// The round lock.
    ///
    /// ```
    /// let keys = verifier::contract::SelftestKeys::new("auth");
    /// assert_eq!(keys.lock(), "auth:selftest:{_selftest}:lock");
    /// ```
    pub fn lock(&self) -> String {
        self.fixed("lock")
    }

    /// The verifiers that armed probe `sid` (a HASH), or `None` for a malformed sid.
    ///
    /// ```
    /// let keys = verifier::contract::SelftestKeys::new("auth");
    /// assert_eq!(keys.armed("p1").as_deref(), Some("auth:selftest:{_selftest}:p1:armed"));
    /// ```
    pub fn armed(&self, sid: &str) -> Option<String> {
        self.per_probe(sid, "armed")
    }

    /// When probe `sid` was deleted, Redis `TIME` in µs, or `None` for a malformed sid.
    ///
    /// ```
    /// let keys = verifier::contract::SelftestKeys::new("auth");
    /// assert_eq!(keys.deleted("p1").as_deref(), Some("auth:selftest:{_selftest}:p1:deleted"));
    /// ```
    pub fn deleted(&self, sid: &str) -> Option<String> {
        self.per_probe(sid, "deleted")
    }

    /// The acknowledgements of probe `sid`'s deletion (a HASH), or `None` for a malformed
    /// sid.
    ///
    /// ```
    /// let keys = verifier::contract::SelftestKeys::new("auth");
    /// assert_eq!(keys.acks("p1").as_deref(), Some("auth:selftest:{_selftest}:p1:acks"));
    /// ```
    pub fn acks(&self, sid: &str) -> Option<String> {
        self.per_probe(sid, "acks")
    }

    fn fixed(&self, name: &str) -> String {
        format!("{}:selftest:{{{SELFTEST_SUBJECT}}}:{name}", self.prefix)
    }

    fn per_probe(&self, sid: &str, name: &str) -> Option<String> {
        is_identifier(sid).then(|| self.fixed(&format!("{sid}:{name}")))
    }
}
