//! `private_key_jwt` (RFC 7523 §2.2, §3): a client authenticates with a JWT it signed with a
//! key it registered. Here: the registered keys (a JWK Set, checked and normalised once at
//! registration) and the checks of an assertion. The single use of its `jti` is checked by
//! the caller (`clients.rs`) in the shared store, after everything here passed. The header
//! hygiene is the verifier's (`verifier::contract::JoseHeader`), the one every access token
//! gets too.
//!
//! An assertion must have: a compact JWS of at most 8 KiB; `alg` EdDSA, ES256 or RS256,
//! matching the key; a `typ` that is absent, `JWT` or `client-authentication+jwt` (so no
//! other JWT of ours, an access token say, is taken for one); no `jku`, `jwk`, `x5u`, `x5c`,
//! `crit`, `enc`, `zip` or `b64`; `iss` = `sub` = the client id; an `aud` naming this server
//! (its issuer, its token endpoint or the endpoint called); an `exp` in the future and at
//! most `oauth.assertion_max_lifetime_secs` ahead; a `jti`; `nbf` and `iat`, if present, not
//! in the future (each time with the token leeway).

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde_json::{Value, json};
use verifier::contract::{JoseError, JoseHeader, compact_jws};

use super::error::AuthError;

/// The `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The algorithms an assertion may be signed with, by JOSE name.
pub const ASSERTION_ALGORITHMS: [&str; 3] = ["EdDSA", "ES256", "RS256"];

/// Longest assertion accepted, in bytes.
const MAX_ASSERTION_BYTES: usize = 8 * 1024;
/// Most keys one client may register (room for a key rollover).
pub const MAX_CLIENT_KEYS: usize = 5;
/// Smallest RSA modulus accepted, in bytes (2048 bits, RFC 7518 §3.3).
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// Longest `kid` or `jti`.
const MAX_ID_BYTES: usize = 256;
/// JWK members that only private (or symmetric) keys have (RFC 7517 §9.2, RFC 7518 §6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn invalid(message: impl Into<String>) -> AuthError {
    AuthError::InvalidInput(message.into())
}

/// A client's public keys, checked and normalised as stored: 1 to [`MAX_CLIENT_KEYS`] keys,
/// each an Ed25519 (`EdDSA`), P-256 (`ES256`) or RSA of at least 2048 bits (`RS256`) public
/// key, with no private member, `use` (if given) `sig` and `alg` (if given) matching the key.
/// Each key is stored with its `kid` (its RFC 7638 thumbprint when it had none), `alg` and
/// `use`, and nothing else.
pub(super) fn normalized_jwks(jwks: &Value) -> Result<String, AuthError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .filter(|keys| (1..=MAX_CLIENT_KEYS).contains(&keys.len()))
        .ok_or_else(|| {
            invalid(format!(
                "jwks must be a JWK Set: {{\"keys\": [...]}} with 1 to {MAX_CLIENT_KEYS} keys"
            ))
        })?;
    let mut kids = HashSet::new();
    let mut normalized = Vec::with_capacity(keys.len());
    for key in keys {
        let members = key
            .as_object()
            .ok_or_else(|| invalid("every JWK must be a JSON object"))?;
        if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
            return Err(invalid(format!(
                "a JWK has the private member {private:?}: register public keys only"
            )));
        }
        if members.get("use").is_some_and(|u| u != "sig") {
            return Err(invalid("a client key's \"use\" must be \"sig\""));
        }
        let jwk: Jwk = serde_json::from_value(key.clone())
            .map_err(|e| invalid(format!("a JWK could not be read: {e}")))?;
        let (alg, mut public) = public_members(&jwk)?;
        if jwk
            .common
            .key_algorithm
            .is_some_and(|declared| declared.to_string() != alg)
        {
            return Err(invalid(format!(
                "a JWK's \"alg\" does not match its key type (expected {alg})"
            )));
        }
        DecodingKey::from_jwk(&jwk).map_err(|e| invalid(format!("unusable JWK: {e}")))?;
        let kid = match &jwk.common.key_id {
            Some(kid) => kid.clone(),
            None => jwk
                .thumbprint(ThumbprintHash::SHA256)
                .map_err(|e| invalid(format!("unusable JWK: {e}")))?,
        };
        if kid.is_empty() || kid.len() > MAX_ID_BYTES || !kids.insert(kid.clone()) {
            return Err(invalid("every key needs its own non-empty kid"));
        }
        public["kid"] = kid.into();
        public["alg"] = alg.into();
        public["use"] = "sig".into();
        normalized.push(public);
    }
    serde_json::to_string(&json!({ "keys": normalized }))
        .map_err(|e| AuthError::internal_because("writing a client's JWK Set", e))
}

/// The algorithm a key verifies, and its public members.
fn public_members(jwk: &Jwk) -> Result<(&'static str, Value), AuthError> {
    let decoded_len = |b64: &str| URL_SAFE_NO_PAD.decode(b64).map(|b| b.len()).unwrap_or(0);
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            if decoded_len(&p.x) != 32 {
                return Err(invalid("an Ed25519 key's x must be 32 bytes"));
            }
            Ok(("EdDSA", json!({ "kty": "OKP", "crv": "Ed25519", "x": p.x })))
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            if decoded_len(&p.x) != 32 || decoded_len(&p.y) != 32 {
                return Err(invalid("a P-256 key's x and y must be 32 bytes each"));
            }
            Ok((
                "ES256",
                json!({ "kty": "EC", "crv": "P-256", "x": p.x, "y": p.y }),
            ))
        }
        AlgorithmParameters::RSA(p) => {
            // A leading zero byte would not count towards the modulus size.
            let modulus = URL_SAFE_NO_PAD.decode(&p.n).unwrap_or_default();
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err(invalid("an RSA key must have at least 2048 bits"));
            }
            Ok(("RS256", json!({ "kty": "RSA", "n": p.n, "e": p.e })))
        }
        _ => Err(invalid(
            "unsupported key: OKP Ed25519 (EdDSA), EC P-256 (ES256) or RSA (RS256) only",
        )),
    }
}

/// What an assertion is checked against.
pub(super) struct AssertionCheck<'a> {
    /// The client it must come from (`iss` and `sub`).
    pub(super) client_id: &'a str,
    /// The client's keys as stored ([`normalized_jwks`]).
    pub(super) jwks: &'a str,
    /// The acceptable `aud` values.
    pub(super) audiences: &'a [String],
    /// Now, seconds.
    pub(super) now_secs: i64,
    /// Clock-skew allowance, seconds.
    pub(super) leeway_secs: i64,
    /// Longest lifetime from now, seconds.
    pub(super) max_lifetime_secs: i64,
}

/// What a verified assertion says that matters afterwards.
#[derive(Debug)]
pub(super) struct VerifiedAssertion {
    /// Its id, single-use.
    pub(super) jti: String,
    /// Its expiry, seconds.
    pub(super) exp: i64,
}

#[derive(Deserialize)]
struct AssertionClaims {
    sub: String,
    exp: i64,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
}

/// The three segments of a compact JWS within the size cap, or `None`.
fn segments(assertion: &str) -> Option<[&str; 3]> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return None;
    }
    compact_jws(assertion)
}

/// The `iss` an assertion claims, read without verifying anything: only to find whose keys
/// to verify it with.
pub(super) fn unverified_issuer(assertion: &str) -> Option<String> {
    let [_, payload, _] = segments(assertion)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&payload).ok()?;
    claims.get("iss")?.as_str().map(String::from)
}

/// Verifies an assertion (everything but the single use of its `jti`); the error is the
/// reason, for the audit log.
pub(super) fn verify(
    assertion: &str,
    check: &AssertionCheck<'_>,
) -> Result<VerifiedAssertion, &'static str> {
    segments(assertion).ok_or("malformed client assertion")?;
    // The header hygiene of the access tokens' validation, one implementation for both.
    let header = JoseHeader::read(assertion).map_err(|e| match e {
        JoseError::NotCompact => "malformed client assertion",
        JoseError::HeaderNotBase64url | JoseError::MalformedHeader => "malformed assertion header",
        JoseError::ForbiddenParameter => "forbidden assertion header parameter",
    })?;
    let typ_ok = header.typ.as_deref().is_none_or(|t| {
        t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("client-authentication+jwt")
    });
    if !typ_ok {
        return Err("not a client assertion (typ)");
    }
    let alg = ASSERTION_ALGORITHMS
        .iter()
        .find(|a| **a == header.alg)
        .and_then(|a| a.parse::<Algorithm>().ok())
        .ok_or("assertion algorithm not allowed")?;
    let key = assertion_key(check.jwks, header.kid.as_deref())?;
    if key.common.key_algorithm.map(|a| a.to_string()) != Some(header.alg.clone()) {
        return Err("assertion algorithm does not match the key");
    }
    let decoding = DecodingKey::from_jwk(&key).map_err(|_| "unusable client key")?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[check.client_id]);
    validation.set_audience(check.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Time claims are checked against the injected clock below.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => "bad assertion signature",
            ErrorKind::InvalidIssuer => "assertion iss is not the client",
            ErrorKind::InvalidAudience => "assertion aud does not name this server",
            ErrorKind::MissingRequiredClaim(_) => "assertion misses exp, iss, aud or sub",
            _ => "malformed client assertion",
        })?
        .claims;
    let (now, leeway) = (check.now_secs, check.leeway_secs);
    if claims.sub != check.client_id {
        return Err("assertion sub is not the client");
    }
    if claims.exp.saturating_add(leeway) <= now {
        return Err("assertion expired");
    }
    if claims.exp > now.saturating_add(check.max_lifetime_secs + leeway) {
        return Err("assertion lives too long (exp too far ahead)");
    }
    if claims.nbf.is_some_and(|nbf| nbf - leeway > now)
        || claims.iat.is_some_and(|iat| iat - leeway > now)
    {
        return Err("assertion not valid yet (nbf or iat in the future)");
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_ID_BYTES)
        .ok_or("assertion without a usable jti")?;
    Ok(VerifiedAssertion {
        jti,
        exp: claims.exp,
    })
}

/// The registered key an assertion names by `kid`, or the only one when it names none.
fn assertion_key(jwks: &str, kid: Option<&str>) -> Result<Jwk, &'static str> {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(jwks).map_err(|_| "the client's keys are unreadable")?;
    match kid {
        Some(kid) => set
            .keys
            .into_iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .ok_or("assertion kid is not a key of the client"),
        None => match <[Jwk; 1]>::try_from(set.keys) {
            Ok([only]) => Ok(only),
            Err(_) => Err("assertion without kid, and the client has several keys"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed25519_jwk() -> Value {
        json!({ "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([9u8; 32]) })
    }

    #[test]
    fn keys_are_normalised_with_a_kid_alg_and_use() {
        let stored = normalized_jwks(&json!({ "keys": [ed25519_jwk()] })).unwrap();
        let stored: Value = serde_json::from_str(&stored).unwrap();
        let key = &stored["keys"][0];
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(
            key["kid"].as_str().unwrap().len(),
            43,
            "an RFC 7638 thumbprint"
        );
    }

    #[test]
    fn private_odd_or_weak_keys_are_refused() {
        let mut private = ed25519_jwk();
        private["d"] = URL_SAFE_NO_PAD.encode([1u8; 32]).into();
        let mut wrong_alg = ed25519_jwk();
        wrong_alg["alg"] = "ES256".into();
        let mut enc = ed25519_jwk();
        enc["use"] = "enc".into();
        let small_rsa =
            json!({ "kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xC1u8; 128]), "e": "AQAB" });
        let oct = json!({ "kty": "oct", "k": "c2VjcmV0" });
        let short = json!({ "kty": "OKP", "crv": "Ed25519", "x": "AAAA" });
        let mut a = ed25519_jwk();
        a["kid"] = "k".into();
        for jwks in [
            json!({ "keys": [private] }),
            json!({ "keys": [wrong_alg] }),
            json!({ "keys": [enc] }),
            json!({ "keys": [small_rsa] }),
            json!({ "keys": [oct] }),
            json!({ "keys": [short] }),
            json!({ "keys": [a.clone(), a] }),
            json!({ "keys": [] }),
            json!([ed25519_jwk()]),
        ] {
            assert!(normalized_jwks(&jwks).is_err(), "{jwks}");
        }
    }

    #[test]
    fn assertions_naming_their_own_keys_or_extensions_are_refused_by_the_shared_header_check() {
        let jwks = normalized_jwks(&json!({ "keys": [ed25519_jwk()] })).unwrap();
        let audiences = ["https://auth.example".to_string()];
        let check = AssertionCheck {
            client_id: "svc",
            jwks: &jwks,
            audiences: &audiences,
            now_secs: 1_000,
            leeway_secs: 5,
            max_lifetime_secs: 300,
        };
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"svc","sub":"svc"}"#);
        let assertion = |header: Value| {
            let header = URL_SAFE_NO_PAD.encode(header.to_string());
            format!("{header}.{payload}.c2ln")
        };
        for (param, value) in [
            ("jku", json!("https://evil.example/jwks.json")),
            ("jwk", ed25519_jwk()),
            ("x5u", json!("https://evil.example/cert.pem")),
            ("x5c", json!(["bm90IGEgY2VydGlmaWNhdGU="])),
            ("crit", json!(["exp"])),
            ("enc", json!("A256GCM")),
            ("zip", json!("DEF")),
            ("b64", json!(false)),
        ] {
            let mut header = json!({ "alg": "EdDSA", "typ": "JWT" });
            header[param] = value;
            assert_eq!(
                verify(&assertion(header), &check).unwrap_err(),
                "forbidden assertion header parameter",
                "{param}"
            );
        }
        // The same header without them passes the header check; only the signature fails.
        assert_eq!(
            verify(&assertion(json!({ "alg": "EdDSA", "typ": "JWT" })), &check).unwrap_err(),
            "bad assertion signature"
        );
        assert_eq!(
            verify(&assertion(json!({ "alg": 1 })), &check).unwrap_err(),
            "malformed assertion header"
        );
        assert_eq!(
            verify("e30.e30", &check).unwrap_err(),
            "malformed client assertion"
        );
    }

    #[test]
    fn the_issuer_is_read_without_trusting_it_and_junk_has_none() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"svc","sub":"svc"}"#);
        assert_eq!(
            unverified_issuer(&format!("e30.{payload}.c2ln")).as_deref(),
            Some("svc")
        );
        for junk in [
            "",
            "a.b",
            "a.b.c.d",
            "e30.e30.",
            &format!("e30.{payload}.c2ln="),
        ] {
            assert_eq!(unverified_issuer(junk), None, "{junk}");
        }
    }
}
