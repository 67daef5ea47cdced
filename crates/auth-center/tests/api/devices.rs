//! "Your devices": `GET /v1/sessions` and `DELETE /v1/sessions/{sid}`, IDOR attempts
//! included.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::{for_backends, for_every_backend};

for_backends! {
    sqlite_memory: [
        the_device_list_shows_every_session_and_marks_only_the_callers_as_current,
        ending_another_own_session_revokes_its_access_and_refresh_tokens,
        garbage_and_unknown_session_ids_are_not_found_and_change_nothing,
        a_user_agent_in_utf8_is_kept_and_invalid_bytes_are_replaced,
    ],
    sqlite_redis: [
        the_device_list_shows_every_session_and_marks_only_the_callers_as_current,
        ending_another_own_session_revokes_its_access_and_refresh_tokens,
        garbage_and_unknown_session_ids_are_not_found_and_change_nothing,
    ],
}

for_every_backend!(a_user_can_never_see_or_end_another_users_session);

async fn login_with_agent(app: &TestApp, username: &str, agent: &str) -> Tokens {
    let r = app
        .request(Method::POST, "/v1/login")
        .header("user-agent", agent)
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn sessions(body: &Value) -> &Vec<Value> {
    body["sessions"].as_array().expect("a sessions array")
}

fn sids_of(body: &Value) -> Vec<String> {
    let mut sids: Vec<String> = sessions(body)
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_string())
        .collect();
    sids.sort();
    sids
}

async fn the_device_list_shows_every_session_and_marks_only_the_callers_as_current(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.register("dora", PASSWORD).await;
    let laptop = login_with_agent(&app, "dora", "Firefox/140 (laptop)").await;
    let phone = login_with_agent(&app, "dora", "Safari/18 (phone)").await;
    // A spoofed X-Forwarded-For from an untrusted peer is not what the list shows.
    let r = app
        .request(Method::POST, "/v1/login")
        .header("user-agent", "curl/8")
        .header("x-forwarded-for", "6.6.6.6")
        .json(&json!({ "username": "dora", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let tablet: Tokens = r.json().await.unwrap();

    let body = app.get_json_ok("/v1/sessions", &phone.access_token).await;
    let list = sessions(&body);
    assert_eq!(list.len(), 3, "{body}");
    for s in list {
        let sid = s["session_id"].as_str().unwrap();
        assert_eq!(s["current"], sid == phone.session_id, "{s}");
        assert_eq!(s["ip"], "127.0.0.1", "{s}");
        let expected_agent = if sid == laptop.session_id {
            "Firefox/140 (laptop)"
        } else if sid == phone.session_id {
            "Safari/18 (phone)"
        } else {
            assert_eq!(sid, tablet.session_id);
            "curl/8"
        };
        assert_eq!(s["user_agent"], expected_agent);
        for field in [
            "created_at",
            "last_seen_at",
            "expires_at",
            "absolute_expires_at",
        ] {
            assert!(
                s[field].as_str().is_some_and(|t| t.ends_with('Z')),
                "{field} in {s}"
            );
        }
        // Nothing secret in a device entry.
        let text = s.to_string();
        for secret in [
            &laptop.refresh_token,
            &phone.refresh_token,
            &tablet.refresh_token,
        ] {
            for secret_part in secret.split('.').skip(2) {
                assert!(!text.contains(secret_part));
            }
        }
        assert!(s.get("refresh_token").is_none() && s.get("rt").is_none());
    }
    assert_eq!(
        list.iter().filter(|s| s["current"] == true).count(),
        1,
        "exactly one current session"
    );
    // From another device, the other one is current.
    let body = app.get_json_ok("/v1/sessions", &laptop.access_token).await;
    let current: Vec<&Value> = sessions(&body)
        .iter()
        .filter(|s| s["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["session_id"], laptop.session_id.as_str());
    // Listing changes nothing.
    assert_eq!(app.session_count(&phone.user_id()).await, 3);
    // Without a token: 401.
    let r = app
        .client
        .get(app.url("/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn ending_another_own_session_revokes_its_access_and_refresh_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let keep = app.register_and_login("erin").await;
    let lost_phone = app.login_ok("erin").await;
    let uid = keep.user_id();

    let r = app
        .delete_bearer(
            &format!("/v1/sessions/{}", lost_phone.session_id),
            &keep.access_token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    assert_error(
        app.me(&lost_phone.access_token).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    assert_error(
        app.refresh(&lost_phone.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    // The caller's own session is untouched.
    assert_eq!(app.me(&keep.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.session_ids(&uid).await, vec![keep.session_id.clone()]);
    let body = app.get_json_ok("/v1/sessions", &keep.access_token).await;
    assert_eq!(sids_of(&body), vec![keep.session_id.clone()]);
    if backend.sessions != Sessions::Memory {
        assert!(!app.redis_session_exists(&uid, &lost_phone.session_id).await);
        assert_eq!(
            app.redis_index_members(&uid).await,
            vec![keep.session_id.clone()]
        );
    }
    // Ending it again: it is gone.
    let r = app
        .delete_bearer(
            &format!("/v1/sessions/{}", lost_phone.session_id),
            &keep.access_token,
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    // Audited with actor, target and session.
    let ended = app.audit_events("session.ended").await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].actor.as_deref(), Some(uid.as_str()));
    assert_eq!(ended[0].target.as_deref(), Some(uid.as_str()));
    assert_eq!(
        ended[0].sid.as_deref(),
        Some(lost_phone.session_id.as_str())
    );

    // A user may end the current session from the list too: that is a logout.
    let r = app
        .delete_bearer(
            &format!("/v1/sessions/{}", keep.session_id),
            &keep.access_token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me(&keep.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.session_count(&uid).await, 0);
}

async fn a_user_can_never_see_or_end_another_users_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register_and_login("alice").await;
    let alice2 = app.login_ok("alice").await;
    let mallory = app.register_and_login("mallory").await;

    // Mallory's list holds Mallory's session only.
    let body = app.get_json_ok("/v1/sessions", &mallory.access_token).await;
    assert_eq!(sids_of(&body), vec![mallory.session_id.clone()]);
    // Alice's holds Alice's two.
    let body = app.get_json_ok("/v1/sessions", &alice.access_token).await;
    let mut expected = vec![alice.session_id.clone(), alice2.session_id.clone()];
    expected.sort();
    assert_eq!(sids_of(&body), expected);

    // Mallory knows Alice's sids (e.g. from a shared screen): still 404, nothing ends.
    for sid in [&alice.session_id, &alice2.session_id] {
        let r = app
            .delete_bearer(&format!("/v1/sessions/{sid}"), &mallory.access_token)
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    // Path tricks with Alice's user id do not reach her key either.
    let alice_id = alice.user_id();
    for path in [
        format!("/v1/sessions/{alice_id}:{}", alice.session_id),
        format!("/v1/sessions/%7B{alice_id}%7D:{}", alice.session_id),
        format!("/v1/sessions/{alice_id}%2F{}", alice.session_id),
    ] {
        let r = app.delete_bearer(&path, &mallory.access_token).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }

    for t in [&alice, &alice2] {
        assert_eq!(app.me(&t.access_token).await.status(), StatusCode::OK);
    }
    assert_eq!(app.session_count(&alice_id).await, 2);
    // Both of Alice's refresh tokens still work (and rotate normally).
    app.refresh_ok(&alice.refresh_token).await;
    app.refresh_ok(&alice2.refresh_token).await;
    assert_eq!(app.session_count(&alice_id).await, 2);
    assert_eq!(app.me(&mallory.access_token).await.status(), StatusCode::OK);
    assert!(app.audit_events("session.ended").await.is_empty());
}

async fn garbage_and_unknown_session_ids_are_not_found_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = app.register_and_login("gary").await;
    let other = app.login_ok("gary").await;
    let long = "a".repeat(65);
    for sid in [
        "nope",
        "00000000000000000000000000000000",
        long.as_str(),
        "%7Bx%7D",
        "a:b",
        "..",
        "%00",
        "a%20b",
        "*",
    ] {
        let r = app
            .delete_bearer(&format!("/v1/sessions/{sid}"), &t.access_token)
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(app.session_count(&t.user_id()).await, 2);
    for s in [&t, &other] {
        assert_eq!(app.me(&s.access_token).await.status(), StatusCode::OK);
    }
    // Without a token nothing can be deleted.
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/sessions/{}", other.session_id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.session_count(&t.user_id()).await, 2);
}

async fn a_user_agent_in_utf8_is_kept_and_invalid_bytes_are_replaced(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("utfy", PASSWORD).await;
    let mut last = None;
    for agent in ["Navigateur café/1.0".as_bytes(), b"Broken \xff agent"] {
        let r = app
            .request(Method::POST, "/v1/login")
            .header(
                "user-agent",
                reqwest::header::HeaderValue::from_bytes(agent).unwrap(),
            )
            .json(&json!({ "username": "utfy", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        last = Some(r.json::<Tokens>().await.unwrap());
    }
    let body = app
        .get_json_ok("/v1/sessions", &last.unwrap().access_token)
        .await;
    let mut agents: Vec<String> = sessions(&body)
        .iter()
        .map(|s| s["user_agent"].as_str().unwrap().to_string())
        .collect();
    agents.sort();
    assert_eq!(agents, ["Broken \u{fffd} agent", "Navigateur café/1.0"]);
}
