//! Only refresh tokens the server issued can trigger theft detection. `sub` and `sid` are
//! in every access token, so anyone who has seen one can build a token for its session;
//! such a token must be just another invalid token: same answer, no effect.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::{for_backends, for_every_backend};

for_every_backend!(
    a_token_forged_from_an_access_tokens_sub_and_sid_is_just_invalid_and_changes_nothing,
    a_tampered_genuine_token_is_just_invalid_and_changes_nothing,
    a_genuine_old_token_outside_the_grace_window_is_still_theft,
    a_token_whose_mac_was_stripped_never_rotates_and_the_previous_one_is_still_theft,
);

// A session from before MACs can only exist in Redis (memory does not survive an upgrade).
for_backends! {
    sqlite_redis: [a_token_in_the_format_issued_before_the_mac_keeps_working_until_it_rotates],
    sqlite_cluster: [a_token_in_the_format_issued_before_the_mac_keeps_working_until_it_rotates],
}

/// Status, `WWW-Authenticate` and the body, byte for byte.
async fn answer(app: &TestApp, refresh_token: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let response = app.refresh(refresh_token).await;
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, response.bytes().await.unwrap().to_vec())
}

fn random_b64(bytes: usize) -> String {
    use base64::Engine as _;
    let raw: Vec<u8> = (0..bytes).map(|_| rand_byte()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}

/// Flips one base64url character in part `part` of a dotted token.
fn tamper(token: &str, part: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let target = &mut parts[part];
    let first = if target.starts_with('A') { "B" } else { "A" };
    target.replace_range(0..1, first);
    parts.join(".")
}

async fn assert_session_untouched(app: &TestApp, tokens: &Tokens, generation: u64) {
    let sessions = app.auth.sessions_of(&tokens.user_id()).await.unwrap();
    assert_eq!(sessions.len(), 1, "the session survives");
    assert_eq!(sessions[0].generation, generation, "nothing rotated");
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

async fn a_token_forged_from_an_access_tokens_sub_and_sid_is_just_invalid_and_changes_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("forge-victim").await;
    let current = app.refresh_ok(&first.refresh_token).await;
    let (sub, sid) = (current.user_id(), current.session_id.clone());
    let invalid = answer(&app, "not-a-token").await;
    assert_eq!(invalid.0, StatusCode::UNAUTHORIZED);
    for forged in [
        // The format of the tokens issued before refresh tokens carried a MAC...
        format!("{sub}.{sid}.{}", random_b64(32)),
        // ...and the current one.
        format!("{sub}.{sid}.{}.{}", random_b64(32), random_b64(16)),
    ] {
        assert_eq!(answer(&app, &forged).await, invalid, "{forged}");
    }
    assert_session_untouched(&app, &current, 1).await;
    assert_eq!(
        app.refresh(&current.refresh_token).await.status(),
        StatusCode::OK,
        "the genuine token still rotates"
    );
}

async fn a_tampered_genuine_token_is_just_invalid_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("tamper-victim").await;
    let second = app.refresh_ok(&first.refresh_token).await;
    let invalid = answer(&app, "not-a-token").await;
    let parts = second.refresh_token.split('.').count();
    assert_eq!(parts, 4, "user id, sid, secret, MAC");
    for part in 2..parts {
        for token in [&first.refresh_token, &second.refresh_token] {
            let tampered = tamper(token, part);
            assert_eq!(answer(&app, &tampered).await, invalid, "part {part}");
        }
    }
    assert_session_untouched(&app, &second, 1).await;
}

async fn a_genuine_old_token_outside_the_grace_window_is_still_theft(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("theft-victim").await;
    let second = app.refresh_ok(&first.refresh_token).await;
    app.clock.advance(std::time::Duration::from_secs(11));
    assert_error(
        app.refresh(&first.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    assert_eq!(app.session_count(&second.user_id()).await, 0);
    assert_eq!(app.audit_events("refresh.reuse_detected").await.len(), 1);
}

async fn a_token_in_the_format_issued_before_the_mac_keeps_working_until_it_rotates(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("upgrade-user").await;
    // A session from before the upgrade: no `nrt`, and its token is `<user>.<sid>.<secret>`
    // (today's token without its MAC).
    let key = app
        .keys
        .session(&tokens.user_id(), &tokens.session_id)
        .unwrap();
    let mut conn = app.redis.clone().unwrap();
    let _: i64 = redis::cmd("HDEL")
        .arg(&key)
        .arg("nrt")
        .query_async(&mut conn)
        .await
        .unwrap();
    let legacy = tokens.refresh_token.rsplit_once('.').unwrap().0.to_string();
    let rotated = app.refresh_ok(&legacy).await;
    assert_eq!(
        rotated.refresh_token.split('.').count(),
        4,
        "now with a MAC"
    );
    assert_eq!(rotated.session_id, tokens.session_id);
    // A replay in the grace window gets the same successor, as before the upgrade.
    let replayed = app.refresh_ok(&legacy).await;
    assert_eq!(replayed.refresh_token, rotated.refresh_token);
    // Past the window the old token is theft: its hash is the stored previous one, which
    // only the holder of a genuine token can match.
    app.clock.advance(std::time::Duration::from_secs(11));
    assert_error(
        app.refresh(&legacy).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    assert_eq!(app.session_count(&tokens.user_id()).await, 0);
}

async fn a_token_whose_mac_was_stripped_never_rotates_and_the_previous_one_is_still_theft(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("stripper").await;
    let strip = |t: &str| t.rsplit_once('.').unwrap().0.to_string();
    let invalid = answer(&app, "not-a-token").await;
    // The current token without its MAC: this session's tokens all carry one.
    assert_eq!(answer(&app, &strip(&first.refresh_token)).await, invalid);
    assert_session_untouched(&app, &first, 0).await;
    // The previous token without its MAC, past the grace window: still theft.
    let second = app.refresh_ok(&first.refresh_token).await;
    app.clock.advance(std::time::Duration::from_secs(11));
    assert_error(
        app.refresh(&strip(&first.refresh_token)).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    assert_eq!(app.session_count(&second.user_id()).await, 0);
    assert_eq!(app.audit_events("refresh.reuse_detected").await.len(), 1);
}
