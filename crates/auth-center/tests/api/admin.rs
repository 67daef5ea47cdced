//! The admin API: role checks, users, roles, disabling, a user's sessions, force logout,
//! the audit log (with actor and target, and never a secret).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        every_admin_route_refuses_a_non_admin_with_forbidden_and_changes_nothing,
        an_admin_lists_gets_and_creates_users,
        unknown_or_malformed_user_and_session_ids_are_not_found,
        the_audit_log_names_the_actor_and_target_of_every_admin_action,
        no_password_hash_or_token_ever_appears_in_the_audit_log,
        setting_roles_ends_the_users_sessions_at_once_and_a_new_login_carries_them,
        disabling_a_user_ends_every_session_and_login_fails_like_a_wrong_password,
        an_admin_lists_a_users_sessions_and_force_logs_out_one_or_all,
        a_user_gets_at_most_as_many_roles_as_fit_in_a_token_every_verifier_accepts,
    ],
    sqlite_redis: [
        setting_roles_ends_the_users_sessions_at_once_and_a_new_login_carries_them,
        disabling_a_user_ends_every_session_and_login_fails_like_a_wrong_password,
        an_admin_lists_a_users_sessions_and_force_logs_out_one_or_all,
    ],
}

fn user_path(id: &str, rest: &str) -> String {
    format!("/v1/admin/users/{id}{rest}")
}

async fn json_body(r: reqwest::Response, status: StatusCode) -> Value {
    let got = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn every_admin_route_refuses_a_non_admin_with_forbidden_and_changes_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let eve = app.register_and_login("eve").await;
    // Even a role that merely looks privileged is not admin.
    let intro_id = app
        .create_user_with_roles("intro", &["introspect", "administrator"])
        .await;
    let intro = app.login_ok("intro").await;
    let bob = app.register_and_login("bob").await;
    let bob_id = bob.user_id();
    let kid_before = app.auth.keys().jwks();
    let users_before = app.auth.keys().jwks().keys.len();
    let audit_before = app.all_audit_events().await.len();

    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/admin/users".into(), None),
        (
            Method::POST,
            "/v1/admin/users".into(),
            Some(
                json!({"username": "sneaky", "password": "a fine long password", "roles": ["admin"]}),
            ),
        ),
        (Method::GET, user_path(&bob_id, ""), None),
        (
            Method::PUT,
            user_path(&bob_id, "/roles"),
            Some(json!({"roles": ["admin"]})),
        ),
        (
            Method::PUT,
            user_path(&eve.user_id(), "/roles"),
            Some(json!({"roles": ["admin"]})),
        ),
        (Method::POST, user_path(&bob_id, "/disable"), None),
        (Method::POST, user_path(&bob_id, "/enable"), None),
        (Method::GET, user_path(&bob_id, "/sessions"), None),
        (Method::DELETE, user_path(&bob_id, "/sessions"), None),
        (
            Method::DELETE,
            user_path(&bob_id, &format!("/sessions/{}", bob.session_id)),
            None,
        ),
        (Method::GET, "/v1/admin/audit".into(), None),
        (Method::GET, "/v1/admin/audit?limit=5".into(), None),
        (Method::POST, "/v1/admin/keys/rotate".into(), None),
    ];
    for caller in [&eve, &intro] {
        for (method, path, body) in &routes {
            let mut req = app
                .request(method.clone(), path)
                .bearer_auth(&caller.access_token);
            if let Some(body) = body {
                req = req.json(body);
            }
            let r = req.send().await.unwrap();
            let (status, code) = error_code(r).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{method} {path}"
            );
        }
    }
    // Anonymous callers get 401.
    for (method, path, body) in &routes {
        let mut req = app.request(method.clone(), path);
        if let Some(body) = body {
            req = req.json(body);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }

    // Nothing changed: no user created, roles, sessions, keys and audit log as before.
    assert!(app.login("sneaky", "a fine long password").await.status() == StatusCode::UNAUTHORIZED);
    let bob_view = app.get_json_ok("/v1/me", &bob.access_token).await;
    assert_eq!(bob_view["roles"], json!([]));
    let eve_view = app.get_json_ok("/v1/me", &eve.access_token).await;
    assert_eq!(eve_view["roles"], json!([]));
    let intro_user = app.auth.sessions_of(&intro_id).await.unwrap();
    assert_eq!(intro_user.len(), 1);
    assert_eq!(app.session_count(&bob_id).await, 1);
    assert_eq!(app.auth.keys().jwks(), kid_before);
    assert_eq!(app.auth.keys().jwks().keys.len(), users_before);
    let after = app.all_audit_events().await;
    // The failed "sneaky" login above is the only new event.
    assert_eq!(after.len(), audit_before + 1);
    assert!(after.iter().all(|e| !e.event.starts_with("admin.")));
}

async fn an_admin_lists_gets_and_creates_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    app.register("carol", PASSWORD).await;

    let r = app
        .post_json_bearer(
            "/v1/admin/users",
            &root.access_token,
            &json!({"username": "Dave", "password": "dave's long password", "roles": ["ops", "introspect"]}),
        )
        .await;
    let dave = json_body(r, StatusCode::CREATED).await;
    assert_eq!(dave["username"], "dave");
    assert_eq!(dave["disabled"], false);
    let mut roles: Vec<String> = serde_json::from_value(dave["roles"].clone()).unwrap();
    roles.sort();
    assert_eq!(roles, vec!["introspect", "ops"]);
    assert!(dave.get("password").is_none() && dave.get("password_hash").is_none());
    let dave_id = dave["id"].as_str().unwrap();

    let list = app.get_json_ok("/v1/admin/users", &root.access_token).await;
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["carol", "dave", "root"]);
    assert!(!list.to_string().contains("argon2"));
    let page = app
        .get_json_ok("/v1/admin/users?limit=1&offset=1", &root.access_token)
        .await;
    assert_eq!(page["users"][0]["username"], "dave");
    assert_eq!(page["users"].as_array().unwrap().len(), 1);
    for bad in ["limit=0", "limit=501", "offset=-1", "limit=x"] {
        let r = app
            .get_bearer(&format!("/v1/admin/users?{bad}"), &root.access_token)
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }

    let one = app
        .get_json_ok(&user_path(dave_id, ""), &root.access_token)
        .await;
    assert_eq!(one, dave);

    // The new user logs in with the roles.
    let t = app.login("dave", "dave's long password").await;
    let t: Tokens = t.json().await.unwrap();
    let mut claimed: Vec<String> = serde_json::from_value(t.claims()["roles"].clone()).unwrap();
    claimed.sort();
    assert_eq!(claimed, vec!["introspect", "ops"]);

    // Bad creations are refused and create nothing.
    for (body, status, code) in [
        (
            json!({"username": "dave", "password": "another long password"}),
            StatusCode::CONFLICT,
            "username_taken",
        ),
        (
            json!({"username": "frank", "password": "password123"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"username": "frank", "password": "short"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"username": "frank", "password": "a fine long password", "roles": ["a,b"]}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"username": "frank", "password": "a fine long password", "roles": ["x y"]}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"username": "frank", "password": "a fine long password", "admin": true}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        let r = app
            .post_json_bearer("/v1/admin/users", &root.access_token, &body)
            .await;
        assert_error(r, status, code).await;
    }
    let list = app.get_json_ok("/v1/admin/users", &root.access_token).await;
    assert_eq!(list["users"].as_array().unwrap().len(), 3);
    let created = app.audit_events("admin.user_created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor.as_deref(), Some(root.user_id().as_str()));
    assert_eq!(created[0].target.as_deref(), Some(dave_id));
}

async fn setting_roles_ends_the_users_sessions_at_once_and_a_new_login_carries_them(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let id = app
        .create_user_with_roles("olga", &["editor", "viewer"])
        .await;
    let a = app.login_ok("olga").await;
    let b = app.login_ok("olga").await;
    let bystander = app.register_and_login("pete").await;

    let r = app
        .put_json_bearer(
            &user_path(&id, "/roles"),
            &root.access_token,
            &json!({"roles": ["viewer", "viewer", "auditor"]}),
        )
        .await;
    let view = json_body(r, StatusCode::OK).await;
    assert_eq!(view["roles"], json!(["auditor", "viewer"]));

    // At once: the old tokens carry the old roles and no longer work anywhere.
    for t in [&a, &b] {
        assert_error(
            app.me(&t.access_token).await,
            StatusCode::UNAUTHORIZED,
            "session_revoked",
        )
        .await;
        assert_error(
            app.refresh(&t.refresh_token).await,
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
        )
        .await;
        if backend.sessions != Sessions::Memory {
            assert!(!app.redis_session_exists(&id, &t.session_id).await);
        }
    }
    assert_eq!(app.session_count(&id).await, 0);
    if backend.sessions != Sessions::Memory {
        assert_eq!(app.redis_index_len(&id).await, 0);
    }
    assert_eq!(
        app.me(&bystander.access_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.me(&root.access_token).await.status(), StatusCode::OK);

    let fresh = app.login_ok("olga").await;
    assert_eq!(fresh.claims()["roles"], json!(["auditor", "viewer"]));
    let me = app.get_json_ok("/v1/me", &fresh.access_token).await;
    assert_eq!(me["roles"], json!(["auditor", "viewer"]));
    // A refresh keeps the new roles.
    let refreshed = app.refresh_ok(&fresh.refresh_token).await;
    assert_eq!(refreshed.claims()["roles"], json!(["auditor", "viewer"]));

    // Removing every role works too; invalid role names are refused and change nothing.
    let r = app
        .put_json_bearer(
            &user_path(&id, "/roles"),
            &root.access_token,
            &json!({"roles": ["bad role"]}),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(
        app.me(&refreshed.access_token).await.status(),
        StatusCode::OK
    );
    let r = app
        .put_json_bearer(
            &user_path(&id, "/roles"),
            &root.access_token,
            &json!({"roles": []}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.me(&refreshed.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let fresh = app.login_ok("olga").await;
    assert_eq!(fresh.claims()["roles"], json!([]));

    let events = app.audit_events("admin.roles_set").await;
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.actor.as_deref(), Some(root.user_id().as_str()));
        assert_eq!(e.target.as_deref(), Some(id.as_str()));
    }
}

async fn disabling_a_user_ends_every_session_and_login_fails_like_a_wrong_password(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let a = app.register_and_login("quinn").await;
    let b = app.login_ok("quinn").await;
    let id = a.user_id();

    let r = app
        .request(Method::POST, &user_path(&id, "/disable"))
        .bearer_auth(&root.access_token)
        .send()
        .await
        .unwrap();
    let view = json_body(r, StatusCode::OK).await;
    assert_eq!(view["disabled"], true);

    for t in [&a, &b] {
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
    assert_eq!(app.session_count(&id).await, 0);
    if backend.sessions != Sessions::Memory {
        assert_eq!(app.redis_index_len(&id).await, 0);
        assert!(!app.redis_session_exists(&id, &a.session_id).await);
    }
    let got = app
        .get_json_ok(&user_path(&id, ""), &root.access_token)
        .await;
    assert_eq!(got["disabled"], true);

    // The right password of a disabled user fails exactly like a wrong password.
    let disabled = app.login("quinn", PASSWORD).await;
    let wrong = app.login("quinn", "not the password at all").await;
    assert_eq!(disabled.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (disabled_body, wrong_body) = (
        disabled.bytes().await.unwrap(),
        wrong.bytes().await.unwrap(),
    );
    assert_eq!(disabled_body, wrong_body);
    let body: Value = serde_json::from_slice(&disabled_body).unwrap();
    assert_eq!(body["error"], "invalid_credentials");
    assert_eq!(app.session_count(&id).await, 0);

    // Disabling twice is harmless.
    let r = app
        .request(Method::POST, &user_path(&id, "/disable"))
        .bearer_auth(&root.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = app
        .request(Method::POST, &user_path(&id, "/enable"))
        .bearer_auth(&root.access_token)
        .send()
        .await
        .unwrap();
    let view = json_body(r, StatusCode::OK).await;
    assert_eq!(view["disabled"], false);
    let back = app.login_ok("quinn").await;
    assert_eq!(app.me(&back.access_token).await.status(), StatusCode::OK);
    // Re-enabling does not resurrect the old sessions.
    for t in [&a, &b] {
        assert_eq!(
            app.me(&t.access_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&t.refresh_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.session_ids(&id).await, vec![back.session_id.clone()]);

    let disabled = app.audit_events("admin.user_disabled").await;
    assert_eq!(disabled.len(), 2);
    assert_eq!(disabled[1].actor.as_deref(), Some(root.user_id().as_str()));
    assert_eq!(disabled[1].target.as_deref(), Some(id.as_str()));
    let enabled = app.audit_events("admin.user_enabled").await;
    assert_eq!(enabled.len(), 1);
    assert_eq!(enabled[0].target.as_deref(), Some(id.as_str()));
    // The failed login of the disabled user is audited as such (detail, no secret).
    assert!(
        app.audit_events("login.failure")
            .await
            .iter()
            .any(|e| e.detail.as_deref() == Some("disabled user"))
    );
}

async fn an_admin_lists_a_users_sessions_and_force_logs_out_one_or_all(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let a = app.register_and_login("rita").await;
    let b = app.login_ok("rita").await;
    let c = app.login_ok("rita").await;
    let other = app.register_and_login("sam").await;
    let id = a.user_id();

    let body = app
        .get_json_ok(&user_path(&id, "/sessions"), &root.access_token)
        .await;
    let mut listed: Vec<String> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["current"], false, "no session is the admin's own");
            assert_eq!(s["ip"], "127.0.0.1");
            s["session_id"].as_str().unwrap().to_string()
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        a.session_id.clone(),
        b.session_id.clone(),
        c.session_id.clone(),
    ];
    expected.sort();
    assert_eq!(listed, expected);

    // One session.
    let r = app
        .delete_bearer(
            &user_path(&id, &format!("/sessions/{}", b.session_id)),
            &root.access_token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me(&b.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&b.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&a.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&c.access_token).await.status(), StatusCode::OK);
    // The same sid again, or another user's sid under this user: 404, nothing changes.
    for sid in [&b.session_id, &other.session_id] {
        let r = app
            .delete_bearer(
                &user_path(&id, &format!("/sessions/{sid}")),
                &root.access_token,
            )
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(app.me(&other.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.session_count(&id).await, 2);

    // All sessions.
    let r = app
        .delete_bearer(&user_path(&id, "/sessions"), &root.access_token)
        .await;
    let body = json_body(r, StatusCode::OK).await;
    assert_eq!(body["sessions_ended"], 2);
    for t in [&a, &c] {
        assert_eq!(
            app.me(&t.access_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&t.refresh_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.session_count(&id).await, 0);
    if backend.sessions != Sessions::Memory {
        assert_eq!(app.redis_index_len(&id).await, 0);
    }
    let body = app
        .get_json_ok(&user_path(&id, "/sessions"), &root.access_token)
        .await;
    assert_eq!(body["sessions"], json!([]));
    // The user can still log in (force logout is not a ban); others are untouched.
    app.login_ok("rita").await;
    assert_eq!(app.me(&other.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&root.access_token).await.status(), StatusCode::OK);

    let events = app.audit_events("admin.force_logout").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].sid.as_deref(), Some(b.session_id.as_str()));
    assert_eq!(events[0].sid, None);
    for e in &events {
        assert_eq!(e.actor.as_deref(), Some(root.user_id().as_str()));
        assert_eq!(e.target.as_deref(), Some(id.as_str()));
    }
}

async fn unknown_or_malformed_user_and_session_ids_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let victim = app.register_and_login("tess").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "garbage", "1%20OR%201=1", "%7Bx%7D"] {
        for (method, rest, body) in [
            (Method::GET, "", None),
            (Method::PUT, "/roles", Some(json!({"roles": ["x"]}))),
            (Method::POST, "/disable", None),
            (Method::POST, "/enable", None),
            (Method::GET, "/sessions", None),
            (Method::DELETE, "/sessions", None),
            (Method::DELETE, "/sessions/abc", None),
        ] {
            let mut req = app
                .request(method.clone(), &user_path(id, rest))
                .bearer_auth(&root.access_token);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let (status, code) = error_code(req.send().await.unwrap()).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::NOT_FOUND, "not_found"),
                "{method} {id}{rest}"
            );
        }
    }
    // A garbage sid of a real user.
    for sid in ["abc", "x%3Ay", "%7Bx%7D"] {
        let r = app
            .delete_bearer(
                &user_path(&victim.user_id(), &format!("/sessions/{sid}")),
                &root.access_token,
            )
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(app.me(&victim.access_token).await.status(), StatusCode::OK);
    assert!(
        app.all_audit_events()
            .await
            .iter()
            .all(|e| !e.event.starts_with("admin."))
    );
}

async fn the_audit_log_names_the_actor_and_target_of_every_admin_action(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let admin_id = root.user_id();
    let r = app
        .post_json_bearer(
            "/v1/admin/users",
            &root.access_token,
            &json!({"username": "uma", "password": "uma's long password"}),
        )
        .await;
    let uma = json_body(r, StatusCode::CREATED).await;
    let uma_id = uma["id"].as_str().unwrap().to_string();
    let t = app.login("uma", "uma's long password").await;
    let t: Tokens = t.json().await.unwrap();
    let token = &root.access_token;
    app.put_json_bearer(
        &user_path(&uma_id, "/roles"),
        token,
        &json!({"roles": ["ops"]}),
    )
    .await;
    let t2: Tokens = app
        .login("uma", "uma's long password")
        .await
        .json()
        .await
        .unwrap();
    app.delete_bearer(
        &user_path(&uma_id, &format!("/sessions/{}", t2.session_id)),
        token,
    )
    .await;
    app.delete_bearer(&user_path(&uma_id, "/sessions"), token)
        .await;
    app.request(Method::POST, &user_path(&uma_id, "/disable"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    app.request(Method::POST, &user_path(&uma_id, "/enable"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let r = app
        .request(Method::POST, "/v1/admin/keys/rotate")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let kid = json_body(r, StatusCode::OK).await["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(t.header()["kid"], kid.as_str());

    let log = app.get_json_ok("/v1/admin/audit?limit=100", token).await;
    let events = log["events"].as_array().unwrap();
    let find =
        |name: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == name).collect() };
    for (name, target) in [
        ("admin.user_created", Some(uma_id.as_str())),
        ("admin.roles_set", Some(uma_id.as_str())),
        ("admin.force_logout", Some(uma_id.as_str())),
        ("admin.user_disabled", Some(uma_id.as_str())),
        ("admin.user_enabled", Some(uma_id.as_str())),
        ("admin.key_rotated", None),
    ] {
        let found = find(name);
        assert!(!found.is_empty(), "{name} missing from {log}");
        for e in found {
            assert_eq!(e["actor"], admin_id.as_str(), "{e}");
            match target {
                Some(t) => assert_eq!(e["target"], t, "{e}"),
                None => assert!(e["target"].is_null()),
            }
            assert_eq!(e["ip"], "127.0.0.1");
            assert!(e["at"].as_str().is_some_and(|a| a.ends_with('Z')));
        }
    }
    assert_eq!(find("admin.force_logout").len(), 2);
    assert_eq!(find("admin.key_rotated")[0]["detail"], kid.as_str());
    // Login successes and failures are there too, newest first.
    assert!(!find("login.success").is_empty());
    let ats: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = ats.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ats, sorted, "newest first");
    // The limit is honoured and checked.
    let two = app.get_json_ok("/v1/admin/audit?limit=2", token).await;
    assert_eq!(two["events"].as_array().unwrap().len(), 2);
    for bad in ["limit=0", "limit=-1", "limit=100000", "limit=abc", "foo=1"] {
        let r = app
            .get_bearer(&format!("/v1/admin/audit?{bad}"), token)
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

async fn no_password_hash_or_token_ever_appears_in_the_audit_log(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let first_password = "first secret passphrase 1";
    let wrong_password = "wrong secret passphrase 2";
    let new_password = "second secret passphrase 3";
    let created_password = "created secret passphrase 4";
    let mut secrets: Vec<String> = vec![
        first_password.into(),
        wrong_password.into(),
        new_password.into(),
        created_password.into(),
        PASSWORD.into(),
        root.access_token.clone(),
        root.refresh_token.clone(),
    ];
    assert_eq!(
        app.register("vera", first_password).await.status(),
        StatusCode::CREATED
    );
    app.login("vera", wrong_password).await;
    app.login("nobody", wrong_password).await;
    let t: Tokens = app
        .login("vera", first_password)
        .await
        .json()
        .await
        .unwrap();
    let other: Tokens = app
        .login("vera", first_password)
        .await
        .json()
        .await
        .unwrap();
    let r1 = app.refresh_ok(&t.refresh_token).await;
    // Reuse after the grace window: theft detection writes an audit event.
    let r2 = app.refresh_ok(&r1.refresh_token).await;
    app.clock.advance(std::time::Duration::from_secs(11));
    let reuse = app.refresh(&t.refresh_token).await;
    assert_eq!(reuse.status(), StatusCode::UNAUTHORIZED);
    let t: Tokens = app
        .login("vera", first_password)
        .await
        .json()
        .await
        .unwrap();
    for tok in [&other, &r1, &r2, &t] {
        secrets.push(tok.access_token.clone());
        secrets.push(tok.refresh_token.clone());
    }
    // A wrong and a right password change.
    let r = app
        .post_json_bearer(
            "/v1/password",
            &t.access_token,
            &json!({"current_password": wrong_password, "new_password": new_password}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .post_json_bearer(
            "/v1/password",
            &t.access_token,
            &json!({"current_password": first_password, "new_password": new_password}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.post_json_bearer(
        "/v1/admin/users",
        &root.access_token,
        &json!({"username": "walt", "password": created_password, "roles": ["introspect"]}),
    )
    .await;
    let intro = app
        .post_json_bearer(
            "/v1/introspect",
            &root.access_token,
            &json!({"token": t.access_token}),
        )
        .await;
    assert_eq!(intro.status(), StatusCode::OK);
    app.post_bearer("/v1/logout-all", &t.access_token).await;
    let root2 = app.login_ok("root").await;
    app.post_bearer("/v1/logout", &root2.access_token).await;
    secrets.push(root2.access_token.clone());
    secrets.push(root2.refresh_token.clone());

    // Every secret part of every token, too (the JWT signature, the refresh secret).
    let mut needles: Vec<String> = Vec::new();
    for s in &secrets {
        needles.push(s.clone());
        // The JWT signature; the refresh secret and its MAC.
        for part in s.split('.').skip(2) {
            if part.len() >= 20 {
                needles.push(part.to_string());
            }
        }
    }
    let rows = app.all_audit_events().await;
    assert!(rows.len() >= 10, "{rows:?}");
    let http_log = app
        .get_json_ok("/v1/admin/audit?limit=500", &root.access_token)
        .await
        .to_string();
    let mut texts: Vec<String> = rows.iter().map(|e| format!("{e:?}")).collect();
    texts.push(http_log);
    for text in &texts {
        for needle in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "a secret in the audit log: {text}"
            );
        }
        for marker in ["$argon2", "argon2id", "passphrase"] {
            assert!(!text.contains(marker), "{marker} in the audit log: {text}");
        }
    }
    for event in [
        "login.success",
        "login.failure",
        "refresh.reuse_detected",
        "password.change_failed",
        "password.changed",
        "logout",
        "logout_all",
        "admin.user_created",
    ] {
        assert!(
            rows.iter().any(|e| e.event == event),
            "{event} was not audited: {rows:?}"
        );
    }
}

async fn a_user_gets_at_most_as_many_roles_as_fit_in_a_token_every_verifier_accepts(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let admin = app.admin_login("root").await;
    let id = app
        .register("wally", PASSWORD)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let role = |i: usize| format!("{i:0>64}");
    let too_many: Vec<String> = (0..33).map(role).collect();
    let path = format!("/v1/admin/users/{id}/roles");
    let r = app
        .put_json_bearer(&path, &admin.access_token, &json!({ "roles": too_many }))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let created = app
        .post_json_bearer(
            "/v1/admin/users",
            &admin.access_token,
            &json!({"username": "xavier", "password": PASSWORD, "roles": too_many}),
        )
        .await;
    assert_error(created, StatusCode::BAD_REQUEST, "invalid_request").await;

    // The most roles, each of the longest name, still make a token that verifies.
    let most: Vec<String> = (0..32).map(role).collect();
    let r = app
        .put_json_bearer(&path, &admin.access_token, &json!({ "roles": most }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens = app.login_ok("wally").await;
    assert!(tokens.access_token.len() <= verifier::contract::MAX_TOKEN_BYTES);
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.post_bearer("/v1/logout", &tokens.access_token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}
