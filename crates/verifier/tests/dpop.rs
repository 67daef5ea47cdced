//! DPoP proof hygiene (RFC 9449 §4.3): every way a proof can be wrong is refused with its
//! reason, and a good proof names its key by the RFC 7638 thumbprint. The proofs are made by
//! `test_support::DpopKey`, written from the RFCs independently of the checker. Time is a
//! `ManualClock`: nothing sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use test_support::{DpopKey, access_token_hash};
use verifier::contract::ManualClock;
use verifier::dpop::{
    DpopChecker, DpopError, MAX_PROOF_BYTES, ProofRequest, SUPPORTED_ALGORITHMS, VerifiedProof,
    jwk_thumbprint, proof_header,
};
use verifier::{Algorithm, Clock as _};

const PUBLIC_URL: &str = "https://auth.example.com";
const HTU: &str = "https://auth.example.com/v1/refresh";
const PATH: &str = "/v1/refresh";

fn checker(clock: &ManualClock) -> DpopChecker {
    DpopChecker::builder()
        .public_url(PUBLIC_URL)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

struct Setup {
    clock: ManualClock,
    checker: DpopChecker,
    key: DpopKey,
}

impl Setup {
    fn new() -> Self {
        let clock = ManualClock::starting_now();
        Self {
            checker: checker(&clock),
            clock,
            key: DpopKey::es256(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    fn check(&self, proof: &str) -> Result<VerifiedProof, DpopError> {
        self.checker.check(proof, &ProofRequest::new("POST", PATH))
    }

    /// A proof of `self.key` with `header` and `claims` changed as `edit` says.
    fn edited(&self, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let mut header = self.key.header();
        let mut claims = DpopKey::claims("POST", HTU, self.now());
        edit(&mut header, &mut claims);
        self.key.sign(&header, &claims)
    }
}

#[test]
fn a_good_proof_names_its_key_by_thumbprint_for_every_supported_algorithm() {
    let clock = ManualClock::starting_now();
    let checker = checker(&clock);
    for key in [
        DpopKey::es256(),
        DpopKey::ed25519(),
        DpopKey::rsa(true),
        DpopKey::rsa(false),
    ] {
        let proof = key.proof("POST", HTU, clock.now_secs());
        let verified = checker
            .check(&proof, &ProofRequest::new("POST", PATH))
            .unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
        assert_eq!(verified.thumbprint(), key.thumbprint(), "{}", key.alg());
        assert_eq!(verified.issued_at(), clock.now_secs());
        // The thumbprint of the bare JWK, through the public function, agrees.
        assert_eq!(
            jwk_thumbprint(&key.jwk().to_string()).unwrap(),
            key.thumbprint()
        );
    }
    assert_eq!(
        checker.signing_alg_values(),
        ["ES256", "EdDSA", "PS256", "RS256"]
    );
    assert_eq!(SUPPORTED_ALGORITHMS.len(), 4);
}

#[test]
fn thumbprints_match_the_rfc_examples() {
    // RFC 7638 §3.1.
    let rfc7638 = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    });
    assert_eq!(
        jwk_thumbprint(&rfc7638.to_string()).unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    // RFC 9449 §6.1: the example proof key and the `cnf.jkt` of its token.
    let rfc9449 = json!({
        "kty": "EC",
        "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        "crv": "P-256",
    });
    assert_eq!(
        jwk_thumbprint(&rfc9449.to_string()).unwrap(),
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    );
    // Member order and extra public members do not change it; private members are refused.
    let mut reordered: serde_json::Map<String, Value> = serde_json::Map::new();
    for name in ["y", "use", "crv", "x", "kty"] {
        reordered.insert(
            name.into(),
            rfc9449.get(name).cloned().unwrap_or(json!("sig")),
        );
    }
    assert_eq!(
        jwk_thumbprint(&Value::Object(reordered).to_string()).unwrap(),
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    );
    let mut private = rfc9449.clone();
    private["d"] = json!("l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs");
    assert!(matches!(
        jwk_thumbprint(&private.to_string()),
        Err(DpopError::BadKey(_))
    ));
}

#[test]
fn the_access_token_hash_matches_the_rfc_example() {
    // RFC 9449 §7.1, computed by the test helper and by the verifier.
    let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    let ath = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo";
    assert_eq!(access_token_hash(token), ath);
    assert_eq!(verifier::dpop::access_token_hash(token), ath);
}

#[test]
fn a_proof_without_the_dpop_type_is_refused() {
    let s = Setup::new();
    for typ in [None, Some("jwt"), Some("at+jwt"), Some("JWT"), Some("dpop")] {
        let proof = s.edited(|header, _| match typ {
            Some(typ) => header["typ"] = json!(typ),
            None => {
                header.as_object_mut().unwrap().remove("typ");
            }
        });
        assert_eq!(s.check(&proof), Err(DpopError::WrongType), "{typ:?}");
    }
    // The media-type spelling is the same type.
    let proof = s.edited(|header, _| header["typ"] = json!("application/DPoP+JWT"));
    assert!(s.check(&proof).is_ok());
}

#[test]
fn only_asymmetric_algorithms_on_the_allow_list_are_accepted() {
    let s = Setup::new();
    // "none" in every spelling, with or without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({ "typ": "dpop+jwt", "alg": alg, "jwk": s.key.jwk() });
        let claims = DpopKey::claims("POST", HTU, s.now());
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert!(s.check(&unsigned).is_err(), "{alg}: unsigned");
        let signed = s.key.sign(&header, &claims);
        assert_eq!(
            s.check(&signed),
            Err(DpopError::AlgorithmNotAllowed),
            "{alg}"
        );
    }
    // HS256 with the public key as the secret, and algorithms we do not support.
    for alg in ["HS256", "HS512", "ES384", "RS512", "es256"] {
        let proof = s.edited(|header, _| header["alg"] = json!(alg));
        assert_eq!(
            s.check(&proof),
            Err(DpopError::AlgorithmNotAllowed),
            "{alg}"
        );
    }
    // A checker limited to ES256 refuses EdDSA.
    let only_es256 = DpopChecker::builder()
        .public_url(PUBLIC_URL)
        .algorithms([Algorithm::ES256])
        .clock(Arc::new(s.clock.clone()))
        .build()
        .unwrap();
    let eddsa = DpopKey::ed25519().proof("POST", HTU, s.now());
    assert_eq!(
        only_es256.check(&eddsa, &ProofRequest::new("POST", PATH)),
        Err(DpopError::AlgorithmNotAllowed)
    );
    // Building a checker with a MAC or none on the list is refused.
    for alg in [Algorithm::HS256, Algorithm::ES384] {
        assert!(
            DpopChecker::builder()
                .public_url(PUBLIC_URL)
                .algorithms([alg])
                .build()
                .is_err()
        );
    }
}

#[test]
fn the_key_must_be_a_public_key_that_fits_the_algorithm() {
    let s = Setup::new();
    // Private members, whichever.
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let proof = s.edited(|header, _| header["jwk"][member] = json!("AAAA"));
        assert!(
            matches!(s.check(&proof), Err(DpopError::BadKey(m)) if m.contains("private")),
            "{member}"
        );
    }
    // No key, a symmetric key, a key of another type than `alg` says.
    let no_jwk = s.edited(|header, _| {
        header.as_object_mut().unwrap().remove("jwk");
    });
    assert!(matches!(s.check(&no_jwk), Err(DpopError::BadKey(_))));
    let oct = s.edited(|header, _| header["jwk"] = json!({ "kty": "oct", "k": "c2VjcmV0" }));
    assert!(matches!(s.check(&oct), Err(DpopError::BadKey(_))));
    let ed = DpopKey::ed25519();
    let mismatched = s.edited(|header, _| header["jwk"] = ed.jwk()); // alg ES256, Ed25519 key
    assert!(matches!(s.check(&mismatched), Err(DpopError::BadKey(_))));
    // A P-256 key with a short coordinate, another curve, a jwk `alg` that disagrees.
    let short = s.edited(|header, _| header["jwk"]["x"] = json!("AAAA"));
    assert!(matches!(s.check(&short), Err(DpopError::BadKey(_))));
    let p384 = s.edited(|header, _| header["jwk"]["crv"] = json!("P-384"));
    assert!(matches!(s.check(&p384), Err(DpopError::BadKey(_))));
    let alg = s.edited(|header, _| header["jwk"]["alg"] = json!("RS256"));
    assert!(matches!(s.check(&alg), Err(DpopError::BadKey(_))));
    let encryption = s.edited(|header, _| header["jwk"]["use"] = json!("enc"));
    assert!(matches!(s.check(&encryption), Err(DpopError::BadKey(_))));
}

#[test]
fn the_signature_must_verify_with_the_key_in_the_header() {
    let s = Setup::new();
    let other = DpopKey::es256();
    // Signed by another key, carrying s.key's public key.
    let forged = other.sign(&s.key.header(), &DpopKey::claims("POST", HTU, s.now()));
    assert_eq!(s.check(&forged), Err(DpopError::BadSignature));
    // A good proof with its claims swapped afterwards.
    let good = s.key.proof("POST", HTU, s.now());
    let mut parts: Vec<&str> = good.split('.').collect();
    let swapped = URL_SAFE_NO_PAD.encode(DpopKey::claims("GET", HTU, s.now()).to_string());
    parts[1] = &swapped;
    assert_eq!(s.check(&parts.join(".")), Err(DpopError::BadSignature));
}

#[test]
fn the_proof_must_name_this_request() {
    let s = Setup::new();
    let now = s.now();
    for htm in ["GET", "post", "PUT"] {
        let proof = s.key.proof(htm, HTU, now);
        assert_eq!(s.check(&proof), Err(DpopError::WrongMethod), "{htm}");
    }
    for htu in [
        "http://auth.example.com/v1/refresh",
        "https://auth.example.com:8443/v1/refresh",
        "https://other.example.com/v1/refresh",
        "https://auth.example.com/v1/login",
        "https://auth.example.com/v1/refresh/",
        "/v1/refresh",
        "not a url",
    ] {
        let proof = s.key.proof("POST", htu, now);
        assert_eq!(s.check(&proof), Err(DpopError::WrongUrl), "{htu}");
    }
    // RFC 3986 normalisation: the same URL spelled otherwise, with a query or a fragment.
    for htu in [
        "HTTPS://Auth.Example.com/v1/refresh",
        "https://auth.example.com:443/v1/refresh",
        "https://auth.example.com/v1/%72efresh",
        "https://auth.example.com/v1/refresh?x=1",
        "https://auth.example.com/v1/refresh#top",
    ] {
        let proof = s.key.proof("POST", htu, now);
        assert!(s.check(&proof).is_ok(), "{htu}");
    }
}

#[test]
fn the_public_url_with_a_path_prefix_is_where_proofs_point() {
    let clock = ManualClock::starting_now();
    let checker = DpopChecker::builder()
        .public_url("https://example.com/auth/")
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    assert_eq!(checker.public_url(), "https://example.com/auth");
    let key = DpopKey::es256();
    let request = ProofRequest::new("POST", "/v1/refresh");
    let behind_proxy = key.proof(
        "POST",
        "https://example.com/auth/v1/refresh",
        clock.now_secs(),
    );
    assert!(checker.check(&behind_proxy, &request).is_ok());
    let internal = key.proof("POST", "http://127.0.0.1:8080/v1/refresh", clock.now_secs());
    assert_eq!(checker.check(&internal, &request), Err(DpopError::WrongUrl));
}

#[test]
fn iat_must_lie_in_the_window_with_the_leeway() {
    let s = Setup::new();
    let now = s.now();
    // Default: 60 s old at most, 5 s of skew either way.
    for (iat, expected) in [
        (now - 66, Err(DpopError::Stale)),
        (now + 6, Err(DpopError::FromTheFuture)),
        (now + 3600, Err(DpopError::FromTheFuture)),
        (0, Err(DpopError::Stale)),
        (i64::MIN, Err(DpopError::Stale)),
        (i64::MAX, Err(DpopError::FromTheFuture)),
    ] {
        let proof = s.key.proof("POST", HTU, iat);
        assert_eq!(
            s.check(&proof).map(|_| ()),
            expected,
            "iat {iat} (now {now})"
        );
    }
    for iat in [now - 65, now - 30, now, now + 5] {
        let proof = s.key.proof("POST", HTU, iat);
        assert!(s.check(&proof).is_ok(), "iat {iat} (now {now})");
    }
    // The window follows the injected clock.
    let proof = s.key.proof("POST", HTU, now);
    s.clock.advance(Duration::from_secs(66));
    assert_eq!(s.check(&proof), Err(DpopError::Stale));
    // A non-integer or string iat is malformed, not "absent".
    for iat in [json!(1.5), json!("123"), Value::Null] {
        let proof = s.edited(|_, claims| claims["iat"] = iat.clone());
        assert!(
            matches!(s.check(&proof), Err(DpopError::Malformed(_))),
            "{iat}"
        );
    }
}

#[test]
fn a_proof_counts_once_per_key() {
    let s = Setup::new();
    let proof = s.key.proof("POST", HTU, s.now());
    assert!(s.check(&proof).is_ok());
    assert_eq!(s.check(&proof), Err(DpopError::Replayed));
    s.clock.advance(Duration::from_secs(30));
    assert_eq!(s.check(&proof), Err(DpopError::Replayed));
    // A clone of the checker shares its memory.
    let clone = s.checker.clone();
    assert_eq!(
        clone.check(&proof, &ProofRequest::new("POST", PATH)),
        Err(DpopError::Replayed)
    );
    // The same jti from another key is another proof.
    let mut claims = DpopKey::claims("POST", HTU, s.now());
    let jti = claims["jti"].clone();
    assert!(s.check(&s.key.sign(&s.key.header(), &claims)).is_ok());
    let other = DpopKey::es256();
    claims["jti"] = jti;
    assert!(s.check(&other.sign(&other.header(), &claims)).is_ok());
    // A refused proof is not remembered: once fixed it counts.
    let early = s.key.proof("POST", HTU, s.now() + 10);
    assert_eq!(s.check(&early), Err(DpopError::FromTheFuture));
    s.clock.advance(Duration::from_secs(10));
    assert!(s.check(&early).is_ok());
}

#[test]
fn concurrent_checks_of_one_proof_accept_it_once() {
    let s = Setup::new();
    let proof = s.key.proof("POST", HTU, s.now());
    let start = std::sync::Barrier::new(8);
    let accepted = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    s.check(&proof).is_ok()
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().unwrap())
            .filter(|ok| *ok)
            .count()
    });
    assert_eq!(accepted, 1);
}

#[test]
fn with_an_access_token_the_proof_must_carry_its_hash() {
    let s = Setup::new();
    let request = ProofRequest::new("GET", "/me").with_access_token("the-token");
    let htu = "https://auth.example.com/me";
    let without = s.key.proof("GET", htu, s.now());
    assert_eq!(
        s.checker.check(&without, &request),
        Err(DpopError::MissingAccessTokenHash)
    );
    let other = s.key.proof_for_token("GET", htu, s.now(), "another-token");
    assert_eq!(
        s.checker.check(&other, &request),
        Err(DpopError::WrongAccessTokenHash)
    );
    let right = s.key.proof_for_token("GET", htu, s.now(), "the-token");
    assert!(s.checker.check(&right, &request).is_ok());
}

#[test]
fn malformed_and_oversized_proofs_are_refused_before_any_crypto() {
    let s = Setup::new();
    let good = s.key.proof("POST", HTU, s.now());
    let (header, rest) = good.split_once('.').unwrap();
    for bad in [
        String::new(),
        "garbage".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "a.b.c.d.e".into(),
        format!("{header}..sig"),
        format!("{good}="),
        format!("{header}.{rest} "),
        format!("{{\"protected\":\"{header}\"}}"),
    ] {
        assert!(
            matches!(s.check(&bad), Err(DpopError::Malformed(_))),
            "{bad:?}: {:?}",
            s.check(&bad)
        );
    }
    assert_eq!(
        s.check(&"a".repeat(MAX_PROOF_BYTES + 1)),
        Err(DpopError::TooLong)
    );
    // Forbidden header parameters.
    for forbidden in ["jku", "x5u", "x5c", "crit", "enc", "zip", "b64"] {
        let proof = s.edited(|header, _| header[forbidden] = json!(["x"]));
        assert_eq!(
            s.check(&proof),
            Err(DpopError::Malformed("forbidden header parameter")),
            "{forbidden}"
        );
    }
    // A duplicate member, a claim missing, claims that are not an object, a mistyped htm,
    // an empty or a huge jti.
    let header = s.key.header().to_string();
    let htu_twice = format!(
        r#"{{"jti":"j1","htm":"POST","htu":"{HTU}","htu":"https://evil.example/","iat":{}}}"#,
        s.now()
    );
    assert!(matches!(
        s.check(&s.key.sign_raw(&header, &htu_twice)),
        Err(DpopError::Malformed(_))
    ));
    let typ_twice = header.replacen('{', r#"{"typ":"jwt","#, 1);
    let claims = DpopKey::claims("POST", HTU, s.now()).to_string();
    assert!(matches!(
        s.check(&s.key.sign_raw(&typ_twice, &claims)),
        Err(DpopError::Malformed(_))
    ));
    for missing in ["jti", "htm", "htu", "iat"] {
        let proof = s.edited(|_, claims| {
            claims.as_object_mut().unwrap().remove(missing);
        });
        assert!(
            matches!(s.check(&proof), Err(DpopError::Malformed(_))),
            "{missing}"
        );
    }
    assert!(matches!(
        s.check(&s.key.sign_raw(&header, "[1,2]")),
        Err(DpopError::Malformed(_))
    ));
    let proof = s.edited(|_, claims| claims["htm"] = json!(["POST"]));
    assert!(matches!(s.check(&proof), Err(DpopError::Malformed(_))));
    for jti in [String::new(), "j".repeat(257)] {
        let proof = s.edited(|_, claims| claims["jti"] = json!(jti));
        assert!(matches!(s.check(&proof), Err(DpopError::Malformed(_))));
    }
}

#[test]
fn exactly_one_dpop_header_is_read() {
    let mut headers = http::HeaderMap::new();
    assert_eq!(proof_header(&headers), Ok(None));
    headers.insert("dpop", "a.b.c".parse().unwrap());
    assert_eq!(proof_header(&headers), Ok(Some("a.b.c")));
    headers.append("DPoP", "d.e.f".parse().unwrap());
    assert_eq!(proof_header(&headers), Err(DpopError::Multiple));
    let mut headers = http::HeaderMap::new();
    headers.insert("dpop", http::HeaderValue::from_bytes(b"\xffa.b.c").unwrap());
    assert!(matches!(
        proof_header(&headers),
        Err(DpopError::Malformed(_))
    ));
}

#[test]
fn the_checker_refuses_settings_that_cannot_work() {
    let url = |u: &str| DpopChecker::builder().public_url(u).build();
    assert!(DpopChecker::builder().build().is_err(), "no public URL");
    for bad in [
        "auth.example.com",
        "ftp://a.example",
        "https://a.example/?x",
        "https://a.example/#x",
    ] {
        assert!(url(bad).is_err(), "{bad}");
    }
    let base = || DpopChecker::builder().public_url(PUBLIC_URL);
    assert!(base().max_age(Duration::ZERO).build().is_err());
    assert!(base().max_age(Duration::from_secs(301)).build().is_err());
    assert!(base().leeway(Duration::from_secs(61)).build().is_err());
    assert!(base().replay_cache_capacity(0).build().is_err());
    assert!(base().algorithms([]).build().is_err());
    assert!(base().max_age(Duration::from_secs(300)).build().is_ok());
}
