//! The gateway binary: a forward-auth server for nginx, Traefik, Caddy and Envoy, configured
//! from an optional TOML file and the environment (see the library's `Settings`).

use std::path::PathBuf;

use clap::Parser;

/// A forward-auth server that checks access tokens and their sessions with the verifier.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML file with settings; the environment overrides it.
    #[arg(long, env = "GATEWAY_CONFIG_FILE")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let settings = gateway::Settings::load(cli.config.as_deref())?;
    gateway::serve(settings).await
}
