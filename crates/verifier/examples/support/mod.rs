//! The set-up the instruction-counting examples share: a private Redis holding one session,
//! a verifier of one Ed25519 key, and a token of that session it has verified once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use verifier::contract::SessionKeys;
use verifier::{KeySet, RedisTarget, RevocationMode, Verifier, VerifyingKey};

/// What [`hot_path`] set up; the Redis server stops when it is dropped.
pub(crate) struct HotPath {
    pub(crate) _redis: test_support::RedisServer,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) verifier: Verifier,
    pub(crate) token: String,
}

/// A verifier in revocation `mode` and a token it has verified once (its signature, and in
/// tracked mode its session, cached).
pub(crate) fn hot_path(mode: RevocationMode) -> HotPath {
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
    let verifier = rt.block_on(async {
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
        verifier
    });
    HotPath {
        _redis: redis,
        rt,
        verifier,
        token,
    }
}
