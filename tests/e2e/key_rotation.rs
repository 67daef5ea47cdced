//! A signing-key rotation at the auth-center reaches the demo-service through the unknown
//! `kid` of the first new token (a JWKS refetch), and tokens signed with the old key keep
//! working while the old public key is published.

use std::time::Duration;

use verifier::RevocationMode;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_picked_up_through_its_unknown_kid_and_old_tokens_stay_valid() {
    let center = AuthCenter::spawn(Store::Standalone).await;
    let mut settings = center.demo_settings();
    settings.revocation = RevocationMode::Tracked;
    settings.jwks_cooldown = Duration::from_millis(100);
    let demo = Demo::spawn(settings).await;

    let old = center.register_and_login("olga").await;
    demo.me(&old).await.assert_ok();

    let new_kid = center.auth.keys().rotate().await.expect("rotate");
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
