//! The access-token claims: the wire contract between the auth-center and every verifier.

use serde::{Deserialize, Deserializer, Serialize};

/// The JOSE `typ` header of an access token (RFC 9068).
///
/// ```
/// assert_eq!(verifier::contract::ACCESS_TOKEN_TYP, "at+jwt");
/// ```
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims carried by an access token. No personal data: `sub` is an opaque user id.
///
/// Every claim but `nbf` and `roles` is required. A claim that is present must have its
/// type, even an optional one: `"nbf": null`, `"nbf": "1"` or `"roles": "admin"` make the
/// token unreadable (RFC 8725 §3.7), never "absent". Time claims are integer NumericDates.
///
/// ```
/// use verifier::Claims;
/// let json = r#"{"iss":"https://auth.example","sub":"u1","aud":"api","exp":2,"iat":1,
///                "nbf":1,"jti":"j","sid":"s","roles":["admin"]}"#;
/// let claims: Claims = serde_json::from_str(json).unwrap();
/// assert!(claims.has_role("admin"));
/// assert!(claims.aud.contains("api"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the auth-center's public base URL.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience(s) the token is meant for.
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch; never later than the verifier's clock plus the
    /// leeway.
    pub iat: i64,
    /// Not before, seconds since the epoch. Optional, but never `null`.
    #[serde(
        default,
        deserialize_with = "present_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// Unique token id.
    pub jti: String,
    /// Session id: with `sub`, names the session record in Redis.
    pub sid: String,
    /// Role names granted to the user when the token was issued; absent means none (but
    /// `null` is refused, as for any sequence).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// An optional claim that is present: absent is `None` through `#[serde(default)]`, so this
/// only runs for a claim that is there, and `null` or another type is an error.
fn present_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    i64::deserialize(deserializer).map(Some)
}

impl Claims {
    /// Whether the token grants `role`.
    ///
    /// ```
    /// # use verifier::{Claims, Audience};
    /// # let claims = Claims { iss: "i".into(), sub: "u".into(), aud: Audience::One("a".into()),
    /// #   exp: 2, iat: 1, nbf: None, jti: "j".into(), sid: "s".into(), roles: vec!["admin".into()] };
    /// assert!(claims.has_role("admin"));
    /// assert!(!claims.has_role("root"));
    /// ```
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
///
/// ```
/// use verifier::Audience;
/// let many = Audience::Many(vec!["a".into(), "b".into()]);
/// assert!(many.contains("b"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names this audience.
    ///
    /// ```
    /// use verifier::Audience;
    /// assert!(Audience::One("api".into()).contains("api"));
    /// assert!(!Audience::Many(vec![]).contains("api"));
    /// ```
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}
