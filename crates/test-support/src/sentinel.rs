//! A private Redis Sentinel set-up: one master, one replica and three sentinels
//! ([`RedisSentinel`]), for tests that kill the master and watch the sentinels promote the
//! replica.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use redis::{Cmd, FromRedisValue, RedisResult, cmd};
use tempfile::TempDir;

use crate::redis::{FAILOVER_TIMEOUT, Node, query};
use crate::util::{self, Watchdog, wait_until};

/// How long the sentinels may take to find each other and the replica at start.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Sentinels in the set-up; a failover needs a majority of them.
const SENTINELS: usize = 3;

/// A private Redis Sentinel set-up on free loopback ports, in its own temporary directory:
/// a master, its replica and three sentinels that monitor the master under
/// [`RedisSentinel::MASTER_NAME`] with a quorum of 2, `down-after-milliseconds 1000` and
/// `failover-timeout 5000`, so a killed master's replica is promoted within a few seconds.
/// Nothing is persisted. Each test that changes the topology (kills a node) starts its own.
///
/// Dropping it kills every process and removes the directory; a watchdog does the same if
/// the test process dies first.
///
/// ```no_run
/// use test_support::RedisSentinel;
/// let mut sentinel = RedisSentinel::start()?;
/// let urls = sentinel.sentinel_urls(); // "redis://127.0.0.1:<port>" × 3
/// let old = sentinel.master()?;
/// sentinel.kill(old)?; // the master crashes
/// let new = sentinel.wait_for_promotion(old)?; // the sentinels promoted the replica
/// # let _ = (urls, new);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct RedisSentinel {
    /// The master as started, then its replica.
    data: Vec<Node>,
    sentinels: Vec<Node>,
    watchdog: Watchdog,
    /// Removed when dropped, after the processes are gone.
    _dir: TempDir,
}

impl RedisSentinel {
    /// The master's name in the sentinels' configuration (`REDIS_SENTINEL_MASTER`).
    pub const MASTER_NAME: &'static str = "auth-test";

    /// Starts the master, the replica (`--replicaof`) and the three sentinels, and waits (up
    /// to 30 s) until the replica's link is up and every sentinel knows the replica and the
    /// two other sentinels (without that, a failover cannot get a majority).
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("test-support-redis-sentinel-")
            .tempdir()
            .context("could not create a temporary directory for redis sentinel")?;
        let watchdog = Watchdog::spawn(dir.path())?;
        let mut set = Self {
            data: Vec::new(),
            sentinels: Vec::new(),
            watchdog,
            _dir: dir,
        };
        let root = set._dir.path().to_path_buf();
        let mut master = Node::new(root.join("data-0"), None);
        master.extra_args = sync_at_once();
        master.start_fresh()?;
        let master_port = master.port;
        set.data.push(master);
        let mut replica = Node::new(root.join("data-1"), None);
        replica.extra_args = sync_at_once();
        replica.extra_args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            master_port.to_string(),
        ]);
        replica.start_fresh()?;
        let replica_port = replica.port;
        set.data.push(replica);
        let linked = wait_until(DISCOVERY_TIMEOUT, Duration::from_millis(20), || {
            Ok(replication(replica_port).get("master_link_status") == Some(&"up".to_owned()))
        })?;
        if !linked {
            bail!("the replica on port {replica_port} did not sync with the master {master_port}");
        }
        let name = Self::MASTER_NAME;
        for i in 0..SENTINELS {
            let mut sentinel = Node::new(root.join(format!("sentinel-{i}")), None);
            sentinel.sentinel_conf = Some(format!(
                "sentinel resolve-hostnames no\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n\
                 sentinel parallel-syncs {name} 1\n"
            ));
            sentinel.start_fresh()?;
            set.sentinels.push(sentinel);
        }
        let mut last = String::new();
        let ready = wait_until(DISCOVERY_TIMEOUT, Duration::from_millis(100), || {
            for sentinel in &set.sentinels {
                let view = set.sentinel_view(sentinel.port).unwrap_or_default();
                let field = |k: &str| view.get(k).cloned().unwrap_or_default();
                if field("num-other-sentinels") != (SENTINELS - 1).to_string()
                    || field("num-slaves") != "1"
                {
                    last = format!("sentinel {}: {view:?}", sentinel.port);
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if !ready {
            bail!("the sentinels did not find each other and the replica; last seen: {last}");
        }
        Ok(set)
    }

    /// The sentinels' URLs, `redis://127.0.0.1:<port>` (`REDIS_SENTINEL_URLS`).
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// The ports of the data nodes: the master as started, then the replica.
    pub fn data_ports(&self) -> Vec<u16> {
        self.data.iter().map(|n| n.port).collect()
    }

    /// The port of the master the first sentinel names now.
    pub fn master(&self) -> Result<u16> {
        let sentinel = self.sentinels.first().context("no sentinel")?;
        let (_, port): (String, u16) = query(
            sentinel.port,
            cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(Self::MASTER_NAME),
        )
        .context("SENTINEL GET-MASTER-ADDR-BY-NAME")?;
        Ok(port)
    }

    /// Sends `command` to the data node on `port`.
    pub fn query<T: FromRedisValue>(&self, port: u16, command: &Cmd) -> RedisResult<T> {
        query(port, command)
    }

    /// SIGKILLs the data node on `port`, as a crash would, and waits until its port refuses
    /// connections.
    pub fn kill(&mut self, port: u16) -> Result<()> {
        let node = self
            .data
            .iter_mut()
            .find(|n| n.port == port)
            .with_context(|| format!("no data node of this set-up is on port {port}"))?;
        node.kill();
        util::wait_port_closed(port, &node.name())
    }

    /// Freezes the data node on `port` (SIGSTOP): its connections stay open, so a master still
    /// counts it as an online replica, but it reads, applies and acknowledges nothing until
    /// [`RedisSentinel::thaw`]. Thaw it before the end of the test: a frozen node does not
    /// answer the `SHUTDOWN` of the clean-up (which then waits 5 s and kills it).
    pub fn freeze(&self, port: u16) -> Result<()> {
        self.data_node(port)?.signal("STOP")
    }

    /// Lets a node frozen by [`RedisSentinel::freeze`] go on (SIGCONT).
    pub fn thaw(&self, port: u16) -> Result<()> {
        self.data_node(port)?.signal("CONT")
    }

    fn data_node(&self, port: u16) -> Result<&Node> {
        self.data
            .iter()
            .find(|n| n.port == port)
            .with_context(|| format!("no data node of this set-up is on port {port}"))
    }

    /// Waits (up to 30 s) until every sentinel names the same master, other than `dead`, and
    /// that node says it is a master (`ROLE`); returns its port.
    pub fn wait_for_promotion(&self, dead: u16) -> Result<u16> {
        let mut promoted = None;
        let mut last = String::new();
        let done = wait_until(FAILOVER_TIMEOUT, Duration::from_millis(50), || {
            promoted = None;
            let mut named = Vec::new();
            for sentinel in &self.sentinels {
                let reply: RedisResult<(String, u16)> = query(
                    sentinel.port,
                    cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(Self::MASTER_NAME),
                );
                named.push(reply.map(|(_, port)| port).ok());
            }
            last = format!("the sentinels name {named:?}");
            let Some(Some(first)) = named.first().copied() else {
                return Ok(false);
            };
            if first == dead || named.iter().any(|n| *n != Some(first)) {
                return Ok(false);
            }
            let role: RedisResult<Vec<redis::Value>> = query(first, &cmd("ROLE"));
            let is_master = matches!(
                role.as_deref(),
                Ok([redis::Value::BulkString(r), ..]) if r.as_slice() == b"master"
            );
            promoted = is_master.then_some(first);
            Ok(is_master)
        })?;
        match promoted {
            Some(port) if done => Ok(port),
            _ => bail!(
                "the sentinels did not promote a replica of {dead} within {}s; last: {last}",
                FAILOVER_TIMEOUT.as_secs()
            ),
        }
    }

    /// `SENTINEL MASTER <name>` as the sentinel on `port` sees it.
    fn sentinel_view(&self, port: u16) -> Result<HashMap<String, String>> {
        Ok(query(
            port,
            cmd("SENTINEL").arg("MASTER").arg(Self::MASTER_NAME),
        )?)
    }
}

/// Replicas sync at once, not after the default 5 s of waiting for company.
fn sync_at_once() -> Vec<String> {
    vec!["--repl-diskless-sync-delay".into(), "0".into()]
}

/// `INFO replication` of the node on `port`, as fields.
fn replication(port: u16) -> HashMap<String, String> {
    let info: String = query(port, cmd("INFO").arg("replication")).unwrap_or_default();
    info.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for node in self.sentinels.iter_mut().chain(self.data.iter_mut()) {
            node.kill();
        }
        self.watchdog.disarm();
    }
}
