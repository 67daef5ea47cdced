//! A fresh axum service protected by the verifier: the example of docs/verifier.md, kept
//! here so that it always compiles. Run it next to an auth-center and a Redis with
//! `cargo run -p verifier --example axum_service`.

use axum::{Router, routing::get};
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
    let app = Router::new()
        .route(
            "/admin",
            get(|| async { "secret" }).route_layer(require_role("admin")),
        )
        .route("/me", get(me))
        .route_layer(VerifierLayer::new(verifier)) // covers the routes above it
        .route("/healthz", get(|| async { "ok" })); // added after: public
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
