use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;

use crate::for_every_backend;
use crate::helpers::*;

for_every_backend!(
    refresh_rotates_the_token_and_keeps_the_session,
    a_replay_within_the_grace_window_gets_the_identical_successor,
    a_replay_after_the_grace_window_revokes_the_session_and_is_audited,
    reuse_of_an_older_token_revokes_the_whole_session,
    a_zero_grace_window_treats_any_replay_as_theft,
    twenty_concurrent_refreshes_with_one_token_never_fork_the_session,
    refresh_slides_the_idle_expiry_but_never_past_the_absolute_lifetime,
    an_idle_session_expires,
    garbage_refresh_tokens_are_refused_without_side_effects,
);

async fn refresh_rotates_the_token_and_keeps_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("ivan").await;
    let second = app.refresh_ok(&first.refresh_token).await;
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(second.claims()["sid"], first.claims()["sid"]);
    assert_ne!(second.claims()["jti"], first.claims()["jti"]);
    let third = app.refresh_ok(&second.refresh_token).await;
    assert_eq!(app.me(&third.access_token).await.status(), StatusCode::OK);
    let sessions = app.auth.sessions_of(&first.user_id()).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].generation, 2);
}

async fn a_replay_within_the_grace_window_gets_the_identical_successor(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("judy").await;
    let a = app.refresh_ok(&first.refresh_token).await;
    app.clock.advance(Duration::from_secs(9));
    let b = app.refresh_ok(&first.refresh_token).await;
    assert_eq!(
        a.refresh_token, b.refresh_token,
        "same successor, not a fork"
    );
    assert_eq!(a.session_id, b.session_id);
    // The successor keeps working and nothing was revoked.
    let c = app.refresh_ok(&b.refresh_token).await;
    assert_eq!(app.me(&c.access_token).await.status(), StatusCode::OK);
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());
}

async fn a_replay_after_the_grace_window_revokes_the_session_and_is_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("mallory").await;
    let second = app.refresh_ok(&first.refresh_token).await;
    app.clock.advance(Duration::from_secs(11));
    let (status, code) = error_code(app.refresh(&first.refresh_token).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused")
    );
    // The whole session is gone: its successor and its access tokens no longer work.
    let (status, code) = error_code(app.refresh(&second.refresh_token).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token")
    );
    let (status, code) = error_code(app.me(&second.access_token).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
    let events = app.audit_events("refresh.reuse_detected").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].sid.as_deref(), Some(first.session_id.as_str()));
}

async fn reuse_of_an_older_token_revokes_the_whole_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let t0 = app.register_and_login("niaj").await;
    let t1 = app.refresh_ok(&t0.refresh_token).await;
    let t2 = app.refresh_ok(&t1.refresh_token).await;
    // t0 is two generations old: theft, even inside the grace window.
    let (status, code) = error_code(app.refresh(&t0.refresh_token).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused")
    );
    assert_eq!(
        app.refresh(&t2.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.session_count(&t0.user_id()).await, 0);
}

async fn a_zero_grace_window_treats_any_replay_as_theft(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.sessions.grace_ms = 0).await;
    let first = app.register_and_login("olivia").await;
    let second = app.refresh_ok(&first.refresh_token).await;
    let (_, code) = error_code(app.refresh(&first.refresh_token).await).await;
    assert_eq!(code, "refresh_token_reused");
    assert_eq!(
        app.refresh(&second.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn twenty_concurrent_refreshes_with_one_token_never_fork_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("peggy").await;
    let requests = (0..20).map(|_| app.refresh(&first.refresh_token));
    let responses = futures::future::join_all(requests).await;
    let mut successors = HashSet::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        let tokens: Tokens = response.json().await.unwrap();
        successors.insert(tokens.refresh_token);
    }
    assert_eq!(successors.len(), 1, "every racer got the same successor");
    let sessions = app.auth.sessions_of(&first.user_id()).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].generation, 1, "rotated exactly once");
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(app.refresh(&successor).await.status(), StatusCode::OK);
}

async fn refresh_slides_the_idle_expiry_but_never_past_the_absolute_lifetime(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tokens = app.register_and_login("rupert").await;
    let day = Duration::from_secs(24 * 3600);
    // Refresh every 6 days: the 7-day idle window slides along...
    for _ in 0..4 {
        app.clock.advance(6 * day);
        tokens = app.refresh_ok(&tokens.refresh_token).await;
    }
    // ...until 30 days after login, whatever the activity.
    app.clock.advance(6 * day + Duration::from_secs(1));
    assert_eq!(
        app.refresh(&tokens.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.session_count(&tokens.user_id()).await, 0);
}

async fn an_idle_session_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("sybil").await;
    app.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    let (status, code) = error_code(app.refresh(&tokens.refresh_token).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token")
    );
}

async fn garbage_refresh_tokens_are_refused_without_side_effects(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("trent").await;
    let uid = tokens.user_id();
    let truncated = &tokens.refresh_token[..tokens.refresh_token.len() - 1];
    for bad in [
        "",
        "garbage",
        "a.b.c",
        truncated,
        &format!("{uid}.nosuchsid.{}", "A".repeat(43)),
    ] {
        let (status, code) = error_code(app.refresh(bad).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
            "{bad:?}"
        );
    }
    assert_eq!(
        app.refresh(&tokens.refresh_token).await.status(),
        StatusCode::OK
    );
}
