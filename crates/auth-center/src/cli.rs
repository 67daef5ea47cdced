//! The command line: `serve` (default), `migrate`, `user ...`, `client ...`,
//! `keys rotate|list`, `selftest revocation` and `passwords capacity`.

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
use crate::domain::hasher::{HashCapacity, measure_capacity};
use crate::domain::keys::{KEY_RELOAD_SECS, KeyRotation, KeyState, KeyStatus};
use crate::domain::metrics::RoundOutcome;
use crate::domain::selftest::{SelftestError, SelftestReport, VerifierResult};
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
    /// Check the running deployment.
    #[command(subcommand)]
    Selftest(SelftestCommand),
    /// Password hashing on this machine.
    #[command(subcommand)]
    Passwords(PasswordsCommand),
}

/// Password hashing subcommands.
#[derive(Debug, Subcommand)]
pub enum PasswordsCommand {
    /// Measure the raw Argon2id capacity of this machine with the configured parameters:
    /// as many threads as hashing slots, hashing directly (no HTTP, no queue, normal
    /// priority) for a few seconds. Prints hashes per second (the ceiling of logins per
    /// second), milliseconds per hash, the slots and the parameters.
    Capacity {
        /// How long to hash, seconds (1 to 600).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Self-test subcommands.
#[derive(Debug, Subcommand)]
pub enum SelftestCommand {
    /// Run one round of the revocation self-test against the configured Redis: a probe
    /// session that every verifier reporting in checks, then sees deleted. Prints each
    /// verifier's lag; exits non-zero when a verifier did not acknowledge or none reported
    /// in.
    Revocation {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
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
        Command::Selftest(SelftestCommand::Revocation { json }) => {
            let (text, passed) = selftest_revocation(config, json).await?;
            print!("{text}");
            if !passed {
                anyhow::bail!("the revocation self-test did not pass");
            }
        }
        Command::Passwords(PasswordsCommand::Capacity { seconds, json }) => {
            let passwords = config.passwords.clone();
            let capacity = tokio::task::spawn_blocking(move || {
                measure_capacity(&passwords, std::time::Duration::from_secs(seconds))
            })
            .await
            .context("the capacity measurement stopped")??;
            print!("{}", capacity_text(&capacity, json));
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

/// `selftest revocation`: one round (waiting its turn while another round holds the lock),
/// as a table or JSON, and whether every verifier that reported in acknowledged.
pub async fn selftest_revocation(config: Config, json: bool) -> anyhow::Result<(String, bool)> {
    let service = service(config).await?;
    let waiting = tokio::time::sleep(SELFTEST_BUSY_WAIT);
    tokio::pin!(waiting);
    let report = loop {
        match service.revocation_selftest().await {
            Err(SelftestError::Busy) if !waiting.is_elapsed() => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => break other?,
        }
    };
    let passed = report.outcome() == RoundOutcome::Ok;
    let text = if json {
        format!("{}\n", selftest_json(&report))
    } else {
        selftest_table(&report)
    };
    Ok((text, passed))
}

/// How long `selftest revocation` waits for another round to end.
const SELFTEST_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Milliseconds with µs precision.
fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn selftest_table(report: &SelftestReport) -> String {
    if report.verifiers.is_empty() {
        return "no verifier reported in (tracked-mode verifiers with the self-test on report \
                every second)\n"
            .into();
    }
    let width = report
        .verifiers
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(8);
    let mut out = format!(
        "{:<width$}  {:>10}  {:>10}  result\n",
        "instance", "lag ms", "± ms"
    );
    for (instance, result) in &report.verifiers {
        out += &match result {
            VerifierResult::Acked { lag, error_bound } => format!(
                "{instance:<width$}  {:>10.3}  {:>10.3}  refused\n",
                millis(*lag),
                millis(*error_bound)
            ),
            VerifierResult::NoAck => {
                format!(
                    "{instance:<width$}  {:>10}  {:>10}  NO ACK: armed, but did not report the deletion\n",
                    "-", "-"
                )
            }
            VerifierResult::NotArmed => {
                format!(
                    "{instance:<width$}  {:>10}  {:>10}  NOT ARMED: reported in, but did not check the probe\n",
                    "-", "-"
                )
            }
        };
    }
    out += "lag: from the deletion (Redis TIME) to the verifier's invalidation, an upper bound; \
            ±: how much too high it may be (the verifier's round trip to Redis)\n";
    out
}

fn selftest_json(report: &SelftestReport) -> serde_json::Value {
    let verifiers: Vec<serde_json::Value> = report
        .verifiers
        .iter()
        .map(|(instance, result)| match result {
            VerifierResult::Acked { lag, error_bound } => serde_json::json!({
                "instance": instance,
                "result": "acked",
                "lag_ms": millis(*lag),
                "error_bound_ms": millis(*error_bound),
            }),
            VerifierResult::NoAck => {
                serde_json::json!({"instance": instance, "result": "no_ack"})
            }
            VerifierResult::NotArmed => {
                serde_json::json!({"instance": instance, "result": "not_armed"})
            }
        })
        .collect();
    serde_json::json!({
        "started": rfc3339(report.started_ms),
        "outcome": report.outcome().label(),
        "verifiers": verifiers,
    })
}

/// `passwords capacity`'s output: one JSON object, or a few lines of text.
fn capacity_text(c: &HashCapacity, json: bool) -> String {
    if json {
        return format!(
            "{}\n",
            serde_json::json!({
                "slots": c.slots,
                "memory_kib": c.memory_kib,
                "iterations": c.iterations,
                "parallelism": c.parallelism,
                "seconds": c.seconds,
                "hashes": c.hashes,
                "hashes_per_second": c.hashes_per_second,
                "ms_per_hash": c.ms_per_hash,
            })
        );
    }
    format!(
        "argon2id m={} KiB, t={}, p={} on {} threads for {:.1} s\n\
         {:.1} hashes/s ({} hashes), {:.1} ms per hash\n",
        c.memory_kib,
        c.iterations,
        c.parallelism,
        c.slots,
        c.seconds,
        c.hashes_per_second,
        c.hashes,
        c.ms_per_hash
    )
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
