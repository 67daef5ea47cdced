//! Refresh tokens bound to the device (DPoP, RFC 9449): a login with a proof binds its
//! session to the proof's key, every refresh of it needs a proof from that key, a genuine
//! token with another key's proof is theft; optionally the access tokens are bound too. The
//! same holds at the OAuth token endpoint (`/oauth2/token`): its refresh grant, and the
//! client-credentials grant with a proof. Proofs come from `test_support::DpopKey`; time from
//! the app's `ManualClock`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;
use crate::{for_backends, for_every_backend};

for_every_backend!(
    a_login_with_a_proof_binds_the_session_and_a_refresh_without_one_changes_nothing,
    a_genuine_bound_token_with_another_keys_proof_is_theft_and_ends_the_session,
    a_grace_replay_with_the_right_key_gets_the_same_successor,
    an_unbound_session_behaves_as_before_whatever_proofs_come,
    a_bound_session_at_the_rotation_cap_is_judged_by_its_key_first,
    a_bound_session_refreshed_from_another_network_under_revoke,
    a_bound_session_under_an_audit_policy_stays_bound,
    a_bound_session_refreshes_at_the_token_endpoint_only_with_its_keys_proof,
    a_client_credentials_token_with_a_proof_is_bound_like_a_login,
);

for_backends! {
    sqlite_memory: [
        invalid_proofs_at_refresh_are_refused_and_change_nothing,
        a_forged_token_with_another_keys_proof_changes_nothing,
        a_login_with_an_invalid_proof_is_refused_before_any_password_work,
        bound_access_tokens_need_the_dpop_scheme_everywhere_at_the_auth_center,
        a_theft_in_cookie_mode_clears_the_cookie,
        invalid_proofs_at_the_token_endpoint_are_invalid_dpop_proof_before_the_client_is_checked,
    ],
    sqlite_redis: [
        invalid_proofs_at_refresh_are_refused_and_change_nothing,
        bound_access_tokens_need_the_dpop_scheme_everywhere_at_the_auth_center,
    ],
}

/// The error body's code and message of a refused request.
async fn refusal(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON error body");
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
        body["message"].as_str().unwrap_or_default().to_string(),
    )
}

async fn assert_invalid_dpop_proof(response: reqwest::Response, why: &str) {
    let (status, code, message) = refusal(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
        "{why}: {message}"
    );
}

/// Asserts that `response` refused a genuine token of the session of `tokens` that came with
/// another key's proof, as theft: `400 invalid_dpop_proof` saying the session was revoked, and
/// the session gone from the store (and, on Redis, its key and its index entry).
async fn assert_theft_ended(app: &TestApp, response: reqwest::Response, tokens: &Tokens) {
    let (status, code, message) = refusal(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    assert!(message.contains("revoked"), "{message}");
    let (uid, sid) = (tokens.user_id(), &tokens.session_id);
    assert!(
        !app.session_ids(&uid).await.contains(sid),
        "the session is gone"
    );
    if app.redis.is_some() {
        assert!(!app.redis_session_exists(&uid, sid).await);
        assert!(!app.redis_index_members(&uid).await.contains(sid));
    }
}

async fn a_login_with_a_proof_binds_the_session_and_a_refresh_without_one_changes_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let key = DpopKey::es256();
    let first = app.register_and_login_bound("alice", &key).await;
    let uid = first.user_id();
    assert_eq!(
        app.session_binding(&uid, &first.session_id).await,
        Some(key.thumbprint()),
        "the session record holds the key's thumbprint"
    );
    // Only the refresh token is bound by default: the access token stays a bearer token.
    assert_eq!(first.token_type, "Bearer");
    assert_eq!(first.claims()["cnf"], Value::Null);
    assert_eq!(app.me(&first.access_token).await.status(), StatusCode::OK);

    // No proof: refused, and the session is untouched (the same token still rotates, once).
    let (status, code, message) = refusal(app.refresh(&first.refresh_token).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    assert!(message.contains("required"), "{message}");
    let sessions = app.auth.sessions_of(&uid).await.unwrap();
    assert_eq!((sessions.len(), sessions[0].generation), (1, 0));
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());

    // With a proof from the key: rotated, still bound.
    let second = app.refresh_bound_ok(&first.refresh_token, &key).await;
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(second.token_type, "Bearer");
    let third = app.refresh_bound_ok(&second.refresh_token, &key).await;
    assert_eq!(
        app.session_binding(&uid, &third.session_id).await,
        Some(key.thumbprint())
    );
    let sessions = app.auth.sessions_of(&uid).await.unwrap();
    assert_eq!(sessions[0].generation, 2);
    assert_eq!(app.me(&third.access_token).await.status(), StatusCode::OK);
}

async fn a_genuine_bound_token_with_another_keys_proof_is_theft_and_ends_the_session(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let key = DpopKey::ed25519();
    let first = app.register_and_login_bound("bob", &key).await;
    let second = app.refresh_bound_ok(&first.refresh_token, &key).await;
    let uid = first.user_id();

    // The thief has the current refresh token and a key of its own, and a valid proof.
    let thief = DpopKey::es256();
    let response = app
        .refresh_with_proof(&second.refresh_token, &app.proof(&thief, "/v1/refresh"))
        .await;
    assert_theft_ended(&app, response, &second).await;
    assert_eq!(app.session_count(&uid).await, 0);
    let events = app.audit_events("refresh.dpop_key_mismatch").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].sid.as_deref(), Some(first.session_id.as_str()));
    assert_eq!(events[0].target.as_deref(), Some(uid.as_str()));

    // The owner's key no longer helps: the session and its access tokens are over.
    let response = app
        .refresh_with_proof(&second.refresh_token, &app.proof(&key, "/v1/refresh"))
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_error(
        app.me(&second.access_token).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;

    // An older genuine token with another key's proof is theft too.
    let key = DpopKey::es256();
    let t0 = app.login_bound("bob", &key).await;
    let t1 = app.refresh_bound_ok(&t0.refresh_token, &key).await;
    let response = app
        .refresh_with_proof(&t0.refresh_token, &app.proof(&thief, "/v1/refresh"))
        .await;
    assert_invalid_dpop_proof(response, "old token, other key").await;
    assert_eq!(app.session_count(&uid).await, 0);
    let response = app
        .refresh_with_proof(&t1.refresh_token, &app.proof(&key, "/v1/refresh"))
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

async fn a_grace_replay_with_the_right_key_gets_the_same_successor(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = DpopKey::es256();
    let first = app.register_and_login_bound("carol", &key).await;
    let a = app.refresh_bound_ok(&first.refresh_token, &key).await;
    app.clock.advance(Duration::from_secs(5));
    // The same token again (a lost response), with a fresh proof from the same key.
    let b = app.refresh_bound_ok(&first.refresh_token, &key).await;
    assert_eq!(a.refresh_token, b.refresh_token, "same successor, no fork");
    // Without a proof the replay is refused and changes nothing.
    assert_invalid_dpop_proof(app.refresh(&first.refresh_token).await, "no proof").await;
    let c = app.refresh_bound_ok(&b.refresh_token, &key).await;
    assert_eq!(app.me(&c.access_token).await.status(), StatusCode::OK);
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());
    assert!(
        app.audit_events("refresh.dpop_key_mismatch")
            .await
            .is_empty()
    );
    let sessions = app.auth.sessions_of(&first.user_id()).await.unwrap();
    assert_eq!(sessions[0].generation, 2);
}

async fn an_unbound_session_behaves_as_before_whatever_proofs_come(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("dave").await;
    let uid = first.user_id();
    assert_eq!(first.token_type, "Bearer");
    assert_eq!(app.session_binding(&uid, &first.session_id).await, None);
    let second = app.refresh_ok(&first.refresh_token).await;
    // A valid proof at refresh does not bind a session that was not bound at login.
    let key = DpopKey::es256();
    let third = app.refresh_bound_ok(&second.refresh_token, &key).await;
    assert_eq!(third.token_type, "Bearer");
    assert_eq!(app.session_binding(&uid, &third.session_id).await, None);
    let other = DpopKey::ed25519();
    let fourth = app.refresh_bound_ok(&third.refresh_token, &other).await;
    let fifth = app.refresh_ok(&fourth.refresh_token).await;
    // A proof that is there must be valid, bound or not: refused, nothing changed.
    let stale = key.proof("POST", &app.htu("/v1/refresh"), app.now_secs() - 3600);
    assert_invalid_dpop_proof(
        app.refresh_with_proof(&fifth.refresh_token, &stale).await,
        "stale proof on an unbound session",
    )
    .await;
    let sixth = app.refresh_ok(&fifth.refresh_token).await;
    assert_eq!(app.me(&sixth.access_token).await.status(), StatusCode::OK);
    // Reuse detection is as before.
    app.clock.advance(Duration::from_secs(11));
    assert_error(
        app.refresh(&first.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    assert_eq!(app.session_count(&uid).await, 0);
}

async fn invalid_proofs_at_refresh_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = DpopKey::es256();
    let tokens = app.register_and_login_bound("erin", &key).await;
    let htu = app.htu("/v1/refresh");
    let now = app.now_secs();
    let replayed = app.proof(&key, "/v1/refresh");
    let first = app
        .refresh_with_proof(&tokens.refresh_token, &replayed)
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let current: Tokens = first.json().await.unwrap();
    let mut bad: Vec<(&str, String)> = vec![
        ("replayed", replayed),
        ("stale", key.proof("POST", &htu, now - 120)),
        ("future", key.proof("POST", &htu, now + 120)),
        ("other method", key.proof("GET", &htu, now)),
        ("other URL", key.proof("POST", &app.htu("/v1/login"), now)),
        (
            "other host",
            key.proof("POST", "https://evil.example/v1/refresh", now),
        ),
        ("garbage", "not-a-proof".into()),
    ];
    let mut typ = key.header();
    typ["typ"] = "jwt".into();
    bad.push((
        "typ jwt",
        key.sign(&typ, &DpopKey::claims("POST", &htu, now)),
    ));
    for (why, proof) in bad {
        let response = app.refresh_with_proof(&current.refresh_token, &proof).await;
        assert_invalid_dpop_proof(response, why).await;
    }
    // Two DPoP headers.
    let response = app
        .request(Method::POST, "/v1/refresh")
        .header("dpop", app.proof(&key, "/v1/refresh"))
        .header("dpop", app.proof(&key, "/v1/refresh"))
        .json(&serde_json::json!({ "refresh_token": current.refresh_token }))
        .send()
        .await
        .unwrap();
    assert_invalid_dpop_proof(response, "two headers").await;
    // Nothing changed: the current token still rotates, once.
    let sessions = app.auth.sessions_of(&tokens.user_id()).await.unwrap();
    assert_eq!(sessions[0].generation, 1);
    app.refresh_bound_ok(&current.refresh_token, &key).await;
    assert!(
        app.audit_events("refresh.dpop_key_mismatch")
            .await
            .is_empty()
    );
}

async fn a_forged_token_with_another_keys_proof_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = DpopKey::es256();
    let tokens = app.register_and_login_bound("frank", &key).await;
    // Someone who knows the user id and sid (they are in every access token) but not a
    // genuine token: a made-up secret with a made-up MAC.
    let parts: Vec<&str> = tokens.refresh_token.split('.').collect();
    let forged = format!(
        "{}.{}.{}.{}",
        parts[0],
        parts[1],
        "A".repeat(43),
        "B".repeat(22)
    );
    let thief = DpopKey::es256();
    let response = app
        .refresh_with_proof(&forged, &app.proof(&thief, "/v1/refresh"))
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_eq!(app.session_count(&tokens.user_id()).await, 1);
    app.refresh_bound_ok(&tokens.refresh_token, &key).await;
}

async fn a_login_with_an_invalid_proof_is_refused_before_any_password_work(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.register("grace", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let key = DpopKey::es256();
    for (why, proof) in [
        (
            "for refresh",
            key.proof("POST", &app.htu("/v1/refresh"), app.now_secs()),
        ),
        (
            "stale",
            key.proof("POST", &app.htu("/v1/login"), app.now_secs() - 600),
        ),
        ("garbage", "a.b.c".to_string()),
    ] {
        let response = app.login_with_proof("grace", &proof).await;
        assert_invalid_dpop_proof(response, why).await;
        // A wrong password with an invalid proof: the same answer, so no password oracle.
        let response = app
            .request(Method::POST, "/v1/login")
            .header("dpop", proof.as_str())
            .json(&serde_json::json!({ "username": "grace", "password": "wrong password!" }))
            .send()
            .await
            .unwrap();
        assert_invalid_dpop_proof(response, why).await;
    }
    assert!(app.audit_events("login.success").await.is_empty());
    assert!(app.audit_events("login.failure").await.is_empty());
    // A valid proof logs in.
    let response = app
        .login_with_proof("grace", &app.proof(&key, "/v1/login"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn bound_access_tokens_need_the_dpop_scheme_everywhere_at_the_auth_center(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.dpop.bind_access_tokens = true).await;
    let key = DpopKey::es256();
    let tokens = app.register_and_login_bound("heidi", &key).await;
    assert_eq!(tokens.token_type, "DPoP");
    assert_eq!(tokens.claims()["cnf"]["jkt"], key.thumbprint().as_str());

    // As a bearer token: refused, with a DPoP challenge (RFC 9449 §7.2).
    let response = app.me(&tokens.access_token).await;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        challenge.starts_with(r#"DPoP error="invalid_token""#),
        "{challenge}"
    );
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // With the DPoP scheme and a proof from the key: accepted; from another key: refused.
    let me = app
        .send_dpop(Method::GET, "/v1/me", &tokens.access_token, &key)
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let thief = DpopKey::es256();
    let response = app
        .send_dpop(Method::GET, "/v1/me", &tokens.access_token, &thief)
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // A proof for another route, or none at all.
    let proof = key.proof_for_token(
        "GET",
        &app.htu("/v1/sessions"),
        app.now_secs(),
        &tokens.access_token,
    );
    let response = app
        .request(Method::GET, "/v1/me")
        .header("authorization", format!("DPoP {}", tokens.access_token))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_dpop_proof").await;
    let response = app
        .request(Method::GET, "/v1/me")
        .header("authorization", format!("DPoP {}", tokens.access_token))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_dpop_proof").await;

    // Refresh keeps the binding; the devices list and logout take the DPoP scheme too.
    let next = app.refresh_bound_ok(&tokens.refresh_token, &key).await;
    assert_eq!(next.token_type, "DPoP");
    assert_eq!(next.claims()["cnf"]["jkt"], key.thumbprint().as_str());
    let sessions = app
        .send_dpop(Method::GET, "/v1/sessions", &next.access_token, &key)
        .await;
    assert_eq!(sessions.status(), StatusCode::OK);

    // Introspection reports the binding, so a resource server can check proofs.
    let admin = app.admin_login("ivan").await;
    assert_eq!(
        admin.token_type, "Bearer",
        "a login without a proof is not bound"
    );
    let introspected: Value = app
        .request(Method::POST, "/v1/introspect")
        .bearer_auth(&admin.access_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", next.access_token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["token_type"], "DPoP");
    assert_eq!(introspected["cnf"]["jkt"], key.thumbprint().as_str());
    // An introspecting caller whose own token is bound presents it with the DPoP scheme.
    let admin_key = DpopKey::ed25519();
    let bound_admin = app.login_bound("ivan", &admin_key).await;
    // The proof is made for `proof_path`: the introspection route, or another one.
    let introspect_as_bound_admin = |proof_path: &str| {
        let proof = admin_key.proof_for_token(
            "POST",
            &app.htu(proof_path),
            app.now_secs(),
            &bound_admin.access_token,
        );
        app.request(Method::POST, "/v1/introspect")
            .header(
                "authorization",
                format!("DPoP {}", bound_admin.access_token),
            )
            .header("dpop", proof)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", next.access_token))
            .send()
    };
    let response = introspect_as_bound_admin("/v1/introspect").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["cnf"]["jkt"], key.thumbprint().as_str());
    let response = introspect_as_bound_admin("/v1/me").await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_dpop_proof").await;

    let logout = app
        .send_dpop(Method::POST, "/v1/logout", &next.access_token, &key)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.session_count(&tokens.user_id()).await, 0);
}

async fn a_theft_in_cookie_mode_clears_the_cookie(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.browser.allowed_origins =
            vec![auth_center::config::Origin::parse("https://app.test").unwrap()]
    })
    .await;
    let key = DpopKey::es256();
    assert_eq!(
        app.register("judy", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let cookie_mode = |request: reqwest::RequestBuilder| {
        request
            .header("x-token-transport", "cookie")
            .header("origin", "https://app.test")
    };
    let login = cookie_mode(app.request(Method::POST, "/v1/login"))
        .header("dpop", app.proof(&key, "/v1/login"))
        .json(&serde_json::json!({ "username": "judy", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("__Host-refresh="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let refresh = |proof: Option<String>| {
        let mut request = cookie_mode(app.request(Method::POST, "/v1/refresh"))
            .header("cookie", cookie.as_str())
            .json(&serde_json::json!({}));
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };
    // No proof: refused, the cookie stays (the session is intact).
    let response = refresh(None).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("set-cookie").is_none());
    // Another key: theft; the session ends and the dead cookie is cleared.
    let thief = DpopKey::es256();
    let response = refresh(Some(app.proof(&thief, "/v1/refresh")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let cleared = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        cleared.starts_with("__Host-refresh=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

// ---- with the refresh policy: the key is checked before the policy and the cap ----

/// A login of an existing user from `ip` with a proof of `key`: a bound session.
async fn login_bound_from(app: &TestApp, username: &str, key: &DpopKey, ip: &str) -> Tokens {
    let response = post_from(app, "/v1/login", Some(ip), Some(CURL))
        .header("dpop", app.proof(key, "/v1/login"))
        .json(&serde_json::json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    tokens_ok(response, "login").await
}

/// A refresh from `ip` with user agent `agent`, with a fresh proof of `key` if given.
async fn refresh_from(
    app: &TestApp,
    token: &str,
    ip: &str,
    agent: &str,
    key: Option<&DpopKey>,
) -> reqwest::Response {
    let mut request = post_from(app, "/v1/refresh", Some(ip), Some(agent));
    if let Some(key) = key {
        request = request.header("dpop", app.proof(key, "/v1/refresh"));
    }
    request
        .json(&serde_json::json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap()
}

const CURL: &str = "curl/8.5.0";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0";

/// The session's generation, last-seen IP and binding, straight from the store.
async fn session_state(app: &TestApp, tokens: &Tokens) -> (u64, String, Option<String>) {
    let sessions = app.auth.sessions_of(&tokens.user_id()).await.unwrap();
    let s = sessions
        .iter()
        .find(|s| s.sid == tokens.session_id)
        .unwrap_or_else(|| panic!("no session {}", tokens.session_id));
    (s.generation, s.ip.clone(), s.dpop_jkt.clone())
}

async fn a_bound_session_at_the_rotation_cap_is_judged_by_its_key_first(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.refresh.max_rotations = 2).await;
    let key = DpopKey::es256();
    let t0 = app.register_and_login_bound("kate", &key).await;
    let t1 = app.refresh_bound_ok(&t0.refresh_token, &key).await;
    let t2 = app.refresh_bound_ok(&t1.refresh_token, &key).await;
    let uid = t0.user_id();
    // At the cap. Without a proof the refresh is refused before the cap is looked at: the
    // session is neither rotated nor ended.
    assert_invalid_dpop_proof(app.refresh(&t2.refresh_token).await, "no proof at the cap").await;
    assert_eq!(session_state(&app, &t2).await.0, 2);
    assert!(app.audit_events("refresh.limit_reached").await.is_empty());
    // A grace replay of the last allowed rotation, with the key, still gets its successor.
    app.clock.advance(Duration::from_secs(5));
    let replay = app.refresh_bound_ok(&t1.refresh_token, &key).await;
    assert_eq!(replay.refresh_token, t2.refresh_token, "the same successor");
    // With the key, the cap applies as to any session.
    assert_error(
        app.refresh_with_proof(&t2.refresh_token, &app.proof(&key, "/v1/refresh"))
            .await,
        StatusCode::UNAUTHORIZED,
        "refresh_limit_reached",
    )
    .await;
    assert_eq!(app.session_count(&uid).await, 0);
    assert_eq!(app.audit_events("refresh.limit_reached").await.len(), 1);
    assert!(
        app.audit_events("refresh.dpop_key_mismatch")
            .await
            .is_empty()
    );

    // Another session at the cap, and the genuine current token with another key's proof:
    // theft, reported as such and not as the cap.
    let s0 = app.login_bound("kate", &key).await;
    let s1 = app.refresh_bound_ok(&s0.refresh_token, &key).await;
    let s2 = app.refresh_bound_ok(&s1.refresh_token, &key).await;
    let thief = DpopKey::ed25519();
    let response = app
        .refresh_with_proof(&s2.refresh_token, &app.proof(&thief, "/v1/refresh"))
        .await;
    assert_theft_ended(&app, response, &s2).await;
    assert_eq!(app.session_count(&uid).await, 0);
    assert_eq!(app.audit_events("refresh.dpop_key_mismatch").await.len(), 1);
    assert_eq!(app.audit_events("refresh.limit_reached").await.len(), 1);
}

async fn a_bound_session_refreshed_from_another_network_under_revoke(backend: Backend) {
    use auth_center::domain::refresh_policy::ChangePolicy;
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Revoke
    })
    .await;
    let key = DpopKey::es256();
    assert_eq!(
        app.register("liam", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let home = "198.51.100.7";
    let elsewhere = "203.0.113.9";
    let t0 = login_bound_from(&app, "liam", &key, home).await;
    let uid = t0.user_id();
    // The same network, with the key: rotated, and the record keeps the caller's IP.
    let ok = refresh_from(&app, &t0.refresh_token, "198.51.100.9", CURL, Some(&key)).await;
    let t1 = tokens_ok(ok, "refresh from the same network").await;
    assert_eq!(
        session_state(&app, &t1).await,
        (1, "198.51.100.9".into(), Some(key.thumbprint()))
    );
    // From elsewhere without a proof: refused for the proof, before the policy looks at it.
    // Nothing changes: the session stays, with its last-seen IP, and nothing is audited.
    let response = refresh_from(&app, &t1.refresh_token, elsewhere, CURL, None).await;
    assert_invalid_dpop_proof(response, "no proof from another network").await;
    assert_eq!(
        session_state(&app, &t1).await,
        (1, "198.51.100.9".into(), Some(key.thumbprint()))
    );
    assert!(app.audit_events("refresh.context_revoked").await.is_empty());
    // From elsewhere with another key and the genuine token: theft, whatever the network.
    let other = login_bound_from(&app, "liam", &key, home).await;
    let thief = DpopKey::ed25519();
    let response = refresh_from(&app, &other.refresh_token, elsewhere, CURL, Some(&thief)).await;
    assert_theft_ended(&app, response, &other).await;
    assert_eq!(app.audit_events("refresh.dpop_key_mismatch").await.len(), 1);
    assert!(app.audit_events("refresh.context_revoked").await.is_empty());
    assert_eq!(app.session_ids(&uid).await, vec![t1.session_id.clone()]);
    // From elsewhere with the key: the policy applies as to any session.
    let response = refresh_from(&app, &t1.refresh_token, elsewhere, CURL, Some(&key)).await;
    assert_error(
        response,
        StatusCode::UNAUTHORIZED,
        "refresh_context_changed",
    )
    .await;
    assert_eq!(app.session_count(&uid).await, 0);
    if app.redis.is_some() {
        assert!(!app.redis_session_exists(&uid, &t1.session_id).await);
        assert!(app.redis_index_members(&uid).await.is_empty());
    }
    let events = app.audit_events("refresh.context_revoked").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].sid.as_deref(), Some(t1.session_id.as_str()));
    let detail = events[0].detail.clone().unwrap_or_default();
    assert!(
        detail.contains("198.51.100.9") && detail.contains(elsewhere),
        "{detail}"
    );
    assert_eq!(app.audit_events("refresh.dpop_key_mismatch").await.len(), 1);
}

async fn a_bound_session_under_an_audit_policy_stays_bound(backend: Backend) {
    use auth_center::domain::refresh_policy::ChangePolicy;
    let app = proxied_app(backend, |c| {
        c.refresh.on_user_agent_change = ChangePolicy::Audit;
        c.dpop.bind_access_tokens = true;
    })
    .await;
    let key = DpopKey::es256();
    assert_eq!(
        app.register("mona", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let t0 = login_bound_from(&app, "mona", &key, "198.51.100.7").await;
    assert_eq!(t0.token_type, "DPoP");
    // Another user agent, with the key: let through and audited once; the successor's
    // access token is bound to the same key (the store's answer carries the binding along
    // with the change).
    let response = refresh_from(&app, &t0.refresh_token, "198.51.100.7", FIREFOX, Some(&key)).await;
    let t1 = tokens_ok(response, "refresh with another user agent").await;
    assert_eq!(t1.token_type, "DPoP");
    assert_eq!(t1.claims()["cnf"]["jkt"], key.thumbprint().as_str());
    let events = app.audit_events("refresh.context_changed").await;
    assert_eq!(events.len(), 1);
    let detail = events[0].detail.clone().unwrap_or_default();
    assert!(
        detail.contains(CURL) && detail.contains("allowed"),
        "{detail}"
    );
    // A grace replay from the original user agent is a change too, audited, and the same
    // successor, still bound.
    app.clock.advance(Duration::from_secs(5));
    let response = refresh_from(&app, &t0.refresh_token, "198.51.100.7", CURL, Some(&key)).await;
    let replay = tokens_ok(response, "grace replay").await;
    assert_eq!(replay.refresh_token, t1.refresh_token);
    assert_eq!(replay.claims()["cnf"]["jkt"], key.thumbprint().as_str());
    assert_eq!(app.audit_events("refresh.context_changed").await.len(), 2);
    assert_eq!(
        session_state(&app, &t1).await,
        (1, "198.51.100.7".into(), Some(key.thumbprint()))
    );
    let me = app
        .send_dpop(Method::GET, "/v1/me", &replay.access_token, &key)
        .await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[test]
fn dpop_settings_that_cannot_work_are_refused_at_start_up() {
    let check = |tweak: &dyn Fn(&mut auth_center::Config)| {
        let mut config = auth_center::Config::default();
        tweak(&mut config);
        config.validate().map_err(|e| e.to_string())
    };
    for url in [
        "auth.example.com",
        "ftp://auth.example.com",
        "https://a.example/?x=1",
    ] {
        let refused = check(&|c| c.dpop.public_url = Some(url.into()));
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("dpop")),
            "{url}: {refused:?}"
        );
    }
    // The issuer is the default public URL, so it must be one too.
    assert!(check(&|c| c.issuer = "not a url".into()).is_err());
    assert!(check(&|c| c.dpop.max_age_secs = 0).is_err());
    assert!(check(&|c| c.dpop.max_age_secs = 301).is_err());
    assert!(check(&|c| c.dpop.replay_cache_capacity = 0).is_err());
    assert!(check(&|c| c.dpop.public_url = Some("https://example.com/auth".into())).is_ok());
    assert!(check(&|c| c.dpop.max_age_secs = 300).is_ok());
}

// ---- the OAuth token endpoint ----

const TOKEN: &str = "/oauth2/token";

/// A refresh grant of the first-party client at `/oauth2/token`, with the `DPoP` header
/// `proof` if given.
async fn refresh_grant(
    app: &TestApp,
    refresh_token: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let pairs = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", "first-party"),
    ];
    send_with_proof(app.form_request(TOKEN, &pairs, None), proof).await
}

/// Sends `request` with the `DPoP` header `proof` if given.
async fn send_with_proof(
    request: reqwest::RequestBuilder,
    proof: Option<&str>,
) -> reqwest::Response {
    match proof {
        Some(proof) => request.header("dpop", proof),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

/// A client-credentials grant of `client` with the `DPoP` header `proof` if given.
async fn client_grant(
    app: &TestApp,
    client: &TestClient,
    proof: Option<&str>,
) -> reqwest::Response {
    let request = app.form_request(
        TOKEN,
        &[("grant_type", "client_credentials")],
        Some((&client.id, &client.secret)),
    );
    send_with_proof(request, proof).await
}

/// The session of a bound login, refreshed through the refresh grant: the right key rotates
/// it (`200`), no proof is `400 invalid_dpop_proof` in the RFC 6749 §5.2 shape and leaves it
/// as it was, and a genuine token with another key's proof is theft (RFC 9449 §5): the
/// session ends and the audit log says why, as at `/v1/refresh`.
async fn a_bound_session_refreshes_at_the_token_endpoint_only_with_its_keys_proof(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let key = DpopKey::es256();
    let first = app.register_and_login_bound("kim", &key).await;
    let uid = first.user_id();

    let response = refresh_grant(&app, &first.refresh_token, Some(&app.proof(&key, TOKEN))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Tokens = response.json().await.unwrap();
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(
        second.token_type, "Bearer",
        "only the refresh token is bound"
    );
    assert_eq!(second.claims()["client_id"], "first-party");
    assert_eq!(
        app.session_binding(&uid, &second.session_id).await,
        Some(key.thumbprint())
    );

    // No proof: refused, nothing changes (the same token rotates afterwards).
    let response = refresh_grant(&app, &second.refresh_token, None).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    let sessions = app.auth.sessions_of(&uid).await.unwrap();
    assert_eq!((sessions.len(), sessions[0].generation), (1, 1));
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());

    // A proof of the right key for `/v1/refresh` is not one for the token endpoint.
    let elsewhere = app.proof(&key, "/v1/refresh");
    let response = refresh_grant(&app, &second.refresh_token, Some(&elsewhere)).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    assert_eq!(app.auth.sessions_of(&uid).await.unwrap()[0].generation, 1);

    // And the right key rotates it at either endpoint, the binding kept.
    let response = refresh_grant(&app, &second.refresh_token, Some(&app.proof(&key, TOKEN))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let third: Tokens = response.json().await.unwrap();
    let fourth = app.refresh_bound_ok(&third.refresh_token, &key).await;

    // The thief's own key: theft, the session ends.
    let thief = DpopKey::ed25519();
    let response =
        refresh_grant(&app, &fourth.refresh_token, Some(&app.proof(&thief, TOKEN))).await;
    let headers = assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    assert!(headers.get("www-authenticate").is_none());
    assert_eq!(app.session_count(&uid).await, 0);
    if app.redis.is_some() {
        assert!(!app.redis_session_exists(&uid, &first.session_id).await);
    }
    let events = app.audit_events("refresh.dpop_key_mismatch").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].sid.as_deref(), Some(first.session_id.as_str()));
    assert_eq!(events[0].target.as_deref(), Some(uid.as_str()));
    let response = refresh_grant(&app, &fourth.refresh_token, Some(&app.proof(&key, TOKEN))).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

/// A client-credentials grant with a proof: the session records the key as a login's does;
/// with `dpop.bind_access_tokens` the token is bound (`cnf.jkt`, `token_type` `DPoP`) and is
/// no bearer token any more, introspection reporting the binding; without it the token
/// stays a bearer token.
async fn a_client_credentials_token_with_a_proof_is_bound_like_a_login(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.dpop.bind_access_tokens = true).await;
    let client = app.secret_client("dpop-svc", &["read"], &[], true).await;
    let key = DpopKey::es256();

    let response = client_grant(&app, &client, Some(&app.proof(&key, TOKEN))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(body["scope"], "read");
    let token = body["access_token"].as_str().unwrap();
    let claims = jwt_claims(token);
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint().as_str());
    assert_eq!(claims["client_id"], "dpop-svc");
    let sid = claims["sid"].as_str().unwrap();
    assert_eq!(
        app.session_binding("dpop-svc", sid).await,
        Some(key.thumbprint())
    );
    let issued = app.audit_events("client.token_issued").await;
    assert_eq!(
        issued[0].detail.as_deref(),
        Some("scope [read]; DPoP key bound")
    );
    // Not a bearer token; introspection says what it is bound to.
    assert!(!app.accepts(token).await);
    let response = app
        .post_form(
            "/v1/introspect",
            &[("token", token)],
            Some((&client.id, &client.secret)),
        )
        .await;
    let introspected: Value = response.json().await.unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["token_type"], "DPoP");
    assert_eq!(introspected["cnf"]["jkt"], key.thumbprint().as_str());

    // Without a proof: a bearer token, as before.
    let body = app.client_token(&client, None).await;
    assert_eq!(body["token_type"], "Bearer");
    let plain = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(plain).get("cnf"), None);
    assert!(app.accepts(plain).await);

    // An invalid proof: refused before anything is issued.
    let stale = key.proof("POST", &app.htu(TOKEN), app.now_secs() - 600);
    let response = client_grant(&app, &client, Some(&stale)).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    assert_eq!(app.session_count("dpop-svc").await, 2);

    // Access tokens not bound: the proof is checked and its key recorded on the session, as
    // at `/v1/login`, but the token is a bearer token.
    let unbound_app = spawn_app(backend).await;
    let client = unbound_app
        .secret_client("dpop-svc-2", &["read"], &[], false)
        .await;
    let response = client_grant(&unbound_app, &client, Some(&unbound_app.proof(&key, TOKEN))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(token).get("cnf"), None);
    assert!(unbound_app.accepts(token).await);
    let sid = jwt_claims(token)["sid"].as_str().unwrap().to_string();
    assert_eq!(
        unbound_app.session_binding("dpop-svc-2", &sid).await,
        Some(key.thumbprint())
    );
    let response = client_grant(&unbound_app, &client, Some("a.b.c")).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
}

/// An invalid proof is `400 invalid_dpop_proof` before the client is authenticated: no
/// `invalid_client` oracle and no client-authentication failure counted; two `DPoP` headers
/// are invalid too.
async fn invalid_proofs_at_the_token_endpoint_are_invalid_dpop_proof_before_the_client_is_checked(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let client = app.secret_client("svc", &[], &[], false).await;
    let wrong = TestClient {
        id: client.id.clone(),
        secret: "not the secret".into(),
    };
    let key = DpopKey::es256();
    let now = app.now_secs();
    for (why, proof) in [
        ("for login", key.proof("POST", &app.htu("/v1/login"), now)),
        ("GET", key.proof("GET", &app.htu(TOKEN), now)),
        ("stale", key.proof("POST", &app.htu(TOKEN), now - 600)),
        ("garbage", "a.b.c".to_string()),
    ] {
        for c in [&client, &wrong] {
            let response = client_grant(&app, c, Some(&proof)).await;
            let headers =
                assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
            assert!(headers.get("www-authenticate").is_none(), "{why}");
        }
    }
    assert!(app.audit_events("client.auth_failed").await.is_empty());
    // Two headers, each a good proof.
    let response = app
        .form_request(
            TOKEN,
            &[("grant_type", "client_credentials")],
            Some((&client.id, &client.secret)),
        )
        .header("dpop", app.proof(&key, TOKEN))
        .header("dpop", app.proof(&key, TOKEN))
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    // A proof used once is used up.
    let proof = app.proof(&key, TOKEN);
    assert_eq!(
        client_grant(&app, &client, Some(&proof)).await.status(),
        StatusCode::OK
    );
    let response = client_grant(&app, &client, Some(&proof)).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    assert_eq!(app.session_count("svc").await, 1);
}
