//! Per-path rules: a role or a scope (`403` without it), per method, and anonymous prefixes.

use gateway::{Rule, Settings};
use serde_json::json;

use crate::support::*;

/// `/admin` needs the `admin` role; `/orders` the `orders:write` scope for `POST` and
/// `DELETE`; `/public` is anonymous; `/public/private` needs a token again.
fn with_rules(settings: &mut Settings) {
    settings.rules = vec![
        role_rule("/admin", "admin"),
        Rule {
            prefix: "/orders".into(),
            methods: vec!["POST".into(), "DELETE".into()],
            scope: Some("orders:write".into()),
            ..Rule::default()
        },
        anonymous_rule("/public"),
        Rule {
            prefix: "/public/private".into(),
            ..Rule::default()
        },
    ];
}

#[tokio::test]
async fn a_role_rule_is_a_403_without_the_role() {
    let env = Env::new().await;
    let gateway = env.gateway(with_rules).await;
    let user = env.token("user-1", json!({ "roles": ["user"] })).await;
    let admin = env
        .token("admin-1", json!({ "roles": ["user", "admin"] }))
        .await;
    for dialect in DIALECTS {
        for path in ["/admin", "/admin/", "/admin/users?page=2"] {
            let answer = gateway.with_token(dialect, path, &user).await;
            answer.assert_403("insufficient_role").assert_no_identity();
            let answer = gateway.with_token(dialect, path, &admin).await;
            answer.assert_allowed();
            assert_eq!(answer.header("x-auth-roles"), Some("user,admin"));
        }
        // A segment boundary: `/administrator` is not under `/admin`.
        gateway
            .with_token(dialect, "/administrator", &user)
            .await
            .assert_allowed();
        // No token at all is still a 401, not a 403.
        assert_eq!(
            gateway.ask(dialect, "GET", "/admin").answer().await.status,
            401
        );
    }
}

#[tokio::test]
async fn a_scope_rule_is_a_403_with_an_insufficient_scope_challenge_for_its_methods_only() {
    let env = Env::new().await;
    let gateway = env.gateway(with_rules).await;
    let reader = env.token("svc-1", json!({ "scope": "orders:read" })).await;
    let writer = env
        .token("svc-2", json!({ "scope": "orders:read orders:write" }))
        .await;
    for dialect in DIALECTS {
        for method in ["POST", "DELETE", "post"] {
            if dialect == Dialect::ExtAuthz && method == "post" {
                continue; // an HTTP client sends its method as it is written
            }
            let answer = gateway
                .ask(dialect, method, "/orders/7")
                .bearer_auth(&reader)
                .answer()
                .await;
            answer.assert_403("insufficient_scope");
            assert_eq!(
                answer.header("www-authenticate"),
                Some(r#"Bearer error="insufficient_scope", scope="orders:write""#)
            );
            gateway
                .ask(dialect, method, "/orders/7")
                .bearer_auth(&writer)
                .answer()
                .await
                .assert_allowed();
        }
        // GET is not ruled: any valid token.
        gateway
            .with_token(dialect, "/orders/7", &reader)
            .await
            .assert_allowed();
    }
}

#[tokio::test]
async fn an_anonymous_prefix_passes_without_a_token_and_without_identity() {
    let env = Env::new().await;
    let gateway = env.gateway(with_rules).await;
    let token = env.token("user-1", json!({})).await;
    for dialect in DIALECTS {
        for path in ["/public", "/public/", "/public/page?x=1"] {
            let answer = gateway.ask(dialect, "GET", path).answer().await;
            answer.assert_allowed().assert_no_identity();
            // A token that is sent is verified: a valid one adds the identity...
            let answer = gateway.with_token(dialect, path, &token).await;
            answer.assert_allowed();
            assert_eq!(answer.header("x-auth-subject"), Some("user-1"));
            // ...an invalid one is refused.
            gateway
                .with_token(dialect, path, "x.y.z")
                .await
                .assert_401("invalid_token");
        }
        // A longer prefix takes a token again; a prefix is not a string prefix.
        for path in ["/public/private/x", "/publication"] {
            assert_eq!(
                gateway.ask(dialect, "GET", path).answer().await.status,
                401,
                "{path}"
            );
        }
    }
}
