//! Token hygiene: forged and malformed tokens are refused by the in-process checks, before any
//! Redis call.
//!
//! The verifiers under test point at a dead Redis port (`127.0.0.1:1`) with revocation on
//! (every-request and tracked). A token that got as far as the session check would come back
//! as `Unavailable`; every bad token must come back as `Invalid` (or `Expired`) instead. The
//! controls show both halves: a good token *does* reach Redis (and fails closed as
//! `Unavailable`), and verifies with revocation off. No Redis server is needed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code: a panic is a failure report

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use verifier::contract::{MAX_TOKEN_BYTES, ManualClock};
use verifier::{
    Algorithm, Clock, KeySet, RedisTarget, RevocationMode, Verifier, VerifyError, VerifyingKey,
};

const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "api";
const KID: &str = "k1";
/// Nothing listens on port 1: any Redis call fails.
const DEAD_REDIS: &str = "redis://127.0.0.1:1";

/// An Ed25519 key pair that signs test tokens byte for byte as given.
struct Signer {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl Signer {
    fn generate() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            pair,
            pkcs8: pkcs8.as_ref().to_vec(),
        }
    }

    fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    fn verifying_key(&self, kid: &str) -> VerifyingKey {
        VerifyingKey::ed25519(kid, self.public_key())
    }

    /// A compact JWS of exactly these header and payload bytes, signed with Ed25519.
    fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

/// A compact JWS of these header and payload bytes, HMAC-SHA256 under `secret`.
fn hs256_raw(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// The PEM text of an Ed25519 public key (SubjectPublicKeyInfo), as a key-confusion attacker
/// would use it for an HMAC secret.
fn ed25519_public_pem(public_key: &[u8]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(public_key);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

fn good_header() -> Value {
    json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": KID })
}

fn good_claims(now: i64) -> Value {
    json!({
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": "jti-1",
        "sid": "sid-1",
        "roles": ["admin"],
    })
}

/// `value` with `key` set (or removed, for `Value::Null`).
fn with(mut value: Value, key: &str, new: Value) -> Value {
    let object = value.as_object_mut().unwrap();
    if new.is_null() {
        object.remove(key);
    } else {
        object.insert(key.into(), new);
    }
    value
}

/// `value` with `key` set to exactly `new`, `null` included (present but null).
fn with_exactly(mut value: Value, key: &str, new: Value) -> Value {
    value.as_object_mut().unwrap().insert(key.into(), new);
    value
}

/// The JSON text of `claims` with `member` appended once more, as a second `"key":value`
/// pair: a duplicate that a lax parser would let win.
fn with_duplicate(claims: &Value, member: &str) -> String {
    let text = claims.to_string();
    format!("{},{member}}}", &text[..text.len() - 1])
}

/// A verifier trusting `signer` under [`KID`], with its own manual clock.
async fn build(
    signer: &Signer,
    algorithms: &[Algorithm],
    revocation: RevocationMode,
    clock: &ManualClock,
) -> Verifier {
    let mut builder = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .algorithms(algorithms.iter().copied())
        .static_keys(KeySet::from_keys([signer.verifying_key(KID)]))
        .revocation(revocation)
        .clock(Arc::new(clock.clone()));
    if revocation != RevocationMode::Off {
        builder = builder.redis(RedisTarget::Standalone(DEAD_REDIS.into()));
    }
    builder
        .build()
        .await
        .expect("a verifier with a dead (lazy) standalone Redis builds")
}

/// How a bad token must be refused: `Invalid` with exactly this reason, or `Expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Invalid(&'static str),
    Expired,
}

struct Case {
    name: String,
    token: String,
    expect: Expect,
}

/// A token refused as `Invalid(reason)`.
fn case(name: impl Into<String>, reason: &'static str, token: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        token: token.into(),
        expect: Expect::Invalid(reason),
    }
}

// The reasons of `VerifyError::Invalid`, as `verifier`'s token validation words them.
const NOT_COMPACT: &str = "not a compact JWS";
const TOO_LONG: &str = "token too long";
const MALFORMED_HEADER: &str = "malformed header";
const FORBIDDEN_PARAMETER: &str = "forbidden header parameter";
const NOT_AN_ACCESS_TOKEN: &str = "not an access token (typ)";
const ALG_NOT_ALLOWED: &str = "algorithm not allowed";
const ALG_NOT_THE_KEYS: &str = "algorithm does not match the key";
const MISSING_KID: &str = "missing kid";
const UNKNOWN_KID: &str = "unknown key id";
const BAD_SIGNATURE: &str = "bad signature";
const WRONG_ISSUER: &str = "wrong issuer";
const WRONG_AUDIENCE: &str = "wrong audience";
const MISSING_CLAIM: &str = "missing claim";
const MALFORMED_TOKEN: &str = "malformed token";
const TIME_OUT_OF_RANGE: &str = "time claim out of range";
const NOT_YET_VALID: &str = "token not yet valid";
const ISSUED_IN_THE_FUTURE: &str = "token issued in the future";
const MALFORMED_IDS: &str = "malformed sub or sid";

/// Every forged or malformed token, built against `signer` at time `now`.
fn bad_tokens(signer: &Signer, now: i64) -> Vec<Case> {
    let header = good_header();
    let claims = good_claims(now);
    let good = signer.sign(&header, &claims);
    let good_payload = good.split('.').nth(1).unwrap().to_string();
    let good_signature = good.rsplit('.').next().unwrap().to_string();
    let mut cases = Vec::new();

    // --- alg: none, in every spelling, with an empty and with a real signature ---
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = with(header.clone(), "alg", json!(alg));
        let unsigned = format!("{}.{}.", b64(&h.to_string()), b64(&claims.to_string()));
        cases.push(case(
            format!("alg {alg} with an empty signature"),
            NOT_COMPACT,
            unsigned,
        ));
        cases.push(case(
            format!("alg {alg} signed with the real key"),
            ALG_NOT_ALLOWED,
            signer.sign(&h, &claims),
        ));
    }
    cases.push(case(
        "no alg at all",
        MALFORMED_HEADER,
        signer.sign(&with(header.clone(), "alg", Value::Null), &claims),
    ));
    cases.push(case(
        "alg not a string",
        MALFORMED_HEADER,
        signer.sign(&with(header.clone(), "alg", json!(["EdDSA"])), &claims),
    ));

    // --- algorithm and key confusion ---
    let hs = with(header.clone(), "alg", json!("HS256"));
    cases.push(case(
        "HS256 keyed with the Ed25519 public key bytes",
        ALG_NOT_ALLOWED,
        hs256_raw(signer.public_key(), &hs, &claims),
    ));
    cases.push(case(
        "HS256 keyed with the Ed25519 public key PEM",
        ALG_NOT_ALLOWED,
        hs256_raw(
            ed25519_public_pem(signer.public_key()).as_bytes(),
            &hs,
            &claims,
        ),
    ));
    for alg in ["ES256", "RS256", "PS256", "EdDSA "] {
        cases.push(case(
            format!("{alg:?} header against an EdDSA key"),
            ALG_NOT_ALLOWED,
            signer.sign(&with(header.clone(), "alg", json!(alg)), &claims),
        ));
    }

    // --- forbidden header parameters, properly signed: only the header is wrong ---
    let public_jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "kid": KID, "x": URL_SAFE_NO_PAD.encode(signer.public_key()),
    });
    for (param, value) in [
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("jwk", public_jwk),
        ("x5c", json!([STANDARD.encode(b"not really a certificate")])),
        ("crit", json!(["exp"])),
        ("enc", json!("A256GCM")),
        ("zip", json!("DEF")),
        ("b64", json!(false)),
    ] {
        cases.push(case(
            format!("{param} header"),
            FORBIDDEN_PARAMETER,
            signer.sign(&with(header.clone(), param, value), &claims),
        ));
    }

    // --- typ and kid ---
    for (typ, reason) in [
        (json!("JWT"), NOT_AN_ACCESS_TOKEN),
        (json!("jwt"), NOT_AN_ACCESS_TOKEN),
        (json!("application/jwt"), NOT_AN_ACCESS_TOKEN),
        (json!(""), NOT_AN_ACCESS_TOKEN),
        (json!(1), MALFORMED_HEADER),
    ] {
        cases.push(case(
            format!("typ {typ}"),
            reason,
            signer.sign(&with(header.clone(), "typ", typ), &claims),
        ));
    }
    cases.push(case(
        "typ missing",
        NOT_AN_ACCESS_TOKEN,
        signer.sign(&with(header.clone(), "typ", Value::Null), &claims),
    ));
    cases.push(case(
        "kid missing",
        MISSING_KID,
        signer.sign(&with(header.clone(), "kid", Value::Null), &claims),
    ));
    cases.push(case(
        "unknown kid",
        UNKNOWN_KID,
        signer.sign(&with(header.clone(), "kid", json!("k2")), &claims),
    ));

    // --- duplicate header members (the last one would win in a lax parser) ---
    let payload = claims.to_string();
    for raw in [
        r#"{"alg":"none","alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#,
        r#"{"alg":"EdDSA","alg":"none","typ":"at+jwt","kid":"k1"}"#,
        r#"{"alg":"EdDSA","alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#,
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k2","kid":"k1"}"#,
        r#"{"alg":"EdDSA","typ":"JWT","typ":"at+jwt","kid":"k1"}"#,
    ] {
        cases.push(case(
            format!("duplicate header member {raw}"),
            MALFORMED_HEADER,
            signer.sign_raw(raw, &payload),
        ));
    }
    for (raw, reason) in [
        ("null", MALFORMED_HEADER),
        ("[]", MALFORMED_HEADER),
        ("\"EdDSA\"", MALFORMED_HEADER),
        ("{", MALFORMED_HEADER),
        ("", NOT_COMPACT),
    ] {
        cases.push(case(
            format!("header {raw:?}"),
            reason,
            signer.sign_raw(raw, &payload),
        ));
    }

    // --- structure ---
    let (h64, p64) = (b64(&header.to_string()), good_payload.clone());
    cases.push(case(
        "JWE-like five segments",
        NOT_COMPACT,
        format!("{h64}.{p64}.{good_signature}.AAAA.BBBB"),
    ));
    cases.push(case("four segments", NOT_COMPACT, format!("{good}.AAAA")));
    cases.push(case("two segments", NOT_COMPACT, format!("{h64}.{p64}")));
    cases.push(case(
        "JWS JSON serialization (general)",
        NOT_COMPACT,
        json!({ "payload": p64, "signatures": [{ "protected": h64, "signature": good_signature }] })
            .to_string(),
    ));
    cases.push(case(
        "JWS JSON serialization (flattened)",
        NOT_COMPACT,
        json!({ "payload": p64, "protected": h64, "signature": good_signature }).to_string(),
    ));
    for (name, token) in [
        ("empty", String::new()),
        ("dots only", "..".into()),
        ("one dot", ".".into()),
        ("leading space", format!(" {good}")),
        ("trailing space", format!("{good} ")),
        ("trailing newline", format!("{good}\n")),
        ("space inside the payload", {
            let mut t = good.clone();
            t.insert(h64.len() + 5, ' ');
            t
        }),
        ("tab inside the signature", format!("{good}\tAA")),
        ("a line break inside", good.replacen('.', ".\n", 1)),
        ("= padding on the signature", format!("{good}==")),
        ("= padding on the header", good.replacen('.', "=.", 1)),
        ("Bearer prefix inside the token", format!("Bearer {good}")),
        (
            "standard base64 alphabet",
            good.replace('-', "+").replace('_', "/") + "+/",
        ),
        ("empty signature", format!("{h64}.{p64}.")),
        ("empty payload", format!("{h64}..{good_signature}")),
        ("empty header", format!(".{p64}.{good_signature}")),
    ] {
        cases.push(case(name, NOT_COMPACT, token));
    }
    // Over the length cap, properly signed: the size alone is the problem.
    let padding = "x".repeat(MAX_TOKEN_BYTES);
    let long = signer.sign(&header, &with(claims.clone(), "pad", json!(padding)));
    assert!(long.len() > MAX_TOKEN_BYTES);
    cases.push(case("token over MAX_TOKEN_BYTES", TOO_LONG, long));

    // --- signature ---
    let other = Signer::generate();
    cases.push(case(
        "signed by another Ed25519 key under the right kid",
        BAD_SIGNATURE,
        other.sign(&header, &claims),
    ));
    let tampered = with(claims.clone(), "roles", json!(["admin", "root"]));
    cases.push(case(
        "payload changed after signing",
        BAD_SIGNATURE,
        format!("{h64}.{}.{good_signature}", b64(&tampered.to_string())),
    ));
    // 86 base64url characters less 5 leave a length that never decodes (81 mod 4 = 1), so
    // the reason is always the same; less 4 would decode whenever the spare bits are zero.
    cases.push(case(
        "signature truncated",
        MALFORMED_TOKEN,
        good[..good.len() - 5].to_string(),
    ));
    cases.push(case(
        "signature of another token",
        BAD_SIGNATURE,
        format!(
            "{h64}.{p64}.{}",
            signer
                .sign(&header, &with(claims.clone(), "jti", json!("jti-2")))
                .rsplit('.')
                .next()
                .unwrap()
        ),
    ));

    // --- claims (all properly signed) ---
    for claim in ["exp", "iss", "aud", "sub", "sid", "iat", "jti"] {
        cases.push(case(
            format!("{claim} missing"),
            MALFORMED_TOKEN,
            signer.sign(&header, &with(claims.clone(), claim, Value::Null)),
        ));
    }
    for (name, key, value, reason) in [
        (
            "wrong iss",
            "iss",
            json!("https://evil.example"),
            WRONG_ISSUER,
        ),
        (
            "iss with a trailing slash",
            "iss",
            json!(format!("{ISSUER}/")),
            WRONG_ISSUER,
        ),
        ("wrong aud", "aud", json!("other-api"), WRONG_AUDIENCE),
        (
            "aud array without ours",
            "aud",
            json!(["other-api", "third"]),
            WRONG_AUDIENCE,
        ),
        (
            "exp as a string",
            "exp",
            json!((now + 600).to_string()),
            MALFORMED_TOKEN,
        ),
        (
            "nbf in the future beyond the leeway",
            "nbf",
            json!(now + 60),
            NOT_YET_VALID,
        ),
        ("sub with ':'", "sub", json!("user:1"), MALFORMED_IDS),
        ("sub with '{'", "sub", json!("user{1"), MALFORMED_IDS),
        ("sub with '}'", "sub", json!("user}1"), MALFORMED_IDS),
        ("sub empty", "sub", json!(""), MALFORMED_IDS),
        (
            "sub of 65 characters",
            "sub",
            json!("u".repeat(65)),
            MALFORMED_IDS,
        ),
        ("sub as a number", "sub", json!(1), MALFORMED_TOKEN),
        ("sid with ':'", "sid", json!("sid:1"), MALFORMED_IDS),
        ("sid with '{'", "sid", json!("{sid}"), MALFORMED_IDS),
        ("sid with '*'", "sid", json!("*"), MALFORMED_IDS),
    ] {
        cases.push(case(
            name,
            reason,
            signer.sign(&header, &with(claims.clone(), key, value)),
        ));
    }
    // Registered and contract claims of the wrong JSON type (RFC 8725 §3.7, TV-6): present
    // but null, or of another type, is refused even where the claim may be absent.
    for (name, key, value, reason) in [
        ("exp null", "exp", Value::Null, MALFORMED_TOKEN),
        (
            "exp as a float",
            "exp",
            json!(now as f64 + 600.5),
            MALFORMED_TOKEN,
        ),
        ("exp as a boolean", "exp", json!(true), MALFORMED_TOKEN),
        ("iat null", "iat", Value::Null, MALFORMED_TOKEN),
        (
            "iat as a string",
            "iat",
            json!(now.to_string()),
            MALFORMED_TOKEN,
        ),
        ("iat as a float", "iat", json!(1.5), MALFORMED_TOKEN),
        ("iat as an array", "iat", json!([now]), MALFORMED_TOKEN),
        ("nbf null", "nbf", Value::Null, MALFORMED_TOKEN),
        (
            "nbf as a string",
            "nbf",
            json!(now.to_string()),
            MALFORMED_TOKEN,
        ),
        (
            "nbf as a float",
            "nbf",
            json!(now as f64 + 0.5),
            MALFORMED_TOKEN,
        ),
        (
            "nbf as an object",
            "nbf",
            json!({ "at": now }),
            MALFORMED_TOKEN,
        ),
        ("iss null", "iss", Value::Null, MALFORMED_TOKEN),
        ("iss as an array", "iss", json!([ISSUER]), MALFORMED_TOKEN),
        ("aud null", "aud", Value::Null, MALFORMED_TOKEN),
        ("aud an empty array", "aud", json!([]), WRONG_AUDIENCE),
        ("aud as a number", "aud", json!(1), MALFORMED_TOKEN),
        (
            "aud array with a number",
            "aud",
            json!([AUDIENCE, 1]),
            MALFORMED_TOKEN,
        ),
        ("sub null", "sub", Value::Null, MALFORMED_TOKEN),
        ("sid null", "sid", Value::Null, MALFORMED_TOKEN),
        ("sid as a number", "sid", json!(5), MALFORMED_TOKEN),
        ("jti null", "jti", Value::Null, MALFORMED_TOKEN),
        ("jti as a number", "jti", json!(5), MALFORMED_TOKEN),
        ("roles null", "roles", Value::Null, MALFORMED_TOKEN),
        (
            "roles as a string",
            "roles",
            json!("admin"),
            MALFORMED_TOKEN,
        ),
        (
            "roles with a number",
            "roles",
            json!(["admin", 1]),
            MALFORMED_TOKEN,
        ),
        (
            "roles as an object",
            "roles",
            json!({ "admin": true }),
            MALFORMED_TOKEN,
        ),
    ] {
        cases.push(case(
            name,
            reason,
            signer.sign(&header, &with_exactly(claims.clone(), key, value)),
        ));
    }
    // Time claims must be issued, not from the future, and NumericDates a clock can reach.
    for (name, key, value, reason) in [
        (
            "iat in the future beyond the leeway",
            "iat",
            json!(now + 60),
            ISSUED_IN_THE_FUTURE,
        ),
        (
            "iat far in the future",
            "iat",
            json!(i64::MAX),
            TIME_OUT_OF_RANGE,
        ),
        ("iat negative", "iat", json!(-1), TIME_OUT_OF_RANGE),
        ("nbf negative", "nbf", json!(-1), TIME_OUT_OF_RANGE),
        ("nbf at i64::MIN", "nbf", json!(i64::MIN), TIME_OUT_OF_RANGE),
        ("exp negative", "exp", json!(-1), MISSING_CLAIM),
        ("exp at i64::MAX", "exp", json!(i64::MAX), TIME_OUT_OF_RANGE),
        (
            "exp after the year 9999",
            "exp",
            json!(253_402_300_800_i64),
            TIME_OUT_OF_RANGE,
        ),
    ] {
        cases.push(case(
            name,
            reason,
            signer.sign(&header, &with(claims.clone(), key, value)),
        ));
    }
    // Duplicate claims (the last one would win in a lax parser).
    for member in [
        r#""exp":99999999999"#,
        r#""sub":"user-2""#,
        r#""sid":"sid-2""#,
        r#""nbf":0"#,
        r#""roles":["root"]"#,
        r#""aud":"api""#,
    ] {
        cases.push(case(
            format!("duplicate claim {member}"),
            MALFORMED_TOKEN,
            signer.sign_raw(&header.to_string(), &with_duplicate(&claims, member)),
        ));
    }
    cases.push(case(
        "payload not a JSON object",
        MALFORMED_TOKEN,
        signer.sign_raw(&header.to_string(), "[1,2,3]"),
    ));
    cases.push(case(
        "payload not JSON",
        MALFORMED_TOKEN,
        signer.sign_raw(&header.to_string(), "not json"),
    ));
    cases.push(Case {
        name: "expired beyond the leeway".into(),
        token: signer.sign(
            &header,
            &with(
                with(claims.clone(), "exp", json!(now - 10)),
                "iat",
                json!(now - 700),
            ),
        ),
        expect: Expect::Expired,
    });
    cases
}

/// Runs the whole battery against `verifier`; returns one line per case that was not refused
/// as expected.
async fn refusals_that_went_wrong(verifier: &Verifier, cases: &[Case]) -> Vec<String> {
    let mut wrong = Vec::new();
    for case in cases {
        let outcome = verifier.verify(&case.token).await;
        let fine = match (&outcome, case.expect) {
            (Err(VerifyError::Invalid(got)), Expect::Invalid(reason)) => *got == reason,
            (Err(VerifyError::Expired), Expect::Expired) => true,
            _ => false,
        };
        if !fine {
            wrong.push(format!(
                "{}: expected {:?}, got {outcome:?}",
                case.name, case.expect
            ));
        }
    }
    wrong
}

async fn every_bad_token_is_refused_before_redis(revocation: RevocationMode) {
    let signer = Signer::generate();
    let clock = ManualClock::starting_now();
    let verifier = build(&signer, &[Algorithm::EdDSA], revocation, &clock).await;
    let cases = bad_tokens(&signer, clock.now_secs());
    assert!(cases.len() >= 80, "the battery has {} cases", cases.len());
    let wrong = refusals_that_went_wrong(&verifier, &cases).await;
    assert!(
        wrong.is_empty(),
        "{} of {} bad tokens were not refused before Redis:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn every_forged_or_malformed_token_is_refused_before_redis_in_every_request_mode() {
    every_bad_token_is_refused_before_redis(RevocationMode::EveryRequest).await;
}

#[tokio::test]
async fn every_forged_or_malformed_token_is_refused_before_redis_in_tracked_mode() {
    every_bad_token_is_refused_before_redis(RevocationMode::Tracked).await;
}

#[tokio::test]
async fn every_forged_or_malformed_token_is_refused_with_revocation_off_too() {
    every_bad_token_is_refused_before_redis(RevocationMode::Off).await;
}

#[tokio::test]
async fn the_same_bad_tokens_stay_refused_after_a_good_token_was_verified_and_cached() {
    let signer = Signer::generate();
    let clock = ManualClock::starting_now();
    let verifier = build(&signer, &[Algorithm::EdDSA], RevocationMode::Off, &clock).await;
    let good = signer.sign(&good_header(), &good_claims(clock.now_secs()));
    for _ in 0..2 {
        verifier.verify(&good).await.expect("the good token");
    }
    let cases = bad_tokens(&signer, clock.now_secs());
    let wrong = refusals_that_went_wrong(&verifier, &cases).await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_good_token_verifies_with_revocation_off() {
    let signer = Signer::generate();
    let clock = ManualClock::starting_now();
    let now = clock.now_secs();
    let verifier = build(&signer, &[Algorithm::EdDSA], RevocationMode::Off, &clock).await;

    let hand_made = signer.sign(&good_header(), &good_claims(now));
    let claims = verifier.verify(&hand_made).await.expect("hand-made token");
    assert_eq!(
        (claims.sub.as_str(), claims.sid.as_str()),
        ("user-1", "sid-1")
    );
    assert!(claims.has_role("admin"));

    // The same through jsonwebtoken, as the auth-center signs.
    verifier::contract::install_crypto_provider();
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(KID.into());
    let key = jsonwebtoken::EncodingKey::from_ed_der(&signer.pkcs8);
    let library_made = jsonwebtoken::encode(&header, &good_claims(now), &key).unwrap();
    verifier
        .verify(&library_made)
        .await
        .expect("jsonwebtoken-made token");

    // Inside the 5 s leeway: just expired, and not yet valid by a little.
    for (key, value) in [("exp", now - 2), ("nbf", now + 2)] {
        let token = signer.sign(&good_header(), &with(good_claims(now), key, json!(value)));
        verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{key} {value} is within the leeway: {e}"));
    }
    // Optional claims may be absent: no `nbf`, no `roles` (then no role at all).
    for key in ["nbf", "roles"] {
        let token = signer.sign(&good_header(), &with(good_claims(now), key, Value::Null));
        let claims = verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("without {key}: {e}"));
        assert_eq!(claims.has_role("admin"), key != "roles");
    }
    // `iat` a little ahead of the verifier's clock is skew, within the leeway.
    let token = signer.sign(
        &good_header(),
        &with(good_claims(now), "iat", json!(now + 2)),
    );
    verifier
        .verify(&token)
        .await
        .expect("iat within the leeway");
    // `typ` is a media type: compared case-insensitively, with or without `application/`.
    for typ in ["AT+JWT", "application/at+jwt"] {
        let token = signer.sign(&with(good_header(), "typ", json!(typ)), &good_claims(now));
        verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("typ {typ}: {e}"));
    }
    // An audience array that names us.
    let token = signer.sign(
        &good_header(),
        &with(good_claims(now), "aud", json!(["other", AUDIENCE])),
    );
    verifier.verify(&token).await.expect("aud array");
}

#[tokio::test]
async fn a_good_token_reaches_the_dead_redis_and_fails_closed_as_unavailable() {
    let signer = Signer::generate();
    let clock = ManualClock::starting_now();
    let good = signer.sign(&good_header(), &good_claims(clock.now_secs()));
    for revocation in [RevocationMode::EveryRequest, RevocationMode::Tracked] {
        let verifier = build(&signer, &[Algorithm::EdDSA], revocation, &clock).await;
        for _ in 0..2 {
            let outcome = verifier.verify(&good).await;
            assert!(
                matches!(outcome, Err(VerifyError::Unavailable(_))),
                "{revocation:?}: {outcome:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_token_expires_once_the_clock_passes_exp_plus_the_leeway() {
    let signer = Signer::generate();
    let clock = ManualClock::starting_now();
    let now = clock.now_secs();
    let verifier = build(&signer, &[Algorithm::EdDSA], RevocationMode::Off, &clock).await;
    let token = signer.sign(
        &good_header(),
        &with(good_claims(now), "exp", json!(now + 60)),
    );
    verifier.verify(&token).await.expect("valid now");
    // Also once cached: the signature cache must not outlive `exp`.
    clock.advance(std::time::Duration::from_secs(66));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::Expired));
}

#[tokio::test]
async fn a_token_whose_alg_does_not_match_its_key_type_is_refused_even_when_both_are_allowed() {
    // EdDSA and ES256 allowed, but the key under KID is Ed25519: an ES256 header naming it
    // must not be checked as ES256 (nor as EdDSA).
    let signer = Signer::generate();
    let clock = ManualClock::starting_now();
    let now = clock.now_secs();
    for revocation in [RevocationMode::EveryRequest, RevocationMode::Tracked] {
        let verifier = build(
            &signer,
            &[Algorithm::EdDSA, Algorithm::ES256],
            revocation,
            &clock,
        )
        .await;
        let token = signer.sign(
            &with(good_header(), "alg", json!("ES256")),
            &good_claims(now),
        );
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::Invalid(ALG_NOT_THE_KEYS)),
            "{revocation:?}"
        );
    }
}

#[tokio::test]
async fn hmac_and_asymmetric_algorithms_cannot_be_allowed_together() {
    let signer = Signer::generate();
    let built = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .algorithms([Algorithm::EdDSA, Algorithm::HS256])
        .static_keys(KeySet::from_keys([signer.verifying_key(KID)]))
        .revocation(RevocationMode::Off)
        .build()
        .await;
    assert!(built.is_err(), "EdDSA + HS256 must not build");

    // A static key whose algorithm is not on the allow-list is refused at build time too.
    let built = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .algorithms([Algorithm::ES256])
        .static_keys(KeySet::from_keys([signer.verifying_key(KID)]))
        .revocation(RevocationMode::Off)
        .build()
        .await;
    assert!(
        built.is_err(),
        "an Ed25519 key with an ES256-only allow-list"
    );
}

#[tokio::test]
async fn an_hs256_verifier_refuses_eddsa_and_none_tokens() {
    let secret = [7u8; 32];
    let clock = ManualClock::starting_now();
    let now = clock.now_secs();
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .algorithms([Algorithm::HS256])
        .static_keys(KeySet::from_keys([
            VerifyingKey::hs256(KID, &secret).unwrap()
        ]))
        .redis(RedisTarget::Standalone(DEAD_REDIS.into()))
        .revocation(RevocationMode::EveryRequest)
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    let hs = with(good_header(), "alg", json!("HS256"));
    // Control: the right HMAC reaches Redis.
    let good = hs256_raw(&secret, &hs, &good_claims(now));
    assert!(matches!(
        verifier.verify(&good).await,
        Err(VerifyError::Unavailable(_))
    ));
    let signer = Signer::generate();
    for (name, reason, token) in [
        (
            "EdDSA token",
            ALG_NOT_ALLOWED,
            signer.sign(&good_header(), &good_claims(now)),
        ),
        (
            "HS256 with another secret",
            BAD_SIGNATURE,
            hs256_raw(&[8u8; 32], &hs, &good_claims(now)),
        ),
        (
            "alg none",
            NOT_COMPACT,
            format!(
                "{}.{}.",
                b64(&with(hs.clone(), "alg", json!("none")).to_string()),
                b64(&good_claims(now).to_string())
            ),
        ),
        (
            "HS512 header",
            ALG_NOT_ALLOWED,
            hs256_raw(
                &secret,
                &with(hs.clone(), "alg", json!("HS512")),
                &good_claims(now),
            ),
        ),
    ] {
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::Invalid(reason)),
            "{name}"
        );
    }
}
