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
    started(service).value().to_owned()
}

/// `service`, started once per test process.
fn started(service: Service) -> &'static Running {
    static STARTED: [OnceLock<Result<Running, String>>; Service::ALL.len()] =
        [const { OnceLock::new() }; Service::ALL.len()];
    let index = Service::ALL
        .iter()
        .position(|s| *s == service)
        .unwrap_or_default();
    match STARTED[index].get_or_init(|| service.start().map_err(|e| format!("{e:#}"))) {
        Ok(running) => running,
        Err(e) => panic!(
            "{var} is not set and starting a private {service} for this test process failed \
             (run the tests through scripts/test.sh, or set {var}): {e}",
            var = service.env_var()
        ),
    }
}

/// The TLS servers shared by the tests of a run ([`Service::Tls`]), and the files of the
/// throwaway CA that signed their certificates.
#[derive(Debug, Clone)]
pub struct SharedTls {
    /// `rediss://127.0.0.1:<port>`: a TLS-only Redis; a client certificate is optional.
    pub redis_url: String,
    /// `rediss://127.0.0.1:<port>`: a TLS-only Redis that demands a client certificate.
    pub redis_mtls_url: String,
    /// The 3 masters of a TLS-only Redis Cluster, `rediss://127.0.0.1:<port>` each.
    pub redis_cluster_urls: Vec<String>,
    /// Superuser URL of a Postgres that takes TCP connections over TLS only, with
    /// `sslmode=verify-full&sslrootcert=<ca file>`.
    pub database_url: String,
    /// The CA that signed the servers' and the client's certificates (PEM).
    pub ca_file: String,
    /// A CA that signed none of them.
    pub other_ca_file: String,
    /// A client certificate the servers accept (PEM).
    pub client_cert_file: String,
    /// Its private key (PEM, PKCS#8).
    pub client_key_file: String,
}

/// The TLS servers shared by ordinary tests: from the `TEST_REDIS_TLS_URL` family of
/// variables (set by `scripts/test.sh`), or else a private [`crate::TlsServers`] started once
/// per test process.
///
/// # Panics
/// If `TEST_REDIS_TLS_URL` is set and another variable of the family is not, or if it is unset
/// and the private servers cannot be started.
pub fn shared_tls() -> SharedTls {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    // All of them from the launcher, or none: a private set of servers.
    let private = set("TEST_REDIS_TLS_URL")
        .is_none()
        .then(|| started(Service::Tls));
    let get = |name: &str| -> String {
        match private {
            None => set(name).unwrap_or_else(|| panic!("TEST_REDIS_TLS_URL is set, {name} is not")),
            Some(running) => running
                .env()
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        }
    };
    SharedTls {
        redis_url: get("TEST_REDIS_TLS_URL"),
        redis_mtls_url: get("TEST_REDIS_MTLS_URL"),
        redis_cluster_urls: get("TEST_REDIS_TLS_CLUSTER_URLS")
            .split(',')
            .map(str::to_owned)
            .collect(),
        database_url: get("TEST_DATABASE_TLS_URL"),
        ca_file: get("TEST_TLS_CA_FILE"),
        other_ca_file: get("TEST_TLS_OTHER_CA_FILE"),
        client_cert_file: get("TEST_TLS_CLIENT_CERT_FILE"),
        client_key_file: get("TEST_TLS_CLIENT_KEY_FILE"),
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
