//! The revocation self-test: rounds against real verifiers built in-process with the
//! verifier's builder on the app's Redis and prefix (standalone and Cluster), a verifier that
//! goes away, the round lock, the periodic task's metrics, and the in-memory store.

use std::time::{Duration, Instant};

use auth_center::domain::selftest::{SelftestError, VerifierResult};
use verifier::contract::SelftestKeys;
use verifier::{KeySet, RedisTarget, Verifier, VerifyingKey};

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        the_self_test_needs_redis,
    ],
    sqlite_redis: [
        a_round_with_two_verifiers_returns_two_acks,
        a_verifier_that_went_away_is_reported_then_forgotten,
        the_round_lock_keeps_rounds_from_overlapping,
        the_periodic_rounds_are_on_the_metrics_page,
        a_round_with_no_verifier_says_so_and_writes_nothing,
    ],
    sqlite_cluster: [
        a_round_with_two_verifiers_returns_two_acks,
        the_periodic_rounds_are_on_the_metrics_page,
    ],
}

/// A change to a configuration.
type Tweak = fn(&mut auth_center::Config);

#[test]
fn selftest_settings_out_of_range_are_refused_naming_the_setting() {
    let cases: [(Tweak, &str); 5] = [
        (|c| c.selftest.interval_secs = 0, "selftest.interval_secs"),
        (
            |c| c.selftest.interval_secs = 3601,
            "selftest.interval_secs",
        ),
        (
            |c| c.selftest.arm_timeout_ms = 1000,
            "selftest.arm_timeout_ms",
        ),
        (
            |c| c.selftest.ack_timeout_ms = 99,
            "selftest.ack_timeout_ms",
        ),
        (
            |c| c.selftest.ack_timeout_ms = 60_001,
            "selftest.ack_timeout_ms",
        ),
    ];
    for (tweak, name) in cases {
        let mut config = auth_center::Config::default();
        tweak(&mut config);
        let error = config.validate().expect_err(name).to_string();
        assert!(error.contains(name), "{error}");
    }
    auth_center::Config::default().validate().unwrap();
}

/// Upper bound of every wait (never reached when things work).
const BOUND: Duration = Duration::from_secs(30);

/// A tracked verifier named `instance` on the app's Redis and prefix.
async fn demo_verifier(app: &TestApp, instance: &str) -> Verifier {
    let target = match app.backend.sessions {
        Sessions::Cluster => RedisTarget::Cluster(test_support::shared_cluster_urls()),
        _ => RedisTarget::Standalone(test_support::shared_redis_url()),
    };
    Verifier::builder()
        .issuer(app.config.issuer.clone())
        .audience("api")
        .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]))
        .redis(target)
        .key_prefix(app.config.redis_prefix.clone())
        .instance_name(instance)
        .build()
        .await
        .expect("verifier")
}

fn keys(app: &TestApp) -> SelftestKeys {
    SelftestKeys::new(app.config.redis_prefix.clone())
}

/// Waits until exactly `instances` have reported in.
async fn reported_in(app: &TestApp, instances: &[&str]) {
    let deadline = Instant::now() + BOUND;
    let mut conn = app.redis.clone().expect("Redis");
    loop {
        let mut members: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys(app).verifiers())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        members.sort();
        if members == instances {
            return;
        }
        assert!(Instant::now() < deadline, "reporting in: {members:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn exists(app: &TestApp, key: &str) -> bool {
    let mut conn = app.redis.clone().expect("Redis");
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    n == 1
}

fn quiet(app_config: &mut auth_center::Config) {
    // Rounds run only when a test asks for one.
    app_config.selftest.enabled = false;
    app_config.selftest.arm_timeout_ms = 1500;
}

async fn the_self_test_needs_redis(backend: Backend) {
    let app = spawn_app(backend).await;
    assert!(matches!(
        app.auth.revocation_selftest().await,
        Err(SelftestError::NoRedis)
    ));
}

async fn a_round_with_two_verifiers_returns_two_acks(backend: Backend) {
    let app = spawn_app_with(backend, quiet).await;
    let _a = demo_verifier(&app, "svc-a/1").await;
    let _b = demo_verifier(&app, "svc-b/1").await;
    reported_in(&app, &["svc-a/1", "svc-b/1"]).await;

    let report = app.auth.revocation_selftest().await.expect("a round");
    assert_eq!(
        report.verifiers.keys().collect::<Vec<_>>(),
        ["svc-a/1", "svc-b/1"]
    );
    for (instance, result) in &report.verifiers {
        assert!(
            matches!(result, VerifierResult::Acked { .. }),
            "{instance}: {result:?}"
        );
    }
    assert_eq!(report.missed(), 0);
    // The lock is released, and the probe is gone.
    assert!(!exists(&app, &keys(&app).lock()).await);
    assert!(!exists(&app, &keys(&app).probe()).await);
    // A second round measures again.
    let again = app
        .auth
        .revocation_selftest()
        .await
        .expect("a second round");
    assert_eq!(again.missed(), 0, "{again:?}");
}

async fn a_verifier_that_went_away_is_reported_then_forgotten(backend: Backend) {
    let app = spawn_app_with(backend, quiet).await;
    let staying = demo_verifier(&app, "staying").await;
    let leaving = demo_verifier(&app, "leaving").await;
    reported_in(&app, &["leaving", "staying"]).await;
    drop(leaving);

    // Reported in a moment ago: expected, and reported as not having armed, without
    // blocking the round.
    let report = app.auth.revocation_selftest().await.expect("a round");
    assert_eq!(
        report.verifiers.get("leaving"),
        Some(&VerifierResult::NotArmed)
    );
    assert!(matches!(
        report.verifiers.get("staying"),
        Some(VerifierResult::Acked { .. })
    ));
    assert_eq!(report.missed(), 1);

    // Once it has not reported in for a while, rounds no longer expect it.
    let deadline = Instant::now() + BOUND;
    loop {
        let report = app.auth.revocation_selftest().await.expect("a round");
        if report.verifiers.len() == 1 {
            assert!(matches!(
                report.verifiers.get("staying"),
                Some(VerifierResult::Acked { .. })
            ));
            break;
        }
        assert!(Instant::now() < deadline, "still expected: {report:?}");
    }
    drop(staying);
}

async fn the_round_lock_keeps_rounds_from_overlapping(backend: Backend) {
    let app = spawn_app_with(backend, quiet).await;
    let _v = demo_verifier(&app, "svc").await;
    reported_in(&app, &["svc"]).await;
    let mut conn = app.redis.clone().expect("Redis");
    let lock = keys(&app).lock();
    let () = redis::cmd("SET")
        .arg(&lock)
        .arg("another-round")
        .arg("PX")
        .arg(30_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        app.auth.revocation_selftest().await,
        Err(SelftestError::Busy)
    ));
    // The other round's lock is left alone.
    let owner: String = redis::cmd("GET")
        .arg(&lock)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(owner, "another-round");
    let _: i64 = redis::cmd("DEL")
        .arg(&lock)
        .query_async(&mut conn)
        .await
        .unwrap();
    let report = app.auth.revocation_selftest().await.expect("a round");
    assert_eq!(report.missed(), 0, "{report:?}");
}

async fn a_round_with_no_verifier_says_so_and_writes_nothing(backend: Backend) {
    let app = spawn_app_with(backend, quiet).await;
    let report = app.auth.revocation_selftest().await.expect("a round");
    assert!(report.verifiers.is_empty());
    assert_eq!(
        report.outcome(),
        auth_center::domain::metrics::RoundOutcome::NoVerifiers
    );
    let mut conn = app.redis.clone().expect("Redis");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.config.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

async fn the_periodic_rounds_are_on_the_metrics_page(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.selftest.interval_secs = 1;
    })
    .await;
    let _v = demo_verifier(&app, "svc").await;
    let deadline = Instant::now() + BOUND;
    loop {
        let scrape = app.scrape().await;
        if scrape.value(r#"auth_selftest_rounds_total{outcome="ok"}"#) >= 1.0 {
            assert!(scrape.value("auth_selftest_revocation_lag_seconds_count") >= 1.0);
            assert_eq!(scrape.value("auth_selftest_verifiers"), 1.0);
            assert_eq!(scrape.value("auth_selftest_missed_acks_total"), 0.0);
            for outcome in ["missed_acks", "skipped", "error"] {
                assert_eq!(
                    scrape.value(&format!(
                        r#"auth_selftest_rounds_total{{outcome="{outcome}"}}"#
                    )),
                    0.0,
                    "{outcome}"
                );
            }
            break;
        }
        assert!(Instant::now() < deadline, "no successful round");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
