//! The repeat-token path, `HOT_PATH_CALLS` times (default 100 000), for counting its
//! instructions under `valgrind --tool=cachegrind` (deterministic, unlike wall time on a
//! shared machine): run it with two call counts and divide the difference. With
//! `BENCH_METRICS=prometheus` a Prometheus recorder is installed first (the verifier's
//! metrics then record for real). `HOT_PATH_MODE=off` measures revocation mode `off` instead
//! of `tracked`. See `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // a measurement: fail loudly

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use verifier::contract::SessionKeys;
use verifier::{KeySet, RedisTarget, RevocationMode, Verifier, VerifyingKey};

fn main() {
    verifier::contract::install_crypto_provider();
    if std::env::var("BENCH_METRICS").is_ok_and(|v| v == "prometheus") {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::set_global_recorder(recorder).unwrap();
    }
    let calls: u64 = std::env::var("HOT_PATH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let mode = match std::env::var("HOT_PATH_MODE").as_deref() {
        Ok("off") => RevocationMode::Off,
        _ => RevocationMode::Tracked,
    };
    let redis = test_support::RedisServer::start().expect("a private redis-server");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some("k1".into());
    let claims = serde_json::json!({
        "iss": "https://auth.bench", "sub": "user-1", "aud": "api", "exp": now + 3600,
        "iat": now, "jti": "j", "sid": "session-1", "roles": ["user"],
    });
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
    )
    .unwrap();
    rt.block_on(async {
        let client = redis::Client::open(redis.url().as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let key = SessionKeys::new("bench")
            .session("user-1", "session-1")
            .unwrap();
        redis::cmd("HSET")
            .arg(&key)
            .arg("user")
            .arg("user-1")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        let verifier = Verifier::builder()
            .issuer("https://auth.bench")
            .audience("api")
            .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &public)]))
            .redis(RedisTarget::Standalone(redis.url()))
            .key_prefix("bench")
            .revocation(mode)
            .max_staleness(Duration::from_secs(600))
            // A heartbeat every 15 s: next to nothing in the count.
            .max_stall(Duration::from_secs(60))
            .build()
            .await
            .unwrap();
        verifier.verify_shared(&token).await.unwrap();
        for _ in 0..calls {
            black_box(verifier.verify_shared(black_box(&token)).await.unwrap());
        }
    });
    println!("{calls} calls");
}
