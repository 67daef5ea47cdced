//! A rotation that Redis acknowledged and then lost (its master died before the write
//! reached the replica that took over) must not look like theft: the client holds the
//! successor the server really issued, and the promoted replica still has the token before.

use std::collections::HashMap;

use reqwest::StatusCode;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_redis: [a_successor_whose_rotation_was_lost_rolls_the_session_forward],
    sqlite_cluster: [a_successor_whose_rotation_was_lost_rolls_the_session_forward],
}

async fn session_fields(app: &TestApp, tokens: &Tokens) -> HashMap<String, String> {
    let key = app
        .keys
        .session(&tokens.user_id(), &tokens.session_id)
        .unwrap();
    let mut conn = app.redis.clone().unwrap();
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Puts the session record back as it was (what a promoted replica that missed the last
/// write holds).
async fn roll_back(app: &TestApp, tokens: &Tokens, fields: &HashMap<String, String>) {
    let key = app
        .keys
        .session(&tokens.user_id(), &tokens.session_id)
        .unwrap();
    let mut conn = app.redis.clone().unwrap();
    let mut hset = redis::cmd("HSET");
    hset.arg(&key);
    for (k, v) in fields {
        hset.arg(k).arg(v);
    }
    let _: () = redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg(&key)
        .add_command(hset)
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(7 * 24 * 3600 * 1000_i64)
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn a_successor_whose_rotation_was_lost_rolls_the_session_forward(backend: Backend) {
    let app = spawn_app(backend).await;
    let t0 = app.register_and_login("phoenix").await;
    let before = session_fields(&app, &t0).await;
    let t1 = app.refresh_ok(&t0.refresh_token).await;
    roll_back(&app, &t0, &before).await;
    // Well past the grace window: without the lost write, this would be proof of theft.
    app.clock.advance(std::time::Duration::from_secs(60));

    let t2 = app.refresh(&t1.refresh_token).await;
    assert_eq!(
        t2.status(),
        StatusCode::OK,
        "the issued successor is honoured"
    );
    let t2: Tokens = t2.json().await.unwrap();
    assert_eq!(t2.session_id, t0.session_id);
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());
    assert_eq!(app.me(&t2.access_token).await.status(), StatusCode::OK);
    // The chain goes on from there, and the rolled-back token is now the stolen-old one.
    let t3 = app.refresh_ok(&t2.refresh_token).await;
    assert_error(
        app.refresh(&t0.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    assert_eq!(
        app.me(&t3.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
