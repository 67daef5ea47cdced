//! The demo-service binary: a small downstream service protected by the verifier, configured
//! from an optional TOML file and the environment (see the library's `Settings`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A small downstream service protected by the verifier.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML file with settings; the environment overrides it.
    #[arg(long, env = "DEMO_CONFIG_FILE", global = true)]
    config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Ask the running service on the configured listen address (loopback for 0.0.0.0,
    /// over TLS when it serves TLS) for `/healthz`; exit 0 on a 2xx, 1 otherwise.
    Healthcheck,
}

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    verifier::settings::init_logging();
    let settings = demo_service::Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => demo_service::serve(settings).await,
        Command::Healthcheck => {
            let status = service_kit::healthcheck::probe(
                settings.listen_addr,
                "/healthz",
                &settings.tls,
                std::time::Duration::from_secs(5),
            )
            .await?;
            println!("{status}");
            Ok(())
        }
    }
}
