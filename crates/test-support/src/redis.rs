//! Private `redis-server` processes: standalone ([`RedisServer`]) and a 3-master cluster
//! ([`RedisCluster`]), optionally with replicas that take over when a master dies.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use redis::{Cmd, FromRedisValue, RedisResult, cmd};
use tempfile::TempDir;

use crate::tls::NodeTls;
use crate::util::{
    self, READY_TIMEOUT, START_ATTEMPTS, Watchdog, file_len, log_tail, says_address_in_use,
    wait_until,
};

/// How long the cluster may take to report `cluster_state:ok` on every node.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `redis-cli --cluster create` may run.
const CLUSTER_CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restart keeps retrying when its (fixed) port is briefly taken.
const RESTART_BIND_RETRY: Duration = Duration::from_secs(10);
/// How long a killed master's replica may take to be promoted (node timeout, election and
/// a loaded machine included).
pub(crate) const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Name of the pidfile the watchdog looks for.
const PIDFILE: &str = "redis-server.pid";
/// How long a fixture waits to connect to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a fixture waits for a node's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `command` to the node on `127.0.0.1:port` on a fresh connection (a fixture asks
/// rarely, and the node may have been restarted since it last asked) and reads the reply.
/// Over TLS for a TLS node of this process (see [`tls_nodes`]).
pub(crate) fn query<T: FromRedisValue>(port: u16, command: &Cmd) -> RedisResult<T> {
    let tls = tls_nodes()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&port)
        .cloned();
    let client = match tls {
        Some(tls) => tls.client(port)?,
        None => redis::Client::open(("127.0.0.1", port))?,
    };
    let mut connection = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    connection.set_read_timeout(Some(REPLY_TIMEOUT))?;
    connection.set_write_timeout(Some(REPLY_TIMEOUT))?;
    command.query(&mut connection)
}

/// The TLS-only nodes this process started, by port (ports are never handed out twice), so
/// that every query of the fixtures reaches them over TLS.
fn tls_nodes() -> &'static Mutex<HashMap<u16, NodeTls>> {
    static TLS_NODES: OnceLock<Mutex<HashMap<u16, NodeTls>>> = OnceLock::new();
    TLS_NODES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Asks the node on `port` to exit at once without saving. On success the node closes the
/// connection without a reply, so the outcome is not looked at: callers wait for the exit.
fn ask_shutdown(port: u16) {
    let _ = query::<()>(port, cmd("SHUTDOWN").arg("NOSAVE"));
}

/// Why a start attempt failed.
enum StartError {
    /// The port (or cluster bus port) was taken: try another port / try again.
    AddrInUse(anyhow::Error),
    /// Anything else.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

impl StartError {
    fn into_inner(self) -> anyhow::Error {
        match self {
            Self::AddrInUse(e) | Self::Other(e) => e,
        }
    }
}

/// One `redis-server` process living in `dir` (its working directory, log, pidfile and, for
/// cluster nodes, `nodes.conf`; for a sentinel, `sentinel.conf`).
pub(crate) struct Node {
    dir: PathBuf,
    pub(crate) port: u16,
    /// `cluster-node-timeout` of a cluster node; `None` for a standalone server.
    cluster_node_timeout: Option<Duration>,
    /// TLS only (`--port 0 --tls-port <port>`), with these certificates.
    tls: Option<NodeTls>,
    /// More arguments for `redis-server` (e.g. `--replicaof`).
    pub(crate) extra_args: Vec<String>,
    /// A sentinel's configuration, written to `sentinel.conf` before its first start (the
    /// sentinel rewrites it as it learns); `None` for a data node.
    pub(crate) sentinel_conf: Option<String>,
    child: Option<Child>,
}

impl Node {
    pub(crate) fn new(dir: PathBuf, cluster_node_timeout: Option<Duration>) -> Self {
        Self {
            dir,
            port: 0,
            cluster_node_timeout,
            tls: None,
            extra_args: Vec::new(),
            sentinel_conf: None,
            child: None,
        }
    }

    /// Sends `command` to this node (over TLS for a TLS node, see [`query`]).
    pub(crate) fn query<T: FromRedisValue>(&self, command: &Cmd) -> RedisResult<T> {
        query(self.port, command)
    }

    fn is_cluster(&self) -> bool {
        self.cluster_node_timeout.is_some()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub(crate) fn name(&self) -> String {
        if self.sentinel_conf.is_some() {
            format!("redis sentinel on port {}", self.port)
        } else if self.is_cluster() {
            format!("redis cluster node on port {}", self.port)
        } else {
            format!("redis-server on port {}", self.port)
        }
    }

    /// Starts on a fresh random port, retrying with other ports if the chosen one is taken.
    pub(crate) fn start_fresh(&mut self) -> Result<()> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            self.port = util::pick_port(self.is_cluster())?;
            match self.start_once() {
                Ok(()) => return Ok(()),
                Err(StartError::AddrInUse(e)) => last = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no attempt made"))
            .context(format!(
                "redis-server: every port tried was taken ({START_ATTEMPTS} attempts)"
            )))
    }

    /// Starts again on the same port, retrying for a while if the port is briefly taken.
    fn start_same_port(&mut self) -> Result<()> {
        let deadline = Instant::now() + RESTART_BIND_RETRY;
        loop {
            match self.start_once() {
                Ok(()) => return Ok(()),
                Err(StartError::AddrInUse(e)) if Instant::now() < deadline => {
                    drop(e);
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e.into_inner()),
            }
        }
    }

    fn start_once(&mut self) -> Result<(), StartError> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("could not create {}", self.dir.display()))?;
        let log = self.log_path();
        let log_start = file_len(&log);
        let mut cmd = Command::new("redis-server");
        if let Some(conf) = &self.sentinel_conf {
            let path = self.dir.join("sentinel.conf");
            if !path.exists() {
                fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
            }
            cmd.arg(path).arg("--sentinel");
        }
        match &self.tls {
            None => cmd.arg("--port").arg(self.port.to_string()),
            Some(tls) => {
                tls_nodes()
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(self.port, tls.clone());
                cmd.args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .args(tls.server_args());
                if self.is_cluster() {
                    // The cluster bus (tls-port + 10000) and replication over TLS too.
                    cmd.args(["--tls-cluster", "yes", "--tls-replication", "yes"]);
                }
                &mut cmd
            }
        };
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .arg("--pidfile")
            .arg(self.dir.join(PIDFILE))
            .args(&self.extra_args);
        if let Some(timeout) = self.cluster_node_timeout {
            cmd.args(["--cluster-enabled", "yes"])
                .arg("--cluster-config-file")
                .arg(self.dir.join("nodes.conf"))
                .arg("--cluster-node-timeout")
                .arg(timeout.as_millis().to_string())
                // A replica takes over however long it was cut off from its master: a test
                // wants the failover, not the data-age check.
                .args(["--cluster-replica-validity-factor", "0"])
                // Replicas sync at once, not after the default 5 s of waiting for company.
                .args(["--repl-diskless-sync-delay", "0"])
                // A master being shut down does not wait for its replicas to catch up.
                .args(["--shutdown-timeout", "0"]);
        }
        let child = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow!(
                    "could not run `redis-server` ({e}); install it (Debian: apt-get install \
                     redis-server) or run the tests through scripts/test.sh"
                )
            })?;
        self.child = Some(child);
        let result = self.wait_ready(&log, log_start);
        if result.is_err() {
            self.kill();
        }
        result
    }

    fn wait_ready(&mut self, log: &Path, log_start: u64) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("waiting for redis-server")?
            {
                self.child = None;
                let err = anyhow!(
                    "{} exited during startup ({status})\n{}",
                    self.name(),
                    log_tail(log, 30)
                );
                return Err(if says_address_in_use(&util::read_from(log, log_start)) {
                    StartError::AddrInUse(err)
                } else {
                    StartError::Other(err)
                });
            }
            if matches!(self.query::<String>(&cmd("PING")), Ok(s) if s == "PONG") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Other(anyhow!(
                    "{} did not answer PING within {}s\n{}",
                    self.name(),
                    READY_TIMEOUT.as_secs(),
                    log_tail(log, 30)
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends `signal` (`STOP` freezes the server, `CONT` lets it go on) with `kill(1)`.
    pub(crate) fn signal(&self, signal: &str) -> Result<()> {
        let pid = self
            .child
            .as_ref()
            .context("the server is not running")?
            .id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid}: {status}");
        }
        Ok(())
    }

    /// SIGKILLs the process (if any) and reaps it. The pidfile is removed first so the watchdog
    /// never sees a stale pid.
    pub(crate) fn kill(&mut self) {
        let _ = fs::remove_file(self.dir.join(PIDFILE));
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the server to `SHUTDOWN NOSAVE` (falls back to SIGKILL after 5 s), then waits until
    /// the port refuses connections.
    fn stop(&mut self) -> Result<()> {
        if self.is_running() {
            // On success the node closes the connection without a reply.
            let _ = self.query::<()>(cmd("SHUTDOWN").arg("NOSAVE"));
            let exited = wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
                Ok(!self.is_running())
            })?;
            if !exited {
                self.kill();
            }
        }
        self.kill();
        util::wait_port_closed(self.port, &self.name())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private standalone `redis-server` on a free loopback port, with its own temporary
/// directory (log: `redis.log` inside it). Nothing is persisted (`--save "" --appendonly no`).
/// `DEBUG` is allowed (`--enable-debug-command local`), so a test can, say, turn off the
/// active expiry cycle (`DEBUG SET-ACTIVE-EXPIRE 0`) of a server only it uses.
///
/// Dropping it kills the server and removes the directory. If the test process dies without
/// dropping it, a small watchdog process does the same.
///
/// ```no_run
/// let mut redis = test_support::RedisServer::start()?;
/// let url = redis.url(); // "redis://127.0.0.1:<port>"
/// redis.stop()?; // simulate an outage
/// redis.restart()?; // back on the same port, empty
/// # let _ = url;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct RedisServer {
    node: Node,
    watchdog: Watchdog,
    /// Removed when dropped, after the server is gone (fields drop after `Drop::drop`).
    _dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server --save "" --appendonly no --bind 127.0.0.1` on a random free port
    /// and waits (up to 20 s) until it answers `PING`. Retries with another port if the chosen
    /// one gets taken in the meantime.
    pub fn start() -> Result<Self> {
        Self::start_node(None)
    }

    /// Like [`RedisServer::start`], but TLS only (`--port 0 --tls-port <port>`) with the
    /// certificates of `tls`; its URL is `rediss://127.0.0.1:<port>`.
    pub(crate) fn start_tls(tls: NodeTls) -> Result<Self> {
        Self::start_node(Some(tls))
    }

    fn start_node(tls: Option<NodeTls>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("test-support-redis-")
            .tempdir()
            .context("could not create a temporary directory for redis-server")?;
        let watchdog = Watchdog::spawn(dir.path())?;
        let mut node = Node::new(dir.path().to_path_buf(), None);
        node.tls = tls;
        node.extra_args = vec!["--enable-debug-command".into(), "local".into()];
        let mut server = Self {
            node,
            watchdog,
            _dir: dir,
        };
        server.node.start_fresh()?;
        Ok(server)
    }

    /// Sends `command` to the server (over TLS for a TLS server) and reads the reply.
    pub fn query<T: FromRedisValue>(&self, command: &Cmd) -> RedisResult<T> {
        self.node.query(command)
    }

    /// `ACL SETUSER <name> <rules>...`: creates the user or changes its rules.
    pub fn set_user(&self, name: &str, rules: &[&str]) -> RedisResult<()> {
        self.query(redis::cmd("ACL").arg("SETUSER").arg(name).arg(rules))
    }

    /// The server's URL: `redis://127.0.0.1:<port>` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        self.node.url()
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// Stops the server (`SHUTDOWN NOSAVE`, SIGKILL if it does not exit within 5 s) and waits
    /// until the port refuses connections. Stopping a stopped server is a no-op.
    pub fn stop(&mut self) -> Result<()> {
        self.node.stop()
    }

    /// Starts the server again on the same port (stopping it first if it is running) and waits
    /// until it answers `PING`. The data is gone: nothing is persisted.
    pub fn restart(&mut self) -> Result<()> {
        self.node.stop()?;
        self.node.start_same_port()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.node.kill();
        self.watchdog.disarm();
    }
}

/// The layout of a [`RedisCluster`]: 3 masters, each with `replicas_per_master` replicas.
///
/// ```
/// use test_support::ClusterOptions;
/// assert_eq!(ClusterOptions::MASTERS_ONLY.replicas_per_master, 0);
/// assert!(ClusterOptions::FAST_FAILOVER.node_timeout < ClusterOptions::WITH_REPLICAS.node_timeout);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Replicas of each master.
    pub replicas_per_master: usize,
    /// `cluster-node-timeout`: how long a node may be unreachable before the others mark it
    /// as failed and one of its replicas takes over.
    pub node_timeout: Duration,
}

impl ClusterOptions {
    /// 3 masters, no replicas, 5 s node timeout: what [`RedisCluster::start`] builds.
    pub const MASTERS_ONLY: Self = Self {
        replicas_per_master: 0,
        node_timeout: Duration::from_secs(5),
    };
    /// 3 masters with one replica each, 5 s node timeout: the shared cluster. A node stalled
    /// for a moment by a busy machine causes no failover under ordinary tests.
    pub const WITH_REPLICAS: Self = Self {
        replicas_per_master: 1,
        node_timeout: Duration::from_secs(5),
    };
    /// 3 masters with one replica each, 1 s node timeout: a killed master's replica is
    /// promoted within a few seconds. For failover tests.
    pub const FAST_FAILOVER: Self = Self {
        replicas_per_master: 1,
        node_timeout: Duration::from_secs(1),
    };
}

/// One line of `CLUSTER NODES`, the parts the fixture needs.
#[derive(Debug)]
struct ClusterNodeLine {
    /// The node's id.
    id: String,
    port: u16,
    /// The id of the master this node replicates (`-` for a master).
    master: String,
    /// A master that the node asking does not consider failed.
    live_master: bool,
    /// A replica that the node asking does not consider failed.
    live_replica: bool,
    /// Slot ranges served (masters only).
    slots: Vec<(u16, u16)>,
}

impl ClusterNodeLine {
    /// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (id, address, flags, master) = (
            fields.first()?,
            fields.get(1)?,
            fields.get(2)?,
            fields.get(3)?,
        );
        let port = address
            .split('@')
            .next()?
            .rsplit(':')
            .next()?
            .parse()
            .ok()?;
        let flags: Vec<&str> = flags.split(',').collect();
        let live = !flags.contains(&"fail");
        let live_master = live && flags.contains(&"master");
        let live_replica = live && flags.contains(&"slave");
        let slots = fields
            .iter()
            .skip(8)
            .filter(|s| !s.starts_with('['))
            .filter_map(|range| match range.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => range.parse().ok().map(|s| (s, s)),
            })
            .collect();
        Some(Self {
            id: (*id).to_owned(),
            port,
            master: (*master).to_owned(),
            live_master,
            live_replica,
            slots,
        })
    }
}

/// `CLUSTER NODES` as seen by the node on `port`.
fn cluster_nodes(port: u16) -> Result<Vec<ClusterNodeLine>> {
    let text: String = query(port, cmd("CLUSTER").arg("NODES"))
        .with_context(|| format!("CLUSTER NODES on port {port}"))?;
    Ok(text.lines().filter_map(ClusterNodeLine::parse).collect())
}

/// The lines of an `INFO` section or `CLUSTER INFO` reply from the node on `port`.
fn info_lines(port: u16, command: &Cmd) -> String {
    query(port, command).unwrap_or_else(|e| format!("({e})"))
}

fn has_line(text: &str, wanted: &str) -> bool {
    text.lines().any(|l| l.trim() == wanted)
}

/// A private Redis Cluster of 3 masters, with or without replicas ([`ClusterOptions`]), on
/// free loopback ports (each `<= 55535`, so the cluster bus at `port + 10000` is valid; both
/// were free when picked). Each node has its own directory (`node-<i>/` with `redis.log` and
/// `nodes.conf`) inside one temporary directory. Nothing is persisted except the cluster
/// configuration.
///
/// With replicas, a test can crash a master ([`RedisCluster::kill`]), wait until its replica
/// took over ([`RedisCluster::wait_for_promotion`]) and bring the dead node back as a replica
/// ([`RedisCluster::revive`]).
///
/// Dropping it kills all nodes and removes the directory; a watchdog does the same if the test
/// process dies first.
///
/// ```no_run
/// use test_support::{ClusterOptions, RedisCluster};
/// let mut cluster = RedisCluster::start_with(ClusterOptions::FAST_FAILOVER)?;
/// let urls = cluster.urls(); // one "redis://127.0.0.1:<port>" per master
/// let old = cluster.master_of("{user-1}")?;
/// cluster.kill(old)?; // SIGKILL: a crash
/// let new = cluster.wait_for_promotion("{user-1}", old)?; // its replica took over
/// assert_ne!(new, old);
/// cluster.revive(old)?; // back, as a replica of `new`
/// # let _ = urls;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct RedisCluster {
    /// TLS-only nodes with these certificates.
    tls: Option<NodeTls>,
    nodes: Vec<Node>,
    /// The masters as created, in node order: the seed nodes.
    seeds: Vec<u16>,
    options: ClusterOptions,
    watchdog: Watchdog,
    dir: TempDir,
}

impl RedisCluster {
    /// Number of masters.
    const MASTERS: usize = 3;

    /// [`RedisCluster::start_with`] [`ClusterOptions::MASTERS_ONLY`]: 3 masters, no replicas.
    pub fn start() -> Result<Self> {
        Self::start_with(ClusterOptions::MASTERS_ONLY)
    }

    /// Starts 3 × (1 + `replicas_per_master`) cluster-enabled nodes, joins them with
    /// `redis-cli --cluster create ... --cluster-replicas <n> --cluster-yes`, and waits (up to
    /// 30 s) until every node reports `cluster_state:ok`, knows all nodes and sees all 16384
    /// slots served, and every replica's link to its master is up.
    pub fn start_with(options: ClusterOptions) -> Result<Self> {
        Self::start_cluster(options, None)
    }

    /// Like [`RedisCluster::start_with`], but TLS only (client connections, the cluster bus
    /// and replication) with the certificates of `tls`; its URLs are `rediss://`.
    pub(crate) fn start_tls(options: ClusterOptions, tls: NodeTls) -> Result<Self> {
        Self::start_cluster(options, Some(tls))
    }

    fn start_cluster(options: ClusterOptions, tls: Option<NodeTls>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("test-support-redis-cluster-")
            .tempdir()
            .context("could not create a temporary directory for the redis cluster")?;
        let watchdog = Watchdog::spawn(dir.path())?;
        let mut cluster = Self {
            tls,
            nodes: Vec::new(),
            seeds: Vec::new(),
            options,
            watchdog,
            dir,
        };
        for i in 0..Self::MASTERS * (1 + options.replicas_per_master) {
            let mut node = Node::new(
                cluster.dir.path().join(format!("node-{i}")),
                Some(options.node_timeout),
            );
            node.tls = cluster.tls.clone();
            node.start_fresh()?;
            cluster.nodes.push(node);
        }
        cluster.create()?;
        cluster.wait_ok()?;
        // redis-cli chooses which nodes become masters.
        let masters: Vec<u16> = cluster_nodes(cluster.nodes[0].port)?
            .into_iter()
            .filter(|n| n.live_master && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        cluster.seeds = cluster
            .nodes
            .iter()
            .map(|n| n.port)
            .filter(|p| masters.contains(p))
            .collect();
        Ok(cluster)
    }

    /// One URL per master as created, `redis://127.0.0.1:<port>`: the seed nodes. After a
    /// failover one of them may be a replica or dead; a cluster client finds the rest.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        self.seeds
            .iter()
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect()
    }

    /// The ports of the masters as created (see [`RedisCluster::urls`]).
    pub fn ports(&self) -> Vec<u16> {
        self.seeds.clone()
    }

    /// The ports of every node, masters and replicas, running or not.
    pub fn all_ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Stops every node (`SHUTDOWN NOSAVE`, SIGKILL as a fallback) and waits until their ports
    /// refuse connections. Each node's `nodes.conf` is kept, so [`RedisCluster::restart`]
    /// brings back the same cluster. Stopping a stopped cluster is a no-op.
    pub fn stop(&mut self) -> Result<()> {
        // Ask all nodes first so they go down together (no node gets flagged as failing).
        for node in &mut self.nodes {
            if node.is_running() {
                ask_shutdown(node.port);
            }
        }
        for node in &mut self.nodes {
            node.stop()?;
        }
        Ok(())
    }

    /// Starts every node again on the same port with the same `nodes.conf` (stopping the
    /// cluster first if it is running) and waits until every node reports `cluster_state:ok`.
    /// The data is gone: nothing but the cluster configuration is persisted.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        for node in &mut self.nodes {
            node.start_same_port()?;
        }
        self.wait_ok()
    }

    /// The port of the master that serves `key`'s slot now, as the first running node sees
    /// it.
    pub fn master_of(&self, key: &str) -> Result<u16> {
        let asked = self.running_ports();
        let port = *asked.first().context("no cluster node is running")?;
        let slot = self.slot_of(key)?;
        serving(port, slot)?
            .with_context(|| format!("node {port} knows no live master for slot {slot}"))
    }

    /// SIGKILLs the node on `port`, as a crash would (no shutdown, no goodbye to the cluster),
    /// and waits until its port refuses connections.
    pub fn kill(&mut self, port: u16) -> Result<()> {
        let node = self.node_mut(port)?;
        node.kill();
        util::wait_port_closed(port, &node.name())
    }

    /// Waits (up to 30 s) until every running node reports `cluster_state:ok` and names the
    /// same live master, other than `dead`, for `key`'s slot; returns that master's port.
    pub fn wait_for_promotion(&self, key: &str, dead: u16) -> Result<u16> {
        let slot = self.slot_of(key)?;
        let mut last = String::new();
        let mut promoted = None;
        let done = wait_until(FAILOVER_TIMEOUT, Duration::from_millis(50), || {
            promoted = None;
            let mut seen = Vec::new();
            for port in self.running_ports() {
                let ok = has_line(
                    &info_lines(port, cmd("CLUSTER").arg("INFO")),
                    "cluster_state:ok",
                );
                let master = serving(port, slot).ok().flatten();
                seen.push(format!(
                    "node {port}: slot {slot} served by {master:?}, ok: {ok}"
                ));
                let agrees = match (master, promoted) {
                    (Some(m), None) => m != dead,
                    (Some(m), Some(p)) => m == p,
                    (None, _) => false,
                };
                if !ok || !agrees {
                    last = seen.join("; ");
                    return Ok(false);
                }
                promoted = master;
            }
            Ok(promoted.is_some())
        })?;
        match promoted {
            Some(port) if done => Ok(port),
            _ => bail!(
                "no replica took over slot {slot} from node {dead} within {}s; last seen: {last}",
                FAILOVER_TIMEOUT.as_secs()
            ),
        }
    }

    /// A planned failover, as for maintenance: `CLUSTER FAILOVER` on the replica on `replica`,
    /// which takes over its master's slots once it has caught up, while the old master stays
    /// up and becomes its replica. Redis drops a manual failover that does not complete
    /// within 5 s, so this asks again (up to 3 times) until the replica says it is a master.
    pub fn fail_over_to(&self, replica: u16) -> Result<()> {
        let is_master = || {
            has_line(
                &info_lines(replica, cmd("INFO").arg("replication")),
                "role:master",
            )
        };
        for _ in 0..3 {
            query::<()>(replica, cmd("CLUSTER").arg("FAILOVER"))
                .with_context(|| format!("CLUSTER FAILOVER on node {replica}"))?;
            if wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
                Ok(is_master())
            })? {
                return Ok(());
            }
        }
        bail!("node {replica} did not take over after 3 CLUSTER FAILOVER")
    }

    /// Sends `command` to the node on `port` (no redirection: a key's command must go to the
    /// master serving its slot).
    pub fn query<T: FromRedisValue>(&self, port: u16, command: &Cmd) -> RedisResult<T> {
        query(port, command)
    }

    /// Waits (up to 30 s) until every replica of the master on `master` has acknowledged all
    /// that master had written when this was called (each replica's `offset=` in the master's
    /// `INFO replication` at or past its `master_repl_offset`).
    pub fn wait_replicated(&self, master: u16) -> Result<()> {
        let field = |info: &str, name: &str| -> Option<u64> {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|v| v.parse().ok())
        };
        let info = info_lines(master, cmd("INFO").arg("replication"));
        let written = field(&info, "master_repl_offset:")
            .with_context(|| format!("no master_repl_offset from node {master}: {info}"))?;
        let mut last = info;
        let done = wait_until(CLUSTER_TIMEOUT, Duration::from_millis(20), || {
            last = info_lines(master, cmd("INFO").arg("replication"));
            let offsets: Vec<u64> = last
                .lines()
                .filter(|l| l.starts_with("slave"))
                .filter_map(|l| {
                    l.split(',')
                        .find_map(|kv| kv.strip_prefix("offset="))
                        .and_then(|v| v.trim().parse().ok())
                })
                .collect();
            Ok(!offsets.is_empty() && offsets.iter().all(|&o| o >= written))
        })?;
        if !done {
            bail!(
                "the replicas of node {master} did not reach offset {written} within {}s: {last}",
                CLUSTER_TIMEOUT.as_secs()
            );
        }
        Ok(())
    }

    /// Starts one more node and joins it to the cluster as a master that serves no slot
    /// (`CLUSTER MEET`), the first step of a scale-out; waits until the cluster is whole with
    /// it and returns its port. [`RedisCluster::move_slot`] gives it slots. Every node must be
    /// running (after a [`RedisCluster::kill`], [`RedisCluster::revive`] first).
    pub fn add_master(&mut self) -> Result<u16> {
        let seed = *self
            .running_ports()
            .first()
            .context("no cluster node is running")?;
        let mut node = Node::new(
            self.dir.path().join(format!("node-{}", self.nodes.len())),
            Some(self.options.node_timeout),
        );
        node.tls = self.tls.clone();
        node.start_fresh()?;
        let port = node.port;
        self.nodes.push(node);
        query::<()>(seed, cmd("CLUSTER").arg("MEET").arg("127.0.0.1").arg(port))
            .with_context(|| format!("CLUSTER MEET 127.0.0.1 {port} on node {seed}"))?;
        self.wait_ok()?;
        Ok(port)
    }

    /// Takes the node on `port`, which must serve no slot (move them away first; a master that
    /// gave away its last slot has become a replica by then), out of the cluster, as `redis-cli
    /// --cluster del-node` does: `CLUSTER FORGET` on every other node, then a shutdown; waits
    /// until the cluster is whole without it. A scale-in's last step.
    pub fn remove_master(&mut self, port: u16) -> Result<()> {
        let index = self.index_of(port)?;
        let id: String = query(port, cmd("CLUSTER").arg("MYID"))
            .with_context(|| format!("CLUSTER MYID on {port}"))?;
        if cluster_nodes(port)?
            .iter()
            .any(|n| n.port == port && !n.slots.is_empty())
        {
            bail!("node {port} still serves slots: move them away first");
        }
        for other in self.running_ports().into_iter().filter(|p| *p != port) {
            query::<()>(other, cmd("CLUSTER").arg("FORGET").arg(&id))
                .with_context(|| format!("CLUSTER FORGET {id} on {other}"))?;
        }
        let mut node = self.nodes.remove(index);
        node.stop()?;
        self.wait_ok()
    }

    /// Moves the slot of `key`, with every key in it, to the master on `to`, as `redis-cli
    /// --cluster reshard` moves each slot: [`RedisCluster::begin_slot_move`], then
    /// [`SlotMove::finish`].
    pub fn move_slot(&self, key: &str, to: u16) -> Result<()> {
        self.begin_slot_move(key, to)?.finish(self)
    }

    /// Starts moving the slot of `key` to the master on `to`: `IMPORTING` on `to`,
    /// `MIGRATING` on the master serving it. Until [`SlotMove::finish`], the slot is half
    /// moved: its keys are still on the old master, except those given to
    /// [`SlotMove::migrate`], and the old master answers `ASK` for a key it no longer has and
    /// `TRYAGAIN` for a command whose keys are split between the two.
    pub fn begin_slot_move(&self, key: &str, to: u16) -> Result<SlotMove> {
        let slot = self.slot_of(key)?;
        let from = self.master_of(key)?;
        if from == to {
            bail!("node {to} already serves slot {slot}");
        }
        let id = |port: u16| -> Result<String> {
            query(port, cmd("CLUSTER").arg("MYID"))
                .with_context(|| format!("CLUSTER MYID on {port}"))
        };
        let step = SlotMove {
            slot,
            from,
            to,
            from_id: id(from)?,
            to_id: id(to)?,
        };
        step.setslot(to, "IMPORTING", &step.from_id)?;
        step.setslot(from, "MIGRATING", &step.to_id)?;
        Ok(step)
    }

    /// The ports of the live replicas of the master on `master`, as that master sees them.
    pub fn replicas_of(&self, master: u16) -> Result<Vec<u16>> {
        let nodes = cluster_nodes(master)?;
        let id = &nodes
            .iter()
            .find(|n| n.port == master && n.live_master)
            .with_context(|| format!("node {master} is not a live master"))?
            .id;
        Ok(nodes
            .iter()
            .filter(|n| n.live_replica && &n.master == id)
            .map(|n| n.port)
            .collect())
    }

    /// Freezes the node on `port` (SIGSTOP): it keeps its connections but answers nothing, so
    /// its master still counts it as an online replica that has stopped acknowledging. Undo
    /// with [`RedisCluster::thaw`] within the node timeout, or the others mark it failed.
    pub fn freeze(&self, port: u16) -> Result<()> {
        self.node(port)?.signal("STOP")
    }

    /// Lets a node frozen by [`RedisCluster::freeze`] go on (SIGCONT).
    pub fn thaw(&self, port: u16) -> Result<()> {
        self.node(port)?.signal("CONT")
    }

    /// Starts the killed node on `port` again (same port, same `nodes.conf`) and waits until
    /// the cluster is whole again: it rejoins as a replica of the master that replaced it.
    pub fn revive(&mut self, port: u16) -> Result<()> {
        self.node_mut(port)?.start_same_port()?;
        self.wait_ok()
    }

    fn node(&self, port: u16) -> Result<&Node> {
        Ok(&self.nodes[self.index_of(port)?])
    }

    fn node_mut(&mut self, port: u16) -> Result<&mut Node> {
        let index = self.index_of(port)?;
        Ok(&mut self.nodes[index])
    }

    fn index_of(&self, port: u16) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .with_context(|| format!("no node of this cluster is on port {port}"))
    }

    /// Ports of the nodes that were started and not killed or stopped since.
    fn running_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    fn slot_of(&self, key: &str) -> Result<u16> {
        let port = *self
            .running_ports()
            .first()
            .context("no cluster node is running")?;
        query(port, cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .with_context(|| format!("CLUSTER KEYSLOT {key}"))
    }

    /// `redis-cli --cluster create`, with a time limit and its output in `cluster-create.log`.
    fn create(&mut self) -> Result<()> {
        let log = self.dir.path().join("cluster-create.log");
        let out = fs::File::create(&log).context("creating cluster-create.log")?;
        let err = out.try_clone()?;
        let mut child = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .arg("--cluster-replicas")
            .arg(self.options.replicas_per_master.to_string())
            .arg("--cluster-yes")
            .args(self.tls.iter().flat_map(NodeTls::cli_args))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| anyhow!("could not run `redis-cli` ({e}); install redis-tools"))?;
        let deadline = Instant::now() + CLUSTER_CREATE_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "`redis-cli --cluster create` did not finish within {}s\n{}",
                    CLUSTER_CREATE_TIMEOUT.as_secs(),
                    log_tail(&log, 40)
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            bail!(
                "`redis-cli --cluster create` failed ({status})\n{}",
                log_tail(&log, 40)
            );
        }
        Ok(())
    }

    /// Waits until every node says `cluster_state:ok`, knows every node and sees all 16384
    /// slots served and as many replicas as the options ask for, and every replica
    /// (`role:slave`) says `master_link_status:up`.
    fn wait_ok(&mut self) -> Result<()> {
        let expected = [
            "cluster_state:ok".to_owned(),
            format!("cluster_known_nodes:{}", self.nodes.len()),
            "cluster_slots_ok:16384".to_owned(),
        ];
        let replicas = Self::MASTERS * self.options.replicas_per_master;
        // What was missing last, and the log of the node it was missing on.
        let mut last = (String::new(), None);
        let ok = wait_until(CLUSTER_TIMEOUT, Duration::from_millis(50), || {
            let mut linked = 0;
            for node in &self.nodes {
                let mut missing = |what: String| {
                    last = (format!("{}: {what}", node.name()), Some(node.log_path()));
                    Ok(false)
                };
                let info = info_lines(node.port, cmd("CLUSTER").arg("INFO"));
                if !expected.iter().all(|e| has_line(&info, e)) {
                    return missing(info.trim_end().to_owned());
                }
                let known = cluster_nodes(node.port)
                    .map(|nodes| nodes.iter().filter(|n| n.live_replica).count())
                    .unwrap_or_default();
                if known != replicas {
                    return missing(format!("knows {known} of {replicas} replicas"));
                }
                let replication = info_lines(node.port, cmd("INFO").arg("replication"));
                if has_line(&replication, "role:slave") {
                    if !has_line(&replication, "master_link_status:up") {
                        return missing(replication.trim_end().to_owned());
                    }
                    linked += 1;
                }
            }
            last = (format!("{linked} of {replicas} replicas linked"), None);
            Ok(linked == replicas)
        })?;
        if !ok {
            let (what, log) = last;
            bail!(
                "the cluster was not whole within {}s; last seen: {what}\n{}",
                CLUSTER_TIMEOUT.as_secs(),
                log.map(|log| log_tail(&log, 30)).unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// The live master serving `slot`, as the node on `port` sees it.
fn serving(port: u16, slot: u16) -> Result<Option<u16>> {
    Ok(cluster_nodes(port)?
        .into_iter()
        .find(|n| n.live_master && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
        .map(|n| n.port))
}

/// A slot of a [`RedisCluster`] on its way from one master to another
/// ([`RedisCluster::begin_slot_move`]).
#[derive(Debug)]
pub struct SlotMove {
    slot: u16,
    from: u16,
    to: u16,
    from_id: String,
    to_id: String,
}

impl SlotMove {
    /// Moves `keys` (of the slot) to the new master now (`MIGRATE ... KEYS`), leaving the rest.
    pub fn migrate(&self, keys: &[String]) -> Result<()> {
        let (from, to) = (self.from, self.to);
        if keys.is_empty() {
            return Ok(());
        }
        query::<()>(
            from,
            cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(keys),
        )
        .with_context(|| format!("MIGRATE of {} keys from {from} to {to}", keys.len()))
    }

    /// Moves the slot's remaining keys 100 at a time, then `SETSLOT ... NODE` on every
    /// master (the new owner first, then the old one: redis-cli's order), and waits (up to
    /// 30 s) until every running node of `cluster` names the new master for the slot.
    pub fn finish(self, cluster: &RedisCluster) -> Result<()> {
        let (slot, from, to) = (self.slot, self.from, self.to);
        loop {
            let keys: Vec<String> =
                query(from, cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(100))
                    .with_context(|| format!("CLUSTER GETKEYSINSLOT {slot} on {from}"))?;
            if keys.is_empty() {
                break;
            }
            self.migrate(&keys)?;
        }
        let masters: Vec<u16> = cluster_nodes(to)?
            .into_iter()
            .filter(|n| n.live_master)
            .map(|n| n.port)
            .collect();
        self.setslot(to, "NODE", &self.to_id)?;
        // A master that gave away its last slot becomes the new owner's replica (Redis 7's
        // `cluster-allow-replica-migration`), possibly before it is told: as redis-cli does,
        // a node that is a replica by then needs no telling.
        for port in
            std::iter::once(from).chain(masters.into_iter().filter(|p| *p != to && *p != from))
        {
            if let Err(e) = self.setslot(port, "NODE", &self.to_id) {
                let role = info_lines(port, cmd("INFO").arg("replication"));
                if !has_line(&role, "role:slave") {
                    return Err(e);
                }
            }
        }
        let moved = wait_until(CLUSTER_TIMEOUT, Duration::from_millis(50), || {
            Ok(cluster
                .running_ports()
                .into_iter()
                .all(|port| serving(port, slot).ok().flatten() == Some(to)))
        })?;
        if !moved {
            bail!(
                "slot {slot} was not served by node {to} everywhere within {}s",
                CLUSTER_TIMEOUT.as_secs()
            );
        }
        Ok(())
    }

    fn setslot(&self, port: u16, state: &str, node: &str) -> Result<()> {
        let slot = self.slot;
        query::<()>(
            port,
            cmd("CLUSTER").arg("SETSLOT").arg(slot).arg(state).arg(node),
        )
        .with_context(|| format!("CLUSTER SETSLOT {slot} {state} on {port}"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        self.watchdog.disarm();
    }
}

/// How many session checks a verifier sent, from an `INFO commandstats` reply: the `EXISTS`
/// (every-request mode) and `PTTL` (tracked mode's cache misses) calls.
///
/// ```
/// let info = "# Commandstats\r\ncmdstat_exists:calls=3,usec=9\r\ncmdstat_pttl:calls=2,usec=4\r\ncmdstat_ping:calls=7,usec=1\r\n";
/// assert_eq!(test_support::session_checks_in(info), 5);
/// ```
pub fn session_checks_in(commandstats: &str) -> u64 {
    commandstats
        .lines()
        .filter_map(|line| {
            let stats = line
                .strip_prefix("cmdstat_exists:")
                .or_else(|| line.strip_prefix("cmdstat_pttl:"))?;
            stats
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}
