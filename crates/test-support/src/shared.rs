//! Instances shared by all tests of a test run.

use std::sync::OnceLock;

use crate::services::{Running, Service};

/// The value announcing `service`: its variable (set by the `test-services` launcher that
/// `scripts/test.sh` runs), or else an instance started once per test process. Such an
/// instance is kept in a static for the rest of the process (statics are never dropped; its
/// watchdog stops it when the process exits).
fn shared(service: Service) -> String {
    if let Ok(value) = std::env::var(service.env_var())
        && !value.trim().is_empty()
    {
        return value.trim().to_owned();
    }
    static STARTED: [OnceLock<Result<Running, String>>; Service::ALL.len()] =
        [const { OnceLock::new() }; Service::ALL.len()];
    let index = Service::ALL
        .iter()
        .position(|s| *s == service)
        .unwrap_or_default();
    match STARTED[index].get_or_init(|| service.start().map_err(|e| format!("{e:#}"))) {
        Ok(running) => running.value().to_owned(),
        Err(e) => panic!(
            "{var} is not set and starting a private {service} for this test process failed \
             (run the tests through scripts/test.sh, or set {var}): {e}",
            var = service.env_var()
        ),
    }
}

/// URL of the Redis server shared by ordinary tests: `$TEST_REDIS_URL` (set by
/// `scripts/test.sh`), or else a private [`crate::RedisServer`] started once per test process
/// and shut down when the process exits.
///
/// Tests sharing it must not step on each other: use unique key prefixes (and no `FLUSHALL`).
///
/// # Panics
/// If `TEST_REDIS_URL` is unset and the private server cannot be started.
pub fn shared_redis_url() -> String {
    shared(Service::Redis)
}

/// URLs (one per master) of the Redis Cluster shared by ordinary tests, 3 masters with one
/// replica each: `$TEST_REDIS_CLUSTER_URLS` (comma-separated, set by `scripts/test.sh`), or
/// else a private [`crate::RedisCluster`] ([`crate::ClusterOptions::WITH_REPLICAS`]) started
/// once per test process and shut down when the process exits.
///
/// # Panics
/// If `TEST_REDIS_CLUSTER_URLS` is unset and the private cluster cannot be started.
pub fn shared_cluster_urls() -> Vec<String> {
    shared(Service::RedisCluster)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Superuser ("admin") URL of the Postgres server shared by ordinary tests:
/// `$TEST_DATABASE_URL` (set by `scripts/test.sh`), or else a private [`crate::Postgres`]
/// started once per test process and shut down when the process exits. Tests should not use
/// its `postgres` database directly but call [`crate::create_postgres_database`] with it.
///
/// # Panics
/// If `TEST_DATABASE_URL` is unset and the private server cannot be started.
pub fn shared_postgres_url() -> String {
    shared(Service::Postgres)
}
