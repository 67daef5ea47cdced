//! Token introspection (RFC 7662 style) for services that cannot embed the verifier.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        introspection_reports_an_active_token_with_its_claims_for_form_and_json_bodies,
        introspection_reports_revoked_expired_and_garbage_tokens_as_inactive,
        introspection_needs_the_introspect_or_admin_role,
        a_malformed_introspection_request_is_a_bad_request,
        introspection_reads_the_media_type_exactly_and_answers_every_refusal_in_the_common_shape,
        a_registered_client_introspects_with_client_authentication,
        client_introspection_refusals_use_the_oauth_shape,
    ],
    sqlite_redis: [
        a_session_deleted_in_redis_introspects_as_inactive,
    ],
}

async fn introspect_json(app: &TestApp, caller: &str, token: &str) -> Response {
    app.post_json_bearer("/v1/introspect", caller, &json!({ "token": token }))
        .await
}

async fn introspect_form(app: &TestApp, caller: &str, token: &str) -> Response {
    let body = serde_urlencoded::to_string([("token", token), ("token_type_hint", "access_token")])
        .unwrap();
    app.request(Method::POST, "/v1/introspect")
        .bearer_auth(caller)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn answer(r: Response) -> Value {
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn inactive(app: &TestApp, caller: &str, token: &str) {
    assert_eq!(
        answer(introspect_json(app, caller, token).await).await,
        json!({ "active": false }),
        "json: {token:.40}"
    );
    assert_eq!(
        answer(introspect_form(app, caller, token).await).await,
        json!({ "active": false }),
        "form: {token:.40}"
    );
}

async fn introspector(app: &TestApp) -> Tokens {
    app.create_user_with_roles("gateway", &["introspect"]).await;
    app.login_ok("gateway").await
}

async fn introspection_reports_an_active_token_with_its_claims_for_form_and_json_bodies(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let caller = introspector(&app).await;
    let t = app.register_and_login("ines").await;
    let claims = t.claims();
    for r in [
        introspect_json(&app, &caller.access_token, &t.access_token).await,
        introspect_form(&app, &caller.access_token, &t.access_token).await,
    ] {
        let body = answer(r).await;
        assert_eq!(body["active"], true, "{body}");
        // RFC 7662 §2.2: the token type of RFC 6749 §5.1.
        assert_eq!(body["token_type"], "Bearer");
        for claim in [
            "sub",
            "sid",
            "exp",
            "iat",
            "nbf",
            "iss",
            "aud",
            "jti",
            "roles",
            "client_id",
        ] {
            assert_eq!(body[claim], claims[claim], "{claim} in {body}");
        }
        assert_eq!(body["sid"], t.session_id.as_str());
        assert_eq!(body["client_id"], "first-party");
        // RFC 7662 `username`: the user's, never anything secret; no scope on a user's token.
        assert_eq!(body["username"], "ines");
        assert!(body.get("scope").is_none() && body.get("password").is_none());
    }
    // Introspection is read-only: the session is as before.
    assert_eq!(app.session_count(&t.user_id()).await, 1);
    assert_eq!(app.me(&t.access_token).await.status(), StatusCode::OK);
    // An admin may introspect too.
    let root = app.admin_login("root").await;
    let body = answer(introspect_json(&app, &root.access_token, &t.access_token).await).await;
    assert_eq!(body["active"], true);
}

async fn introspection_reports_revoked_expired_and_garbage_tokens_as_inactive(backend: Backend) {
    let app = spawn_app(backend).await;
    let caller = introspector(&app).await;
    let t = app.register_and_login("jana").await;
    // Garbage, a refresh token, an empty token, a token with a forged signature.
    let mut forged = t.access_token.clone();
    forged.pop();
    forged.push(if t.access_token.ends_with('A') {
        'B'
    } else {
        'A'
    });
    for token in [
        "garbage",
        "",
        "a.b.c",
        t.refresh_token.as_str(),
        forged.as_str(),
        &"x".repeat(10_000),
    ] {
        inactive(&app, &caller.access_token, token).await;
    }
    // After logout.
    let other = app.login_ok("jana").await;
    assert_eq!(
        app.post_bearer("/v1/logout", &t.access_token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    inactive(&app, &caller.access_token, &t.access_token).await;
    let body = answer(introspect_json(&app, &caller.access_token, &other.access_token).await).await;
    assert_eq!(body["active"], true);
    // After expiry (a new caller token, since the caller's expired as well).
    app.clock.advance(Duration::from_secs(900 + 6));
    let caller = app.login_ok("gateway").await;
    inactive(&app, &caller.access_token, &other.access_token).await;
}

async fn introspection_needs_the_introspect_or_admin_role(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = app.register_and_login("kira").await;
    let plain = app.register_and_login("lola").await;
    let r = introspect_json(&app, &plain.access_token, &t.access_token).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = introspect_form(&app, &plain.access_token, &t.access_token).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    // Not even for its own token.
    let r = introspect_json(&app, &plain.access_token, &plain.access_token).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    // Anonymous and garbage callers: 401.
    let r = app
        .post_json("/v1/introspect", &json!({ "token": t.access_token }))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let r = introspect_json(&app, "garbage", &t.access_token).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // A revoked introspector is refused.
    let caller = introspector(&app).await;
    app.post_bearer("/v1/logout", &caller.access_token).await;
    let r = introspect_json(&app, &caller.access_token, &t.access_token).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn a_malformed_introspection_request_is_a_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let caller = introspector(&app).await;
    for (content_type, body) in [
        ("application/json", "{}"),
        ("application/json", "not json"),
        ("application/json", r#"{"token": 5}"#),
        ("application/x-www-form-urlencoded", "nothing=here"),
        ("application/x-www-form-urlencoded", ""),
    ] {
        let r = app
            .request(Method::POST, "/v1/introspect")
            .bearer_auth(&caller.access_token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

async fn a_session_deleted_in_redis_introspects_as_inactive(backend: Backend) {
    let app = spawn_app(backend).await;
    let caller = introspector(&app).await;
    let t = app.register_and_login("mara").await;
    let body = answer(introspect_json(&app, &caller.access_token, &t.access_token).await).await;
    assert_eq!(body["active"], true);
    assert_eq!(app.redis_del_session(&t.user_id(), &t.session_id).await, 1);
    inactive(&app, &caller.access_token, &t.access_token).await;
}

async fn introspection_reads_the_media_type_exactly_and_answers_every_refusal_in_the_common_shape(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let caller = introspector(&app).await;
    let t = app.register_and_login("mira").await;
    let form = serde_urlencoded::to_string([("token", t.access_token.as_str())]).unwrap();
    let json_body = json!({ "token": t.access_token }).to_string();
    let send = |content_type: Option<&'static str>, body: String| {
        let mut request = app
            .request(Method::POST, "/v1/introspect")
            .bearer_auth(&caller.access_token);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(body).send()
    };
    // Media types are case-insensitive and may carry parameters.
    for content_type in [
        "Application/X-WWW-Form-Urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
    ] {
        let r = send(Some(content_type), form.clone()).await.unwrap();
        assert_eq!(answer(r).await["active"], true, "{content_type}");
    }
    let r = send(Some("Application/JSON; charset=utf-8"), json_body.clone())
        .await
        .unwrap();
    assert_eq!(answer(r).await["active"], true);
    // Anything else is not guessed at.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencodedXYZ"),
    ] {
        let r = send(content_type, json_body.clone()).await.unwrap();
        assert_error(
            r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    let r = send(Some("application/json"), format!("[{json_body}]"))
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // Too large, in the common shape.
    let big = "x".repeat(20 * 1024);
    let r = send(Some("application/x-www-form-urlencoded"), big)
        .await
        .unwrap();
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

async fn a_registered_client_introspects_with_client_authentication(backend: Backend) {
    use verifier::Clock as _;
    let app = spawn_app(backend).await;
    let gateway = app.secret_client("gateway", &[], &[], true).await;
    let key = ClientKey::generate("k1");
    app.key_client("signing-gateway", &key, &[], true).await;
    let svc = app
        .secret_client("svc", &["reports"], &["svc"], false)
        .await;
    let user = app.register_and_login("nora").await;
    let svc_token = app.client_token(&svc, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let basic = Some((gateway.id.as_str(), gateway.secret.as_str()));
    // client_secret_basic, for a user's token: the RFC 7662 members.
    let r = app
        .post_form("/v1/introspect", &[("token", &user.access_token)], basic)
        .await;
    let body = answer(r).await;
    let claims = user.claims();
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["username"], "nora");
    assert_eq!(body["client_id"], "first-party");
    for claim in ["sub", "sid", "exp", "iat", "nbf", "iss", "aud", "jti"] {
        assert_eq!(body[claim], claims[claim], "{claim}");
    }
    // client_secret_post, for a service account's token: scope, no username.
    let r = app
        .post_form(
            "/v1/introspect",
            &[
                ("token", &svc_token),
                ("token_type_hint", "access_token"),
                ("client_id", &gateway.id),
                ("client_secret", &gateway.secret),
            ],
            None,
        )
        .await;
    let body = answer(r).await;
    assert_eq!(body["sub"], "svc");
    assert_eq!(body["client_id"], "svc");
    assert_eq!(body["scope"], "reports");
    assert_eq!(body["roles"], json!(["svc"]));
    assert!(body.get("username").is_none(), "{body}");
    // private_key_jwt, aud the introspection endpoint.
    let mut claims = ClientKey::claims("signing-gateway", app.clock.now_secs());
    claims["aud"] = "http://auth.test/v1/introspect".into();
    let r = app
        .post_form(
            "/v1/introspect",
            &[
                ("token", &svc_token),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &key.sign_with(&json!({}), &claims)),
            ],
            None,
        )
        .await;
    assert_eq!(answer(r).await["active"], true);
    // Basic with a JSON body.
    let r = app
        .request(Method::POST, "/v1/introspect")
        .header("authorization", basic_header(&gateway.id, &gateway.secret))
        .json(&json!({ "token": svc_token }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(r).await["active"], true);
    // Inactive: exactly {"active": false}, for a refresh token and a revoked token.
    for token in [user.refresh_token.as_str(), "garbage"] {
        let r = app
            .post_form("/v1/introspect", &[("token", token)], basic)
            .await;
        assert_eq!(answer(r).await, json!({ "active": false }));
    }
    let r = app
        .post_form(
            "/oauth2/revoke",
            &[("token", &svc_token)],
            Some((&svc.id, &svc.secret)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_form("/v1/introspect", &[("token", &svc_token)], basic)
        .await;
    assert_eq!(answer(r).await, json!({ "active": false }));
}

async fn client_introspection_refusals_use_the_oauth_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let gateway = app.secret_client("gateway", &[], &[], true).await;
    let svc = app.secret_client("svc", &[], &[], false).await;
    let t = app.register_and_login("otto").await;
    let token = [("token", t.access_token.as_str())];
    // Authenticated, but not allowed to introspect.
    let r = app
        .post_form("/v1/introspect", &token, Some((&svc.id, &svc.secret)))
        .await;
    assert_oauth_error(r, StatusCode::FORBIDDEN, "unauthorized_client").await;
    let r = app
        .post_form(
            "/v1/introspect",
            &[("token", &t.access_token), ("client_id", "first-party")],
            None,
        )
        .await;
    assert_oauth_error(r, StatusCode::FORBIDDEN, "unauthorized_client").await;
    // Not authenticated (RFC 7662 §2.3: 401 as in RFC 6749 §5.2).
    let r = app
        .post_form("/v1/introspect", &token, Some((&gateway.id, "wrong")))
        .await;
    let headers = assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    // A bearer token and client credentials at once; no token.
    let caller = introspector(&app).await;
    let r = app
        .request(Method::POST, "/v1/introspect")
        .bearer_auth(&caller.access_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("token", t.access_token.as_str()),
                ("client_id", "gateway"),
                ("client_secret", gateway.secret.as_str()),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let r = app
        .post_form("/v1/introspect", &[], Some((&gateway.id, &gateway.secret)))
        .await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A bearer caller with a stray client_id is still a bearer caller.
    let r = app
        .request(Method::POST, "/v1/introspect")
        .bearer_auth(&caller.access_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([("token", t.access_token.as_str()), ("client_id", "x")])
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer(r).await["active"], true);
}
