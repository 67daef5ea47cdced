//! The shared test services: what each one is called, which variables announce it to the
//! tests, what it needs installed and how it starts. The `test-services` launcher (used by
//! `scripts/test.sh`) and the per-process fallback of [`crate::shared_redis_url`] and its
//! siblings both start services through [`Service::start`], so there is one way to start them.
//!
//! A new kind of shared server (Sentinel, ...) is one more
//! [`Service`] variant with its variable, its check and its start.

use std::any::Any;
use std::fmt;
use std::process::Command;
use std::thread;

use anyhow::{Context, Result, anyhow, bail};

use crate::postgres::{self, pg_bindir};
use crate::util;
use crate::{ClusterOptions, Postgres, RedisCluster, RedisServer, TlsServers};

/// One kind of server shared by the tests of a run.
///
/// ```
/// use test_support::Service;
/// assert_eq!(Service::parse("redis-cluster"), Some(Service::RedisCluster));
/// assert_eq!(Service::RedisCluster.env_var(), "TEST_REDIS_CLUSTER_URLS");
/// assert_eq!(Service::ALL.len(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// A standalone Redis ([`RedisServer`]): `TEST_REDIS_URL`.
    Redis,
    /// A Redis Cluster of 3 masters with one replica each
    /// ([`ClusterOptions::WITH_REPLICAS`]): `TEST_REDIS_CLUSTER_URLS`, the masters' URLs,
    /// comma-separated.
    RedisCluster,
    /// A PostgreSQL server ([`Postgres`]): `TEST_DATABASE_URL`, the superuser URL, and
    /// `TEST_PG_BINDIR`, the directory of its binaries.
    Postgres,
    /// TLS servers with the certificates of a throwaway CA ([`crate::TlsServers`]):
    /// `TEST_REDIS_TLS_URL` (a TLS-only Redis, client certificate optional),
    /// `TEST_REDIS_MTLS_URL` (client certificate required), `TEST_REDIS_TLS_CLUSTER_URLS` (a
    /// TLS-only cluster of 3 masters), `TEST_DATABASE_TLS_URL` (a
    /// Postgres over TLS only, superuser URL with `sslmode=verify-full` and `sslrootcert`),
    /// `TEST_TLS_CA_FILE`, `TEST_TLS_OTHER_CA_FILE` (a CA that signed nothing here),
    /// `TEST_TLS_CLIENT_CERT_FILE` and `TEST_TLS_CLIENT_KEY_FILE`.
    Tls,
}

impl Service {
    /// Every service, in the order the launcher reports them.
    pub const ALL: [Service; 4] = [
        Service::Redis,
        Service::RedisCluster,
        Service::Postgres,
        Service::Tls,
    ];

    /// The service's name on the launcher's command line: `redis`, `redis-cluster`,
    /// `postgres`, `tls`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Redis => "redis",
            Service::RedisCluster => "redis-cluster",
            Service::Postgres => "postgres",
            Service::Tls => "tls",
        }
    }

    /// The service called `name` (see [`Service::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The variable through which the tests find the service. When it is set, the
    /// `shared_*` functions use it instead of starting a server of their own.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Redis => "TEST_REDIS_URL",
            Service::RedisCluster => "TEST_REDIS_CLUSTER_URLS",
            Service::Postgres => "TEST_DATABASE_URL",
            Service::Tls => "TEST_REDIS_TLS_URL",
        }
    }

    /// Whether what the service needs is installed: its binaries and, when running as root,
    /// the user it runs as. The error says what is missing.
    pub fn check(self) -> Result<()> {
        match self {
            Service::Redis => require_on_path(&["redis-server"]),
            Service::RedisCluster => require_on_path(&["redis-server", "redis-cli"]),
            Service::Postgres | Service::Tls => {
                if self == Service::Tls {
                    require_on_path(&["redis-server", "redis-cli"])?;
                }
                pg_bindir()?;
                if util::is_root() {
                    postgres::postgres_user_ids()?;
                    require_on_path(&["runuser"]).context(
                        "running as root, Postgres must run as the postgres user, through runuser",
                    )?;
                }
                Ok(())
            }
        }
    }

    /// Starts a private instance of the service. It runs until the returned value is
    /// dropped (or, should this process die first, until its watchdog notices).
    pub fn start(self) -> Result<Running> {
        let started = match self {
            Service::Redis => {
                let server = RedisServer::start()?;
                let url = server.url();
                Running::new(self, server, vec![(self.env_var(), url)], String::new())
            }
            Service::RedisCluster => {
                let cluster = RedisCluster::start_with(ClusterOptions::WITH_REPLICAS)?;
                let masters = cluster.ports().len();
                let replicas = cluster.all_ports().len() - masters;
                let note = format!("{masters} masters, {replicas} replicas");
                let urls = cluster.urls().join(",");
                Running::new(self, cluster, vec![(self.env_var(), urls)], note)
            }
            Service::Postgres => {
                let pg = Postgres::start()?;
                let bindir = pg_bindir()?;
                let version = postgres_version(&bindir.join("postgres"));
                let note = if util::is_root() {
                    format!("{version}, as user postgres")
                } else {
                    version
                };
                let env = vec![
                    (self.env_var(), pg.admin_url()),
                    ("TEST_PG_BINDIR", bindir.display().to_string()),
                ];
                Running::new(self, pg, env, note)
            }
            Service::Tls => {
                let servers = TlsServers::start()?;
                let env = servers.env();
                let note = "TLS-only Redis, Redis with mutual TLS, Redis Cluster of 3 masters, \
                            Postgres over TLS"
                    .to_owned();
                Running::new(self, servers, env, note)
            }
        };
        Ok(started)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A started [`Service`]: its server runs as long as this value lives.
pub struct Running {
    service: Service,
    env: Vec<(&'static str, String)>,
    note: String,
    /// The fixture; dropping it stops the server.
    _server: Box<dyn Any + Send + Sync>,
}

impl Running {
    fn new(
        service: Service,
        server: impl Any + Send + Sync,
        env: Vec<(&'static str, String)>,
        note: String,
    ) -> Self {
        Self {
            service,
            env,
            note,
            _server: Box::new(server),
        }
    }

    /// Which service this is.
    pub fn service(&self) -> Service {
        self.service
    }

    /// The variables that announce the service to the tests, its
    /// [`Service::env_var`] first.
    pub fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }

    /// The value of [`Service::env_var`]: the URL (or comma-separated URLs).
    pub fn value(&self) -> &str {
        self.env.first().map_or("", |(_, value)| value.as_str())
    }

    /// A line for people: the variable, its value and what runs behind it.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{:<14} {}={}",
            self.service,
            self.service.env_var(),
            self.value()
        );
        if !self.note.is_empty() {
            line.push_str(&format!(" ({})", self.note));
        }
        line
    }
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("service", &self.service)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// Starts `services` at the same time; returns them in the same order once all of them
/// run. If one fails, the ones that started are stopped again and the errors are returned.
pub fn start_all(services: &[Service]) -> Result<Vec<Running>> {
    let results: Vec<Result<Running>> = thread::scope(|scope| {
        let handles: Vec<_> = services
            .iter()
            .map(|&service| (service, scope.spawn(move || service.start())))
            .collect();
        handles
            .into_iter()
            .map(|(service, handle)| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("starting it panicked")))
                    .with_context(|| format!("could not start the {service} service"))
            })
            .collect()
    });
    let mut errors = Vec::new();
    let mut running = Vec::new();
    for result in results {
        match result {
            Ok(service) => running.push(service),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        drop(running);
        bail!("{}", errors.join("\n"));
    }
    Ok(running)
}

fn require_on_path(binaries: &[&str]) -> Result<()> {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|b| !util::on_path(b))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        bail!("not found on PATH: {}", missing.join(", "))
    }
}

/// `postgres --version`, e.g. `postgres (PostgreSQL) 15.14`.
fn postgres_version(postgres: &std::path::Path) -> String {
    Command::new(postgres)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("version unknown: {e}"))
}
