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
/// Every claim but `nbf`, `roles`, `client_id`, `scope` and `cnf` is required. A claim that
/// is present must have its type, even an optional one: `"nbf": null`, `"nbf": "1"` or
/// `"roles": "admin"` make the token unreadable (RFC 8725 §3.7), never "absent". Time claims
/// are integer NumericDates. `client_id`, `scope` (RFC 9068) and `cnf` (RFC 7800) are
/// optional, so tokens issued before them keep verifying.
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
    /// The OAuth client the token was issued to (RFC 9068 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The granted scopes, space-separated (RFC 9068 §2.2.3, RFC 6749 §3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The key the token is bound to (RFC 7800 `cnf`; RFC 9449 §6: `jkt`, the SHA-256
    /// thumbprint of a DPoP key). A bound token is accepted only with a DPoP proof from that
    /// key, never as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim of a DPoP-bound token (RFC 7800 §3.1, RFC 9449 §6.1).
///
/// ```
/// use verifier::Confirmation;
/// let cnf: Confirmation =
///     serde_json::from_str(r#"{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}"#).unwrap();
/// assert_eq!(cnf.jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The base64url SHA-256 JWK thumbprint (RFC 7638) of the key the token is bound to.
    pub jkt: String,
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
    /// #   exp: 2, iat: 1, nbf: None, jti: "j".into(), sid: "s".into(), roles: vec!["admin".into()],
    /// #   client_id: None, scope: None, cnf: None };
    /// assert!(claims.has_role("admin"));
    /// assert!(!claims.has_role("root"));
    /// ```
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the token's `scope` claim (space-separated) grants `scope`.
    ///
    /// ```
    /// # use verifier::{Claims, Audience};
    /// # let claims = Claims { iss: "i".into(), sub: "u".into(), aud: Audience::One("a".into()),
    /// #   exp: 2, iat: 1, nbf: None, jti: "j".into(), sid: "s".into(), roles: vec![],
    /// #   client_id: None, scope: Some("read write".into()), cnf: None };
    /// assert!(claims.has_scope("write"));
    /// assert!(!claims.has_scope("admin"));
    /// ```
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|granted| granted.split(' ').any(|s| s == scope))
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
