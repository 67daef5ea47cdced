//! The keys a verifier trusts: [`VerifyingKey`] (one `kid`, one algorithm) and [`KeySet`],
//! from raw bytes, PEM or a JWKS; `jwks` fetches them from a URL (feature `jwks`).

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

#[cfg(feature = "jwks")]
pub(crate) mod jwks;

/// Installs the aws-lc-rs crypto providers for this process (idempotent): jsonwebtoken's,
/// and, with the `jwks` or `redis` feature, rustls's process default, which the JWKS client
/// (reqwest) and TLS to Redis (`rediss://`) use.
///
/// jsonwebtoken panics on first use when no provider is selected; rustls panics when it
/// finds two providers (ring and aws-lc-rs, enabled by different crates) and none was
/// installed. Every binary and test calls this once at start-up. Building a
/// [`Verifier`](crate::Verifier) and
/// [`TokenValidator::new`](crate::contract::TokenValidator::new) call it too. sqlx picks
/// aws-lc-rs on its own (`tls-rustls-aws-lc-rs`).
///
/// ```
/// verifier::contract::install_crypto_provider();
/// verifier::contract::install_crypto_provider(); // a second call is harmless
/// ```
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(any(feature = "jwks", feature = "redis"))]
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
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
///
/// ```
/// let error = verifier::VerifyingKey::hs256("k", b"short").unwrap_err();
/// assert!(error.to_string().starts_with("unusable key"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable key: {0}")]
pub struct KeyError(pub String);

impl VerifyingKey {
    /// An Ed25519 public key from its 32 raw bytes.
    ///
    /// ```
    /// let key = verifier::VerifyingKey::ed25519("k1", &[7u8; 32]);
    /// assert_eq!(key.algorithm(), verifier::Algorithm::EdDSA);
    /// ```
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
    ///
    /// ```
    /// let jwk: verifier::JwkSet = serde_json::from_str(r#"{"keys":[{"kty":"OKP","crv":"Ed25519",
    ///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1","alg":"EdDSA","use":"sig"}]}"#).unwrap();
    /// let key = verifier::VerifyingKey::from_jwk(&jwk.keys[0]).unwrap();
    /// assert_eq!(key.kid(), "k1");
    /// ```
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
    ///
    /// ```
    /// assert_eq!(verifier::VerifyingKey::ed25519("k1", &[7u8; 32]).kid(), "k1");
    /// ```
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    ///
    /// ```
    /// use verifier::{Algorithm, VerifyingKey};
    /// assert_eq!(VerifyingKey::hs256("k", &[1u8; 32]).unwrap().algorithm(), Algorithm::HS256);
    /// ```
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
    ///
    /// ```
    /// use verifier::{KeySet, VerifyingKey};
    /// let keys = KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32]), VerifyingKey::ed25519("k2", &[8u8; 32])]);
    /// assert_eq!(keys.len(), 2);
    /// ```
    pub fn from_keys(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self {
            keys: Arc::new(keys.into_iter().map(|k| (k.kid.clone(), k)).collect()),
        }
    }

    /// The usable keys of a JWKS; keys that are unusable or unsupported are skipped
    /// (and logged), so one odd key does not take the whole set down.
    ///
    /// ```
    /// let jwks: verifier::JwkSet = serde_json::from_str(r#"{"keys":[
    ///     {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1","alg":"EdDSA"},
    ///     {"kty":"oct","k":"c2VjcmV0","kid":"k2","alg":"HS256"}]}"#).unwrap();
    /// let keys = verifier::KeySet::from_jwks(&jwks);
    /// assert_eq!(keys.kids(), ["k1"]); // the symmetric key is skipped
    /// ```
    pub fn from_jwks(jwks: &JwkSet) -> Self {
        Self::from_keys(jwks.keys.iter().filter_map(|jwk| {
            VerifyingKey::from_jwk(jwk)
                .map_err(|e| tracing::warn!(error = %e, "skipping JWK"))
                .ok()
        }))
    }

    /// The key with this `kid`.
    ///
    /// ```
    /// use verifier::{KeySet, VerifyingKey};
    /// let keys = KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]);
    /// assert_eq!(keys.get("k1").map(|k| k.kid()), Some("k1"));
    /// ```
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// Number of keys.
    ///
    /// ```
    /// assert_eq!(verifier::KeySet::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no key.
    ///
    /// ```
    /// assert!(verifier::KeySet::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, sorted.
    ///
    /// ```
    /// use verifier::{KeySet, VerifyingKey};
    /// let keys = KeySet::from_keys([VerifyingKey::ed25519("b", &[7u8; 32]), VerifyingKey::ed25519("a", &[8u8; 32])]);
    /// assert_eq!(keys.kids(), ["a", "b"]);
    /// ```
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }
}
