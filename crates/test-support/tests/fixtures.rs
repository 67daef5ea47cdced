//! The fixtures against the real servers: start, use through the official CLIs, stop, restart.

#![allow(clippy::disallowed_methods)] // fixtures wait on real servers in real time

use std::collections::HashSet;
use std::io::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use test_support::{
    ClusterOptions, Postgres, RedisCluster, RedisServer, create_postgres_database,
    shared_cluster_urls, shared_postgres_url, shared_redis_url,
};

/// Runs a command and returns its trimmed stdout; fails on a non-zero exit.
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn redis_cli(port: u16, args: &[&str]) -> Result<String> {
    output(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
    )
}

/// `commands`, one per line, on one connection (`redis-cli` reads them from its input):
/// its answers, one per line.
fn redis_cli_one_connection(port: u16, commands: &[&str]) -> Result<String> {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running redis-cli")?;
    child
        .stdin
        .take()
        .context("redis-cli's input")?
        .write_all(format!("{}\n", commands.join("\n")).as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "redis-cli failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn port_of(url: &str) -> Result<u16> {
    Ok(url
        .rsplit(':')
        .next()
        .context("no port")?
        .trim_end_matches('/')
        .parse()?)
}

fn psql_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("TEST_PG_BINDIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("psql");
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("psql").is_file() {
            return dir.join("psql");
        }
    }
    PathBuf::from("psql")
}

fn psql(url: &str, sql: &str) -> Result<String> {
    output(
        Command::new(psql_path())
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "10"),
    )
}

fn refuses(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

fn cluster_ok(port: u16) -> Result<bool> {
    Ok(redis_cli(port, &["cluster", "info"])?
        .lines()
        .any(|l| l.trim() == "cluster_state:ok"))
}

/// The first line of `ROLE`: `master` or `slave`.
fn role(port: u16) -> Result<String> {
    Ok(redis_cli(port, &["role"])?
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// How many nodes of the cluster that `port` belongs to are replicas, as `port` sees it.
fn replicas_known_to(port: u16) -> Result<usize> {
    Ok(redis_cli(port, &["cluster", "nodes"])?
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|f| f.contains("slave"))
        })
        .count())
}

#[test]
fn redis_server_set_get_stop_restart() -> Result<()> {
    let mut redis = RedisServer::start()?;
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(redis_cli(port, &["set", "greeting", "hello"])?, "OK");
    assert_eq!(redis_cli(port, &["get", "greeting"])?, "hello");

    redis.stop()?;
    assert!(refuses(port), "port {port} still open after stop()");
    redis.stop()?; // idempotent

    redis.restart()?;
    assert_eq!(redis.port(), port);
    assert_eq!(redis_cli(port, &["ping"])?, "PONG");
    // Nothing is persisted.
    assert_eq!(redis_cli(port, &["exists", "greeting"])?, "0");

    // restart() of a running server works too.
    redis.restart()?;
    assert_eq!(redis_cli(port, &["ping"])?, "PONG");

    drop(redis);
    assert!(refuses(port), "port {port} still open after drop");
    Ok(())
}

#[test]
fn redis_cluster_spreads_keys_and_restarts() -> Result<()> {
    let mut cluster = RedisCluster::start()?;
    let urls = cluster.urls();
    let ports = cluster.ports();
    assert_eq!(urls.len(), 3);
    assert_eq!(ports.iter().collect::<HashSet<_>>().len(), 3);
    for (url, port) in urls.iter().zip(&ports) {
        assert_eq!(port_of(url)?, *port);
        assert!(
            *port <= 55_535,
            "cluster port {port} leaves no room for the bus"
        );
        assert!(cluster_ok(*port)?, "node {port} is not ok");
    }

    let keys: Vec<String> = (0..12).map(|i| format!("key-{i}")).collect();
    let check_keys = |ports: &[u16]| -> Result<()> {
        let slots: HashSet<String> = keys
            .iter()
            .map(|k| redis_cli(ports[0], &["cluster", "keyslot", k]))
            .collect::<Result<_>>()?;
        assert!(slots.len() > 1, "keys all in one slot");
        for (i, key) in keys.iter().enumerate() {
            // Write through one node and read through another; -c follows MOVED redirects.
            let write = ports[i % 3];
            let read = ports[(i + 1) % 3];
            assert_eq!(
                redis_cli(write, &["-c", "set", key, &format!("v{i}")])?,
                "OK"
            );
            assert_eq!(redis_cli(read, &["-c", "get", key])?, format!("v{i}"));
        }
        let sizes: Vec<u64> = ports
            .iter()
            .map(|p| Ok(redis_cli(*p, &["dbsize"])?.parse::<u64>()?))
            .collect::<Result<_>>()?;
        assert_eq!(sizes.iter().sum::<u64>(), keys.len() as u64);
        assert!(
            sizes.iter().filter(|s| **s > 0).count() >= 2,
            "keys not spread over the masters: {sizes:?}"
        );
        Ok(())
    };
    check_keys(&ports)?;

    cluster.stop()?;
    for port in &ports {
        assert!(refuses(*port), "node {port} still open after stop()");
    }
    cluster.restart()?;
    assert_eq!(cluster.ports(), ports);
    for port in &ports {
        assert!(cluster_ok(*port)?, "node {port} is not ok after restart");
    }
    check_keys(&ports)?;
    Ok(())
}

#[test]
fn a_killed_master_of_a_cluster_with_replicas_is_replaced_by_its_replica_with_the_data()
-> Result<()> {
    let mut cluster = RedisCluster::start_with(ClusterOptions::FAST_FAILOVER)?;
    let seeds = cluster.ports();
    let all = cluster.all_ports();
    assert_eq!(seeds.len(), 3);
    assert_eq!(all.len(), 6);
    for port in &all {
        assert!(
            *port <= 55_535,
            "cluster port {port} leaves no room for the bus"
        );
        assert!(cluster_ok(*port)?, "node {port} is not ok");
        let expected = if seeds.contains(port) {
            "master"
        } else {
            "slave"
        };
        assert_eq!(role(*port)?, expected, "node {port}");
    }
    assert_eq!(replicas_known_to(seeds[0])?, 3);

    let key = "{failover}:greeting";
    let old = cluster.master_of(key)?;
    assert!(seeds.contains(&old));
    // The write reached the replica before the crash. `WAIT` counts the replicas that have
    // the writes of its own connection: on a fresh connection it answers at once with every
    // replica online, whatever they have (Redis 7.0.15; it made this test fail about once in
    // 60 runs, six at a time, the promoted replica at offset 0).
    assert_eq!(
        redis_cli_one_connection(old, &[&format!("SET {key} hello"), "WAIT 1 5000"])?,
        "OK\n1"
    );

    cluster.kill(old)?;
    assert!(refuses(old), "node {old} still open after kill()");
    let new = cluster.wait_for_promotion(key, old)?;
    assert_ne!(new, old);
    assert!(!seeds.contains(&new), "a replica was promoted");
    assert_eq!(role(new)?, "master");
    assert_eq!(cluster.master_of(key)?, new);
    let value = redis_cli(new, &["get", key])?;
    // What the promoted node knows, should it ever answer anything else.
    if value != "hello" {
        let view = |args: &[&str]| redis_cli(new, args).unwrap_or_else(|e| e.to_string());
        bail!(
            "node {new}, promoted for {old}, answers {value:?} for {key}\n\
             CLUSTER NODES:\n{}\nINFO replication:\n{}\nDBSIZE: {}",
            view(&["cluster", "nodes"]),
            view(&["info", "replication"]),
            view(&["dbsize"]),
        );
    }

    // The dead master comes back as a replica of its successor.
    cluster.revive(old)?;
    assert_eq!(role(old)?, "slave");
    assert_eq!(cluster.master_of(key)?, new);
    assert_eq!(redis_cli(old, &["-c", "get", key])?, "hello");
    Ok(())
}

#[test]
fn postgres_database_stop_restart() -> Result<()> {
    let mut pg = Postgres::start()?;
    let admin = pg.admin_url();
    assert_eq!(
        admin,
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );
    let db = create_postgres_database(&admin)?;
    let other = create_postgres_database(&admin)?;
    assert_ne!(db, other);
    assert!(db.starts_with(&format!(
        "postgres://postgres@127.0.0.1:{}/test_",
        pg.port()
    )));
    assert_eq!(psql(&db, "select 1")?, "1");
    psql(&db, "create table t (x int); insert into t values (42)")?;

    let port = pg.port();
    pg.stop()?;
    assert!(refuses(port), "port {port} still open after stop()");
    pg.stop()?; // idempotent

    pg.restart()?;
    assert_eq!(pg.port(), port);
    // Same data directory: the data survived.
    assert_eq!(psql(&db, "select x from t")?, "42");
    drop(pg);
    assert!(refuses(port), "port {port} still open after drop");
    Ok(())
}

#[test]
fn shared_instances_answer() -> Result<()> {
    let redis = shared_redis_url();
    assert_eq!(shared_redis_url(), redis);
    assert_eq!(redis_cli(port_of(&redis)?, &["ping"])?, "PONG");

    let cluster = shared_cluster_urls();
    assert_eq!(shared_cluster_urls(), cluster);
    assert_eq!(cluster.len(), 3);
    for url in &cluster {
        assert!(cluster_ok(port_of(url)?)?, "{url} is not ok");
        assert_eq!(role(port_of(url)?)?, "master", "{url}");
    }
    // One replica per master.
    assert_eq!(replicas_known_to(port_of(&cluster[0])?)?, 3);

    let admin = shared_postgres_url();
    assert_eq!(shared_postgres_url(), admin);
    assert_eq!(psql(&create_postgres_database(&admin)?, "select 1")?, "1");
    Ok(())
}

#[tokio::test]
async fn usable_from_tokio_tests() -> Result<()> {
    let db = create_postgres_database(&shared_postgres_url())?;
    assert_eq!(psql(&db, "select 2")?, "2");
    Ok(())
}

const CHILD_ENV: &str = "TEST_SUPPORT_WATCHDOG_CHILD";

/// Not a real test: the body of the child process of `servers_die_with_the_test_process`.
#[test]
fn watchdog_child() -> Result<()> {
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(());
    }
    let redis = RedisServer::start()?;
    let cluster = RedisCluster::start()?;
    let pg = Postgres::start()?;
    let mut ports = vec![redis.port(), pg.port()];
    ports.extend(cluster.ports());
    println!(
        "\nPORTS {}",
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Die without running any destructor, like a process that is killed.
    std::process::exit(0)
}

#[test]
fn servers_die_with_the_test_process() -> Result<()> {
    let out = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "watchdog_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "child failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let ports: Vec<u16> = stdout
        .lines()
        .find_map(|l| l.split_once("PORTS ").map(|(_, ports)| ports))
        .with_context(|| {
            format!(
                "child printed no ports: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    assert_eq!(ports.len(), 5);
    wait_refused(
        &ports,
        Duration::from_secs(15),
        "servers outlived their test process",
    )
}

/// The `test-services` launcher binary.
const LAUNCHER: &str = env!("CARGO_BIN_EXE_test-services");

/// Waits (up to 60 s) until the launcher wrote `env_file`; returns its `export` lines as pairs.
fn wait_for_env_file(env_file: &std::path::Path) -> Result<Vec<(String, String)>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env_file.exists() {
        ensure!(
            Instant::now() < deadline,
            "the launcher wrote no {}",
            env_file.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(env_file)?
        .lines()
        .map(|line| {
            let (name, value) = line
                .strip_prefix("export ")
                .and_then(|l| l.split_once('='))
                .with_context(|| format!("not an export line: {line:?}"))?;
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .with_context(|| format!("not quoted: {line:?}"))?;
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

fn value<'a>(env: &'a [(String, String)], name: &str) -> Result<&'a str> {
    env.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .with_context(|| format!("{name} was not announced: {env:?}"))
}

/// Waits (up to `within`) until every port refuses connections.
fn wait_refused(ports: &[u16], within: Duration, what: &str) -> Result<()> {
    let deadline = Instant::now() + within;
    while !ports.iter().all(|p| refuses(*p)) {
        ensure!(
            Instant::now() < deadline,
            "{what}: {:?} still open",
            ports.iter().filter(|p| !refuses(**p)).collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[test]
fn the_launcher_announces_the_services_and_stops_them_on_sigterm() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let env_file = dir.path().join("env");
    let child = Command::new(LAUNCHER)
        .arg("--env-file")
        .arg(&env_file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let env = wait_for_env_file(&env_file)?;
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "TEST_REDIS_URL",
            "TEST_REDIS_CLUSTER_URLS",
            "TEST_DATABASE_URL",
            "TEST_PG_BINDIR",
            "TEST_REDIS_TLS_URL",
            "TEST_REDIS_MTLS_URL",
            "TEST_REDIS_TLS_CLUSTER_URLS",
            "TEST_DATABASE_TLS_URL",
            "TEST_TLS_CA_FILE",
            "TEST_TLS_OTHER_CA_FILE",
            "TEST_TLS_CLIENT_CERT_FILE",
            "TEST_TLS_CLIENT_KEY_FILE",
        ]
    );
    let redis = port_of(value(&env, "TEST_REDIS_URL")?)?;
    assert_eq!(redis_cli(redis, &["ping"])?, "PONG");
    let mut ports = vec![redis];
    for url in value(&env, "TEST_REDIS_CLUSTER_URLS")?.split(',') {
        let port = port_of(url)?;
        assert!(
            port <= 55_535,
            "cluster port {port} leaves no room for the bus"
        );
        assert!(cluster_ok(port)?, "{url} is not ok");
        assert_eq!(role(port)?, "master", "{url}");
        ports.push(port);
    }
    assert_eq!(ports.len(), 4);
    assert_eq!(replicas_known_to(ports[1])?, 3);
    let admin = value(&env, "TEST_DATABASE_URL")?;
    assert_eq!(psql(&create_postgres_database(admin)?, "select 1")?, "1");
    ports.push(port_of(admin.trim_end_matches("/postgres"))?);
    let bindir = PathBuf::from(value(&env, "TEST_PG_BINDIR")?);
    assert!(bindir.join("initdb").is_file(), "{}", bindir.display());
    ports.extend(tls_services_answer(&env)?);

    output(Command::new("kill").args(["-TERM", &child.id().to_string()]))?;
    let out = child.wait_with_output()?;
    assert!(out.status.success(), "{}", out.status);
    // What it printed is what it wrote.
    let printed = String::from_utf8(out.stdout)?;
    assert_eq!(printed.lines().count(), env.len(), "{printed}");
    assert!(printed.contains(&format!("export TEST_DATABASE_URL='{admin}'")));
    wait_refused(&ports, Duration::from_secs(30), "after SIGTERM")?;
    assert!(!env_file.exists(), "the env file outlived the services");
    Ok(())
}

/// The TLS servers answer over TLS only, trusting the announced CA; their ports.
fn tls_services_answer(env: &[(String, String)]) -> Result<Vec<u16>> {
    let ca = value(env, "TEST_TLS_CA_FILE")?;
    let (cert, key) = (
        value(env, "TEST_TLS_CLIENT_CERT_FILE")?,
        value(env, "TEST_TLS_CLIENT_KEY_FILE")?,
    );
    let tls = [
        "--tls", "--cacert", ca, "--cert", cert, "--key", key, "ping",
    ];
    let mut ports = Vec::new();
    let cluster = value(env, "TEST_REDIS_TLS_CLUSTER_URLS")?.split(',');
    let redis = [
        value(env, "TEST_REDIS_TLS_URL")?,
        value(env, "TEST_REDIS_MTLS_URL")?,
    ];
    for url in redis.into_iter().chain(cluster) {
        assert!(url.starts_with("rediss://"), "{url}");
        let port = port_of(url)?;
        assert_eq!(redis_cli(port, &tls)?, "PONG", "{url}");
        assert!(
            redis_cli(port, &["ping"]).is_err(),
            "{url} answers without TLS"
        );
        ports.push(port);
    }
    let database = value(env, "TEST_DATABASE_TLS_URL")?;
    assert!(database.contains("sslmode=verify-full"), "{database}");
    let sql = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
    assert_eq!(psql(&create_postgres_database(database)?, sql)?, "t");
    let plain = database.split('?').next().context("a URL")?;
    assert!(psql(&format!("{plain}?sslmode=disable"), "select 1").is_err());
    ports.push(port_of(plain.trim_end_matches("/postgres"))?);
    Ok(ports)
}

#[test]
fn the_launcher_stops_the_services_when_its_parent_dies() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let env_file = dir.path().join("env");
    // A parent that is SIGKILLed: it can tell nobody anything.
    let mut parent = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" --only redis,postgres --env-file "$1" >/dev/null 2>&1 </dev/null & sleep 600"#)
        .arg(LAUNCHER)
        .arg(&env_file)
        .spawn()?;
    let env = wait_for_env_file(&env_file);
    parent.kill()?;
    parent.wait()?;
    let env = env?;
    let ports = [
        port_of(value(&env, "TEST_REDIS_URL")?)?,
        port_of(value(&env, "TEST_DATABASE_URL")?.trim_end_matches("/postgres"))?,
    ];
    wait_refused(
        &ports,
        Duration::from_secs(30),
        "after the launcher's parent died",
    )
}

#[test]
fn the_launcher_checks_what_the_services_need() -> Result<()> {
    let out = Command::new(LAUNCHER).arg("check").output()?;
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing on PATH: the Redis binaries are missing, and `check` says so with exit code 3.
    let out = Command::new(LAUNCHER)
        .args(["check", "--only", "redis-cluster"])
        .env("PATH", "")
        .output()?;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("redis-server, redis-cli"), "{stderr}");
    let out = Command::new(LAUNCHER).args(["--only", "nope"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}
