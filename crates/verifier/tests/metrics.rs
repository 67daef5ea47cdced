//! The metrics hook: a recorder installed in the process before the verifier is built
//! receives the verifier's series. This test binary installs a Prometheus recorder as the
//! process's global one and runs one test, so the values it reads are its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;
use verifier::{Clock as _, KeySet, RevocationMode, SystemClock, Verifier, VerifyingKey};

const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "api";

/// The value of `series` in a Prometheus text page.
fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {page}"))
}

#[tokio::test]
async fn an_installed_recorder_receives_the_verifiers_series() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();

    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .static_keys(KeySet::from_keys([VerifyingKey::ed25519(
            "k1",
            public.public_key().as_ref(),
        )]))
        .revocation(RevocationMode::Off)
        .build()
        .await
        .unwrap();
    let token = |exp_in: i64| {
        let now = SystemClock.now_secs();
        let claims = json!({
            "iss": ISSUER, "sub": "user-1", "aud": AUDIENCE, "exp": now + exp_in, "iat": now,
            "jti": format!("jti-{exp_in}"), "sid": "sid-1", "roles": [],
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some("k1".into());
        let key = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let valid = token(600);
    verifier.verify(&valid).await.unwrap();
    // The hot path: counted in the verifier until flushed.
    verifier.verify(&valid).await.unwrap();
    verifier.verify(&valid).await.unwrap();
    assert!(verifier.verify(&token(-600)).await.is_err());
    assert!(verifier.verify("not.a.token").await.is_err());
    verifier::metrics::record_revocation_lag(Duration::from_micros(300));

    verifier.flush_metrics();
    let page = handle.render();
    assert_eq!(
        value(&page, r#"verifier_tokens_total{outcome="valid"}"#),
        3.0
    );
    assert_eq!(
        value(&page, r#"verifier_tokens_total{outcome="expired"}"#),
        1.0
    );
    assert_eq!(
        value(&page, r#"verifier_tokens_total{outcome="invalid"}"#),
        1.0
    );
    assert_eq!(
        value(&page, r#"verifier_tokens_total{outcome="revoked"}"#),
        0.0
    );
    assert_eq!(
        value(&page, r#"verifier_signature_cache_total{result="hit"}"#),
        2.0
    );
    assert_eq!(
        value(&page, r#"verifier_signature_cache_total{result="miss"}"#),
        3.0
    );
    assert_eq!(value(&page, "verifier_revocation_lag_seconds_count"), 1.0);
}
