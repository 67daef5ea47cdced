//! Lifetimes in Redis: every key has a TTL, and the per-user index is pruned of expired
//! sessions and agrees with the session records.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        the_index_is_pruned_of_expired_sessions_and_agrees_with_the_records,
    ],
    sqlite_redis: [
        every_redis_key_of_the_service_has_a_ttl,
        the_index_is_pruned_of_expired_sessions_and_agrees_with_the_records,
    ],
    sqlite_cluster: [
        the_index_is_pruned_of_expired_sessions_and_agrees_with_the_records,
    ],
}

/// Every key under the app's prefix on standalone Redis, with its PTTL.
async fn keys_with_ttl(app: &TestApp) -> Vec<(String, i64)> {
    let mut conn = app.redis.clone().expect("Redis");
    let pattern = format!("{}:*", app.config.redis_prefix);
    let mut cursor: u64 = 0;
    let mut keys: Vec<String> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        out.push((key, ttl));
    }
    out
}

async fn every_redis_key_of_the_service_has_a_ttl(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.login_account_ip_failures_max = 2;
        c.limits.refresh_ip_max = 3;
    })
    .await;
    let a = app.register_and_login("olaf").await;
    let b = app.login_ok("olaf").await;
    let c = app.login_ok("olaf").await;
    let r1 = app.refresh_ok(&a.refresh_token).await;
    app.refresh_ok(&r1.refresh_token).await;
    app.refresh_ok(&b.refresh_token).await;
    assert_eq!(
        app.refresh(&b.refresh_token).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.delete_bearer(&format!("/v1/sessions/{}", c.session_id), &a.access_token)
        .await;
    app.register("petra", PASSWORD).await;
    for _ in 0..3 {
        app.login("petra", "wrong wrong wrong").await;
    }
    app.login("ghost", "wrong wrong wrong").await;
    let r = app
        .post_json_bearer(
            "/v1/password",
            &a.access_token,
            &json!({"current_password": PASSWORD, "new_password": "a new long passphrase"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // A user who logged out everywhere leaves no index behind.
    let q = app.register_and_login("quentin").await;
    app.post_bearer("/v1/logout-all", &q.access_token).await;

    // A service account's token (a session and an index of its own), a failed client
    // authentication, and a used client assertion (its jti is kept until it expires).
    let svc = app.secret_client("svc", &[], &[], false).await;
    app.client_token(&svc, None).await;
    app.post_form(
        "/oauth2/token",
        &[("grant_type", "client_credentials")],
        Some(("svc", "wrong")),
    )
    .await;
    let key = ClientKey::generate("k1");
    app.key_client("signer", &key, &[], false).await;
    let assertion = key.assertion("signer", verifier::Clock::now_secs(&app.clock));
    let r = app
        .post_form(
            "/oauth2/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let keys = keys_with_ttl(&app).await;
    let prefix = &app.config.redis_prefix;
    for (key, ttl) in &keys {
        if key.starts_with(&format!("{prefix}:s:{{svc}}:")) {
            assert!(*ttl <= 900 * 1000, "a client token's session: {key} {ttl}");
        }
        if key.starts_with(&format!("{prefix}:rl:once:")) {
            assert!(
                *ttl <= (60 + 5 + 1) * 1000,
                "an assertion's jti: {key} {ttl}"
            );
        }
    }
    for kind in [":s:", ":u:", ":rl:", ":rl:once:", ":s:{svc}:", ":u:{svc}"] {
        assert!(
            keys.iter()
                .any(|(k, _)| k.starts_with(&format!("{prefix}{kind}"))),
            "no {kind} key in {keys:?}"
        );
    }
    for (key, ttl) in &keys {
        assert!(*ttl > 0, "{key} has PTTL {ttl}");
    }
    // Sessions live at most their idle lifetime; the index as long as its longest session.
    let uid = a.user_id();
    let index_ttl = keys
        .iter()
        .find(|(k, _)| *k == app.keys.user_index(&uid).unwrap())
        .map(|(_, t)| *t)
        .expect("the index");
    for (key, ttl) in &keys {
        if key.starts_with(&format!("{prefix}:s:")) {
            assert!(*ttl <= 7 * 24 * 3600 * 1000, "{key}: {ttl}");
            if key.contains(&uid) {
                assert!(index_ttl + 1000 >= *ttl, "index {index_ttl} < {key} {ttl}");
            }
        }
    }
    assert!(
        !keys
            .iter()
            .any(|(k, _)| *k == app.keys.user_index(&q.user_id()).unwrap()),
        "an empty index is deleted"
    );
    // No secret material in key names.
    for (key, _) in &keys {
        assert!(!key.contains(&a.refresh_token) && !key.contains(PASSWORD));
    }
}

async fn the_index_is_pruned_of_expired_sessions_and_agrees_with_the_records(backend: Backend) {
    let app = spawn_app(backend).await;
    let old1 = app.register_and_login("rosa").await;
    let old2 = app.login_ok("rosa").await;
    let uid = old1.user_id();
    // One stays alive by refreshing.
    app.clock.advance(Duration::from_secs(6 * 24 * 3600));
    let alive = app.refresh_ok(&old2.refresh_token).await;
    // Past the idle lifetime of the other one.
    app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    let fresh = app.login_ok("rosa").await;

    let mut expected = vec![alive.session_id.clone(), fresh.session_id.clone()];
    expected.sort();
    assert_eq!(app.session_ids(&uid).await, expected);
    if backend.sessions != Sessions::Memory {
        let mut members = app.redis_index_members(&uid).await;
        members.sort();
        assert_eq!(members, expected, "the index holds only live sids");
    }
    assert_eq!(
        app.refresh(&old1.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The list and the index keep agreeing through deletions and expiries.
    app.delete_bearer(
        &format!("/v1/sessions/{}", alive.session_id),
        &fresh.access_token,
    )
    .await;
    let listed = app.session_ids(&uid).await;
    assert_eq!(listed, vec![fresh.session_id.clone()]);
    if backend.sessions != Sessions::Memory {
        assert_eq!(app.redis_index_members(&uid).await, listed);
    }
    app.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    assert!(app.session_ids(&uid).await.is_empty());
    if backend.sessions != Sessions::Memory {
        assert!(app.redis_index_members(&uid).await.is_empty());
    }
}
