//! Private `redis-server` processes: standalone ([`RedisServer`]) and a 3-master cluster
//! ([`RedisCluster`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::resp::{self, Reply};
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
/// Cluster node timeout: short enough for quick recovery, long enough for a loaded CI box.
const CLUSTER_NODE_TIMEOUT_MS: &str = "5000";
/// Name of the pidfile the watchdog looks for.
const PIDFILE: &str = "redis-server.pid";

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
/// cluster nodes, `nodes.conf`).
struct Node {
    dir: PathBuf,
    port: u16,
    cluster: bool,
    child: Option<Child>,
}

impl Node {
    fn new(dir: PathBuf, cluster: bool) -> Self {
        Self {
            dir,
            port: 0,
            cluster,
            child: None,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn name(&self) -> String {
        if self.cluster {
            format!("redis cluster node on port {}", self.port)
        } else {
            format!("redis-server on port {}", self.port)
        }
    }

    /// Starts on a fresh random port, retrying with other ports if the chosen one is taken.
    fn start_fresh(&mut self) -> Result<()> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            self.port = util::pick_port(self.cluster)?;
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
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .arg("--pidfile")
            .arg(self.dir.join(PIDFILE));
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes"])
                .arg("--cluster-config-file")
                .arg(self.dir.join("nodes.conf"))
                .args(["--cluster-node-timeout", CLUSTER_NODE_TIMEOUT_MS]);
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
            if matches!(resp::command(self.port, &["PING"]), Ok(Reply::Simple(s)) if s == "PONG") {
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

    fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILLs the process (if any) and reaps it. The pidfile is removed first so the watchdog
    /// never sees a stale pid.
    fn kill(&mut self) {
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
            // On success the server closes the connection without a reply.
            let _ = resp::command(self.port, &["SHUTDOWN", "NOSAVE"]);
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
        let dir = tempfile::Builder::new()
            .prefix("test-support-redis-")
            .tempdir()
            .context("could not create a temporary directory for redis-server")?;
        let watchdog = Watchdog::spawn(dir.path())?;
        let mut server = Self {
            node: Node::new(dir.path().to_path_buf(), false),
            watchdog,
            _dir: dir,
        };
        server.node.start_fresh()?;
        Ok(server)
    }

    /// The server's URL: `redis://127.0.0.1:<port>`.
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

/// A private Redis Cluster: 3 masters, 0 replicas, on free loopback ports (each `<= 55535`,
/// so the cluster bus at `port + 10000` is valid; both were free when picked). Each node has
/// its own directory (`node-<i>/` with `redis.log` and `nodes.conf`) inside one temporary
/// directory. Nothing is persisted except the cluster configuration.
///
/// Dropping it kills all nodes and removes the directory; a watchdog does the same if the test
/// process dies first.
///
/// ```no_run
/// let cluster = test_support::RedisCluster::start()?;
/// let urls = cluster.urls(); // one "redis://127.0.0.1:<port>" per master
/// # let _ = urls;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct RedisCluster {
    nodes: Vec<Node>,
    watchdog: Watchdog,
    dir: TempDir,
}

impl RedisCluster {
    /// Number of masters.
    const MASTERS: usize = 3;

    /// Starts 3 cluster-enabled nodes, joins them with
    /// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and waits (up to
    /// 30 s) until every node reports `cluster_state:ok`, knows all 3 nodes and sees all 16384
    /// slots served.
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("test-support-redis-cluster-")
            .tempdir()
            .context("could not create a temporary directory for the redis cluster")?;
        let watchdog = Watchdog::spawn(dir.path())?;
        let mut cluster = Self {
            nodes: Vec::new(),
            watchdog,
            dir,
        };
        for i in 0..Self::MASTERS {
            let mut node = Node::new(cluster.dir.path().join(format!("node-{i}")), true);
            node.start_fresh()?;
            cluster.nodes.push(node);
        }
        cluster.create()?;
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// One URL per master: `redis://127.0.0.1:<port>`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The masters' TCP ports on 127.0.0.1.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Stops every node (`SHUTDOWN NOSAVE`, SIGKILL as a fallback) and waits until their ports
    /// refuse connections. Each node's `nodes.conf` is kept, so [`RedisCluster::restart`]
    /// brings back the same cluster. Stopping a stopped cluster is a no-op.
    pub fn stop(&mut self) -> Result<()> {
        // Ask all nodes first so they go down together (no node gets flagged as failing).
        for node in &mut self.nodes {
            if node.is_running() {
                let _ = resp::command(node.port, &["SHUTDOWN", "NOSAVE"]);
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

    /// `redis-cli --cluster create`, with a time limit and its output in `cluster-create.log`.
    fn create(&mut self) -> Result<()> {
        let log = self.dir.path().join("cluster-create.log");
        let out = fs::File::create(&log).context("creating cluster-create.log")?;
        let err = out.try_clone()?;
        let mut child = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
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

    /// Waits until every node says `cluster_state:ok`, `cluster_known_nodes:3` and
    /// `cluster_slots_ok:16384`.
    fn wait_ok(&mut self) -> Result<()> {
        let expected = [
            "cluster_state:ok".to_owned(),
            format!("cluster_known_nodes:{}", Self::MASTERS),
            "cluster_slots_ok:16384".to_owned(),
        ];
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        for node in &self.nodes {
            let mut last = String::new();
            let ok = wait_until(
                deadline.saturating_duration_since(Instant::now()),
                Duration::from_millis(50),
                || {
                    last = match resp::command(node.port, &["CLUSTER", "INFO"]) {
                        Ok(Reply::Bulk(Some(info))) => info,
                        other => format!("{other:?}"),
                    };
                    let lines: Vec<&str> = last.lines().map(str::trim).collect();
                    Ok(expected.iter().all(|e| lines.contains(&e.as_str())))
                },
            )?;
            if !ok {
                bail!(
                    "{} did not reach cluster_state:ok within {}s; last CLUSTER INFO:\n{}\n{}",
                    node.name(),
                    CLUSTER_TIMEOUT.as_secs(),
                    last.trim_end(),
                    log_tail(&node.log_path(), 30)
                );
            }
        }
        Ok(())
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
