//! Removing a session record in Redis, whoever does it (`DEL`, `UNLINK`, an expiry), is seen
//! by the demo-service: 401 `session_revoked`, for good, and only for that session.
//!
//! The demo-service runs with a max-staleness of 60 s here, far beyond the poll bound, so in
//! tracked mode only Redis's invalidation push can end a cached session within the test.

use std::time::Duration;

use verifier::RevocationMode;

use crate::helpers::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Del,
    Unlink,
    /// `PEXPIRE key 50`: the key expires in Redis 50 ms later.
    Expire,
}

async fn removing_the_session_key_revokes_the_session(
    store: Store,
    mode: RevocationMode,
    removal: Removal,
) {
    let center = AuthCenter::spawn(store).await;
    let mut settings = center.demo_settings();
    settings.verifier.revocation = mode;
    settings.verifier.max_staleness = Duration::from_secs(60);
    let demo = Demo::spawn(settings).await;

    let victim = center.register_and_login("victim").await;
    let same_user = center.login_ok("victim").await;
    let bystander = center.register_and_login("bystander").await;
    for tokens in [&victim, &same_user, &bystander, &victim] {
        demo.me(tokens).await.assert_ok(); // tracked mode: now cached
        demo.verified_me(tokens).await.assert_ok(); // the extractor's route, same caches
        demo.handler_me(tokens).await.assert_ok(); // the layer on the handler, same caches
    }

    let key = center.session_key(&victim);
    let removed = match removal {
        Removal::Del => center.redis_on_key("DEL", &key, &[]).await,
        Removal::Unlink => center.redis_on_key("UNLINK", &key, &[]).await,
        Removal::Expire => center.redis_on_key("PEXPIRE", &key, &["50"]).await,
    };
    assert_eq!(removed, 1, "{removal:?} {key}");
    // An expiry reaches the verifiers without anyone reading the key: Redis deletes an
    // expired key (and tells the tracking clients) only when a read meets it or its active
    // expiry cycle reaches it, which in this suite's Redis, holding thousands of keys with a
    // TTL, can take longer than the poll bound; the `PEXPIRE` itself invalidates the cached
    // answer, and the verifier caches the next one only until the key's new expiry.
    let polled = poll_until(
        &format!("401 session_revoked after {removal:?}"),
        POLL_BOUND,
        || demo.me(&victim),
        |a| a.is_401("session_revoked"),
    )
    .await;
    assert!(
        polled.before.iter().all(Answer::is_ok),
        "only 200s may precede the first 401: {:?}",
        polled.before
    );
    eprintln!(
        "observation: {store:?} {mode:?} {removal:?}: {} answer(s) 200 before the first 401",
        polled.before.len()
    );
    if mode == RevocationMode::EveryRequest && removal != Removal::Expire {
        // One EXISTS per request: the request after the DEL/UNLINK reply cannot see the session.
        assert!(
            polled.before.is_empty(),
            "every-request mode answered 200 after {removal:?}: {:?}",
            polled.before
        );
    }
    stays(
        "a revoked session stays revoked",
        || demo.me(&victim),
        |a| a.is_401("session_revoked"),
    )
    .await;

    stays(
        "the route verified by the extractor refuses it too",
        || demo.verified_me(&victim),
        |a| a.is_401("session_revoked"),
    )
    .await;
    stays(
        "the route with the layer on its handler refuses it too",
        || demo.handler_me(&victim),
        |a| a.is_401("session_revoked"),
    )
    .await;

    // Only that session: the user's other session and other users carry on.
    demo.me(&same_user).await.assert_ok();
    demo.me(&bystander).await.assert_ok();
    demo.verified_me(&same_user).await.assert_ok();
    demo.handler_me(&same_user).await.assert_ok();
}

mod tracked {
    use super::*;

    async fn a_del_of_the_session_key_answers_401_session_revoked_from_then_on(store: Store) {
        removing_the_session_key_revokes_the_session(store, RevocationMode::Tracked, Removal::Del)
            .await
    }

    async fn an_unlink_of_the_session_key_answers_401_session_revoked_from_then_on(store: Store) {
        removing_the_session_key_revokes_the_session(
            store,
            RevocationMode::Tracked,
            Removal::Unlink,
        )
        .await
    }

    async fn an_expiry_of_the_session_key_answers_401_session_revoked_from_then_on(store: Store) {
        removing_the_session_key_revokes_the_session(
            store,
            RevocationMode::Tracked,
            Removal::Expire,
        )
        .await
    }

    crate::on_standalone_and_cluster!(
        a_del_of_the_session_key_answers_401_session_revoked_from_then_on,
        an_unlink_of_the_session_key_answers_401_session_revoked_from_then_on,
        an_expiry_of_the_session_key_answers_401_session_revoked_from_then_on,
    );
}

mod every_request {
    use super::*;

    async fn a_del_of_the_session_key_answers_401_session_revoked_from_then_on(store: Store) {
        removing_the_session_key_revokes_the_session(
            store,
            RevocationMode::EveryRequest,
            Removal::Del,
        )
        .await
    }

    async fn an_unlink_of_the_session_key_answers_401_session_revoked_from_then_on(store: Store) {
        removing_the_session_key_revokes_the_session(
            store,
            RevocationMode::EveryRequest,
            Removal::Unlink,
        )
        .await
    }

    async fn an_expiry_of_the_session_key_answers_401_session_revoked_from_then_on(store: Store) {
        removing_the_session_key_revokes_the_session(
            store,
            RevocationMode::EveryRequest,
            Removal::Expire,
        )
        .await
    }

    crate::on_standalone_and_cluster!(
        a_del_of_the_session_key_answers_401_session_revoked_from_then_on,
        an_unlink_of_the_session_key_answers_401_session_revoked_from_then_on,
        an_expiry_of_the_session_key_answers_401_session_revoked_from_then_on,
    );
}
