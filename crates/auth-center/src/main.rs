use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    auth_center::cli::run(auth_center::cli::Cli::parse()).await
}
