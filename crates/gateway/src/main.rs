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
    /// Check the settings (the rules, the header names, the verifier's) and exit, without
    /// connecting to anything.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    verifier::settings::init_logging();
    let settings = gateway::Settings::load(cli.config.as_deref())?;
    if cli.check {
        println!("settings OK: {} rules", settings.rules.len());
        return Ok(());
    }
    gateway::serve(settings).await
}
