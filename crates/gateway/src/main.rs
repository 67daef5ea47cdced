//! The gateway binary: a forward-auth server for nginx, Traefik, Caddy and Envoy, configured
//! from an optional TOML file and the environment (see the library's `Settings`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A forward-auth server that checks access tokens and their sessions with the verifier.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML file with settings; the environment overrides it.
    #[arg(long, env = "GATEWAY_CONFIG_FILE", global = true)]
    config: Option<PathBuf>,
    /// Check the settings (the rules, the header names, the verifier's) and exit, without
    /// connecting to anything.
    #[arg(long)]
    check: bool,
    /// What to do (default: serve).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Ask the running gateway on the configured listen address (loopback for 0.0.0.0,
    /// over TLS when it serves TLS) for `/healthz`; exit 0 on a 2xx, 1 otherwise. For
    /// container health checks in an image without curl.
    Healthcheck {
        /// The path to ask for (`/readyz` checks Redis too).
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => gateway::serve(settings).await,
        Command::Healthcheck { path } => {
            let status = service_kit::healthcheck::probe(
                settings.listen_addr,
                &path,
                &settings.tls,
                std::time::Duration::from_secs(5),
            )
            .await?;
            println!("{status}");
            Ok(())
        }
    }
}
