//! Resharding a Redis Cluster under running services: a slot moved to a master added for a
//! scale-out, with the sessions in it, as `redis-cli --cluster reshard` moves it. The
//! verifier keeps serving the moved sessions, and a revocation on the new master reaches a
//! tracked verifier by its push, on a connection it opened after it started.

use reqwest::StatusCode;
use test_support::RedisCluster;
use verifier::{RedisTarget, RevocationMode};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moved_to_a_new_master_by_resharding_is_still_served_refreshed_and_revoked_at_once()
 {
    let mut cluster = blocking(RedisCluster::start).expect("a cluster of 3 masters");
    let center = AuthCenter::spawn_on(RedisTarget::Cluster(cluster.urls())).await;
    let tracked = center.demo_tracked_by_redis_alone().await;
    let every_request = center.demo(RevocationMode::EveryRequest).await;

    let alice = center.register_and_login("alice").await;
    let alice_phone = center.login_ok("alice").await;
    let bob = center.register_and_login("bob").await;
    for tokens in [&alice, &alice_phone, &bob, &alice] {
        tracked.me(tokens).await.assert_ok(); // now cached
        every_request.me(tokens).await.assert_ok();
    }

    // Scale out: a fourth master, and alice's slot (every key of hers) moved to it.
    let key = center.session_key(&alice);
    let new_master = blocking(|| cluster.add_master()).expect("a fourth master");
    blocking(|| cluster.move_slot(&key, new_master)).expect("alice's slot moved");

    for tokens in [&alice, &alice_phone, &bob] {
        tracked.me(tokens).await.assert_ok();
        every_request.me(tokens).await.assert_ok();
    }
    // The auth-center rotates on the new master (its scripts are not loaded there yet).
    let refreshed = center.refresh(&alice_phone).await;
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "{:?}",
        refreshed.text().await
    );
    // And writes new sessions there.
    let alice_laptop = center.login_ok("alice").await;
    tracked.me(&alice_laptop).await.assert_ok();

    // Revoked on the new master: the tracked verifier hears of it from that master.
    assert_eq!(center.redis_on_key("DEL", &key, &[]).await, 1);
    becomes_revoked(&tracked, &alice, "after the DEL on the new master").await;
    every_request.me(&alice).await.assert_401("session_revoked");
    // Only that session.
    tracked.me(&alice_laptop).await.assert_ok();
    tracked.me(&bob).await.assert_ok();
}
