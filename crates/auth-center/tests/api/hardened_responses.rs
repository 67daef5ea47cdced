//! Every response carries `X-Content-Type-Options: nosniff`, whatever answered it: a
//! handler, an error, a fallback, a rejected body, the metrics endpoint.

use reqwest::Method;
use serde_json::json;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [every_response_says_nosniff],
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
        (Method::GET, "/.well-known/openid-configuration"),
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
