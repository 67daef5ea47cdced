//! The demo-service binary: a small downstream service protected by the verifier, configured
//! from an optional TOML file and the environment (see the library's `Settings`).

use std::path::PathBuf;

use clap::Parser;

/// A small downstream service protected by the verifier.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML file with settings; the environment overrides it.
    #[arg(long, env = "DEMO_CONFIG_FILE")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    verifier::settings::init_logging();
    let settings = demo_service::Settings::load(cli.config.as_deref())?;
    demo_service::serve(settings).await
}
