//! Password change (needs the current password, ends the other sessions) and the
//! password policy (NIST 800-63B: 8..=128 code points, common passwords refused, no
//! trimming, no composition rules).

use reqwest::StatusCode;
use serde_json::json;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        a_wrong_current_password_is_refused_and_changes_nothing,
        the_password_policy_applies_to_registration_and_admin_creation,
        passwords_from_a_public_breach_list_are_refused_in_any_case_and_a_strong_one_passes,
        the_password_policy_applies_to_a_password_change_and_a_refusal_changes_nothing,
        passwords_are_never_trimmed_or_truncated,
        changing_the_password_ends_the_other_sessions_and_keeps_the_current_one,
    ],
    sqlite_redis: [
        changing_the_password_ends_the_other_sessions_and_keeps_the_current_one,
    ],
}

async fn change(app: &TestApp, access_token: &str, current: &str, new: &str) -> reqwest::Response {
    app.post_json_bearer(
        "/v1/password",
        access_token,
        &json!({ "current_password": current, "new_password": new }),
    )
    .await
}

async fn a_wrong_current_password_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = app.register_and_login("hank").await;
    let other = app.login_ok("hank").await;
    for wrong in [
        "not my password",
        &format!("{PASSWORD} "),
        &PASSWORD.to_uppercase(),
    ] {
        let r = change(&app, &t.access_token, wrong, "a brand new passphrase").await;
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // An empty or over-long current password is a bad request, still nothing changes.
    let r = change(&app, &t.access_token, "", "a brand new passphrase").await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let r = change(
        &app,
        &t.access_token,
        &"x".repeat(129),
        "a brand new passphrase",
    )
    .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // Missing fields / unknown fields.
    let r = app
        .post_json_bearer(
            "/v1/password",
            &t.access_token,
            &json!({ "new_password": "a brand new passphrase" }),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // No token, no change.
    let r = app
        .post_json(
            "/v1/password",
            &json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    for s in [&t, &other] {
        assert_eq!(app.me(&s.access_token).await.status(), StatusCode::OK);
    }
    assert_eq!(app.session_count(&t.user_id()).await, 2);
    assert_eq!(
        app.login("hank", "a brand new passphrase").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.login_ok("hank").await;
    assert_eq!(app.audit_events("password.change_failed").await.len(), 3);
    assert!(app.audit_events("password.changed").await.is_empty());
}

async fn changing_the_password_ends_the_other_sessions_and_keeps_the_current_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let current = app.register_and_login("iris").await;
    let laptop = app.login_ok("iris").await;
    let phone = app.login_ok("iris").await;
    let bystander = app.register_and_login("jack").await;
    let uid = current.user_id();

    let r = change(
        &app,
        &current.access_token,
        PASSWORD,
        "a brand new passphrase",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, json!({ "other_sessions_ended": 2 }));

    for t in [&laptop, &phone] {
        assert_error(
            app.me(&t.access_token).await,
            StatusCode::UNAUTHORIZED,
            "session_revoked",
        )
        .await;
        assert_eq!(
            app.refresh(&t.refresh_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The current session keeps working, access and refresh.
    assert_eq!(app.me(&current.access_token).await.status(), StatusCode::OK);
    let refreshed = app.refresh_ok(&current.refresh_token).await;
    assert_eq!(
        app.me(&refreshed.access_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.session_ids(&uid).await,
        vec![current.session_id.clone()]
    );
    if backend.sessions != Sessions::Memory {
        assert_eq!(
            app.redis_index_members(&uid).await,
            vec![current.session_id.clone()]
        );
    }
    assert_eq!(
        app.me(&bystander.access_token).await.status(),
        StatusCode::OK
    );

    // Old password fails (like any wrong password), new one works.
    assert_error(
        app.login("iris", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        app.login("iris", "a brand new passphrase").await.status(),
        StatusCode::OK
    );
    // The old password is no longer the current one for a second change either.
    let r = change(
        &app,
        &refreshed.access_token,
        PASSWORD,
        "a third passphrase!",
    )
    .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let changed = app.audit_events("password.changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].actor.as_deref(), Some(uid.as_str()));
    assert_eq!(changed[0].sid.as_deref(), Some(current.session_id.as_str()));
}

async fn the_password_policy_applies_to_registration_and_admin_creation(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.register_ip_max = 1_000).await;
    let root = app.admin_login("root").await;
    let refused = [
        "x".repeat(7),
        "ü".repeat(7),
        "x".repeat(129),
        "😀".repeat(129),
        "password123".into(),
        "Password123".into(),
        "qwertyuiop".into(),
        "QWERTYUIOP".into(),
        "12345678".into(),
        "newuser01".into(),
        "my auth-center password".into(),
    ];
    for (i, password) in refused.iter().enumerate() {
        let r = app.register("newuser01", password).await;
        let (status, code) = error_code(r).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "register with #{i} ({} chars)",
            password.chars().count()
        );
        let r = app
            .post_json_bearer(
                "/v1/admin/users",
                &root.access_token,
                &json!({ "username": "newuser01", "password": password }),
            )
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    assert_eq!(
        app.login("newuser01", "x".repeat(8).as_str())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let accepted = [
        "xk7#qd2p".into(),
        "ü".repeat(8),
        "y".repeat(64),
        "z".repeat(128),
        "😀".repeat(128),
        "no rules at all".into(),
        "ALLCAPSNODIGITS".into(),
    ];
    for (i, password) in accepted.iter().enumerate() {
        let name = format!("okuser{i}");
        let r = app.register(&name, password).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "#{i}: {}",
            r.text().await.unwrap()
        );
        assert_eq!(
            app.login(&name, password).await.status(),
            StatusCode::OK,
            "#{i}"
        );
    }
}

async fn the_password_policy_applies_to_a_password_change_and_a_refusal_changes_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let t = app.register_and_login("katherine").await;
    let other = app.login_ok("katherine").await;
    for bad in [
        "x".repeat(7),
        "x".repeat(129),
        "password123".into(),
        "qwertyuiop".into(),
        "Katherine".into(),
    ] {
        let r = change(&app, &t.access_token, PASSWORD, &bad).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    assert_eq!(app.session_count(&t.user_id()).await, 2);
    assert_eq!(app.me(&other.access_token).await.status(), StatusCode::OK);
    app.login_ok("katherine").await;
    // 64 characters are accepted.
    let long = "k".repeat(64);
    let r = change(&app, &t.access_token, PASSWORD, &long).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.login("katherine", &long).await.status(), StatusCode::OK);
    // ...and 128, from the 64 one.
    let longest = "L".repeat(128);
    let r = change(&app, &t.access_token, &long, &longest).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.login("katherine", &longest).await.status(),
        StatusCode::OK
    );
}

async fn passwords_are_never_trimmed_or_truncated(backend: Backend) {
    // Many deliberate wrong guesses below: keep the back-off out of this test.
    let app = spawn_app_with(backend, |c| c.limits.login_account_ip_failures_max = 100).await;
    // Eight characters only because the spaces count.
    let spaced = "  kq7w  ";
    assert_eq!(
        app.register("liam", spaced).await.status(),
        StatusCode::CREATED
    );
    for wrong in ["kq7w", "  kq7w", "kq7w  ", " kq7w ", "   kq7w   "] {
        assert_error(
            app.login("liam", wrong).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    assert_eq!(app.login("liam", spaced).await.status(), StatusCode::OK);
    // Only spaces is a fine password too (no composition rules).
    assert_eq!(
        app.register("mona", "        ").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.login("mona", "       ").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login("mona", "        ").await.status(), StatusCode::OK);
    // No truncation: two 128-character passwords that differ only in the last one.
    let base = "n".repeat(127);
    assert_eq!(
        app.register("nora", &format!("{base}a")).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.login("nora", &format!("{base}b")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("nora", &format!("{base}a")).await.status(),
        StatusCode::OK
    );
    // Nor for multi-byte characters (256+ bytes).
    let emoji = "😀".repeat(127);
    assert_eq!(
        app.register("otto", &format!("{emoji}😃")).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.login("otto", &format!("{emoji}😄")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("otto", &format!("{emoji}😃")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_current_password_of_a_password_change_is_rate_limited() {
    guessing_the_current_password_is_rate_limited_like_a_login(Backend {
        db: Db::Sqlite,
        sessions: Sessions::Redis,
    })
    .await
}

/// ASVS: the current-password check of a password change is an authentication attempt
/// and must be throttled like a login; otherwise a stolen access token is an unlimited
/// password-guessing oracle for the account.
async fn guessing_the_current_password_is_rate_limited_like_a_login(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.login_account_ip_failures_max = 3;
    })
    .await;
    let t = app.register_and_login("pam").await;
    for i in 0..3 {
        let r = change(
            &app,
            &t.access_token,
            &format!("guess number {i}"),
            "a brand new passphrase",
        )
        .await;
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let r = change(
        &app,
        &t.access_token,
        "guess number 4",
        "a brand new passphrase",
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after_secs(&r) >= 1);
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn passwords_from_a_public_breach_list_are_refused_in_any_case_and_a_strong_one_passes(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |c| c.limits.register_ip_max = 1_000).await;
    let root = app.admin_login("root").await;
    let t = app.register_and_login("lena").await;
    // From SecLists' 10-million-password-list-top-1000000: ranks 245 085, 500 060, 990 011,
    // 990 012 (listed as "VoLoDaRkA32") and 990 056 (listed as "Volnogorsk").
    let refused = [
        "123456789012345",
        "lowradiation",
        "LowRadiation",
        "volodarskogo11",
        "VoLoDaRkA32",
        "volodarka32",
        "VOLODARKA32",
        "Volnogorsk",
        "vOLNOGORSK",
    ];
    for password in refused {
        let r = app.register("newuser02", password).await;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{password}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("too common"),
            "{password}: {body}"
        );
        let r = app
            .post_json_bearer(
                "/v1/admin/users",
                &root.access_token,
                &json!({ "username": "newuser02", "password": password }),
            )
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
        let r = change(&app, &t.access_token, PASSWORD, password).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    // Nothing was written: no such user, and the password is unchanged.
    assert_eq!(
        app.login("newuser02", "123456789012345").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.login_ok("lena").await;
    // A strong password passes everywhere.
    let strong = "violet kettle drums at noon";
    assert_eq!(
        app.register("newuser02", strong).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.login("newuser02", strong).await.status(),
        StatusCode::OK
    );
    let r = change(&app, &t.access_token, PASSWORD, strong).await;
    assert_eq!(r.status(), StatusCode::OK);
}
