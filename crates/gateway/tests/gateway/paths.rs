//! No spelling of a path gets a request past a rule: every attempt to reach `/admin` without
//! the `admin` role is a `400` or a `403`, never a `200`, in every dialect, with a token and
//! without one.

use serde_json::json;

use crate::support::*;

/// Spellings that a server may read as a path under `/admin`.
const ATTEMPTS: [&str; 22] = [
    "/admin",
    "//admin",
    "/admin/",
    "/adm%69n",
    "/%61dmin/users",
    "/admin;jsessionid=1/users",
    "/;x/admin",
    "/public/..%2Fadmin",
    "/public/..%2fadmin",
    "/public%2F..%2Fadmin",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/.%2e/admin",
    "/public/../admin",
    "/public/./../admin",
    "/public/..;/admin",
    "/public/..%5Cadmin",
    "/public\\..\\admin",
    "/public/%252e%252e/admin",
    "/public/..%00/admin",
    "http://api.example/admin",
    "/public/x/../../admin",
];

fn admin_behind_public(settings: &mut gateway::Settings) {
    settings.rules = vec![role_rule("/admin", "admin"), anonymous_rule("/public")];
}

#[tokio::test]
async fn no_spelling_of_an_admin_path_escapes_the_admin_rule() {
    let env = Env::new().await;
    let gateway = env.gateway(admin_behind_public).await;
    let user = env.token("user-1", json!({ "roles": ["user"] })).await;
    for uri in ATTEMPTS {
        for dialect in [Dialect::AuthRequest, Dialect::ForwardAuth] {
            for token in [Some(&user), None] {
                let mut request = gateway.ask(dialect, "GET", uri);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let answer = request.answer().await;
                assert!(
                    [400, 401, 403].contains(&answer.status.as_u16()),
                    "{dialect:?} {uri} (token: {}): {answer:?}",
                    token.is_some()
                );
                answer.assert_no_identity();
            }
        }
        // Envoy sends the path as the check request's own target, byte for byte.
        if uri.starts_with('/') {
            let target = format!("GET /authz/ext-authz{uri} HTTP/1.1");
            let authorization = format!("Bearer {user}");
            for headers in [vec![("Authorization", authorization.as_str())], vec![]] {
                let status = gateway.raw_status(&target, &headers).await;
                assert!(
                    [400, 401, 403].contains(&status),
                    "ext_authz {uri}: {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_path_that_only_looks_odd_is_judged_by_its_rule() {
    let env = Env::new().await;
    let gateway = env.gateway(admin_behind_public).await;
    let user = env.token("user-1", json!({ "roles": ["user"] })).await;
    for uri in [
        "/public//page",
        "/public/a%20b",
        "/public/caf%C3%A9",
        "/public/...",
        "/public/.well-known",
    ] {
        for dialect in DIALECTS {
            gateway
                .ask(dialect, "GET", uri)
                .answer()
                .await
                .assert_allowed();
        }
    }
    for uri in ["/administrator", "/x/admin", "/orders/..data"] {
        for dialect in DIALECTS {
            let answer = gateway.with_token(dialect, uri, &user).await;
            answer.assert_allowed();
        }
    }
}

#[tokio::test]
async fn an_unreadable_original_uri_is_a_400_that_says_why() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let user = env.token("user-1", json!({})).await;
    for (uri, says) in [
        ("/a%zz", "percent-escape"),
        ("/a%2Fb", "encoded slash"),
        ("/a/../b", "dot segment"),
        ("ftp://host/a", "not a path"),
    ] {
        let answer = gateway.with_token(Dialect::ForwardAuth, uri, &user).await;
        answer.assert_400();
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{uri}: {message}");
    }
}
