//! The auth-center binary: parses the command line and runs `serve` (the default) or a CLI
//! command. Everything else is in the library (`auth_center`).

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    auth_center::cli::run(auth_center::cli::Cli::parse()).await
}
