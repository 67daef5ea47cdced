//! The verifier's side of the revocation self-test against real Redis (standalone and
//! Cluster): a tracked verifier reports in, arms a probe and acknowledges its deletion; the
//! other modes take no part; a verifier whose ACL user lacks the self-test's permissions still
//! verifies. The test plays the auth-center's part with plain commands on the documented keys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code: a panic is a failure report; the waits are bounded in real time

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use redis::Script;
use serde_json::json;
use test_support::AclUser;
use verifier::contract::{RedisConnection, RedisOptions, SELFTEST_SUBJECT, SelftestKeys};
use verifier::{
    Clock as _, KeySet, RedisCredentials, RedisTarget, RevocationMode, SystemClock, Verifier,
    VerifierBuilder, VerifyingKey,
};

const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "api";
/// Upper bound of every wait (never reached when things work).
const BOUND: Duration = Duration::from_secs(15);

/// What the auth-center's delete does: Redis `TIME` (µs) recorded, then the `DEL`.
const DELETE: &str = r"
local t = redis.call('TIME')
redis.call('SET', KEYS[2], string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])), 'PX', 60000)
return redis.call('DEL', KEYS[1])
";

#[derive(Clone, Copy, Debug)]
enum Topology {
    Standalone,
    Cluster,
}

fn target(topology: Topology) -> RedisTarget {
    match topology {
        Topology::Standalone => RedisTarget::Standalone(test_support::shared_redis_url()),
        Topology::Cluster => RedisTarget::Cluster(test_support::shared_cluster_urls()),
    }
}

async fn admin(topology: Topology) -> RedisConnection {
    RedisConnection::connect(&target(topology), RedisOptions::default())
        .await
        .unwrap()
}

fn builder(topology: Topology, prefix: &str) -> VerifierBuilder {
    Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]))
        .redis(target(topology))
        .key_prefix(prefix)
}

fn prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

/// A verifier built with `recorder` as the facade's recorder, so its series land there.
async fn build_recording(builder: VerifierBuilder, recorder: &PrometheusRecorder) -> Verifier {
    let _local = metrics::set_default_local_recorder(recorder);
    builder.build().await.unwrap()
}

/// Polls `probe` until it answers `Some`, within [`BOUND`].
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn hash(conn: &RedisConnection, key: &str) -> HashMap<String, String> {
    let mut conn = conn.clone();
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn reporting(conn: &RedisConnection, keys: &SelftestKeys) -> Vec<String> {
    let mut conn = conn.clone();
    redis::cmd("ZRANGE")
        .arg(keys.verifiers())
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// The value of `series` in a Prometheus text page, if present.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn a_tracked_verifier_reports_in_arms_a_probe_and_acknowledges_its_deletion(
    topology: Topology,
) {
    let prefix = prefix();
    let keys = SelftestKeys::new(prefix.as_str());
    let conn = admin(topology).await;
    let recorder = PrometheusBuilder::new().build_recorder();
    let page = recorder.handle();
    let verifier = build_recording(
        builder(topology, &prefix).instance_name("api-1/7"),
        &recorder,
    )
    .await;
    assert_eq!(verifier.revocation_selftest_instance(), Some("api-1/7"));
    eventually("the verifier reports in", || async {
        reporting(&conn, &keys)
            .await
            .contains(&"api-1/7".to_owned())
            .then_some(())
    })
    .await;

    // The auth-center's part: a probe session and the pointer to it.
    let sid = "probe1";
    let session = keys.probe_session(sid).unwrap();
    let mut c = conn.clone();
    let _: i64 = redis::cmd("HSET")
        .arg(&session)
        .arg("user")
        .arg(SELFTEST_SUBJECT)
        .query_async(&mut c)
        .await
        .unwrap();
    let () = redis::cmd("SET")
        .arg(keys.probe())
        .arg(sid)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut c)
        .await
        .unwrap();
    eventually("the verifier arms the probe", || async {
        hash(&conn, &keys.armed(sid).unwrap())
            .await
            .contains_key("api-1/7")
            .then_some(())
    })
    .await;
    let deleted: i64 = Script::new(DELETE)
        .key(&session)
        .key(keys.deleted(sid).unwrap())
        .invoke_async(&mut c)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let ack = eventually("the verifier acknowledges the deletion", || async {
        hash(&conn, &keys.acks(sid).unwrap())
            .await
            .remove("api-1/7")
    })
    .await;
    let numbers: Vec<u64> = ack.split(' ').map(|n| n.parse().unwrap()).collect();
    assert_eq!(numbers.len(), 2, "lag and error bound: {ack}");
    // Its own histogram has the measurement too.
    eventually("the lag histogram", || async {
        value(&page.render(), "verifier_revocation_lag_seconds_count").filter(|n| *n == 1.0)
    })
    .await;
    // Every key the verifier wrote has a TTL.
    for key in [
        keys.verifiers(),
        keys.armed(sid).unwrap(),
        keys.acks(sid).unwrap(),
    ] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(ttl > 0, "{key}: {ttl}");
    }
}

async fn every_request_and_off_verifiers_do_not_report_in(topology: Topology) {
    let prefix = prefix();
    let keys = SelftestKeys::new(prefix.as_str());
    let conn = admin(topology).await;
    let every_request = builder(topology, &prefix)
        .instance_name("every-request")
        .revocation(RevocationMode::EveryRequest)
        .build()
        .await
        .unwrap();
    let off = builder(topology, &prefix)
        .instance_name("off")
        .revocation(RevocationMode::Off)
        .build()
        .await
        .unwrap();
    let switched_off = builder(topology, &prefix)
        .instance_name("switched-off")
        .revocation_selftest(false)
        .build()
        .await
        .unwrap();
    for v in [&every_request, &off, &switched_off] {
        assert_eq!(v.revocation_selftest_instance(), None);
    }
    // A tracked one that reports in, built after them: by then they would have too.
    let _tracked = builder(topology, &prefix)
        .instance_name("tracked")
        .build()
        .await
        .unwrap();
    eventually("the tracked verifier reports in", || async {
        let members = reporting(&conn, &keys).await;
        (!members.is_empty()).then_some(members)
    })
    .await;
    assert_eq!(reporting(&conn, &keys).await, ["tracked"]);
}

macro_rules! on_standalone_and_cluster {
    ($($name:ident),* $(,)?) => {
        mod standalone {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Topology::Standalone).await
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Topology::Cluster).await
                }
            )*
        }
    };
}

on_standalone_and_cluster!(
    a_tracked_verifier_reports_in_arms_a_probe_and_acknowledges_its_deletion,
    every_request_and_off_verifiers_do_not_report_in,
);

#[test]
fn an_instance_name_with_spaces_is_refused_at_build() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let built = runtime.block_on(
        builder(Topology::Standalone, "t")
            .instance_name("a b")
            .build(),
    );
    match built {
        Err(verifier::BuildError::Config(message)) => {
            assert!(message.contains("instance_name"), "{message}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// A verifier whose ACL user is the documented one without the self-test's rules and
/// without `PTTL` (an operator who has not updated it) verifies as before: its session checks
/// fall back to `EXISTS`, and the self-test only counts its failures.
#[tokio::test]
async fn a_verifier_without_the_selftest_and_pttl_permissions_still_verifies() {
    let prefix = prefix();
    let conn = admin(Topology::Standalone).await;
    let user = AclUser::documented("verifier", &prefix).without_rules(&[
        "selftest", "+evalsha", "+script", "+time", "+zadd", "+get", "+hset", "+pexpire", "+pttl",
    ]);
    assert!(!user.setuser_args().iter().any(|rule| rule == "+pttl"));
    let mut c = conn.clone();
    let () = redis::cmd("ACL")
        .arg(user.setuser_args())
        .query_async(&mut c)
        .await
        .unwrap();

    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let recorder = PrometheusBuilder::new().build_recorder();
    let page = recorder.handle();
    let verifier = build_recording(
        Verifier::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .static_keys(KeySet::from_keys([VerifyingKey::ed25519(
                "k1",
                public.public_key().as_ref(),
            )]))
            .redis(target(Topology::Standalone))
            .redis_credentials(RedisCredentials::new(Some(&user.name), &user.password))
            .key_prefix(prefix.as_str()),
        &recorder,
    )
    .await;
    eventually("the self-test's failure is counted", || async {
        value(&page.render(), "verifier_selftest_errors_total").filter(|n| *n >= 1.0)
    })
    .await;

    let now = SystemClock.now_secs();
    let claims = json!({
        "iss": ISSUER, "sub": "u1", "aud": AUDIENCE, "exp": now + 600, "iat": now,
        "jti": "j1", "sid": "s1", "roles": [],
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
    )
    .unwrap();
    let session = format!("{prefix}:s:{{u1}}:s1");
    let _: i64 = redis::cmd("HSET")
        .arg(&session)
        .arg("user")
        .arg("u1")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(&session)
        .arg(60_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let claims = verifier.verify(&token).await;
    assert!(claims.is_ok(), "{claims:?}");
    let _: i64 = redis::cmd("DEL")
        .arg(&session)
        .query_async(&mut c)
        .await
        .unwrap();
    eventually("the deletion is seen", || async {
        matches!(
            verifier.verify(&token).await,
            Err(verifier::VerifyError::Revoked)
        )
        .then_some(())
    })
    .await;
}
