//! Instances shared by all tests of a test run.

use std::sync::OnceLock;

use crate::{ClusterOptions, Postgres, RedisCluster, RedisServer};

/// A shared instance: kept alive in a static for the rest of the test process (statics are
/// never dropped; the fixture's watchdog shuts it down when the process exits).
type Shared<T> = OnceLock<Result<(T, Vec<String>), String>>;

fn from_env(var: &str) -> Option<Vec<String>> {
    let value = std::env::var(var).ok()?;
    let urls: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!urls.is_empty()).then_some(urls)
}

fn get_or_start<T>(
    cell: &'static Shared<T>,
    var: &str,
    what: &str,
    start: impl FnOnce() -> anyhow::Result<(T, Vec<String>)>,
) -> Vec<String> {
    if let Some(urls) = from_env(var) {
        return urls;
    }
    match cell.get_or_init(|| start().map_err(|e| format!("{e:#}"))) {
        Ok((_, urls)) => urls.clone(),
        Err(e) => panic!(
            "{var} is not set and starting a private {what} for this test process failed \
             (run the tests through scripts/test.sh, or set {var}): {e}"
        ),
    }
}

/// URL of the Redis server shared by ordinary tests: `$TEST_REDIS_URL` (set by
/// `scripts/test.sh`), or else a private [`RedisServer`] started once per test process and shut
/// down when the process exits.
///
/// Tests sharing it must not step on each other: use unique key prefixes (and no `FLUSHALL`).
///
/// # Panics
/// If `TEST_REDIS_URL` is unset and the private server cannot be started.
pub fn shared_redis_url() -> String {
    static CELL: Shared<RedisServer> = OnceLock::new();
    let urls = get_or_start(&CELL, "TEST_REDIS_URL", "redis-server", || {
        let server = RedisServer::start()?;
        let url = server.url();
        Ok((server, vec![url]))
    });
    urls.into_iter().next().unwrap_or_default()
}

/// URLs (one per master) of the Redis Cluster shared by ordinary tests, 3 masters with one
/// replica each: `$TEST_REDIS_CLUSTER_URLS` (comma-separated, set by `scripts/test.sh`), or else
/// a private [`RedisCluster`] ([`ClusterOptions::WITH_REPLICAS`]) started once per test process
/// and shut down when the process exits.
///
/// # Panics
/// If `TEST_REDIS_CLUSTER_URLS` is unset and the private cluster cannot be started.
pub fn shared_cluster_urls() -> Vec<String> {
    static CELL: Shared<RedisCluster> = OnceLock::new();
    get_or_start(&CELL, "TEST_REDIS_CLUSTER_URLS", "Redis Cluster", || {
        let cluster = RedisCluster::start_with(ClusterOptions::WITH_REPLICAS)?;
        let urls = cluster.urls();
        Ok((cluster, urls))
    })
}

/// Superuser ("admin") URL of the Postgres server shared by ordinary tests:
/// `$TEST_DATABASE_URL` (set by `scripts/test.sh`), or else a private [`Postgres`] started once
/// per test process and shut down when the process exits. Tests should not use its `postgres`
/// database directly but call [`crate::create_postgres_database`] with it.
///
/// # Panics
/// If `TEST_DATABASE_URL` is unset and the private server cannot be started.
pub fn shared_postgres_url() -> String {
    static CELL: Shared<Postgres> = OnceLock::new();
    let urls = get_or_start(&CELL, "TEST_DATABASE_URL", "Postgres", || {
        let pg = Postgres::start()?;
        let url = pg.admin_url();
        Ok((pg, vec![url]))
    });
    urls.into_iter().next().unwrap_or_default()
}
