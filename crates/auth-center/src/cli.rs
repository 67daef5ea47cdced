//! The command line: `serve` (default), `migrate`, `user ...`, `client ...` and
//! `keys rotate|list`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use verifier::SystemClock;

use crate::config::Config;
use crate::domain::AuthService;
use crate::domain::admin::cli_actor;
use crate::domain::clients::{ClientView, ClientWithSecret, NewClient};
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
    /// Ask the running server on the configured listen address (loopback for 0.0.0.0,
    /// over TLS when it serves TLS) for `/healthz`; exit 0 on a 2xx, 1 otherwise. For
    /// container health checks in an image without curl.
    Healthcheck {
        /// The path to ask for (`/readyz` checks the stores too).
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API (as `/openapi.json` serves it) and
    /// exit: for generating a client without a running server.
    Openapi,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage registered OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
}

/// Client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client. A confidential client without --jwks-file gets a secret, printed
    /// once.
    Create {
        /// The client_id: 1 to 64 of A-Z a-z 0-9 _ -, not a UUID.
        #[arg(long)]
        id: String,
        /// What it is, for people (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// A public client (no secret): an app that cannot keep one.
        #[arg(long)]
        public: bool,
        /// A role its tokens carry (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A scope it may receive (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// It may introspect tokens.
        #[arg(long)]
        introspect: bool,
        /// A JSON file with its public keys (a JWK Set): it authenticates with
        /// private_key_jwt instead of a secret.
        #[arg(long)]
        jwks_file: Option<PathBuf>,
        /// A redirect URI of a public client (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A browser origin of a public client (repeatable).
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
    /// List the registered clients.
    List,
    /// Give a confidential client a new secret (printed once) in place of its secret or
    /// keys, and end its tokens.
    RotateSecret {
        /// The client_id.
        #[arg(long)]
        id: String,
    },
    /// Replace a confidential client's secret or keys with the public keys of a JWK Set
    /// file, and end its tokens.
    SetKeys {
        /// The client_id.
        #[arg(long)]
        id: String,
        /// A JSON file with the public keys (a JWK Set).
        #[arg(long)]
        jwks_file: PathBuf,
    },
    /// Disable a client and end its tokens.
    Disable {
        /// The client_id.
        #[arg(long)]
        id: String,
    },
    /// Enable a disabled client.
    Enable {
        /// The client_id.
        #[arg(long)]
        id: String,
    },
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
            tracing::info!(
                port = app.port(),
                scheme = app.scheme(),
                "auth-center listening"
            );
            app.run_until(service_kit::shutdown_signal()).await?;
        }
        Command::Healthcheck { path } => {
            let status = service_kit::healthcheck::probe(
                config.listen_addr,
                &path,
                &config.tls,
                HEALTHCHECK_TIMEOUT,
            )
            .await?;
            println!("{status}");
        }
        Command::Openapi => {
            println!("{:#}", crate::http::openapi_document(&config.issuer));
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
        Command::Client(command) => run_client_command(config, command).await?,
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

/// `client ...`: the admin use cases, with the actor `cli`.
async fn run_client_command(config: Config, command: ClientCommand) -> anyhow::Result<()> {
    let (admin, nobody) = (cli_actor(), crate::domain::ClientInfo::default());
    match command {
        ClientCommand::Create {
            id,
            name,
            public,
            roles,
            scopes,
            introspect,
            jwks_file,
            redirect_uris,
            origins,
        } => {
            let new = NewClient {
                id,
                name,
                public,
                roles,
                scopes,
                jwks: jwks_file.as_deref().map(read_jwks).transpose()?,
                introspect,
                redirect_uris,
                allowed_origins: origins,
            };
            let made = service(config)
                .await?
                .admin_create_client(&admin, new, &nobody)
                .await?;
            print_made("created", &made);
        }
        ClientCommand::List => {
            for client in service(config).await?.admin_list_clients(&admin).await? {
                println!("{}", describe_client(&client));
            }
        }
        ClientCommand::RotateSecret { id } => {
            warn_if_sessions_are_in_memory(&config);
            let made = service(config)
                .await?
                .admin_rotate_client_secret(&admin, &id, &nobody)
                .await?;
            print_made("new secret for", &made);
        }
        ClientCommand::SetKeys { id, jwks_file } => {
            warn_if_sessions_are_in_memory(&config);
            let jwks = read_jwks(&jwks_file)?;
            let client = service(config)
                .await?
                .admin_set_client_keys(&admin, &id, &jwks, &nobody)
                .await?;
            println!("{}; its tokens were ended", describe_client(&client));
        }
        ClientCommand::Disable { id } => {
            warn_if_sessions_are_in_memory(&config);
            let client = service(config)
                .await?
                .admin_set_client_disabled(&admin, &id, true, &nobody)
                .await?;
            println!("{}; its tokens were ended", describe_client(&client));
        }
        ClientCommand::Enable { id } => {
            let client = service(config)
                .await?
                .admin_set_client_disabled(&admin, &id, false, &nobody)
                .await?;
            println!("{}", describe_client(&client));
        }
    }
    Ok(())
}

/// A JWK Set from a JSON file.
fn read_jwks(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the JWK Set {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// A client on one line: id, type, methods, state, roles and scopes.
fn describe_client(c: &ClientView) -> String {
    format!(
        "{}\t{}\t{}\t{}\troles [{}]\tscopes [{}]{}",
        c.id,
        c.kind.as_str(),
        c.auth_methods.join(","),
        if c.disabled { "disabled" } else { "enabled" },
        c.roles.join(","),
        c.scopes.join(" "),
        if c.introspect { "\tintrospect" } else { "" },
    )
}

/// A client just made, and its secret: printed once, never again.
fn print_made(what: &str, made: &ClientWithSecret) {
    println!("{what} {}", describe_client(&made.client));
    if let Some(secret) = &made.secret {
        println!(
            "client_secret: {}",
            secrecy::ExposeSecret::expose_secret(secret)
        );
        eprintln!("store the secret now: it is not shown again");
    }
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
            "warning: no REDIS_URL/REDIS_CLUSTER_URLS/REDIS_SENTINEL_URLS set: sessions live in the running server's \
             memory, which this command cannot reach; use the admin API to end them"
        );
    }
}

async fn service(config: Config) -> anyhow::Result<AuthService> {
    let registry = service_kit::metrics::Registry::private();
    auth_service(Arc::new(config), Arc::new(SystemClock), &registry).await
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

/// How long `healthcheck` waits for the answer.
const HEALTHCHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
