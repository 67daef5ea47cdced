//! A DPoP client for tests (RFC 9449): a key pair that makes proofs, written here from the
//! RFCs with aws-lc-rs and no code of the verifier, so the two check each other.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

enum Pair {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa { pair: RsaKeyPair, pss: bool },
}

/// A client's DPoP key pair.
pub struct DpopKey {
    pair: Pair,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl DpopKey {
    /// A new P-256 key; proofs are ES256.
    pub fn es256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("read the P-256 key");
        Self {
            pair: Pair::Es256(pair),
        }
    }

    /// A new Ed25519 key; proofs are EdDSA.
    pub fn ed25519() -> Self {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate an Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("read the Ed25519 key");
        Self {
            pair: Pair::Ed25519(pair),
        }
    }

    /// A new 2048-bit RSA key; proofs are PS256 with `pss`, RS256 otherwise.
    pub fn rsa(pss: bool) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("generate an RSA key");
        Self {
            pair: Pair::Rsa { pair, pss },
        }
    }

    /// The JOSE `alg` of this key's proofs.
    pub fn alg(&self) -> &'static str {
        match &self.pair {
            Pair::Es256(_) => "ES256",
            Pair::Ed25519(_) => "EdDSA",
            Pair::Rsa { pss: true, .. } => "PS256",
            Pair::Rsa { pss: false, .. } => "RS256",
        }
    }

    /// The public key as a JWK: only the members RFC 7638 names.
    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Es256(pair) => {
                // Uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]) })
            }
            Pair::Ed25519(pair) => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()) })
            }
            Pair::Rsa { pair, .. } => {
                let components =
                    aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({ "kty": "RSA", "n": b64(&components.n), "e": b64(&components.e) })
            }
        }
    }

    /// The RFC 7638 SHA-256 thumbprint of [`jwk`](Self::jwk): the required members in
    /// lexicographic order, no whitespace.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let member = |name: &str| jwk[name].as_str().unwrap_or_default().to_string();
        let canonical = match &self.pair {
            Pair::Es256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                member("x"),
                member("y")
            ),
            Pair::Ed25519(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, member("x")),
            Pair::Rsa { .. } => {
                format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    member("e"),
                    member("n")
                )
            }
        };
        b64(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    /// The header of this key's proofs: `typ`, `alg` and the public `jwk`.
    pub fn header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk() })
    }

    /// Proof claims for a `htm` request to `htu` made at `iat`, with a fresh `jti`.
    pub fn claims(htm: &str, htu: &str, iat: i64) -> Value {
        json!({ "jti": uuid::Uuid::new_v4().to_string(), "htm": htm, "htu": htu, "iat": iat })
    }

    /// A proof for a `htm` request to `htu` made at `iat`.
    pub fn proof(&self, htm: &str, htu: &str, iat: i64) -> String {
        self.sign(&self.header(), &Self::claims(htm, htu, iat))
    }

    /// A proof that comes with `access_token` (its `ath`).
    pub fn proof_for_token(&self, htm: &str, htu: &str, iat: i64, access_token: &str) -> String {
        let mut claims = Self::claims(htm, htu, iat);
        claims["ath"] = json!(access_token_hash(access_token));
        self.sign(&self.header(), &claims)
    }

    /// `header` and `claims` as a compact JWS signed with this key, whatever they say.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    /// JSON texts as given (duplicate members, odd types) signed with this key.
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let signing_input = format!("{}.{}", b64(header), b64(claims));
        let message = signing_input.as_bytes();
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Es256(pair) => pair.sign(&rng, message).expect("sign").as_ref().to_vec(),
            Pair::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Pair::Rsa { pair, pss } => {
                let mut out = vec![0; pair.public_modulus_len()];
                let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = if *pss {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                pair.sign(padding, &rng, message, &mut out).expect("sign");
                out
            }
        };
        format!("{signing_input}.{}", b64(signature))
    }
}

/// base64url(SHA-256(access token)): a proof's `ath` (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    b64(digest::digest(&digest::SHA256, access_token.as_bytes()))
}
