//! The OAuth 2 endpoints: `POST /oauth2/token` (client credentials with every client
//! authentication method, and the refresh grant), `POST /oauth2/revoke` (RFC 7009) and the
//! RFC 8414 metadata; RFC 9068 claims in every access token.

use std::time::Duration;

use auth_center::domain::refresh_policy::ChangePolicy;
use reqwest::StatusCode;
use serde_json::{Value, json};
use verifier::Clock as _;

use crate::helpers::*;
use crate::refresh_policy::{CURL, FIREFOX_124, login_from};
use crate::{for_backends, for_every_backend};

for_every_backend!(
    a_client_credentials_token_is_an_rfc_9068_token_with_its_own_session,
    revoking_a_token_ends_its_session_and_answers_200_for_anything_else,
);

for_backends! {
    sqlite_memory: [
        client_secret_post_and_urlencoded_basic_credentials_work_too,
        a_wrong_unknown_disabled_or_missing_client_is_invalid_client_and_audited,
        malformed_requests_are_invalid_request_before_any_client_is_checked,
        asking_for_more_scope_than_registered_is_invalid_scope_and_writes_nothing,
        a_public_client_cannot_use_client_credentials,
        failed_client_authentication_is_rate_limited_per_ip,
        private_key_jwt_checks_the_assertion_strictly,
        the_refresh_grant_is_the_rotation_of_v1_refresh,
        the_refresh_policy_holds_at_the_refresh_grant_as_invalid_grant,
        a_refresh_token_presented_by_another_client_is_invalid_grant_and_left_alone,
        a_client_cannot_revoke_another_clients_tokens,
        login_and_refresh_tokens_carry_the_first_party_client_id,
        the_metadata_lists_exactly_what_exists_and_openid_discovery_is_gone,
        a_client_token_racing_a_disable_leaves_no_session,
    ],
    sqlite_redis: [
        deleting_the_session_key_in_redis_revokes_a_client_token,
        an_assertion_is_single_use_across_instances,
        the_refresh_policy_holds_at_the_refresh_grant_as_invalid_grant,
    ],
    sqlite_cluster: [
        private_key_jwt_checks_the_assertion_strictly,
        an_assertion_is_single_use_across_instances,
    ],
}

const TOKEN: &str = "/oauth2/token";
const REVOKE: &str = "/oauth2/revoke";

async fn a_client_credentials_token_is_an_rfc_9068_token_with_its_own_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app
        .secret_client(
            "billing-cron",
            &["invoices:read", "invoices:write"],
            &["svc"],
            false,
        )
        .await;
    let r = app
        .post_form(
            TOKEN,
            &[("grant_type", "client_credentials")],
            Some((&client.id, &client.secret)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    // No scope asked for: everything registered (RFC 6749 §3.3); no refresh token (§4.4.3).
    assert_eq!(body["scope"], "invoices:read invoices:write");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_header(token)["typ"], "at+jwt");
    let claims = jwt_claims(token);
    assert_eq!(
        claims["sub"], "billing-cron",
        "RFC 9068 §2.2: sub is the client"
    );
    assert_eq!(claims["client_id"], "billing-cron");
    assert_eq!(claims["scope"], "invoices:read invoices:write");
    assert_eq!(claims["roles"], json!(["svc"]));
    for claim in ["iss", "aud", "exp", "iat", "jti", "sid"] {
        assert!(claims.get(claim).is_some(), "{claim} in {claims}");
    }
    assert!(app.accepts(token).await);
    // Its own session, under the client's id, for as long as the token lives.
    let sessions = app.auth.sessions_of("billing-cron").await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].sid, claims["sid"].as_str().unwrap());
    // A narrower scope on request; each token its own session.
    let narrow = app.client_token(&client, Some("invoices:read")).await;
    assert_eq!(narrow["scope"], "invoices:read");
    assert_eq!(
        jwt_claims(narrow["access_token"].as_str().unwrap())["scope"],
        "invoices:read"
    );
    assert_eq!(app.session_count("billing-cron").await, 2);
    let issued = app.audit_events("client.token_issued").await;
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[0].actor.as_deref(), Some("billing-cron"));
    assert_eq!(issued[0].detail.as_deref(), Some("scope [invoices:read]"));
    // The session ends with the token.
    app.clock.advance(Duration::from_secs(900));
    assert!(!app.accepts(token).await);
    assert_eq!(app.session_count("billing-cron").await, 0);
}

async fn deleting_the_session_key_in_redis_revokes_a_client_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.secret_client("svc", &[], &[], false).await;
    let body = app.client_token(&client, None).await;
    assert!(
        body.get("scope").is_none(),
        "no scopes registered: none granted"
    );
    let token = body["access_token"].as_str().unwrap();
    let sid = jwt_claims(token)["sid"].as_str().unwrap().to_string();
    assert!(app.accepts(token).await);
    assert!(app.redis_session_exists("svc", &sid).await);
    assert_eq!(app.redis_del_session("svc", &sid).await, 1);
    assert!(!app.accepts(token).await);
}

async fn client_secret_post_and_urlencoded_basic_credentials_work_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.secret_client("svc_post-1", &["a"], &[], false).await;
    let r = app
        .post_form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.id),
                ("client_secret", &client.secret),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Basic with every character percent-encoded (RFC 6749 §2.3.1), and the same
    // client_id in the body as well.
    use base64::Engine as _;
    let escape = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let pair = format!("{}:{}", escape(&client.id), escape(&client.secret));
    let r = app
        .request(reqwest::Method::POST, TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ),
        )
        .body(format!(
            "grant_type=client_credentials&client_id={}",
            client.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Unknown parameters are ignored, empty ones count as absent (RFC 6749 §3.2).
    let r = app
        .post_form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("scope", ""),
                ("resource", "https://api.example"),
            ],
            Some((&client.id, &client.secret)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "a");
}

async fn a_wrong_unknown_disabled_or_missing_client_is_invalid_client_and_audited(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let client = app.secret_client("svc", &[], &[], false).await;
    let grant = [("grant_type", "client_credentials")];
    let other = app.secret_client("other", &[], &[], false).await;
    for (basic, reason) in [
        (("svc", "x".repeat(43)), "wrong secret"),
        (("svc", other.secret.clone()), "wrong secret"),
        (("nobody", client.secret.clone()), "unknown client"),
        (("svc", String::new()), "wrong secret"),
    ] {
        let r = app
            .post_form(TOKEN, &grant, Some((basic.0, &basic.1)))
            .await;
        let headers = assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic "),
            "RFC 6749 §5.2: the scheme the client used"
        );
        let failed = app.audit_events("client.auth_failed").await;
        assert_eq!(failed[0].detail.as_deref(), Some(reason));
        assert_eq!(failed[0].actor.as_deref(), Some(basic.0));
    }
    // No client authentication at all, a bearer token, broken Basic credentials.
    let r = app.post_form(TOKEN, &grant, None).await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    for authorization in ["Bearer abc", "Basic !!!", "Basic c3Zj"] {
        let r = app
            .request(reqwest::Method::POST, TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", authorization)
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    // A disabled client, with its right secret.
    let root = app.admin_login("root").await;
    let r = app
        .post_bearer("/v1/admin/clients/svc/disable", &root.access_token)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_form(TOKEN, &grant, Some((&client.id, &client.secret)))
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(
        app.audit_events("client.auth_failed").await[0]
            .detail
            .as_deref(),
        Some("disabled client")
    );
    // Nothing was issued to anybody.
    assert_eq!(app.session_count("svc").await, 0);
    assert!(app.audit_events("client.token_issued").await.is_empty());
}

async fn malformed_requests_are_invalid_request_before_any_client_is_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.secret_client("svc", &[], &[], false).await;
    let basic = Some((client.id.as_str(), client.secret.as_str()));
    let cases: [(&[(&str, &str)], _, &str); 7] = [
        (&[], basic, "invalid_request"),
        (
            &[("grant_type", "password")],
            basic,
            "unsupported_grant_type",
        ),
        (
            &[("grant_type", "authorization_code")],
            basic,
            "unsupported_grant_type",
        ),
        (&[("grant_type", "refresh_token")], basic, "invalid_request"),
        // Two client authentication methods.
        (
            &[("grant_type", "client_credentials"), ("client_secret", "x")],
            basic,
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "svc"),
                ("client_secret", "x"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", "a.b.c"),
            ],
            None,
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion", "a.b.c"),
            ],
            None,
            "invalid_request",
        ),
    ];
    for (pairs, basic, code) in cases {
        let r = app.post_form(TOKEN, pairs, basic).await;
        assert_oauth_error(r, StatusCode::BAD_REQUEST, code).await;
    }
    // A client_id in the body that is not the one in the header.
    let r = app
        .post_form(
            TOKEN,
            &[("grant_type", "client_credentials"), ("client_id", "other")],
            basic,
        )
        .await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A repeated parameter, JSON, no body, two Authorization headers.
    for (content_type, body) in [
        (
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&grant_type=refresh_token",
        ),
        (
            "application/x-www-form-urlencoded",
            "scope=a&sc%6Fpe=b&grant_type=client_credentials",
        ),
        ("application/json", r#"{"grant_type":"client_credentials"}"#),
        ("text/plain", ""),
    ] {
        let r = app
            .request(reqwest::Method::POST, TOKEN)
            .header("content-type", content_type)
            .header("authorization", basic_header(&client.id, &client.secret))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let r = app
        .request(reqwest::Method::POST, TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic_header(&client.id, &client.secret))
        .header("authorization", basic_header(&client.id, &client.secret))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // None of these got as far as client authentication, and nothing was issued.
    assert!(app.audit_events("client.auth_failed").await.is_empty());
    assert_eq!(app.session_count("svc").await, 0);
    // The wrong method.
    let r = app
        .request(reqwest::Method::GET, TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

async fn asking_for_more_scope_than_registered_is_invalid_scope_and_writes_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let client = app.secret_client("svc", &["read"], &[], false).await;
    for scope in ["read write", "admin", "READ"] {
        let r = app
            .post_form(
                TOKEN,
                &[("grant_type", "client_credentials"), ("scope", scope)],
                Some((&client.id, &client.secret)),
            )
            .await;
        assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
    }
    assert_eq!(app.session_count("svc").await, 0);
    assert!(app.audit_events("client.token_issued").await.is_empty());
}

async fn a_public_client_cannot_use_client_credentials(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .post_form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "first-party"),
            ],
            None,
        )
        .await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    // A confidential client naming itself without credentials fails authentication.
    app.secret_client("svc", &[], &[], false).await;
    let r = app
        .post_form(
            TOKEN,
            &[("grant_type", "client_credentials"), ("client_id", "svc")],
            None,
        )
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // And a public client sending a secret is refused too.
    let r = app
        .post_form(
            TOKEN,
            &[("grant_type", "client_credentials")],
            Some(("first-party", "guess")),
        )
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

async fn failed_client_authentication_is_rate_limited_per_ip(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.client_auth_ip_failures_max = 3).await;
    let client = app.secret_client("svc", &[], &[], false).await;
    let grant = [("grant_type", "client_credentials")];
    // Successes do not count.
    for _ in 0..5 {
        app.client_token(&client, None).await;
    }
    for _ in 0..3 {
        let r = app.post_form(TOKEN, &grant, Some(("svc", "wrong"))).await;
        assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    // Now even the right secret from this IP waits for the window, at every endpoint.
    for path in [TOKEN, REVOKE, "/v1/introspect"] {
        let r = app
            .post_form(
                path,
                &[("grant_type", "client_credentials"), ("token", "x")],
                Some((&client.id, &client.secret)),
            )
            .await;
        let retry = retry_after_secs(&r);
        assert!((1..=300).contains(&retry), "{retry}");
        assert_oauth_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
    let refusals = app.audit_events("rate_limited").await;
    assert_eq!(refusals.len(), 1, "one audit event per window");
    assert!(
        refusals[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("client_auth_ip")
    );
    assert!(
        app.metrics_text()
            .await
            .contains(r#"rule="client_auth_ip"} 3"#)
    );
    app.clock.advance(Duration::from_secs(300));
    app.client_token(&client, None).await;
}

async fn private_key_jwt_checks_the_assertion_strictly(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = ClientKey::generate("k1");
    app.key_client("signer", &key, &["read"], false).await;
    let now = app.clock.now_secs();
    let token_with = |assertion: String, client_id: Option<&'static str>| {
        let mut pairs = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_assertion_type", JWT_BEARER.to_string()),
            ("client_assertion", assertion),
        ];
        if let Some(id) = client_id {
            pairs.push(("client_id", id.to_string()));
        }
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_form(TOKEN, &pairs, None).await
        }
    };
    // Good: aud the token endpoint, or the issuer; with or without client_id.
    let good = key.assertion("signer", now);
    let r = token_with(good.clone(), Some("signer")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["client_id"],
        "signer"
    );
    let mut to_issuer = ClientKey::claims("signer", now);
    to_issuer["aud"] = json!(["http://auth.test"]);
    let r = token_with(key.sign_with(&json!({}), &to_issuer), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Replayed: refused, and audited.
    let r = token_with(good, None).await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(
        app.audit_events("client.auth_failed").await[0]
            .detail
            .as_deref(),
        Some("assertion replayed (its jti was used before)")
    );
    // Every other way to get it wrong.
    let other_key = ClientKey::generate("k1");
    let claims = |edit: &dyn Fn(&mut Value)| {
        let mut c = ClientKey::claims("signer", now);
        edit(&mut c);
        c
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            key.sign_with(
                &json!({}),
                &claims(&|c| c["aud"] = "https://elsewhere/token".into()),
            ),
        ),
        (
            "expired",
            key.sign_with(
                &json!({}),
                &claims(&|c| {
                    c["iat"] = (now - 120).into();
                    c["exp"] = (now - 60).into();
                }),
            ),
        ),
        (
            "too long",
            key.sign_with(&json!({}), &claims(&|c| c["exp"] = (now + 3600).into())),
        ),
        (
            "no exp",
            key.sign_with(
                &json!({}),
                &claims(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
        ),
        (
            "no jti",
            key.sign_with(
                &json!({}),
                &claims(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
        ),
        (
            "sub not iss",
            key.sign_with(&json!({}), &claims(&|c| c["sub"] = "other".into())),
        ),
        (
            "from the future",
            key.sign_with(&json!({}), &claims(&|c| c["nbf"] = (now + 60).into())),
        ),
        ("another key", other_key.assertion("signer", now)),
        (
            "unknown kid",
            key.sign_with(&json!({ "kid": "k2" }), &ClientKey::claims("signer", now)),
        ),
        (
            "typ of an access token",
            key.sign_with(
                &json!({ "typ": "at+jwt" }),
                &ClientKey::claims("signer", now),
            ),
        ),
        (
            "a jwk header",
            key.sign_with(
                &json!({ "jwk": key.public_jwk }),
                &ClientKey::claims("signer", now),
            ),
        ),
        ("alg none", {
            let mut parts: Vec<String> = key
                .assertion("signer", now)
                .split('.')
                .map(String::from)
                .collect();
            use base64::Engine as _;
            parts[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(r#"{"alg":"none","kid":"k1"}"#);
            parts[2] = String::new();
            parts.join(".")
        }),
        ("garbage", "not-a-jwt".into()),
        ("unknown client", key.assertion("nobody", now)),
    ];
    for (what, assertion) in cases {
        let r = token_with(assertion, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    // client_id naming another client than the assertion's issuer.
    let r = token_with(key.assertion("signer", now), Some("first-party")).await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // The right key with a secret-client's method: the client has no secret.
    let r = app
        .post_form(
            TOKEN,
            &[("grant_type", "client_credentials")],
            Some(("signer", "x")),
        )
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(
        app.session_count("signer").await,
        2,
        "only the two good ones"
    );
}

async fn an_assertion_is_single_use_across_instances(backend: Backend) {
    let first = spawn_app(backend).await;
    let second = first.second_instance().await;
    let key = ClientKey::generate("k1");
    first.key_client("signer", &key, &[], false).await;
    let assertion = key.assertion("signer", first.clock.now_secs());
    let pairs = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    assert_eq!(
        first.post_form(TOKEN, &pairs, None).await.status(),
        StatusCode::OK
    );
    let r = second.post_form(TOKEN, &pairs, None).await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

async fn the_refresh_grant_is_the_rotation_of_v1_refresh(backend: Backend) {
    let app = spawn_app(backend).await;
    let t0 = app.register_and_login("rita").await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post_form(
                TOKEN,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", "first-party"),
                ],
                None,
            )
            .await
        }
    };
    let r = refresh(t0.refresh_token.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t1: Tokens = r.json().await.unwrap();
    assert_eq!(t1.token_type, "Bearer");
    assert_eq!(t1.session_id, t0.session_id);
    assert_eq!(t1.claims()["client_id"], "first-party");
    assert!(app.accepts(&t1.access_token).await);
    // A replay within the grace window, at the other endpoint: the same successor.
    let again = app.refresh_ok(&t0.refresh_token).await;
    assert_eq!(again.refresh_token, t1.refresh_token);
    // And the other way round.
    let t2 = app.refresh_ok(&t1.refresh_token).await;
    let r = refresh(t1.refresh_token.clone()).await;
    let replayed: Tokens = r.json().await.unwrap();
    assert_eq!(replayed.refresh_token, t2.refresh_token);
    // A token two rotations old is theft, here as there: the session ends.
    app.clock.advance(Duration::from_secs(11));
    let r = refresh(t0.refresh_token.clone()).await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(app.audit_events("refresh.reuse_detected").await.len(), 1);
    assert!(!app.accepts(&t2.access_token).await);
    let r = refresh(t2.refresh_token.clone()).await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Garbage is invalid_grant; a scope is more than the session was granted; no client
    // identification is invalid_client.
    let r = refresh("garbage".into()).await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let t = app.login_ok("rita").await;
    let r = app
        .post_form(
            TOKEN,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t.refresh_token),
                ("client_id", "first-party"),
                ("scope", "admin"),
            ],
            None,
        )
        .await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let r = app
        .post_form(
            TOKEN,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t.refresh_token),
            ],
            None,
        )
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // None of the refused requests rotated it.
    app.refresh_ok(&t.refresh_token).await;
}

/// The refresh policy (`refresh.max_rotations`, `refresh.on_user_agent_change`) is the
/// rotation's, so it holds at `/oauth2/token` too; its refusals are RFC 6749 `invalid_grant`
/// there (400), where `/v1/refresh` says `refresh_limit_reached` or `refresh_context_changed`
/// (401). The description says which.
async fn the_refresh_policy_holds_at_the_refresh_grant_as_invalid_grant(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.refresh.max_rotations = 2;
        c.refresh.on_user_agent_change = ChangePolicy::Revoke;
    })
    .await;
    let grant = |token: String, agent: &'static str| {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", token.as_str()),
            ("client_id", "first-party"),
        ];
        post_from(&app, TOKEN, None, Some(agent))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
    };
    let refused = |token: String, agent: &'static str, why: &'static str| {
        let r = grant(token, agent);
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "invalid_grant", "{body}");
            let description = body["error_description"].as_str().unwrap_or_default();
            assert!(description.contains(why), "{body}");
        }
    };

    // The rotation cap: two rotations, then the session ends.
    let mut t = login_from(&app, "cap", None, Some(FIREFOX_124)).await;
    for _ in 0..2 {
        let r = grant(t.refresh_token.clone(), FIREFOX_124).await.unwrap();
        t = r.json().await.unwrap();
    }
    assert!(app.accepts(&t.access_token).await);
    refused(t.refresh_token.clone(), FIREFOX_124, "refresh limit").await;
    assert!(!app.accepts(&t.access_token).await);
    assert_eq!(app.audit_events("refresh.limit_reached").await.len(), 1);
    refused(t.refresh_token, FIREFOX_124, "refresh token is invalid").await;

    // A changed user agent under `revoke`: the session ends.
    let t = login_from(&app, "agent", None, Some(FIREFOX_124)).await;
    refused(t.refresh_token.clone(), CURL, "user agent").await;
    assert!(!app.accepts(&t.access_token).await);
    assert_eq!(app.audit_events("refresh.context_revoked").await.len(), 1);
    refused(t.refresh_token, FIREFOX_124, "refresh token is invalid").await;
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());
}

async fn a_refresh_token_presented_by_another_client_is_invalid_grant_and_left_alone(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let client = app.secret_client("svc", &[], &[], false).await;
    let t = app.register_and_login("sara").await;
    let r = app
        .post_form(
            TOKEN,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t.refresh_token),
            ],
            Some((&client.id, &client.secret)),
        )
        .await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Not rotated, not taken for reuse: its owner refreshes as usual, twice.
    let t1 = app.refresh_ok(&t.refresh_token).await;
    app.refresh_ok(&t1.refresh_token).await;
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());
}

async fn revoking_a_token_ends_its_session_and_answers_200_for_anything_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.secret_client("svc", &[], &[], false).await;
    let basic = Some((client.id.as_str(), client.secret.as_str()));
    let token = app.client_token(&client, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let keep = app.client_token(&client, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post_form(
            REVOKE,
            &[("token", &token), ("token_type_hint", "access_token")],
            basic,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.text().await.unwrap().is_empty());
    assert!(!app.accepts(&token).await);
    assert!(app.accepts(&keep).await, "only that token's session");
    let revoked = app.audit_events("oauth.token_revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].actor.as_deref(), Some("svc"));
    assert_eq!(revoked[0].detail.as_deref(), Some("access_token"));
    // Already revoked, unknown, malformed, a wrong hint: 200, nothing changes.
    for (t, hint) in [
        (token.as_str(), "refresh_token"),
        ("garbage", "access_token"),
        ("a.b.c", "something_else"),
        (&"x".repeat(9000), ""),
    ] {
        let r = app
            .post_form(REVOKE, &[("token", t), ("token_type_hint", hint)], basic)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert!(app.accepts(&keep).await);
    assert_eq!(app.audit_events("oauth.token_revoked").await.len(), 1);
    // A user's refresh token, or access token, by the first-party (public) client.
    let t = app.register_and_login("ulla").await;
    let public = [
        ("token", t.refresh_token.as_str()),
        ("client_id", "first-party"),
    ];
    assert_eq!(
        app.post_form(REVOKE, &public, None).await.status(),
        StatusCode::OK
    );
    assert!(
        !app.accepts(&t.access_token).await,
        "the whole session ended"
    );
    let r = app.refresh(&t.refresh_token).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let t = app.login_ok("ulla").await;
    let public = [
        ("token", t.access_token.as_str()),
        ("client_id", "first-party"),
    ];
    assert_eq!(
        app.post_form(REVOKE, &public, None).await.status(),
        StatusCode::OK
    );
    assert!(!app.accepts(&t.access_token).await);
    let r = app.refresh(&t.refresh_token).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_eq!(app.audit_events("oauth.token_revoked").await.len(), 3);
}

async fn a_client_cannot_revoke_another_clients_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.secret_client("svc-a", &[], &[], false).await;
    let b = app.secret_client("svc-b", &[], &[], false).await;
    let b_token = app.client_token(&b, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let user = app.register_and_login("uwe").await;
    for token in [&b_token, &user.access_token, &user.refresh_token] {
        let r = app
            .post_form(REVOKE, &[("token", token)], Some((&a.id, &a.secret)))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "no oracle (RFC 7009 §2.1)");
    }
    assert!(app.accepts(&b_token).await);
    assert!(app.accepts(&user.access_token).await);
    app.refresh_ok(&user.refresh_token).await;
    let ignored = app.audit_events("oauth.revocation_ignored").await;
    assert_eq!(ignored.len(), 3);
    assert!(ignored.iter().all(|e| e.actor.as_deref() == Some("svc-a")));
    // The first-party client cannot revoke a service account's token either.
    let r = app
        .post_form(
            REVOKE,
            &[("token", &b_token), ("client_id", "first-party")],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(app.accepts(&b_token).await);
    // Bad client authentication is still an error, and a token is required.
    let r = app
        .post_form(REVOKE, &[("token", &b_token)], Some(("svc-a", "wrong")))
        .await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let r = app.post_form(REVOKE, &[("token", &b_token)], None).await;
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let r = app.post_form(REVOKE, &[], Some((&a.id, &a.secret))).await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(app.accepts(&b_token).await);
}

async fn login_and_refresh_tokens_carry_the_first_party_client_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = app.register_and_login("vera").await;
    assert_eq!(t.claims()["client_id"], "first-party");
    assert!(t.claims().get("scope").is_none());
    let t = app.refresh_ok(&t.refresh_token).await;
    assert_eq!(t.claims()["client_id"], "first-party");
}

async fn the_metadata_lists_exactly_what_exists_and_openid_discovery_is_gone(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .request(
            reqwest::Method::GET,
            "/.well-known/oauth-authorization-server",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m: Value = r.json().await.unwrap();
    let methods = json!([
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none"
    ]);
    let algs = json!(["EdDSA", "ES256", "RS256"]);
    assert_eq!(
        m,
        json!({
            "issuer": "http://auth.test",
            "token_endpoint": "http://auth.test/oauth2/token",
            "token_endpoint_auth_methods_supported": methods,
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "grant_types_supported": ["client_credentials", "refresh_token"],
            "revocation_endpoint": "http://auth.test/oauth2/revoke",
            "revocation_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_signing_alg_values_supported": algs,
            "introspection_endpoint": "http://auth.test/v1/introspect",
            "introspection_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            "jwks_uri": "http://auth.test/.well-known/jwks.json",
            "response_types_supported": [],
            "dpop_signing_alg_values_supported": ["ES256", "EdDSA", "PS256", "RS256"],
        })
    );
    // Every endpoint it names exists here (an empty POST is a client error, not a 404).
    for key in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let path = m[key]
            .as_str()
            .unwrap()
            .trim_start_matches("http://auth.test");
        let r = app.post_form(path, &[], None).await;
        assert!(
            matches!(
                r.status(),
                StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED
            ),
            "{key}: {}",
            r.status()
        );
    }
    let path = m["jwks_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://auth.test");
    let r = app
        .request(reqwest::Method::GET, path)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // No OpenID Connect: no discovery document that would promise an ID token.
    let r = app
        .request(reqwest::Method::GET, "/.well-known/openid-configuration")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

async fn a_client_token_racing_a_disable_leaves_no_session(backend: Backend) {
    // The disable lands between the client's authentication and its session's creation:
    // the re-read after the create sees it and takes the session back.
    let app = spawn_app(backend).await;
    let client = app.secret_client("svc", &[], &[], false).await;
    let authenticated = app
        .auth
        .authenticate_client(
            auth_center::domain::clients::ClientCredentials::Secret {
                client_id: client.id.clone(),
                secret: client.secret.clone().into(),
            },
            "http://auth.test/oauth2/token",
            &auth_center::domain::ClientInfo::default(),
        )
        .await
        .unwrap();
    let root = app.admin_login("root").await;
    let r = app
        .post_bearer("/v1/admin/clients/svc/disable", &root.access_token)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let issued = app
        .auth
        .client_credentials(
            &authenticated,
            None,
            None,
            &auth_center::domain::ClientInfo::default(),
        )
        .await;
    assert!(
        matches!(issued, Err(auth_center::domain::AuthError::InvalidClient)),
        "{issued:?}"
    );
    assert_eq!(app.session_count("svc").await, 0);
}

#[test]
fn oauth_settings_out_of_range_are_refused() {
    use auth_center::Config;
    type Change = fn(&mut Config);
    let cases: [(&str, Change); 4] = [
        ("no tokens per client", |c| {
            c.oauth.max_tokens_per_client = 0
        }),
        ("too many tokens per client", |c| {
            c.oauth.max_tokens_per_client = 100_001
        }),
        ("assertions of a few seconds", |c| {
            c.oauth.assertion_max_lifetime_secs = 9
        }),
        ("assertions of more than an hour", |c| {
            c.oauth.assertion_max_lifetime_secs = 3601
        }),
    ];
    for (what, change) in cases {
        let mut config = Config::default();
        change(&mut config);
        assert!(config.validate().is_err(), "{what} was accepted");
    }
    assert!(Config::default().validate().is_ok());
}
