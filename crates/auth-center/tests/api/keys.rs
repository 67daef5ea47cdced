//! Key rotation: a new kid signs, the old public key stays published until the last
//! token it signed has expired, and instances sharing the database follow.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        rotating_the_key_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_kid,
        the_old_key_leaves_the_jwks_once_its_last_token_has_expired,
    ],
    sqlite_redis: [
        a_second_instance_verifies_tokens_signed_after_a_rotation_on_the_first,
        tokens_signed_by_an_instance_that_has_not_yet_seen_a_rotation_stay_valid_until_they_expire,
    ],
}

async fn rotate(app: &TestApp, admin: &Tokens) -> String {
    let r = app
        .request(Method::POST, "/v1/admin/keys/rotate")
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["kid"].as_str().unwrap().to_string()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let r = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k.get("d").is_none(), "no private member");
            assert_eq!(k["alg"], "EdDSA");
            assert_eq!(k["use"], "sig");
            k["kid"].as_str().unwrap().to_string()
        })
        .collect()
}

fn kid(t: &Tokens) -> String {
    t.header()["kid"].as_str().unwrap().to_string()
}

async fn rotating_the_key_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_kid(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let user = app.register_and_login("nina").await;
    let old = kid(&user);
    assert_eq!(jwks_kids(&app).await, vec![old.clone()]);

    let new = rotate(&app, &root).await;
    assert_ne!(new, old);
    // Both published, the current signing key first.
    assert_eq!(jwks_kids(&app).await, vec![new.clone(), old.clone()]);
    // Tokens signed by the old key keep working: the admin's own and the user's.
    assert_eq!(app.me(&user.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&root.access_token).await.status(), StatusCode::OK);
    // New tokens, from login and from refresh, use the new key.
    let fresh = app.login_ok("nina").await;
    assert_eq!(kid(&fresh), new);
    let refreshed = app.refresh_ok(&user.refresh_token).await;
    assert_eq!(kid(&refreshed), new);
    assert_eq!(
        app.me(&refreshed.access_token).await.status(),
        StatusCode::OK
    );

    // A second rotation: three keys published, all old tokens still valid.
    let newest = rotate(&app, &root).await;
    let mut kids = jwks_kids(&app).await;
    assert_eq!(kids[0], newest, "the signing key comes first");
    kids.sort();
    let mut expected = vec![newest.clone(), new.clone(), old.clone()];
    expected.sort();
    assert_eq!(kids, expected);
    for t in [&user, &fresh, &refreshed] {
        assert_eq!(app.me(&t.access_token).await.status(), StatusCode::OK);
    }
    let stored = app.auth.keys().stored_keys().await.unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(
        stored.iter().filter(|k| k.retired_ms.is_none()).count(),
        1,
        "exactly one key signs"
    );
    let events = app.audit_events("admin.key_rotated").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].actor.as_deref(), Some(root.user_id().as_str()));
}

async fn the_old_key_leaves_the_jwks_once_its_last_token_has_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let old = kid(&root);
    let new = rotate(&app, &root).await;

    // The last token the old key signed was issued at the rotation at the latest: it
    // expires after the access TTL (900 s) plus the leeway (5 s). Until then: published.
    app.clock.advance(Duration::from_secs(900));
    app.auth.keys().reload_if_stale().await.unwrap();
    assert_eq!(jwks_kids(&app).await, vec![new.clone(), old.clone()]);
    assert_eq!(app.me(&root.access_token).await.status(), StatusCode::OK);

    // Well past it, after a reload: gone from the JWKS, and its tokens are refused.
    app.clock.advance(Duration::from_secs(60));
    app.auth.keys().reload_if_stale().await.unwrap();
    assert_eq!(jwks_kids(&app).await, vec![new.clone()]);
    let root2 = app.login_ok("root").await;
    assert_eq!(kid(&root2), new);
    assert_eq!(app.me(&root2.access_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.me(&root.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The key itself stays stored (for `keys list`), just retired.
    let stored = app.auth.keys().stored_keys().await.unwrap();
    assert!(
        stored
            .iter()
            .any(|k| k.kid == old && k.retired_ms.is_some())
    );
}

async fn a_second_instance_verifies_tokens_signed_after_a_rotation_on_the_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let second = app.second_instance().await;
    let root = app.admin_login("root").await;
    let before = app.login_ok("root").await;
    let old = kid(&before);
    assert_eq!(
        second.me(&before.access_token).await.status(),
        StatusCode::OK
    );

    let new = rotate(&app, &root).await;
    let after = app.login_ok("root").await;
    assert_eq!(kid(&after), new);
    // The reload on an unknown kid has a 1 s cooldown since the last load.
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        second.me(&after.access_token).await.status(),
        StatusCode::OK
    );
    // The second instance now publishes and signs with the new key too.
    assert_eq!(jwks_kids(&second).await, vec![new.clone(), old.clone()]);
    let from_second = second.login_ok("root").await;
    assert_eq!(kid(&from_second), new);
    assert_eq!(
        app.me(&from_second.access_token).await.status(),
        StatusCode::OK
    );
    // Old tokens still verify on both.
    assert_eq!(
        second.me(&before.access_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.me(&before.access_token).await.status(), StatusCode::OK);
    // An unknown kid (forged) is refused and does not break anything.
    let mut header = before.header();
    header["kid"] = "nope".into();
    let forged = format!(
        "{}.{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            header.to_string()
        ),
        before.access_token.split_once('.').unwrap().1
    );
    app.clock.advance(Duration::from_secs(1));
    assert_error(
        second.me(&forged).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(
        second.me(&after.access_token).await.status(),
        StatusCode::OK
    );
}

/// An instance keeps signing with the old key until it reloads (an unknown kid, or its
/// periodic reload every 30 s). Tokens it signs in that time must stay verifiable for
/// their whole lifetime, so the old key must stay published until they have expired.
async fn tokens_signed_by_an_instance_that_has_not_yet_seen_a_rotation_stay_valid_until_they_expire(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let second = app.second_instance().await;
    let root = app.admin_login("root").await;
    let old = kid(&root);
    rotate(&app, &root).await;
    // Less than the periodic reload interval later, the second instance has not reloaded
    // yet and still signs with the old key.
    app.clock.advance(Duration::from_secs(20));
    let late = second.login_ok("root").await;
    assert_eq!(kid(&late), old, "the second instance has not reloaded yet");
    // Shortly before that token expires (issued at +20 s, expires at +920 s).
    app.clock.advance(Duration::from_secs(890));
    app.auth.keys().reload_if_stale().await.unwrap();
    assert_eq!(
        app.me(&late.access_token).await.status(),
        StatusCode::OK,
        "a valid, unexpired token signed by a published-at-signing-time key was refused"
    );
    assert!(jwks_kids(&app).await.contains(&old));
}
