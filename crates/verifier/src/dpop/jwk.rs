//! The public key of a DPoP proof (its `jwk` header): read strictly, refused when it carries
//! private members, matched against the proof's `alg`, turned into a jsonwebtoken
//! `DecodingKey`, and named by its RFC 7638 thumbprint.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::DpopError;

/// A JWK as sent. Derived deserialisation refuses a duplicate of any member named here.
#[derive(Deserialize)]
pub(super) struct RawJwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    // Private members (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2): never in a proof.
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

/// A public key that passed the checks, its members as sent (canonical base64url).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PublicJwk {
    /// `EC`, curve P-256.
    P256 { x: String, y: String },
    /// `OKP`, curve Ed25519.
    Ed25519 { x: String },
    /// `RSA`, 2048 to 4096 bits.
    Rsa { n: String, e: String },
}

/// Strict base64url: no padding, no stray trailing bits, so one key has one spelling and
/// one thumbprint.
fn decode(member: &str) -> Result<Vec<u8>, DpopError> {
    URL_SAFE_NO_PAD
        .decode(member)
        .map_err(|_| DpopError::BadKey("a key member is not base64url"))
}

impl RawJwk {
    /// The public key, or why it is not one this crate accepts.
    pub(super) fn public_key(self) -> Result<PublicJwk, DpopError> {
        if self.d.is_some()
            || self.p.is_some()
            || self.q.is_some()
            || self.dp.is_some()
            || self.dq.is_some()
            || self.qi.is_some()
            || self.oth.is_some()
            || self.k.is_some()
        {
            return Err(DpopError::BadKey("the jwk holds private key material"));
        }
        if self.key_use.as_deref().is_some_and(|u| u != "sig") {
            return Err(DpopError::BadKey("the jwk is not a signing key (use)"));
        }
        let member = |m: Option<String>| m.ok_or(DpopError::BadKey("a key member is missing"));
        let key = match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) => PublicJwk::P256 {
                x: member(self.x)?,
                y: member(self.y)?,
            },
            ("OKP", Some("Ed25519")) => PublicJwk::Ed25519 { x: member(self.x)? },
            ("RSA", None) => PublicJwk::Rsa {
                n: member(self.n)?,
                e: member(self.e)?,
            },
            ("oct", _) => return Err(DpopError::BadKey("the jwk is a symmetric key")),
            _ => return Err(DpopError::BadKey("unsupported key type or curve")),
        };
        key.check_sizes()?;
        if let Some(alg) = &self.alg
            && !key.allows(alg)
        {
            return Err(DpopError::BadKey("the jwk's alg does not fit the key"));
        }
        Ok(key)
    }
}

impl PublicJwk {
    fn check_sizes(&self) -> Result<(), DpopError> {
        let ok = match self {
            PublicJwk::P256 { x, y } => decode(x)?.len() == 32 && decode(y)?.len() == 32,
            PublicJwk::Ed25519 { x } => decode(x)?.len() == 32,
            PublicJwk::Rsa { n, e } => {
                let (n, e) = (decode(n)?, decode(e)?);
                (256..=512).contains(&n.len())
                    && n.first().is_some_and(|&b| b != 0)
                    && (1..=4).contains(&e.len())
                    && e.first().is_some_and(|&b| b != 0)
                    && e.last().is_some_and(|&b| b & 1 == 1)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(DpopError::BadKey("the key has the wrong size"))
        }
    }

    /// Whether this key signs with `alg` (a JOSE algorithm name).
    fn allows(&self, alg: &str) -> bool {
        matches!(
            (self, alg),
            (PublicJwk::P256 { .. }, "ES256")
                | (PublicJwk::Ed25519 { .. }, "EdDSA" | "Ed25519")
                | (PublicJwk::Rsa { .. }, "RS256" | "PS256")
        )
    }

    /// The key as jsonwebtoken verifies with it, if it signs with `alg`.
    pub(super) fn decoding_key(&self, alg: Algorithm) -> Result<DecodingKey, DpopError> {
        let key = match (self, alg) {
            (PublicJwk::P256 { x, y }, Algorithm::ES256) => DecodingKey::from_ec_components(x, y),
            (PublicJwk::Ed25519 { x }, Algorithm::EdDSA) => DecodingKey::from_ed_components(x),
            (PublicJwk::Rsa { n, e }, Algorithm::RS256 | Algorithm::PS256) => {
                DecodingKey::from_rsa_components(n, e)
            }
            _ => return Err(DpopError::BadKey("the key does not fit the proof's alg")),
        };
        key.map_err(|_| DpopError::BadKey("unusable key"))
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256) of the required members, in
    /// lexicographic order, without whitespace. The members are base64url and the curve
    /// names fixed, so nothing needs escaping.
    pub(super) fn thumbprint(&self) -> String {
        let canonical = match self {
            PublicJwk::P256 { x, y } => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            PublicJwk::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            PublicJwk::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }
}
