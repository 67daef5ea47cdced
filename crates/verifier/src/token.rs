//! Token hygiene and signature/claims validation, framework-free and Redis-free.
//!
//! Check order (RFC 8725, TV-10): structure → header → key → signature → claims.
//! Nothing here talks to the network; revocation is checked afterwards by the caller.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::claims::{ACCESS_TOKEN_TYP, Claims};
use crate::error::VerifyError;
use crate::jws::{compact_parts, typ_is};
use crate::keys::{KeySet, VerifyingKey, install_crypto_provider};
use crate::session_keys::is_identifier;

/// Longest token accepted, in bytes, checked before anything is decoded.
///
/// ```
/// use verifier::{Algorithm, VerifyError};
/// use verifier::contract::{MAX_TOKEN_BYTES, TokenValidator};
/// let validator = TokenValidator::new("iss", ["aud"], [Algorithm::EdDSA]);
/// let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
/// assert_eq!(validator.check_header(&huge), Err(VerifyError::Invalid("token too long")));
/// ```
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The latest NumericDate accepted in `exp`, `iat` and `nbf`: 9999-12-31T23:59:59Z. Time
/// claims outside `0..=` this are refused, which also keeps the leeway arithmetic in range.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// The parts of a JOSE header that survived the hygiene checks.
///
/// ```
/// use verifier::Algorithm;
/// use verifier::contract::TokenValidator;
/// let validator = TokenValidator::new("iss", ["aud"], [Algorithm::EdDSA]);
/// // {"alg":"EdDSA","typ":"at+jwt","kid":"k1"}
/// let header = validator.check_header("eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsxIn0.e30.c2ln").unwrap();
/// assert_eq!((header.alg, header.kid.as_str()), (Algorithm::EdDSA, "k1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    /// The algorithm, already known to be on the allow-list.
    pub alg: Algorithm,
    /// The key id.
    pub kid: String,
}

/// The header as sent. Derived deserialisation rejects duplicate members it knows.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    jku: Option<IgnoredAny>,
    jwk: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
    crit: Option<IgnoredAny>,
    enc: Option<IgnoredAny>,
    zip: Option<IgnoredAny>,
    b64: Option<IgnoredAny>,
}

/// The three segments of a compact JWS (header, payload, signature): exactly three, none
/// empty, each base64url without padding; `None` for anything else. No length cap: that is
/// the caller's.
///
/// ```
/// use verifier::contract::compact_jws;
/// assert_eq!(compact_jws("e30.e30.c2ln"), Some(["e30", "e30", "c2ln"]));
/// for junk in ["e30.e30.", "e30.e30", "e30.e30.c2ln.e30", "e30.e30.c2ln="] {
///     assert_eq!(compact_jws(junk), None, "{junk}");
/// }
/// ```
pub fn compact_jws(jws: &str) -> Option<[&str; 3]> {
    compact_parts(jws).map(|(header, payload, signature)| [header, payload, signature])
}

/// The JOSE header of a compact JWS after the hygiene checks that every JWT of the
/// workspace gets, access tokens and client assertions alike (RFC 8725 §3.1, §3.10): the
/// header is a JSON object with a string `alg`, `typ` and `kid` are strings if present, and
/// none of `jku`, `jwk`, `x5u`, `x5c` (keys named by the token itself), `crit` (extensions
/// nobody here understands), `enc`, `zip` or `b64` is there. What `alg`, `typ` and `kid`
/// must be is the caller's to check.
///
/// ```
/// use verifier::contract::{JoseError, JoseHeader};
/// // {"alg":"EdDSA","kid":"k1"}
/// let header = JoseHeader::read("eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.e30.c2ln").unwrap();
/// assert_eq!((header.alg.as_str(), header.kid.as_deref(), header.typ), ("EdDSA", Some("k1"), None));
/// // {"alg":"EdDSA","jku":"https://evil.example/jwks.json"}
/// let jku = "eyJhbGciOiJFZERTQSIsImprdSI6Imh0dHBzOi8vZXZpbC5leGFtcGxlL2p3a3MuanNvbiJ9.e30.c2ln";
/// assert_eq!(JoseHeader::read(jku), Err(JoseError::ForbiddenParameter));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    /// `alg`, as sent: not yet checked against any allow-list.
    pub alg: String,
    /// `typ`, as sent.
    pub typ: Option<String>,
    /// `kid`, as sent.
    pub kid: Option<String>,
}

/// Why [`JoseHeader::read`] refused a compact JWS.
///
/// ```
/// use verifier::contract::{JoseError, JoseHeader};
/// assert_eq!(JoseHeader::read("a.b"), Err(JoseError::NotCompact));
/// assert_eq!(JoseError::NotCompact.reason(), "not a compact JWS");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoseError {
    /// Not three non-empty base64url segments ([`compact_jws`]).
    NotCompact,
    /// The header segment does not decode as base64url.
    HeaderNotBase64url,
    /// The header is not a JSON object with a string `alg` and, if present, string `typ`
    /// and `kid` (or it repeats a member).
    MalformedHeader,
    /// The header has `jku`, `jwk`, `x5u`, `x5c`, `crit`, `enc`, `zip` or `b64`.
    ForbiddenParameter,
}

impl JoseError {
    /// The reason, as [`VerifyError::Invalid`] words it for an access token.
    ///
    /// ```
    /// use verifier::contract::JoseError;
    /// assert_eq!(JoseError::ForbiddenParameter.reason(), "forbidden header parameter");
    /// ```
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotCompact => "not a compact JWS",
            Self::HeaderNotBase64url => "header is not base64url",
            Self::MalformedHeader => "malformed header",
            Self::ForbiddenParameter => "forbidden header parameter",
        }
    }
}

impl JoseHeader {
    /// Reads and checks the header of the compact JWS `jws` (see [`JoseHeader`]).
    ///
    /// ```
    /// use verifier::contract::{JoseError, JoseHeader};
    /// // {"alg":"EdDSA","crit":["exp"]}
    /// let crit = "eyJhbGciOiJFZERTQSIsImNyaXQiOlsiZXhwIl19.e30.c2ln";
    /// assert_eq!(JoseHeader::read(crit), Err(JoseError::ForbiddenParameter));
    /// ```
    pub fn read(jws: &str) -> Result<Self, JoseError> {
        let [header, _, _] = compact_jws(jws).ok_or(JoseError::NotCompact)?;
        let raw = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| JoseError::HeaderNotBase64url)?;
        let raw: RawHeader =
            serde_json::from_slice(&raw).map_err(|_| JoseError::MalformedHeader)?;
        if raw.jku.is_some()
            || raw.jwk.is_some()
            || raw.x5u.is_some()
            || raw.x5c.is_some()
            || raw.crit.is_some()
            || raw.enc.is_some()
            || raw.zip.is_some()
            || raw.b64.is_some()
        {
            return Err(JoseError::ForbiddenParameter);
        }
        Ok(Self {
            alg: raw.alg,
            typ: raw.typ,
            kid: raw.kid,
        })
    }
}

/// Checks tokens against an issuer, audiences, an algorithm allow-list and a key set.
///
/// ```
/// use verifier::contract::TokenValidator;
/// use verifier::{Algorithm, KeySet, VerifyError};
/// let validator = TokenValidator::new("https://auth.example", ["api"], [Algorithm::EdDSA]);
/// let err = validator.validate("not.a.jwt!", &KeySet::default(), 0).unwrap_err();
/// assert!(matches!(err, VerifyError::Invalid(_)));
/// ```
#[derive(Clone)]
pub struct TokenValidator {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_secs: i64,
    validations: HashMap<Algorithm, Validation>,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// Default clock-skew allowance for `exp`/`nbf`, in seconds.
pub(crate) const DEFAULT_LEEWAY_SECS: i64 = 5;

impl TokenValidator {
    /// A validator for tokens from `issuer`, meant for any of `audiences`, signed with one
    /// of `algorithms` (the allow-list; `none` can never be on it).
    ///
    /// ```
    /// use verifier::Algorithm;
    /// use verifier::contract::TokenValidator;
    /// let validator = TokenValidator::new("https://auth.example.com", ["api"], [Algorithm::EdDSA]);
    /// assert_eq!(validator.issuer(), "https://auth.example.com");
    /// ```
    pub fn new<A: Into<String>>(
        issuer: impl Into<String>,
        audiences: impl IntoIterator<Item = A>,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Self {
        install_crypto_provider();
        let issuer = issuer.into();
        let audiences: Vec<String> = audiences.into_iter().map(Into::into).collect();
        let algorithms: Vec<Algorithm> = algorithms.into_iter().collect();
        let validations = algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.set_issuer(&[&issuer]);
                v.set_audience(&audiences);
                v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                // Time claims are checked against the injected clock in `validate`.
                v.validate_exp = false;
                v.validate_nbf = false;
                v.leeway = 0;
                (alg, v)
            })
            .collect();
        Self {
            issuer,
            audiences,
            algorithms,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            validations,
        }
    }

    /// Sets the clock-skew allowance for `exp`, `nbf` and `iat` (default 5 s, at most 60 s).
    ///
    /// ```
    /// use verifier::Algorithm;
    /// use verifier::contract::TokenValidator;
    /// let validator = TokenValidator::new("iss", ["aud"], [Algorithm::EdDSA]).with_leeway_secs(2);
    /// ```
    pub fn with_leeway_secs(mut self, leeway: i64) -> Self {
        self.leeway_secs = leeway.clamp(0, 60);
        self
    }

    /// The configured issuer.
    ///
    /// ```
    /// use verifier::Algorithm;
    /// use verifier::contract::TokenValidator;
    /// assert_eq!(TokenValidator::new("iss", ["aud"], [Algorithm::EdDSA]).issuer(), "iss");
    /// ```
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Structure and header checks only: length cap, the checks of [`JoseHeader::read`]
    /// (compact JWS of exactly three base64url segments, header a JSON object, none of
    /// `jku`/`jwk`/`x5u`/`x5c`/`crit`/`enc`/`zip`/`b64`), then an allowed `alg`, `typ` of an
    /// access token and a `kid`.
    ///
    /// ```
    /// use verifier::Algorithm;
    /// use verifier::contract::TokenValidator;
    /// let v = TokenValidator::new("iss", ["aud"], [Algorithm::EdDSA]);
    /// // {"alg":"none","typ":"at+jwt","kid":"k"}
    /// let none = "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0Iiwia2lkIjoiayJ9.e30.";
    /// assert!(v.check_header(none).is_err());
    /// ```
    pub fn check_header(&self, token: &str) -> Result<TokenHeader, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Invalid("token too long"));
        }
        let raw = JoseHeader::read(token).map_err(|e| VerifyError::Invalid(e.reason()))?;
        if !typ_is(raw.typ.as_deref(), ACCESS_TOKEN_TYP) {
            return Err(VerifyError::Invalid("not an access token (typ)"));
        }
        // Exact, case-sensitive match against the allow-list: "none", "NONE", "nOnE" all fail.
        let alg = raw
            .alg
            .parse::<Algorithm>()
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or(VerifyError::Invalid("algorithm not allowed"))?;
        let kid = raw.kid.ok_or(VerifyError::Invalid("missing kid"))?;
        Ok(TokenHeader { alg, kid })
    }

    /// Full validation of a token against `keys` at time `now_secs` (seconds since the epoch).
    ///
    /// ```
    /// use verifier::{Algorithm, KeySet, VerifyError, VerifyingKey};
    /// use verifier::contract::TokenValidator;
    /// let validator = TokenValidator::new("iss", ["aud"], [Algorithm::EdDSA]);
    /// let keys = KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]);
    /// // {"alg":"EdDSA","typ":"at+jwt","kid":"k1"}, a payload and a signature that do not verify
    /// let forged = "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsxIn0.e30.c2ln";
    /// assert!(matches!(validator.validate(forged, &keys, 0), Err(VerifyError::Invalid(_))));
    /// ```
    pub fn validate(
        &self,
        token: &str,
        keys: &KeySet,
        now_secs: i64,
    ) -> Result<Claims, VerifyError> {
        let header = self.check_header(token)?;
        let key = keys
            .get(&header.kid)
            .ok_or(VerifyError::Invalid("unknown key id"))?;
        self.validate_with_key(token, &header, key, now_secs)
    }

    /// Signature and claims, once the header has been checked and its key found. Besides
    /// `iss`, `aud` and the required claims: time claims are integers in `0..=9999-12-31`,
    /// `exp` is in the future and `nbf` and `iat` are not (each with the leeway), and `sub`
    /// and `sid` are identifiers.
    ///
    /// ```
    /// use verifier::{Algorithm, VerifyError, VerifyingKey};
    /// use verifier::contract::TokenValidator;
    /// let validator = TokenValidator::new("iss", ["aud"], [Algorithm::EdDSA]);
    /// let token = "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsxIn0.e30.c2ln";
    /// let header = validator.check_header(token).unwrap();
    /// let key = VerifyingKey::ed25519("k1", &[7u8; 32]);
    /// assert!(validator.validate_with_key(token, &header, &key, 0).is_err());
    /// ```
    pub fn validate_with_key(
        &self,
        token: &str,
        header: &TokenHeader,
        key: &VerifyingKey,
        now_secs: i64,
    ) -> Result<Claims, VerifyError> {
        if key.alg != header.alg {
            return Err(VerifyError::Invalid("algorithm does not match the key"));
        }
        let validation = self
            .validations
            .get(&header.alg)
            .ok_or(VerifyError::Invalid("algorithm not allowed"))?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, validation).map_err(|e| {
            VerifyError::Invalid(match e.kind() {
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::MissingRequiredClaim(_) => "missing claim",
                ErrorKind::InvalidAlgorithm => "algorithm not allowed",
                _ => "malformed token",
            })
        })?;
        let claims = data.claims;
        let in_range = |t: i64| (0..=MAX_NUMERIC_DATE).contains(&t);
        if !in_range(claims.exp)
            || !in_range(claims.iat)
            || claims.nbf.is_some_and(|t| !in_range(t))
        {
            return Err(VerifyError::Invalid("time claim out of range"));
        }
        if claims.exp + self.leeway_secs <= now_secs {
            return Err(VerifyError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf - self.leeway_secs > now_secs)
        {
            return Err(VerifyError::Invalid("token not yet valid"));
        }
        if claims.iat - self.leeway_secs > now_secs {
            return Err(VerifyError::Invalid("token issued in the future"));
        }
        if !is_identifier(&claims.sub) || !is_identifier(&claims.sid) {
            return Err(VerifyError::Invalid("malformed sub or sid"));
        }
        Ok(claims)
    }
}
