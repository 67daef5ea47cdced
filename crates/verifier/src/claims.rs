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
/// is present must have its type, even an optional one: `"nbf": null`, `"nbf": "1"`,
/// `"roles": "admin"`, `"scope": ["a"]` or `"cnf": null` make the token unreadable
/// (RFC 8725 §3.7), never "absent". Time claims are integer NumericDates. Claims this struct
/// does not name are ignored, so a verifier keeps accepting tokens that carry claims added
/// later.
///
/// `client_id` and `scope` are the RFC 9068 claims: the OAuth client the token was issued
/// to, and the space-separated scopes it grants. `cnf` (RFC 7800) names the key a
/// DPoP-bound token is bound to. Tokens from before they existed have none of them; the
/// auth-center sets `client_id` on every token, `scope` where the token has scopes (a
/// service account's client-credentials token) and `cnf` where it binds the access token.
///
/// ```
/// use verifier::Claims;
/// let json = r#"{"iss":"https://auth.example","sub":"u1","aud":"api","exp":2,"iat":1,
///                "nbf":1,"jti":"j","sid":"s","roles":["admin"],"client_id":"first-party"}"#;
/// let claims: Claims = serde_json::from_str(json).unwrap();
/// assert!(claims.has_role("admin"));
/// assert!(claims.aud.contains("api"));
/// assert_eq!(claims.client_id.as_deref(), Some("first-party"));
/// assert_eq!(claims.scope, None);
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
    /// The OAuth client the token was issued to (RFC 9068 §2.2). Optional, but never `null`.
    #[serde(
        default,
        deserialize_with = "present_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id: Option<String>,
    /// The scopes the token grants, space-separated (RFC 9068 §2.2.3, RFC 6749 §3.3); see
    /// [`Claims::has_scope`]. Optional, but never `null`.
    #[serde(
        default,
        deserialize_with = "present_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub scope: Option<String>,
    /// The key the token is bound to (RFC 7800 `cnf`; RFC 9449 §6: `jkt`, the SHA-256
    /// thumbprint of a DPoP key). A bound token is accepted only with a DPoP proof from that
    /// key, never as a bearer token. Optional, but never `null`: a `null` must not read as
    /// "unbound".
    #[serde(
        default,
        deserialize_with = "present_confirmation",
        skip_serializing_if = "Option::is_none"
    )]
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

/// [`present_number`] for a string claim.
fn present_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

/// [`present_number`] for the `cnf` claim.
fn present_confirmation<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Confirmation>, D::Error> {
    Confirmation::deserialize(deserializer).map(Some)
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

    /// Whether the token's `scope` claim names `scope` (one of its space-separated values,
    /// compared exactly). A token without the claim grants no scope.
    ///
    /// ```
    /// # use verifier::{Claims, Audience};
    /// # let claims = Claims { iss: "i".into(), sub: "u".into(), aud: Audience::One("a".into()),
    /// #   exp: 2, iat: 1, nbf: None, jti: "j".into(), sid: "s".into(), roles: vec![],
    /// #   client_id: Some("billing".into()), scope: Some("invoices:read reports".into()),
    /// #   cnf: None };
    /// assert!(claims.has_scope("invoices:read"));
    /// assert!(claims.has_scope("reports"));
    /// assert!(!claims.has_scope("invoices"));
    /// assert!(!claims.has_scope(""));
    /// ```
    pub fn has_scope(&self, scope: &str) -> bool {
        !scope.is_empty()
            && self
                .scope
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

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({"iss":"i","sub":"u","aud":"api","exp":2,"iat":1,"jti":"j","sid":"s"})
    }

    #[test]
    fn tokens_without_the_rfc_9068_claims_still_read() {
        let claims: Claims = serde_json::from_value(base()).unwrap();
        assert_eq!((&claims.client_id, &claims.scope), (&None, &None));
        assert_eq!(claims.cnf, None);
        // ...and are written back without them, as older verifiers expect.
        let written = serde_json::to_value(&claims).unwrap();
        assert!(written.get("client_id").is_none() && written.get("scope").is_none());
        assert!(written.get("cnf").is_none());
    }

    #[test]
    fn claims_added_later_are_ignored_so_older_verifiers_accept_newer_tokens() {
        let mut json = base();
        json["client_id"] = "svc".into();
        json["scope"] = "a b".into();
        json["cnf"] = serde_json::json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
        json["some_future_claim"] = serde_json::json!([1, {"x": null}]);
        let claims: Claims = serde_json::from_value(json).unwrap();
        assert_eq!(claims.client_id.as_deref(), Some("svc"));
        assert!(claims.has_scope("b"));
        assert_eq!(
            claims.cnf.map(|c| c.jkt).as_deref(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
    }

    #[test]
    fn a_present_client_id_scope_or_cnf_must_have_its_type() {
        for (claim, value) in [
            ("cnf", serde_json::Value::Null),
            ("cnf", serde_json::json!("jkt")),
            ("cnf", serde_json::json!({})),
            ("client_id", serde_json::Value::Null),
            ("client_id", serde_json::json!(5)),
            ("scope", serde_json::Value::Null),
            ("scope", serde_json::json!(["a", "b"])),
        ] {
            let mut json = base();
            json[claim] = value.clone();
            assert!(
                serde_json::from_value::<Claims>(json).is_err(),
                "{claim}: {value}"
            );
        }
    }
}
