//! Builds the application from a configuration: storage, domain, HTTP, listener.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use service_kit::Bound;
use service_kit::metrics::{Exporter, Registry};
use verifier::contract::{RedisConnection, RedisOptions, SessionKeys};
use verifier::{Clock, SystemClock};

use crate::config::Config;
use crate::domain::error::Chain;
use crate::domain::metrics::AuthMetrics;
use crate::domain::ports::{Database, RateLimitStore, SelftestStore, SessionStore};
use crate::domain::{AuthService, confusables};
use crate::storage::metered::{MeteredDatabase, MeteredRateLimits, MeteredSessions};
use crate::storage::rate_limit::{MemoryRateLimitStore, RedisRateLimitStore};
use crate::storage::selftest::RedisSelftestStore;
use crate::storage::sessions::{MemorySessionStore, RedisSessionStore};
use crate::storage::sql;

/// A built, bound, not yet serving auth-center.
pub struct Application {
    port: u16,
    bound: Bound,
    router: axum::Router,
    auth: Arc<AuthService>,
    exporter: Exporter,
}

impl Application {
    /// Builds with the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds with an injected clock (tests move time forward with a `ManualClock`). The
    /// application records its metrics in a registry of its own (several applications in
    /// one process, as in the API tests, each count only their own).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        verifier::contract::install_crypto_provider();
        config.validate()?;
        let registry = Registry::private();
        let auth = Arc::new(auth_service(Arc::new(config), clock, &registry).await?);
        Self::with_service(auth, registry).await
    }

    /// Serves an already-built domain service on its configured listen address, with the
    /// metrics of `registry` (the one its `AuthMetrics` were registered in). The
    /// composition seam for tests that wrap a store to inject a fault at a chosen point.
    pub async fn with_service(auth: Arc<AuthService>, registry: Registry) -> anyhow::Result<Self> {
        let config = auth.config();
        let exporter = Exporter::bind(registry, config.metrics_addr).await?;
        let bound = Bound::bind(config.listen_addr, &config.tls).await?;
        spawn_key_reload(&auth);
        spawn_selftest(&auth);
        let port = bound.local_addr()?.port();
        // The access log outermost: /metrics and the request metrics' time are inside it.
        let router = crate::http::access_log(auth.clone())
            .wrap(exporter.instrument(crate::http::router(auth.clone())));
        Ok(Self {
            port,
            bound,
            router,
            auth,
            exporter,
        })
    }

    /// The port of the separate metrics listener (`metrics_addr`), if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.exporter.metrics_addr().map(|a| a.port())
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the listener serves TLS (`https`) or plain HTTP (`http`).
    pub fn scheme(&self) -> &'static str {
        self.auth.config().tls.scheme()
    }

    /// The domain service (for the CLI and tests).
    pub fn auth(&self) -> Arc<AuthService> {
        self.auth.clone()
    }

    /// Serves until the future `shutdown` completes, then gives requests in flight
    /// `http.shutdown_grace` to finish and drops the connections still open. Slow and
    /// idle connections are closed on the `[http]` timeouts (see `service_kit::serve`).
    /// With `[tls]` set, connections are TLS and the certificate files are watched for a
    /// change while this runs.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let options = self.auth.config().http.serve_options();
        self.exporter
            .run(self.bound.serve(self.router, &options, shutdown))
            .await
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

/// Runs a revocation self-test round every `selftest.interval_secs` (the first one interval
/// after start), when it is enabled and sessions are in Redis.
fn spawn_selftest(auth: &Arc<AuthService>) {
    let settings = &auth.config().selftest;
    if !settings.enabled || !auth.has_selftest() {
        return;
    }
    let every = Duration::from_secs(settings.interval_secs);
    let weak = Arc::downgrade(auth);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(auth) = weak.upgrade() else { return };
            auth.scheduled_selftest().await;
        }
    });
}

/// How often signing keys are re-read from the database.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(crate::domain::keys::KEY_RELOAD_SECS);

/// The SQL database of the configuration, migrated, with the username skeletons of older
/// rows filled in.
pub async fn connect_database(config: &Config) -> anyhow::Result<Arc<dyn Database>> {
    let login_audit = if config.login_audit_sync {
        sql::LoginAudit::Synced
    } else {
        sql::LoginAudit::Unsynced
    };
    let db = sql::connect(
        &config.database_url,
        Duration::from_millis(config.timeouts.database_ms),
        login_audit,
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
    /// The revocation self-test's keys (with Redis only).
    pub selftest: Option<Arc<dyn SelftestStore>>,
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
            selftest: None,
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
        rate_limits: Arc::new(RedisRateLimitStore::new(conn.clone(), &config.redis_prefix)),
        selftest: Some(Arc::new(RedisSelftestStore::new(
            conn,
            &config.redis_prefix,
        ))),
    })
}

/// Builds the domain service on the configured stores, its metrics (and the stores') in
/// `registry`.
pub async fn auth_service(
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    registry: &Registry,
) -> anyhow::Result<AuthService> {
    let db: Arc<dyn Database> = Arc::new(MeteredDatabase::new(
        connect_database(&config).await?,
        registry,
    ));
    let mut stores = connect_redis_stores(&config).await?;
    if config.redis.target().is_some() {
        stores = RedisStores {
            sessions: Arc::new(MeteredSessions::new(stores.sessions, registry)),
            rate_limits: Arc::new(MeteredRateLimits::new(stores.rate_limits, registry)),
            selftest: stores.selftest,
        };
    }
    let metrics = registry.register(AuthMetrics::register);
    let auth = AuthService::new(
        config,
        db,
        stores.sessions,
        stores.rate_limits,
        clock,
        metrics,
    )
    .await?;
    Ok(match stores.selftest {
        Some(store) => auth.with_selftest(store),
        None => auth,
    })
}
