//! Every response carries `X-Content-Type-Options: nosniff`, whatever answered it: a
//! handler, an error, a fallback, a rejected body, the metrics endpoint.

use reqwest::Method;
use serde_json::json;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        every_response_says_nosniff,
        made_up_methods_do_not_grow_the_metrics,
        unmatched_paths_share_one_metrics_series,
        no_v1_answer_may_be_stored_by_a_cache,
    ],
}

async fn every_response_says_nosniff(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("nosy").await;
    let mut responses = vec![
        app.me(&tokens.access_token).await,
        app.me("garbage").await,
        app.login("nosy", "wrong password").await,
        app.post_raw("/v1/login", "application/json", "{not json")
            .await,
        app.post_raw("/v1/login", "text/plain", "x").await,
        app.post_json("/v1/login", &json!({"username": "x"})).await,
        app.refresh("garbage").await,
    ];
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/readyz"),
        (Method::GET, "/metrics"),
        (Method::GET, "/.well-known/jwks.json"),
        (Method::GET, "/.well-known/oauth-authorization-server"),
        (Method::GET, "/.well-known/openid-configuration"),
        (Method::POST, "/oauth2/token"),
        (Method::POST, "/oauth2/revoke"),
        (Method::GET, "/no/such/route"),
        (Method::DELETE, "/v1/login"),
        (Method::OPTIONS, "/v1/login"),
    ] {
        responses.push(app.request(method, path).send().await.unwrap());
    }
    for response in responses {
        assert_eq!(
            response
                .headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{} {}",
            response.status(),
            response.url()
        );
    }
}

async fn made_up_methods_do_not_grow_the_metrics(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..20 {
        let method = Method::from_bytes(format!("XYZZY{i}").as_bytes()).unwrap();
        let r = app.request(method, "/healthz").send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    }
    let metrics = app.metrics_text().await;
    assert!(!metrics.contains("XYZZY"), "{metrics}");
    assert!(
        metrics.contains(r#"method="OTHER",route="/healthz",status="405"} 20"#),
        "{metrics}"
    );
}

async fn unmatched_paths_share_one_metrics_series(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..5 {
        app.request(Method::GET, &format!("/no/such/{i}"))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.metrics_text().await;
    assert!(!metrics.contains("/no/such"), "{metrics}");
}

async fn no_v1_answer_may_be_stored_by_a_cache(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_login("cacher").await;
    for path in [
        "/v1/me",
        "/v1/sessions",
        "/v1/admin/users",
        "/v1/admin/audit",
    ] {
        let r = app.get_bearer(path, &admin.access_token).await;
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    let r = app.me("garbage").await;
    assert_eq!(r.headers()["cache-control"], "no-store", "errors too");
}
