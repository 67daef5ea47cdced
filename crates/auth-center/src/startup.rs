//! Builds the application from a configuration: storage, domain, HTTP, listener.

mod serve;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use verifier::contract::{RedisConnection, RedisOptions, SessionKeys};
use verifier::{Clock, SystemClock};

use crate::config::Config;
use crate::domain::error::Chain;
use crate::domain::ports::{Database, RateLimitStore, SessionStore};
use crate::domain::{AuthService, confusables};
use crate::storage::rate_limit::{MemoryRateLimitStore, RedisRateLimitStore};
use crate::storage::sessions::{MemorySessionStore, RedisSessionStore};
use crate::storage::sql;

/// A built, bound, not yet serving auth-center.
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: axum::Router,
    auth: Arc<AuthService>,
}

impl Application {
    /// Builds with the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds with an injected clock (tests move time forward with a `ManualClock`).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        verifier::contract::install_crypto_provider();
        config.validate()?;
        let auth = Arc::new(auth_service(Arc::new(config), clock).await?);
        Self::with_service(auth).await
    }

    /// Serves an already-built domain service on its configured listen address. The
    /// composition seam for tests that wrap a store to inject a fault at a chosen point.
    pub async fn with_service(auth: Arc<AuthService>) -> anyhow::Result<Self> {
        spawn_key_reload(&auth);
        let addr = auth.config().listen_addr;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let port = listener.local_addr()?.port();
        let router = crate::http::router(auth.clone());
        Ok(Self {
            port,
            listener,
            router,
            auth,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The domain service (for the CLI and tests).
    pub fn auth(&self) -> Arc<AuthService> {
        self.auth.clone()
    }

    /// Serves until the future `shutdown` completes, then gives requests in flight
    /// `http.shutdown_grace` to finish and drops the connections still open. Slow and
    /// idle connections are closed on the `[http]` timeouts (see `startup/serve.rs`).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let http = self.auth.config().http.clone();
        serve::serve(self.listener, self.router, &http, shutdown).await
    }

    /// Serves until the process is asked to stop.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }
}

/// Picks up keys rotated by another instance sharing the database, and runs scheduled
/// rotation (`keys.rotate_every_days`).
fn spawn_key_reload(auth: &Arc<AuthService>) {
    let weak = Arc::downgrade(auth);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(KEY_RELOAD_INTERVAL).await;
            let Some(auth) = weak.upgrade() else { return };
            if let Err(e) = auth.maintain_keys().await {
                tracing::warn!(error = %Chain(&e), "could not reload or rotate signing keys");
            }
        }
    });
}

/// How often signing keys are re-read from the database.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(crate::domain::keys::KEY_RELOAD_SECS);

/// The SQL database of the configuration, migrated, with the username skeletons of older
/// rows filled in.
pub async fn connect_database(config: &Config) -> anyhow::Result<Arc<dyn Database>> {
    let db = sql::connect(
        &config.database_url,
        Duration::from_millis(config.timeouts.database_ms),
    )
    .await
    .context("cannot open the database (DATABASE_URL)")?;
    confusables::backfill_skeletons(db.as_ref())
        .await
        .context("cannot store the username skeletons of existing users")?;
    Ok(db)
}

/// The stores that live in Redis (or, with no Redis configured, in process memory).
pub struct RedisStores {
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Rate-limit counters.
    pub rate_limits: Arc<dyn RateLimitStore>,
}

/// The session and rate-limit stores of the configuration: Redis standalone, Redis
/// Cluster, Redis Sentinel or memory.
pub async fn connect_redis_stores(config: &Config) -> anyhow::Result<RedisStores> {
    let timeout = Duration::from_millis(config.timeouts.redis_ms);
    let options = RedisOptions {
        connect_timeout: timeout,
        response_timeout: timeout,
        ..RedisOptions::default()
    };
    let Some((target, options)) = config.redis_connection(options)? else {
        tracing::warn!(
            "NO REDIS CONFIGURED: sessions and rate limits are kept in this process's \
             memory. They are NOT shared with other instances or verifiers and are lost \
             on restart. Set REDIS_URL, REDIS_CLUSTER_URLS or REDIS_SENTINEL_URLS for \
             production."
        );
        return Ok(RedisStores {
            sessions: Arc::new(MemorySessionStore::new()),
            rate_limits: Arc::new(MemoryRateLimitStore::new()),
        });
    };
    let conn = RedisConnection::connect(&target, options)
        .await
        .context("cannot connect to Redis")?;
    Ok(RedisStores {
        sessions: Arc::new(
            RedisSessionStore::new(conn.clone(), SessionKeys::new(config.redis_prefix.clone()))
                .wait_for_replicas(
                    config.sessions.wait_replicas,
                    Duration::from_millis(config.sessions.wait_timeout_ms),
                ),
        ),
        rate_limits: Arc::new(RedisRateLimitStore::new(conn, &config.redis_prefix)),
    })
}

/// Builds the domain service on the configured stores.
pub async fn auth_service(
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AuthService> {
    let db = connect_database(&config).await?;
    let stores = connect_redis_stores(&config).await?;
    Ok(AuthService::new(config, db, stores.sessions, stores.rate_limits, clock).await?)
}
