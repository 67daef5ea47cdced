//! A verifier reaching a TLS-only Redis (test-support's `tls` service) as the read-only ACL
//! user that docs/operations.md documents: tracked revocation still sees a `DEL` at once, the
//! user can write nothing and read nothing but session records, and a CA or password mistake
//! stops `build()` with an error that says so and prints no password.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use test_support::{AclUser, SharedTls};
use verifier::contract::{RedisConnection, RedisOptions};
use verifier::{
    BuildError, KeySet, RedisCredentials, RedisTarget, RedisTls, RevocationMode, Verifier,
    VerifierBuilder, VerifyError, VerifyingKey,
};

use crate::helpers::*;

fn trusting(ca_file: &str) -> RedisTls {
    RedisTls::new().ca_file(ca_file).expect("CA file")
}

/// The documented `role` user for `prefix`, created by the `default` user (no password on the
/// test servers) on the TLS Redis and on every node of the TLS cluster (ACLs are per node).
async fn documented_user(tls: &SharedTls, role: &str, prefix: &str) -> AclUser {
    let user = AclUser::documented(role, prefix);
    for url in std::iter::once(&tls.redis_url).chain(&tls.redis_cluster_urls) {
        let options = RedisOptions {
            tls: Some(trusting(&tls.ca_file)),
            ..RedisOptions::default()
        };
        let target = RedisTarget::Standalone(url.clone());
        let mut admin = RedisConnection::connect(&target, options)
            .await
            .expect("admin connection");
        let () = redis::cmd("ACL")
            .arg(user.setuser_args())
            .query_async(&mut admin)
            .await
            .expect("ACL SETUSER");
    }
    user
}

/// An auth-center on the TLS-only Redis, or with `cluster` the TLS-only cluster (as the
/// `default` user: its own ACL is tested in the auth-center's API tests).
async fn auth_center_over_tls(tls: &SharedTls, cluster: bool) -> AuthCenter {
    let ca = PathBuf::from(&tls.ca_file);
    let target = if cluster {
        RedisTarget::Cluster(tls.redis_cluster_urls.clone())
    } else {
        RedisTarget::Standalone(tls.redis_url.clone())
    };
    AuthCenter::spawn_with(target, |config| {
        config.redis_tls_ca_file = Some(ca);
    })
    .await
}

/// `rediss://<user>:<password>@127.0.0.1:<port>` of the TLS-only Redis.
fn url_with_credentials(tls: &SharedTls, user: &str, password: &str) -> String {
    let port = tls.redis_url.rsplit(':').next().expect("a port");
    format!("rediss://{user}:{password}@127.0.0.1:{port}")
}

/// A verifier with a static key (the Redis side is what is tested) on `url`.
fn verifier_on(url: String, tls: RedisTls) -> VerifierBuilder {
    Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]))
        .redis(RedisTarget::Standalone(url))
        .redis_tls(tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_as_the_documented_read_only_user_over_tls_sees_a_del_at_once() {
    let tls = test_support::shared_tls();
    let center = auth_center_over_tls(&tls, false).await;
    let user = documented_user(&tls, "verifier", &center.prefix).await;
    // The safety net is far beyond the poll bound: only an invalidation push can revoke in time.
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .jwks_url(center.jwks_url())
        .key_prefix(&center.prefix)
        .revocation(RevocationMode::Tracked)
        .max_staleness(Duration::from_secs(600))
        .redis(RedisTarget::Standalone(url_with_credentials(
            &tls,
            &user.name,
            &user.password,
        )))
        .redis_tls(trusting(&tls.ca_file))
        .build()
        .await
        .expect("verifier builds");
    let tokens = center.register_and_login("alice").await;
    for _ in 0..3 {
        let claims = verifier.verify(&tokens.access_token).await;
        assert!(claims.is_ok(), "{claims:?}");
    }

    let deleted = center
        .redis_on_key("DEL", &center.session_key(&tokens), &[])
        .await;
    assert_eq!(deleted, 1);
    let deadline = Instant::now() + POLL_BOUND;
    loop {
        match verifier.verify(&tokens.access_token).await {
            Err(VerifyError::Revoked) => break,
            other => assert!(
                Instant::now() < deadline,
                "still {other:?} {POLL_BOUND:?} after the DEL"
            ),
        }
        tokio::time::sleep(POLL_STEP).await;
    }
    for _ in 0..STAYS_FOR {
        let after = verifier.verify(&tokens.access_token).await;
        assert!(matches!(after, Err(VerifyError::Revoked)), "{after:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_read_only_user_writes_nothing_and_reads_only_session_records() {
    let tls = test_support::shared_tls();
    let prefix = format!("e2e{}", uuid::Uuid::new_v4().simple());
    let user = documented_user(&tls, "verifier", &prefix).await;
    let options = RedisOptions {
        tls: Some(trusting(&tls.ca_file)),
        credentials: Some(RedisCredentials::new(Some(&user.name), &user.password)),
        ..RedisOptions::default()
    };
    let target = RedisTarget::Standalone(tls.redis_url.clone());
    let mut conn = RedisConnection::connect(&target, options)
        .await
        .expect("connects as the verifier user");
    let session = format!("{prefix}:s:{{u1}}:s1");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&session)
        .query_async(&mut conn)
        .await
        .expect("EXISTS of a session record");
    assert_eq!(exists, 0);

    let index = format!("{prefix}:u:{{u1}}");
    let refused = [
        redis::cmd("SET").arg(&session).arg("x").clone(),
        redis::cmd("DEL").arg(&session).clone(),
        redis::cmd("HSET")
            .arg(&session)
            .arg("user")
            .arg("u1")
            .clone(),
        redis::cmd("EXISTS").arg(&index).clone(),
        redis::cmd("FLUSHALL").clone(),
    ];
    for command in refused {
        let answer: redis::RedisResult<redis::Value> = command.query_async(&mut conn).await;
        let error = answer.expect_err("refused");
        assert_eq!(error.code(), Some("NOPERM"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_trusting_another_ca_is_refused_at_build_naming_the_tls_failure() {
    let tls = test_support::shared_tls();
    let built = verifier_on(tls.redis_url.clone(), trusting(&tls.other_ca_file))
        .build()
        .await;
    match built {
        Err(BuildError::Redis(message)) => {
            assert!(
                message.contains("TLS handshake with Redis failed"),
                "{message}"
            );
            assert!(message.contains("UnknownIssuer"), "{message}");
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("built"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_with_a_wrong_password_is_refused_at_build_and_prints_no_password() {
    let tls = test_support::shared_tls();
    let prefix = format!("e2e{}", uuid::Uuid::new_v4().simple());
    let user = documented_user(&tls, "verifier", &prefix).await;
    let wrong = format!("{}-but-wrong", user.password);
    let url = url_with_credentials(&tls, &user.name, &wrong);
    assert!(!format!("{:?}", RedisTarget::Standalone(url.clone())).contains(&wrong));
    let built = verifier_on(url, trusting(&tls.ca_file)).build().await;
    match built {
        Err(BuildError::Redis(message)) => {
            assert!(
                message.contains("Redis refused the credentials"),
                "{message}"
            );
            assert!(!message.contains(&wrong), "{message}");
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("built"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_with_a_plain_redis_url_are_refused_at_build() {
    let tls = test_support::shared_tls();
    let built = verifier_on(test_support::shared_redis_url(), trusting(&tls.ca_file))
        .build()
        .await;
    match built {
        Err(BuildError::Redis(message)) => assert!(message.contains("rediss://"), "{message}"),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("built"),
    }
}

/// The demo-service, configured through `verifier::settings` as the documented read-only user
/// over TLS (the standalone Redis, or with `cluster` the cluster), answers `401` once an
/// operator deletes the session; the safety net is far beyond the poll bound, so only an
/// invalidation push can revoke in time.
async fn the_demo_service_over_tls_as_the_read_only_user_answers_401_after_a_del(cluster: bool) {
    let tls = test_support::shared_tls();
    let center = auth_center_over_tls(&tls, cluster).await;
    let user = documented_user(&tls, "verifier", &center.prefix).await;
    let mut settings = center.demo_settings();
    settings.verifier.redis_tls_ca_file = Some(PathBuf::from(&tls.ca_file));
    settings.verifier.redis_username = Some(user.name.clone());
    settings.verifier.redis_password = Some(user.password.clone().into());
    settings.verifier.max_staleness = Duration::from_secs(600);
    let demo = Demo::spawn(settings).await;
    let tokens = center.register_and_login("carol").await;
    demo.me(&tokens).await.assert_ok();
    demo.me(&tokens).await.assert_ok();

    let deleted = center
        .redis_on_key("DEL", &center.session_key(&tokens), &[])
        .await;
    assert_eq!(deleted, 1);
    poll_until(
        "401 after the DEL",
        POLL_BOUND,
        || demo.me(&tokens),
        |answer| answer.is_401("session_revoked"),
    )
    .await;
    stays("401", || demo.me(&tokens), |a| a.is_401("session_revoked")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_service_over_tls_as_the_read_only_user_answers_401_once_the_session_is_deleted() {
    the_demo_service_over_tls_as_the_read_only_user_answers_401_after_a_del(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_service_on_a_tls_cluster_as_the_read_only_user_answers_401_once_the_session_is_deleted()
 {
    the_demo_service_over_tls_as_the_read_only_user_answers_401_after_a_del(true).await;
}
