//! A fresh axum service protected by the verifier: the example of docs/verifier.md, kept
//! here so that it always compiles. Run it next to an auth-center and a Redis with
//! `cargo run -p verifier --example axum_service`.

use axum::{Router, extract::Request, routing::get};
use tower_layer::Layer as _; // the `tower-layer` crate, or `tower::Layer`
use verifier::{Authenticated, RedisTarget, Verifier, VerifierLayer, require_role};

async fn me(user: Authenticated) -> String {
    format!("hello {}", user.sub)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let verifier = Verifier::builder()
        .issuer("https://auth.example.com") // the auth-center's AUTH_ISSUER
        .audience("api")
        .jwks_url("https://auth.example.com/.well-known/jwks.json")
        .redis(RedisTarget::Standalone("redis://127.0.0.1:6379".into()))
        .key_prefix("auth") // the auth-center's AUTH_REDIS_PREFIX
        .build()
        .await?;
    let router = Router::new()
        .route(
            "/admin",
            get(|| async { "secret" }).route_layer(require_role("admin")),
        )
        .route("/me", get(me))
        .route("/healthz", get(|| async { "ok" }));
    // Around the whole router: every path needs a token but the public ones (GET and HEAD
    // on exactly these paths), also a route added later.
    let service = VerifierLayer::new(verifier)
        .public_paths(["/healthz"])
        .layer(router);
    let app = axum::ServiceExt::<Request>::into_make_service(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
