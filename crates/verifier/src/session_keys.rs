//! The Redis key layout of session records, shared by the auth-center and the verifiers.
//!
//! ```text
//! <prefix>:s:{<user_id>}:<sid>   HASH  one session
//! <prefix>:u:{<user_id>}         ZSET  sid -> expiry (ms), the user's index
//! ```
//! Everything of one user shares the hash tag `{<user_id>}`, so scripts touching a
//! session and the user's index run on one Redis Cluster slot.

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
