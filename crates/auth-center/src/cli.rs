//! The command line: `serve` (default), `migrate`, `user ...` and `keys rotate|list`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use verifier::SystemClock;

use crate::config::Config;
use crate::domain::AuthService;
use crate::domain::keys::{KEY_RELOAD_SECS, KeyRotation, KeyState, KeyStatus};
use crate::http::rfc3339;
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
    /// Publish a new key now; it signs after `keys.publish_delay_secs`, by when every
    /// verifier has it. Old public keys stay published until their tokens expire.
    Rotate {
        /// Sign with the new key at once (emergency). Verifiers that cached the JWKS refuse
        /// new tokens until they refetch it (the project's verifier does on the unknown kid).
        #[arg(long)]
        now: bool,
        /// With --now: also withdraw every earlier key from the JWKS at once (key
        /// compromise). Their access tokens fail; clients must refresh.
        #[arg(long, requires = "now")]
        revoke_previous: bool,
    },
    /// List the signing keys and their states.
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
    crate::telemetry::init(config.log_format);
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
        Command::Keys(KeysCommand::Rotate {
            now,
            revoke_previous,
        }) => {
            let rotation = match (now, revoke_previous) {
                (_, true) => KeyRotation::RevokePrevious,
                (true, false) => KeyRotation::Immediate,
                (false, false) => KeyRotation::Delayed,
            };
            let key = service(config).await?.keys().rotate(rotation).await?;
            match rotation {
                KeyRotation::Delayed => println!(
                    "published key {}; it signs from {} (running servers publish it within \
                     {KEY_RELOAD_SECS} s)",
                    key.kid,
                    rfc3339(key.activates_ms)
                ),
                KeyRotation::Immediate => println!(
                    "now signing with key {} (running servers switch within {KEY_RELOAD_SECS} s); \
                     verifiers refuse new tokens until they refetch the JWKS",
                    key.kid
                ),
                KeyRotation::RevokePrevious => println!(
                    "now signing with key {} (running servers switch within {KEY_RELOAD_SECS} s); \
                     every earlier key is revoked: their tokens fail and clients must refresh",
                    key.kid
                ),
            }
        }
        Command::Keys(KeysCommand::List) => {
            for key in service(config).await?.keys().statuses().await? {
                println!(
                    "{}\t{}\tcreated {}\t{}",
                    key.kid,
                    key.alg,
                    rfc3339(key.created_ms),
                    describe_state(&key)
                );
            }
        }
    }
    Ok(())
}

/// A key's state for `keys list`, with the times that matter in it.
fn describe_state(key: &KeyStatus) -> String {
    let at = |ms: Option<i64>| ms.map(rfc3339).unwrap_or_default();
    match key.state {
        KeyState::Pending => format!("pending, signs from {}", rfc3339(key.activates_ms)),
        KeyState::Signing => match key.retires_ms {
            Some(until) => format!(
                "signing since {}, until {}",
                rfc3339(key.activates_ms),
                rfc3339(until)
            ),
            None => format!("signing since {}", rfc3339(key.activates_ms)),
        },
        KeyState::Retired => format!(
            "retired {}, published until {}",
            at(key.retires_ms),
            at(key.unpublished_ms)
        ),
        KeyState::Unpublished => format!(
            "retired {}, unpublished {}",
            at(key.retires_ms),
            at(key.unpublished_ms)
        ),
        KeyState::Revoked => format!("revoked {}", at(key.revoked_ms)),
    }
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
