//! The demo-service binary: a small downstream service protected by the verifier, configured
//! from the environment (see the library's `Settings`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    demo_service::serve(demo_service::Settings::from_env()?).await
}
