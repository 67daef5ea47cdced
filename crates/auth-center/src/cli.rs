//! The command line: `serve` (default), `migrate`, `user create`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use verifier::SystemClock;

use crate::config::Config;
use crate::domain::AuthService;
use crate::startup::{Application, auth_service, connect_database};

/// auth-center: logins, access tokens, rotating refresh tokens, sessions in Redis.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// TOML configuration file (environment variables override it).
    #[arg(long, env = "AUTH_CONFIG_FILE", global = true)]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start signing with a new key; old public keys stay published until their tokens expire.
    Rotate,
    /// List the signing keys.
    List,
}

/// User subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from stdin (first line), never from argv.
    Create {
        /// Username.
        #[arg(long)]
        username: String,
        /// Give the user the `admin` role.
        #[arg(long)]
        admin: bool,
        /// Extra roles (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Replace a user's roles (ends the user's sessions so the change applies at once).
    SetRoles {
        /// Username.
        #[arg(long)]
        username: String,
        /// Roles (repeatable; none clears them).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Disable a user and end all of the user's sessions.
    Disable {
        /// Username.
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Username.
        #[arg(long)]
        username: String,
    },
    /// End every session of a user (force logout).
    RevokeSessions {
        /// Username.
        #[arg(long)]
        username: String,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    crate::telemetry::init(&config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            tracing::info!(port = app.port(), "auth-center listening");
            app.run_until(shutdown_signal()).await?;
        }
        Command::Migrate => {
            connect_database(&config).await?;
            println!("migrations applied");
        }
        Command::User(UserCommand::Create {
            username,
            admin,
            mut roles,
        }) => {
            if admin && !roles.iter().any(|r| r == "admin") {
                roles.push("admin".into());
            }
            let password = read_password()?;
            let user = service(config)
                .await?
                .create_user(&username, password, roles)
                .await?;
            println!(
                "created user {} ({}) with roles [{}]",
                user.username,
                user.id,
                user.roles.join(", ")
            );
        }
        Command::User(UserCommand::SetRoles { username, roles }) => {
            warn_if_sessions_are_in_memory(&config);
            let user = service(config)
                .await?
                .cli_update_user(&username, Some(roles), None)
                .await?;
            println!(
                "{} now has roles [{}]; their sessions were ended",
                user.username,
                user.roles.join(", ")
            );
        }
        Command::User(UserCommand::Disable { username }) => {
            warn_if_sessions_are_in_memory(&config);
            let user = service(config)
                .await?
                .cli_update_user(&username, None, Some(true))
                .await?;
            println!("{} is disabled; their sessions were ended", user.username);
        }
        Command::User(UserCommand::Enable { username }) => {
            let user = service(config)
                .await?
                .cli_update_user(&username, None, Some(false))
                .await?;
            println!("{} is enabled", user.username);
        }
        Command::User(UserCommand::RevokeSessions { username }) => {
            warn_if_sessions_are_in_memory(&config);
            let ended = service(config).await?.cli_force_logout(&username).await?;
            println!("{ended} sessions ended");
        }
        Command::Keys(KeysCommand::Rotate) => {
            let kid = service(config).await?.keys().rotate().await?;
            println!("now signing with key {kid}");
        }
        Command::Keys(KeysCommand::List) => {
            let auth = service(config).await?;
            let signing = auth.keys().signing_key().0;
            for key in auth.keys().stored_keys().await? {
                let state = match key.retired_ms {
                    None if key.kid == signing => "signing".to_string(),
                    None => "current".to_string(),
                    Some(ms) => format!("retired {}", crate::http::rfc3339(ms)),
                };
                println!(
                    "{}\t{}\tcreated {}\t{}",
                    key.kid,
                    key.alg,
                    crate::http::rfc3339(key.created_ms),
                    state
                );
            }
        }
    }
    Ok(())
}

/// Ending sessions from the CLI only works where the sessions are: in Redis.
fn warn_if_sessions_are_in_memory(config: &Config) {
    if config.redis_mode() == "in-memory" {
        eprintln!(
            "warning: no REDIS_URL/REDIS_CLUSTER_URLS set: sessions live in the running server's \
             memory, which this command cannot reach; use the admin API to end them"
        );
    }
}

async fn service(config: Config) -> anyhow::Result<AuthService> {
    auth_service(Arc::new(config), Arc::new(SystemClock)).await
}

fn read_password() -> anyhow::Result<SecretString> {
    let mut input = String::new();
    std::io::stdin()
        .read_line(&mut input)
        .context("reading the password from stdin")?;
    let line = input.strip_suffix('\n').unwrap_or(&input);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(SecretString::from(line.to_string()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
