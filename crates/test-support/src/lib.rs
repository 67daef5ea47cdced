//! Test fixtures for the auth service: real, private Redis (standalone and a 3-master Redis
//! Cluster, with or without replicas) and PostgreSQL servers on free loopback ports. No mocks,
//! no Docker.
//!
//! * [`RedisServer`], [`RedisCluster`], [`Postgres`]: a private instance per fixture (each in
//!   its own temporary directory, server log included), for tests that stop/restart servers or
//!   need isolation. Dropping one shuts it down and removes its directory. A cluster with
//!   replicas ([`ClusterOptions`]) lets a test kill a master and wait for its replica to take
//!   over. [`RedisSentinel`]: a master, a replica and three sentinels, for a Sentinel
//!   failover.
//! * [`shared_redis_url`], [`shared_cluster_urls`], [`shared_postgres_url`]: instances shared by
//!   ordinary tests (the cluster has a replica per master). The `test-services` launcher
//!   (this crate's binary, run by `scripts/test.sh`) starts them once for the whole run and
//!   exports `TEST_REDIS_URL`, `TEST_REDIS_CLUSTER_URLS`, `TEST_DATABASE_URL` and
//!   `TEST_PG_BINDIR`; under a plain `cargo test` each test process starts its own.
//! * [`Service`]: the kinds of shared server, their variables and how they start: the one
//!   definition both of the above use.
//! * [`shared_tls`]: TLS servers shared by ordinary tests ([`TlsServers`]: a TLS-only Redis, one
//!   with mutual TLS, a TLS-only cluster, a Postgres over TLS only), with the files of the
//!   throwaway CA ([`TestPki`], made with rcgen) that signed their certificates.
//! * [`create_postgres_database`]: a fresh database per test.
//! * [`binary`]: a workspace binary run with a clean environment until it serves.
//! * [`Nginx`]: a private nginx (Debian's binary, never the system service) serving a
//!   configuration template on a free loopback port, for the forward-auth gateway's tests.
//! * [`Prometheus`]: a private Prometheus (Debian's binary, never the system service) with a
//!   configuration of the test's own on a free loopback port, for the monitoring tests;
//!   [`promtool_binary`] finds its `promtool`.
//! * [`DpopKey`]: a DPoP client's key pair that makes proofs (RFC 9449), and [`Tokens`], the
//!   auth-center's token response.
//!
//! Everything is synchronous (blocking); calling it from a `#[tokio::test]` is fine.
//!
//! Binaries: `redis-server` and `redis-cli` from `PATH`; the Postgres binaries from
//! `$TEST_PG_BINDIR`, `pg_config --bindir` or `/usr/lib/postgresql/*/bin`; `nginx` from `PATH` or
//! `/usr/sbin`; `prometheus` and `promtool` from `PATH` or `/usr/bin`. When running as
//! root, Postgres runs as the `postgres` user (via `runuser`).
//!
//! Every fixture is paired with a tiny watchdog process that kills its servers and removes its
//! directory if the test process dies without dropping the fixture (statics, `exit`, abort,
//! SIGKILL), so no server outlives the tests.

#![allow(clippy::disallowed_methods)] // fixtures wait on real servers in real time
#![warn(missing_docs)]

mod acl;
pub mod binary;
mod dpop;
mod foreground;
mod nginx;
mod postgres;
mod prometheus;
mod redis;
mod sentinel;
mod services;
mod shared;
mod tls;
mod tokens;
mod util;

pub use crate::acl::AclUser;
pub use crate::dpop::{DpopKey, access_token_hash};
pub use crate::nginx::{Nginx, nginx_binary};
pub use crate::postgres::{Postgres, create_postgres_database};
pub use crate::prometheus::{Prometheus, prometheus_binary, promtool_binary};
pub use crate::redis::{ClusterOptions, RedisCluster, RedisServer, SlotMove, session_checks_in};
pub use crate::sentinel::RedisSentinel;
pub use crate::services::{Running, Service, start_all};
pub use crate::shared::{
    SharedTls, shared_cluster_urls, shared_postgres_url, shared_redis_url, shared_tls,
};
pub use crate::tls::{TestPki, TlsServers};
pub use crate::tokens::{Tokens, decode_segment};
