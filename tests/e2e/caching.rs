//! Tracked revocation answers repeat requests from its cache (no Redis round trip), which is
//! what makes the tracked-mode revocation tests meaningful; every-request mode asks Redis each
//! time. Counted with `INFO commandstats` on a private Redis, so no other test interferes.

use verifier::{RedisTarget, RevocationMode};

use crate::helpers::*;
use crate::on_standalone_and_cluster;

on_standalone_and_cluster!(
    in_tracked_mode_repeat_requests_are_answered_without_asking_redis,
    in_every_request_mode_each_request_asks_redis,
);

const REQUESTS: u64 = 50;

/// Session checks (`EXISTS`, `PTTL`) served so far, summed over every node.
async fn session_checks(target: &RedisTarget) -> u64 {
    let urls = target.urls().to_vec();
    let mut total = 0;
    for url in urls {
        let client = redis::Client::open(url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO commandstats");
        total += test_support::session_checks_in(&info);
    }
    total
}

async fn session_checks_for_repeat_requests(store: Store, mode: RevocationMode) -> u64 {
    let redis = PrivateRedis::start(store);
    let center = AuthCenter::spawn_on(redis.target()).await;
    let demo = center.demo(mode).await;
    let tokens = center.register_and_login("carol").await;
    demo.me(&tokens).await.assert_ok(); // warms the caches
    let before = session_checks(&redis.target()).await;
    for _ in 0..REQUESTS {
        demo.me(&tokens).await.assert_ok();
    }
    session_checks(&redis.target()).await - before
}

async fn in_tracked_mode_repeat_requests_are_answered_without_asking_redis(store: Store) {
    let calls = session_checks_for_repeat_requests(store, RevocationMode::Tracked).await;
    eprintln!(
        "observation: {store:?} tracked: {calls} session checks for {REQUESTS} repeat requests"
    );
    assert_eq!(calls, 0, "tracked mode asked Redis on repeat requests");
}

async fn in_every_request_mode_each_request_asks_redis(store: Store) {
    let calls = session_checks_for_repeat_requests(store, RevocationMode::EveryRequest).await;
    assert_eq!(calls, REQUESTS);
}
