//! Signing-key rotation as verifiers see it. A normal rotation publishes the new key
//! first and signs with it only after the publication delay, so a verifier that never
//! refetches on an unknown `kid` keeps accepting every token. An emergency rotation signs
//! at once and reaches the demo-service through the unknown `kid` of the first new token
//! (a JWKS refetch). Either way, tokens signed with the old key keep working while the old
//! public key is published.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_center::domain::keys::KeyRotation;
use verifier::contract::ManualClock;
use verifier::{RevocationMode, Verifier};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_rotation_is_picked_up_through_its_unknown_kid_and_old_tokens_stay_valid() {
    let center = AuthCenter::spawn(Store::Standalone).await;
    let mut settings = center.demo_settings();
    settings.verifier.revocation = RevocationMode::Tracked;
    settings.verifier.jwks_cooldown = Duration::from_millis(100);
    let demo = Demo::spawn(settings).await;

    let old = center.register_and_login("olga").await;
    demo.me(&old).await.assert_ok();

    let new_kid = center
        .auth
        .keys()
        .rotate(KeyRotation::Immediate)
        .await
        .expect("rotate")
        .kid;
    assert_ne!(new_kid, old.kid());
    let jwks = center.jwks().await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        published.contains(&new_kid.as_str()) && published.contains(&old.kid().as_str()),
        "the JWKS publishes both keys: {published:?}"
    );

    let new = center.login_ok("olga").await;
    assert_eq!(new.kid(), new_kid, "new tokens are signed with the new key");
    // The first request with the new kid may fall inside the refetch cooldown (100 ms after
    // the demo-service's start-up fetch); after that the unknown kid triggers a refetch.
    let polled = poll_until(
        "the new key accepted",
        POLL_BOUND,
        || demo.me(&new),
        Answer::is_ok,
    )
    .await;
    assert!(
        polled.before.iter().all(|a| a.is_401("invalid_token")),
        "{:?}",
        polled.before
    );
    eprintln!(
        "observation: {} answer(s) 401 before the new kid was accepted",
        polled.before.len()
    );
    stays(
        "the new key stays accepted",
        || demo.me(&new),
        Answer::is_ok,
    )
    .await;
    stays(
        "the old key stays accepted",
        || demo.me(&old),
        Answer::is_ok,
    )
    .await;
    assert_eq!(demo.me(&new).await.body["sub"], new.user_id().as_str());
}

/// Verifiers built like standard JWKS clients with caches. `stale` has a one-hour
/// cooldown and refresh interval: it fetched the JWKS just before the rotation and never
/// fetches again within the test, not even on an unknown `kid`. `periodic` refetches every
/// 200 ms of real time (its cooldown is the same: the verifier's cooldown also spaces its
/// periodic refreshes), which stands for a cache lifetime shorter than the publication
/// delay: the auth-center runs on a manual clock, moved past the delay only once
/// `periodic` holds the new key. Every token must verify, before, during and after the
/// rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_with_a_long_jwks_cache_keeps_accepting_tokens_across_a_rotation() {
    let clock = ManualClock::starting_now();
    let center = AuthCenter::spawn_with_clock(Store::Standalone, Arc::new(clock.clone())).await;
    let stale = caching_verifier(&center, &clock, Duration::from_secs(3600)).await;
    let periodic = caching_verifier(&center, &clock, Duration::from_millis(200)).await;
    let before = center.register_and_login("lena").await;
    assert_eq!(stale.key_ids(), vec![before.kid()]);

    let new = center
        .auth
        .keys()
        .rotate(KeyRotation::Delayed)
        .await
        .expect("rotate");

    // During the publication delay: still signed by the old key, which both have.
    let during = center.login_ok("lena").await;
    assert_eq!(during.kid(), before.kid());
    for verifier in [&stale, &periodic] {
        for t in [&before, &during] {
            verifier.verify(&t.access_token).await.expect(
                "a token issued during the publication delay verifies with the cached JWKS",
            );
        }
    }

    // The periodic refresh brings the new key (published since the rotation) ...
    let deadline = Instant::now() + POLL_BOUND;
    while !periodic.key_ids().contains(&new.kid) {
        assert!(
            Instant::now() < deadline,
            "the periodic JWKS refresh did not bring the new key within {POLL_BOUND:?}"
        );
        tokio::time::sleep(POLL_STEP).await;
    }

    // ... before it signs. The old key signs until the delay is over, and its last tokens
    // keep verifying after the switch; new tokens carry the new kid, which the verifier
    // already holds.
    let delay = Duration::from_secs(center.auth.config().keys.publish_delay_secs);
    clock.advance(delay - Duration::from_secs(1));
    let last_old = center.login_ok("lena").await;
    assert_eq!(last_old.kid(), before.kid());
    clock.advance(Duration::from_secs(1));
    let after = center.login_ok("lena").await;
    assert_eq!(after.kid(), new.kid);
    for t in [&last_old, &after] {
        periodic
            .verify(&t.access_token)
            .await
            .expect("every token verifies across the rotation");
    }
}

async fn caching_verifier(
    center: &AuthCenter,
    clock: &ManualClock,
    cache_for: Duration,
) -> Verifier {
    Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .jwks_url(center.jwks_url())
        .jwks_cooldown(cache_for)
        .jwks_refresh_interval(cache_for)
        .redis(center.target.clone())
        .key_prefix(center.prefix.clone())
        .revocation(RevocationMode::EveryRequest)
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .expect("verifier builds")
}
