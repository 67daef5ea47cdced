//! Each proxy's way of asking gets the same answer: `200` with the caller's identity, and
//! only the gateway's own identity headers.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn each_dialect_answers_a_valid_token_with_the_callers_identity() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let session = env.session("user-1").await;
    let token = env.issuer.token(
        &session,
        json!({ "roles": ["admin", "user"], "scope": "orders:read  orders:write", "client_id": "mobile" }),
    );
    for dialect in DIALECTS {
        for method in ["GET", "POST", "DELETE"] {
            let answer = gateway
                .ask(dialect, method, "/orders/7?expand=items")
                .bearer_auth(&token)
                .answer()
                .await;
            answer.assert_allowed();
            assert_eq!(
                answer.header("x-auth-subject"),
                Some("user-1"),
                "{dialect:?}"
            );
            assert_eq!(answer.header("x-auth-session"), Some(session.sid.as_str()));
            assert_eq!(answer.header("x-auth-roles"), Some("admin,user"));
            assert_eq!(
                answer.header("x-auth-scope"),
                Some("orders:read orders:write")
            );
            assert_eq!(answer.header("x-auth-client-id"), Some("mobile"));
        }
    }
}

#[tokio::test]
async fn repeat_tokens_of_different_callers_each_get_their_own_identity() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let mut callers = Vec::new();
    for (sub, role) in [
        ("user-a", "admin"),
        ("user-b", "user"),
        ("user-c", "auditor"),
    ] {
        let session = env.session(sub).await;
        let token = env.issuer.token(&session, json!({ "roles": [role] }));
        callers.push((sub, role, session, token));
    }
    // Interleaved, each token many times: whatever the gateway keeps between requests, an
    // answer carries the identity of the token it was asked about.
    for round in 0..4 {
        for i in [0, 1, 0, 2, 1, 0, 2, 2] {
            let (sub, role, session, token) = &callers[i];
            let answer = gateway.with_token(Dialect::ExtAuthz, "/", token).await;
            answer.assert_allowed();
            assert_eq!(answer.header("x-auth-subject"), Some(*sub), "round {round}");
            assert_eq!(answer.header("x-auth-session"), Some(session.sid.as_str()));
            assert_eq!(answer.header("x-auth-roles"), Some(*role));
        }
    }
}

#[tokio::test]
async fn a_token_without_scope_or_client_id_leaves_those_headers_out() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let token = env
        .token("user-2", json!({ "roles": [], "client_id": null }))
        .await;
    for dialect in DIALECTS {
        let answer = gateway.with_token(dialect, "/", &token).await;
        answer.assert_allowed();
        assert_eq!(answer.header("x-auth-subject"), Some("user-2"));
        assert_eq!(answer.header("x-auth-roles"), Some(""), "no roles: empty");
        assert_eq!(answer.header("x-auth-scope"), None);
        assert_eq!(answer.header("x-auth-client-id"), None);
    }
}

#[tokio::test]
async fn identity_headers_the_client_sent_are_neither_read_nor_echoed() {
    let env = Env::new().await;
    let gateway = env
        .gateway(|settings| {
            settings.rules = vec![anonymous_rule("/public")];
        })
        .await;
    let token = env.token("user-3", json!({ "client_id": null })).await;
    let forged = [
        ("X-Auth-Subject", "admin"),
        ("X-Auth-Session", "forged"),
        ("X-Auth-Roles", "admin"),
        ("X-Auth-Scope", "everything"),
        ("X-Auth-Client-Id", "root-client"),
    ];
    for dialect in DIALECTS {
        let mut request = gateway.ask(dialect, "GET", "/orders").bearer_auth(&token);
        for (name, value) in forged {
            request = request.header(name, value);
        }
        let answer = request.answer().await;
        answer.assert_allowed();
        assert_eq!(answer.header("x-auth-subject"), Some("user-3"));
        assert_eq!(answer.header("x-auth-roles"), Some("user"));
        assert_eq!(answer.header("x-auth-scope"), None, "not echoed");
        assert_eq!(answer.header("x-auth-client-id"), None, "not echoed");

        // A forged identity is no token: refused where one is needed, and not echoed on an
        // anonymous path.
        let mut request = gateway.ask(dialect, "GET", "/orders");
        let mut anonymous = gateway.ask(dialect, "GET", "/public/page");
        for (name, value) in forged {
            request = request.header(name, value);
            anonymous = anonymous.header(name, value);
        }
        request.answer().await.assert_no_identity();
        anonymous
            .answer()
            .await
            .assert_allowed()
            .assert_no_identity();
    }
}

#[tokio::test]
async fn the_identity_header_names_are_configurable() {
    let env = Env::new().await;
    let gateway = env
        .gateway(|settings| {
            settings.headers.subject = http::HeaderName::from_static("x-user");
            settings.headers.roles = http::HeaderName::from_static("x-user-roles");
        })
        .await;
    let token = env.token("user-4", json!({})).await;
    let answer = gateway
        .ask(Dialect::ForwardAuth, "GET", "/")
        .bearer_auth(&token)
        .header("X-Auth-Subject", "admin")
        .answer()
        .await;
    answer.assert_allowed();
    assert_eq!(answer.header("x-user"), Some("user-4"));
    assert_eq!(answer.header("x-user-roles"), Some("user"));
    assert_eq!(answer.header("x-auth-subject"), None);
    assert_eq!(answer.header("x-auth-session").map(str::len), Some(32));
}

#[tokio::test]
async fn a_request_that_does_not_say_what_it_asks_about_is_a_400_even_with_a_valid_token() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let token = env.token("user-5", json!({})).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", gateway.addr);
    /// What is wrong, the endpoint, the headers.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: [Case; 10] = [
        ("no X-Original-URI", "/authz/auth-request", &[]),
        (
            "only X-Original-Method",
            "/authz/auth-request",
            &[("X-Original-Method", "GET")],
        ),
        (
            "Traefik's header at nginx's endpoint",
            "/authz/auth-request",
            &[("X-Forwarded-Uri", "/")],
        ),
        ("no X-Forwarded-Uri", "/authz/forward-auth", &[]),
        (
            "nginx's header at Traefik's endpoint",
            "/authz/forward-auth",
            &[("X-Original-URI", "/")],
        ),
        ("no path after the prefix", "/authz/ext-authz", &[]),
        (
            "two X-Original-URI",
            "/authz/auth-request",
            &[("X-Original-URI", "/admin"), ("X-Original-URI", "/public")],
        ),
        (
            "a method that is not one",
            "/authz/auth-request",
            &[("X-Original-URI", "/"), ("X-Original-Method", "G(E)T")],
        ),
        (
            "an empty URI",
            "/authz/forward-auth",
            &[("X-Forwarded-Uri", "")],
        ),
        (
            "a URI that is not a path",
            "/authz/forward-auth",
            &[("X-Forwarded-Uri", "admin")],
        ),
    ];
    for (what, path, headers) in cases {
        let mut request = client.get(url(path)).bearer_auth(&token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let answer = request.answer().await;
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
        answer.assert_400().assert_no_identity();
    }
    // The message says what the proxy must send.
    for (path, header) in [
        ("/authz/auth-request", "X-Original-URI"),
        ("/authz/forward-auth", "X-Forwarded-Uri"),
    ] {
        let answer = client.get(url(path)).answer().await;
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(header), "{path}: {answer:?}");
    }
}
