//! Token hygiene and signature/claims validation, framework-free and Redis-free.
//!
//! Check order (RFC 8725, TV-10): structure → header → key → signature → claims.
//! Nothing here talks to the network; revocation is checked afterwards by the caller.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::claims::{ACCESS_TOKEN_TYP, Claims};
use crate::error::VerifyError;
use crate::session_keys::is_identifier;

/// Longest token accepted, in bytes, checked before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The latest NumericDate accepted in `exp`, `iat` and `nbf`: 9999-12-31T23:59:59Z. Time
/// claims outside `0..=` this are refused, which also keeps the leeway arithmetic in range.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// Installs jsonwebtoken's aws-lc-rs crypto provider for this process (idempotent).
///
/// jsonwebtoken panics on first use when no provider is selected; every binary and
/// test calls this once at start-up. [`TokenValidator::new`] calls it too.
///
/// ```
/// verifier::install_crypto_provider();
/// verifier::install_crypto_provider(); // a second call is harmless
/// ```
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// A public key (or HMAC secret) that verifies tokens with one `kid` and one algorithm.
///
/// ```
/// use verifier::VerifyingKey;
/// let key = VerifyingKey::ed25519("k1", &[7u8; 32]);
/// assert_eq!(key.kid(), "k1");
/// ```
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// A key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable key: {0}")]
pub struct KeyError(pub String);

impl VerifyingKey {
    /// An Ed25519 public key from its 32 raw bytes.
    pub fn ed25519(kid: impl Into<String>, public_key: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            key: DecodingKey::from_ed_der(public_key),
        }
    }

    /// A public key from PEM (`alg` decides how the PEM is read: EdDSA, ES256, RS256).
    ///
    /// ```
    /// use verifier::{Algorithm, VerifyingKey};
    /// assert!(VerifyingKey::from_pem("k", Algorithm::EdDSA, b"not pem").is_err());
    /// ```
    pub fn from_pem(kid: impl Into<String>, alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let key = match alg {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
            Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            other => {
                return Err(KeyError(format!(
                    "{other:?} keys cannot be read from PEM here"
                )));
            }
        }
        .map_err(|e| KeyError(e.to_string()))?;
        Ok(Self {
            kid: kid.into(),
            alg,
            key,
        })
    }

    /// An HS256 shared secret, at least 32 bytes (RFC 7518 §3.2); single-process set-ups only.
    ///
    /// ```
    /// use verifier::VerifyingKey;
    /// assert!(VerifyingKey::hs256("k", b"short").is_err());
    /// assert!(VerifyingKey::hs256("k", &[1u8; 32]).is_ok());
    /// ```
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError("HS256 secrets must be at least 32 bytes".into()));
        }
        Ok(Self {
            kid: kid.into(),
            alg: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        })
    }

    /// A public key from a JWK. The JWK must carry `kid` and `alg`, and its key type must
    /// match `alg`; symmetric (`oct`) JWKs are refused, as they never belong in a JWKS.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| KeyError("JWK without kid".into()))?;
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::OctetKeyPair(p), Some(KeyAlgorithm::EdDSA))
                if p.curve == EllipticCurve::Ed25519 =>
            {
                Algorithm::EdDSA
            }
            (AlgorithmParameters::EllipticCurve(p), Some(KeyAlgorithm::ES256))
                if p.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            _ => {
                return Err(KeyError(format!(
                    "JWK {kid}: unsupported key type / alg pair"
                )));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyError(e.to_string()))?;
        Ok(Self { kid, alg, key })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// The keys a verifier trusts, by `kid`. Cheap to clone.
///
/// ```
/// use verifier::{KeySet, VerifyingKey};
/// let keys = KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]);
/// assert!(keys.get("k1").is_some());
/// assert!(keys.get("k2").is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Arc<HashMap<String, VerifyingKey>>,
}

impl KeySet {
    /// A key set from keys (a later duplicate `kid` replaces an earlier one).
    pub fn from_keys(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self {
            keys: Arc::new(keys.into_iter().map(|k| (k.kid.clone(), k)).collect()),
        }
    }

    /// The usable keys of a JWKS; keys that are unusable or unsupported are skipped
    /// (and logged), so one odd key does not take the whole set down.
    pub fn from_jwks(jwks: &JwkSet) -> Self {
        Self::from_keys(jwks.keys.iter().filter_map(|jwk| {
            VerifyingKey::from_jwk(jwk)
                .map_err(|e| tracing::warn!(error = %e, "skipping JWK"))
                .ok()
        }))
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, sorted.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }
}

/// The parts of a JOSE header that survived the hygiene checks.
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

/// Checks tokens against an issuer, audiences, an algorithm allow-list and a key set.
///
/// ```
/// use verifier::{Algorithm, KeySet, TokenValidator, VerifyError};
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
pub const DEFAULT_LEEWAY_SECS: i64 = 5;

impl TokenValidator {
    /// A validator for tokens from `issuer`, meant for any of `audiences`, signed with one
    /// of `algorithms` (the allow-list; `none` can never be on it).
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
    pub fn with_leeway_secs(mut self, leeway: i64) -> Self {
        self.leeway_secs = leeway.clamp(0, 60);
        self
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Structure and header checks only: length cap, compact JWS of exactly three
    /// base64url segments, header a JSON object with an allowed `alg`, `typ` of an access
    /// token, a `kid`, and none of `jku`/`jwk`/`x5u`/`x5c`/`crit`/`enc`/`zip`/`b64`.
    ///
    /// ```
    /// use verifier::{Algorithm, TokenValidator};
    /// let v = TokenValidator::new("iss", ["aud"], [Algorithm::EdDSA]);
    /// // {"alg":"none","typ":"at+jwt","kid":"k"}
    /// let none = "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0Iiwia2lkIjoiayJ9.e30.";
    /// assert!(v.check_header(none).is_err());
    /// ```
    pub fn check_header(&self, token: &str) -> Result<TokenHeader, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Invalid("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Invalid("not a compact JWS"));
        };
        if [header, payload, signature]
            .iter()
            .any(|p| p.is_empty() || !is_base64url(p))
        {
            return Err(VerifyError::Invalid("not a compact JWS"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| VerifyError::Invalid("header is not base64url"))?;
        let raw: RawHeader =
            serde_json::from_slice(&raw).map_err(|_| VerifyError::Invalid("malformed header"))?;
        if raw.jku.is_some()
            || raw.jwk.is_some()
            || raw.x5u.is_some()
            || raw.x5c.is_some()
            || raw.crit.is_some()
            || raw.enc.is_some()
            || raw.zip.is_some()
            || raw.b64.is_some()
        {
            return Err(VerifyError::Invalid("forbidden header parameter"));
        }
        let typ_ok = raw.typ.as_deref().is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t == ACCESS_TOKEN_TYP || t == "application/at+jwt"
        });
        if !typ_ok {
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

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The JOSE name of an algorithm (`"EdDSA"`, `"ES256"`, ...).
///
/// ```
/// assert_eq!(verifier::algorithm_name(verifier::Algorithm::EdDSA), "EdDSA");
/// ```
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}
