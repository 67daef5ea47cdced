//! One Redis handle for standalone servers and clusters, shared by the auth-center and
//! the verifier.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::caching::CacheConfig;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo as _, Pipeline, ProtocolVersion, PushInfo, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, Value,
};

use crate::redis_access::{RedisCredentials, RedisTls, refused_for_good};
pub use crate::redis_sentinel::SentinelConnection;

/// Where Redis is: one server (`REDIS_URL`), the seed nodes of a cluster
/// (`REDIS_CLUSTER_URLS`), or the sentinels that name a master (`REDIS_SENTINEL_URLS`,
/// `REDIS_SENTINEL_MASTER`). `rediss://` URLs connect with TLS; how ([`crate::RedisTls`]) and as
/// whom ([`crate::RedisCredentials`], or the user and password in the URL) are separate
/// settings, shared by every topology.
///
/// ```
/// use verifier::RedisTarget;
/// let t = RedisTarget::cluster_from_csv("redis://127.0.0.1:7000, redis://127.0.0.1:7001");
/// assert_eq!(t, RedisTarget::Cluster(vec!["redis://127.0.0.1:7000".into(), "redis://127.0.0.1:7001".into()]));
/// let secret = RedisTarget::Standalone("redis://:hunter2@cache:6379".into());
/// assert_eq!(format!("{secret:?}"), r#"Standalone("redis://cache:6379")"#);
/// let sentinel = RedisTarget::sentinel_from_csv("redis://s1:26379, redis://s2:26379", "auth");
/// assert_eq!(sentinel, RedisTarget::Sentinel {
///     sentinels: vec!["redis://s1:26379".into(), "redis://s2:26379".into()],
///     master: "auth".into(),
/// });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// A standalone server URL, `redis://host:port[/db]`.
    Standalone(String),
    /// Cluster seed node URLs.
    Cluster(Vec<String>),
    /// A master and its replicas watched by Redis Sentinel: the connection goes to whichever
    /// node the sentinels name master, and follows a failover (see
    /// [`SentinelConnection`](crate::contract::SentinelConnection)).
    Sentinel {
        /// Sentinel URLs, `redis://host:26379` (`rediss://` for TLS to the sentinels and the
        /// data nodes alike); a user and password in them are the sentinels' own.
        sentinels: Vec<String>,
        /// The master's name in the sentinels' configuration (`sentinel monitor <name> ...`).
        master: String,
    },
}

/// Shows host and port only: a URL may carry a password.
impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts =
            |urls: &[String]| -> Vec<String> { urls.iter().map(|u| redact_url(u)).collect() };
        match self {
            RedisTarget::Standalone(url) => {
                f.debug_tuple("Standalone").field(&redact_url(url)).finish()
            }
            RedisTarget::Cluster(urls) => f.debug_tuple("Cluster").field(&hosts(urls)).finish(),
            RedisTarget::Sentinel { sentinels, master } => f
                .debug_struct("Sentinel")
                .field("sentinels", &hosts(sentinels))
                .field("master", master)
                .finish(),
        }
    }
}

/// `redis://user:secret@host:6379/0` → `redis://host:6379/0`.
fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_string(),
    }
}

impl RedisTarget {
    /// Parses a comma-separated list of seed URLs (blank entries are ignored).
    ///
    /// ```
    /// use verifier::RedisTarget;
    /// let target = RedisTarget::cluster_from_csv("redis://a:7000,,redis://b:7000 ");
    /// assert_eq!(target, RedisTarget::Cluster(vec!["redis://a:7000".into(), "redis://b:7000".into()]));
    /// ```
    pub fn cluster_from_csv(csv: &str) -> Self {
        RedisTarget::Cluster(split_csv(csv))
    }

    /// The sentinels of a comma-separated list of URLs (blank entries are ignored) and the
    /// master's name.
    ///
    /// ```
    /// use verifier::RedisTarget;
    /// let target = RedisTarget::sentinel_from_csv("redis://a:26379,,", "auth");
    /// assert_eq!(target, RedisTarget::Sentinel { sentinels: vec!["redis://a:26379".into()], master: "auth".into() });
    /// ```
    pub fn sentinel_from_csv(csv: &str, master: &str) -> Self {
        RedisTarget::Sentinel {
            sentinels: split_csv(csv),
            master: master.trim().to_owned(),
        }
    }

    /// Every URL of the target: the server, the seed nodes or the sentinels.
    ///
    /// ```
    /// use verifier::RedisTarget;
    /// assert_eq!(RedisTarget::Standalone("redis://a".into()).urls(), ["redis://a"]);
    /// ```
    pub fn urls(&self) -> &[String] {
        match self {
            RedisTarget::Standalone(url) => std::slice::from_ref(url),
            RedisTarget::Cluster(urls) => urls,
            RedisTarget::Sentinel { sentinels, .. } => sentinels,
        }
    }
}

fn split_csv(csv: &str) -> Vec<String> {
    csv.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Timeouts for every Redis call; a call that takes longer fails (and the caller fails
/// closed) instead of hanging.
///
/// ```
/// let opts = verifier::contract::RedisOptions::default();
/// assert!(opts.response_timeout.as_millis() <= 1000);
/// assert!(opts.client_cache_ttl.is_none());
/// ```
#[derive(Clone)]
pub struct RedisOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one command's reply.
    pub response_timeout: Duration,
    /// Server-assisted client-side caching (RESP3 `CLIENT TRACKING`) of read commands,
    /// with this client-side TTL as the safety net; `None` disables it.
    pub client_cache_ttl: Option<Duration>,
    /// Called with every push message (RESP3 invalidations, disconnects) of the
    /// connection, inline: it must not block.
    pub on_push: Option<PushHandler>,
    /// The CA and client certificate for `rediss://` URLs; `None`: the built-in public CAs
    /// and no client certificate. Setting it with a `redis://` URL is an error.
    pub tls: Option<RedisTls>,
    /// The ACL user and password, in place of those in the URL.
    pub credentials: Option<RedisCredentials>,
    /// With [`RedisTarget::Sentinel`]: the sentinels' own user and password, in place of
    /// those in their URLs ([`credentials`](Self::credentials) are the data nodes').
    pub sentinel_credentials: Option<RedisCredentials>,
}

/// A callback for push messages.
///
/// ```
/// use std::sync::Arc;
/// use verifier::contract::{PushHandler, RedisOptions};
/// let on_push: PushHandler = Arc::new(|push| println!("push: {:?}", push.kind));
/// let options = RedisOptions { on_push: Some(on_push), ..RedisOptions::default() };
/// ```
pub type PushHandler = Arc<dyn Fn(&PushInfo) + Send + Sync>;

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("client_cache_ttl", &self.client_cache_ttl)
            .field("on_push", &self.on_push.is_some())
            .field("tls", &self.tls)
            .field("credentials", &self.credentials)
            .field("sentinel_credentials", &self.sentinel_credentials)
            .finish()
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(500),
            client_cache_ttl: None,
            on_push: None,
            tls: None,
            credentials: None,
            sentinel_credentials: None,
        }
    }
}

/// Entries kept by the client-side cache.
const CLIENT_CACHE_ENTRIES: usize = 100_000;

pub(crate) fn cache_config(ttl: Duration) -> CacheConfig {
    CacheConfig::new()
        .set_default_client_ttl(ttl)
        .set_size(NonZeroUsize::new(CLIENT_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN))
}

pub(crate) fn push_sender(
    handler: PushHandler,
) -> impl Fn(PushInfo) -> Result<(), std::convert::Infallible> {
    move |push| {
        handler(&push);
        Ok(())
    }
}

/// A multiplexed, self-reconnecting connection to a standalone server or a cluster.
/// Cheap to clone; implements [`ConnectionLike`], so commands and scripts run on it
/// whatever the topology.
///
/// ```
/// use verifier::RedisTarget;
/// use verifier::contract::{RedisConnection, RedisOptions};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // Lazy: nothing listens on port 1, yet connecting succeeds; commands fail until it does.
/// let target = RedisTarget::Standalone("redis://127.0.0.1:1".into());
/// let mut conn = RedisConnection::connect(&target, RedisOptions::default()).await.unwrap();
/// assert!(redis::cmd("PING").query_async::<String>(&mut conn).await.is_err());
/// # });
/// ```
#[derive(Clone)]
pub enum RedisConnection {
    /// A standalone server behind a reconnecting [`ConnectionManager`].
    Standalone(ConnectionManager),
    /// A cluster; commands are routed by key slot.
    Cluster(ClusterConnection),
    /// The master that Redis Sentinel names, followed across failovers.
    Sentinel(SentinelConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConnection::Standalone(_) => "RedisConnection::Standalone",
            RedisConnection::Cluster(_) => "RedisConnection::Cluster",
            RedisConnection::Sentinel(_) => "RedisConnection::Sentinel",
        })
    }
}

impl RedisConnection {
    /// Connects. A standalone connection is lazy (it connects on first use and keeps
    /// reconnecting), so a service can start while Redis is down; a cluster connection
    /// needs one seed node to answer now.
    ///
    /// With TLS (`rediss://`) or credentials, a standalone connection is tried once first:
    /// a failed TLS handshake (an untrusted server certificate, a refused client certificate)
    /// or refused credentials is an error now, with a message that says so, since waiting
    /// does not fix it; an unreachable server is not.
    ///
    /// ```
    /// # async fn demo() -> redis::RedisResult<()> {
    /// use verifier::RedisTarget;
    /// use verifier::contract::{RedisConnection, RedisOptions};
    /// let target = RedisTarget::cluster_from_csv("redis://127.0.0.1:7000");
    /// let conn = RedisConnection::connect(&target, RedisOptions::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(target: &RedisTarget, options: RedisOptions) -> RedisResult<Self> {
        match target {
            RedisTarget::Standalone(url) => {
                let info = standalone_info(url, &options)?;
                let tls = is_tls(&info);
                check_tls_scheme(tls, &options)?;
                let mut config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.response_timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                if let Some(ttl) = options.client_cache_ttl {
                    config = config.set_cache_config(cache_config(ttl));
                }
                if let Some(handler) = options.on_push.clone() {
                    config = config.set_push_sender(push_sender(handler));
                }
                let secured = info.redis_settings().password().is_some();
                let client = match &options.tls {
                    Some(certificates) => {
                        Client::build_with_tls(info, certificates.certificates())?
                    }
                    None => Client::open(info)?,
                };
                if tls || secured {
                    refuse_bad_access(&client, &options).await?;
                }
                Ok(RedisConnection::Standalone(
                    ConnectionManager::new_lazy_with_config(client, config)?,
                ))
            }
            RedisTarget::Cluster(urls) => {
                let mut tls = false;
                for url in urls {
                    tls |= is_tls(&url.as_str().into_connection_info()?);
                }
                check_tls_scheme(tls, &options)?;
                let mut builder = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                    .tcp_settings(tcp_settings());
                if let Some(ttl) = options.client_cache_ttl {
                    builder = builder
                        .use_protocol(ProtocolVersion::RESP3)
                        .cache_config(cache_config(ttl));
                }
                if let Some(handler) = options.on_push.clone() {
                    builder = builder.push_sender(push_sender(handler));
                }
                if let Some(certificates) = &options.tls {
                    builder = builder.certs(certificates.certificates());
                }
                if let Some(credentials) = &options.credentials {
                    if let Some(username) = &credentials.username {
                        builder = builder.username(username);
                    }
                    builder = builder.password(&credentials.password);
                }
                let client = builder
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.response_timeout)
                    .overall_response_timeout(Some(options.response_timeout * 2))
                    .retries(2)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()?;
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| refused_for_good(&e).unwrap_or(e))?;
                Ok(RedisConnection::Cluster(conn))
            }
            RedisTarget::Sentinel { sentinels, master } => Ok(RedisConnection::Sentinel(
                SentinelConnection::connect(sentinels, master, options).await?,
            )),
        }
    }
}

impl RedisConnection {
    /// `WAIT <replicas> <timeout>` after a write of `key` on this connection: how many
    /// replicas acknowledged every write made so far, at most after `timeout`. On a cluster it
    /// goes to the master of `key`'s slot (not to every master); elsewhere to the one master.
    /// It makes no write durable by itself: a master that crashes before a replica has it
    /// still loses it, `WAIT` only tells.
    ///
    /// ```no_run
    /// # async fn demo(conn: verifier::contract::RedisConnection) -> redis::RedisResult<()> {
    /// let acknowledged = conn.wait_for_replicas("auth:s:{u1}:s1", 1, std::time::Duration::from_millis(100)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_replicas(
        &self,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> RedisResult<u32> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas)
            .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        match self.clone() {
            RedisConnection::Cluster(mut c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::with_key(key, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let value = c.route_command(wait, routing).await?;
                Ok(redis::from_redis_value(value)?)
            }
            mut conn => wait.query_async(&mut conn).await,
        }
    }

    /// The `CLIENT ID` of each connection to a data node this connection uses now, sorted by
    /// node: on a cluster, of every primary's connection (the node's address, the id);
    /// otherwise of the one connection (an empty address). A different answer later means a
    /// connection was replaced, and with it what Redis tracked for it.
    pub(crate) async fn connection_ids(&self) -> RedisResult<Vec<(String, i64)>> {
        let mut client_id = redis::cmd("CLIENT");
        client_id.arg("ID");
        match self.clone() {
            RedisConnection::Cluster(mut c) => {
                use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                // Without a response policy, redis-rs answers a map of node to reply.
                let Value::Map(replies) = c.route_command(client_id, routing).await? else {
                    return Err((ErrorKind::UnexpectedReturnType, "CLIENT ID: not a map").into());
                };
                let mut ids = replies
                    .into_iter()
                    .map(|(node, reply)| {
                        Ok((
                            redis::from_redis_value::<String>(node)?,
                            redis::from_redis_value::<i64>(reply.extract_error()?)?,
                        ))
                    })
                    .collect::<RedisResult<Vec<_>>>()?;
                ids.sort_unstable();
                Ok(ids)
            }
            mut conn => Ok(vec![(
                String::new(),
                client_id.query_async(&mut conn).await?,
            )]),
        }
    }
}

/// What every connection to Redis (data nodes and sentinels) sets on its socket:
/// `TCP_NODELAY`. With Nagle's algorithm, a command written while an earlier one is
/// unacknowledged waits until Redis's reply acknowledges it, so on a multiplexed connection
/// each of several concurrent commands would wait a round trip for the one before. redis-rs
/// leaves it off by default.
pub(crate) fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// The connection info of a standalone server at `url`: the user and password of
/// `options` (if set), RESP3 when client-side caching is on (its invalidations are push
/// messages), and [`tcp_settings`].
fn standalone_info(url: &str, options: &RedisOptions) -> RedisResult<ConnectionInfo> {
    let info = with_credentials(url.into_connection_info()?, options);
    let mut settings = info.redis_settings().clone();
    if options.client_cache_ttl.is_some() {
        settings = settings.set_protocol(ProtocolVersion::RESP3);
    }
    Ok(info
        .set_redis_settings(settings)
        .set_tcp_settings(tcp_settings()))
}

/// `info` with the user and password of `options`, if it has them, in place of the URL's.
fn with_credentials(info: ConnectionInfo, options: &RedisOptions) -> ConnectionInfo {
    let Some(credentials) = &options.credentials else {
        return info;
    };
    let mut settings = info.redis_settings().clone();
    if let Some(username) = &credentials.username {
        settings = settings.set_username(username);
    }
    settings = settings.set_password(&credentials.password);
    info.set_redis_settings(settings)
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// TLS settings with a plain `redis://` URL would be ignored: refused instead.
pub(crate) fn check_tls_scheme(tls: bool, options: &RedisOptions) -> RedisResult<()> {
    if options.tls.is_some() && !tls {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "a Redis CA file or client certificate is set, but the Redis URL is not rediss:// \
             (TLS): use rediss://",
        )));
    }
    Ok(())
}

/// Connects once, and fails if the TLS settings or the credentials are refused (see
/// [`refused_for_good`]); any other failure is left to the lazy connection's retries.
async fn refuse_bad_access(client: &Client, options: &RedisOptions) -> RedisResult<()> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.response_timeout));
    match client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => match refused_for_good(&e) {
            Some(refused) => Err(refused),
            None => Ok(()),
        },
    }
}

/// What a failed Redis call means for its caller: the one classification of Redis errors that
/// every Redis caller in the workspace (the auth-center's stores, the verifier's session check)
/// answers by.
///
/// ```
/// use verifier::contract::RedisFailure;
/// let refused = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert_eq!(RedisFailure::of(&refused), RedisFailure::Unavailable);
/// let moved = redis::parse_redis_value(b"-MOVED 3999 127.0.0.1:6381\r\n").unwrap().extract_error().unwrap_err();
/// assert_eq!(RedisFailure::of(&moved), RedisFailure::Unavailable);
/// let wrongtype = redis::parse_redis_value(b"-WRONGTYPE Operation against a key\r\n").unwrap().extract_error().unwrap_err();
/// assert_eq!(RedisFailure::of(&wrongtype), RedisFailure::Fault);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailure {
    /// Redis cannot serve the call right now, and the same call can succeed later: answer
    /// `503` with `Retry-After`. The connection failed (refused, dropped, reset, timed out, the
    /// handshake failed, no connection to the slot's node), or the cluster is changing under
    /// it (`MOVED`/`ASK` left over after the client's own retries, `TRYAGAIN`, `CLUSTERDOWN`,
    /// `MASTERDOWN`, `READONLY` from a demoted master, `NOSCRIPT` from a node that replaced
    /// another), or the server is not ready (`LOADING`, `BUSY` script, `NOREPLICAS`, `OOM`).
    Unavailable,
    /// The call itself is wrong and retrying does not help: a Lua script error, `WRONGTYPE`,
    /// `NOPERM`, `CROSSSLOT`, a reply of an unexpected type, a client misconfiguration.
    Fault,
}

impl RedisFailure {
    /// Classifies by the error's kind and server error code, never by its message.
    ///
    /// ```
    /// use verifier::contract::RedisFailure;
    /// let timed_out = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
    /// assert_eq!(RedisFailure::of(&timed_out), RedisFailure::Unavailable);
    /// ```
    pub fn of(error: &RedisError) -> Self {
        let unavailable = match error.kind() {
            // Every connection-level failure: refused, reset, dropped, timed out, TLS, DNS.
            ErrorKind::Io
            // A reply cut short or garbled on the wire; the connection is replaced.
            | ErrorKind::Parse
            // The handshake with a (new) node failed.
            | ErrorKind::AuthenticationFailed
            // No connection to any node that could serve the slot.
            | ErrorKind::ClusterConnectionNotFound => true,
            ErrorKind::Server(kind) => matches!(
                kind,
                ServerErrorKind::Moved
                    | ServerErrorKind::Ask
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::BusyLoading
                    // Scripts reload themselves once on `NOSCRIPT`; a second one means the
                    // node changed in between (a promoted replica has an empty script cache).
                    | ServerErrorKind::NoScript
            ),
            // Codes redis-rs has no kind for.
            ErrorKind::Extension => {
                matches!(error.code(), Some("BUSY" | "NOREPLICAS" | "OOM"))
            }
            _ => false,
        };
        if unavailable {
            RedisFailure::Unavailable
        } else {
            RedisFailure::Fault
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Standalone(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
            RedisConnection::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Standalone(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
            RedisConnection::Sentinel(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    /// The error redis-rs makes of a server's error reply, e.g. `-MOVED 1 127.0.0.1:7000`.
    fn reply(line: &str) -> RedisError {
        let value = redis::parse_redis_value(format!("-{line}\r\n").as_bytes());
        match value.and_then(Value::extract_error) {
            Err(e) => e,
            Ok(v) => panic!("{line:?} parsed as {v:?}, not an error"),
        }
    }

    /// Every error of `errors`, and of the server error replies `replies`, is `expected`.
    fn assert_all(
        expected: RedisFailure,
        errors: impl IntoIterator<Item = RedisError>,
        replies: &[&str],
    ) {
        for e in errors
            .into_iter()
            .chain(replies.iter().map(|line| reply(line)))
        {
            assert_eq!(RedisFailure::of(&e), expected, "{e} ({:?})", e.kind());
        }
    }

    #[test]
    fn connection_failures_and_cluster_changes_are_unavailable() {
        let io_errors = [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::TimedOut,
            io::ErrorKind::NotConnected,
            io::ErrorKind::PermissionDenied,
        ]
        .map(|kind| RedisError::from(io::Error::from(kind)));
        let made_by_the_client = [
            RedisError::from((ErrorKind::Io, "connection dropped")),
            RedisError::from((ErrorKind::ClusterConnectionNotFound, "No connections found")),
            RedisError::from((ErrorKind::AuthenticationFailed, "handshake")),
        ];
        let replies = [
            "MOVED 568 127.0.0.1:22542",
            "ASK 568 127.0.0.1:22542",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "CLUSTERDOWN Hash slot not served",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "READONLY You can't write against a read only replica.",
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script.",
            "NOREPLICAS Not enough good replicas to write.",
            "NOSCRIPT No matching script.",
            "OOM command not allowed when used memory > 'maxmemory'.",
        ];
        assert_all(
            RedisFailure::Unavailable,
            io_errors.into_iter().chain(made_by_the_client),
            &replies,
        );
    }

    #[test]
    fn logic_errors_are_faults() {
        let made_by_the_client = [
            RedisError::from((ErrorKind::UnexpectedReturnType, "not an integer")),
            RedisError::from((ErrorKind::InvalidClientConfig, "bad url")),
            RedisError::from((ErrorKind::Client, "empty command")),
        ];
        let replies = [
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR user_script:3: Script attempted to access nonexistent global variable 'x'",
            "ERR wrong number of arguments for 'hmget' command",
            "NOPERM this user has no permissions to run the 'eval' command",
            "CROSSSLOT Keys in request don't hash to the same slot",
        ];
        assert_all(RedisFailure::Fault, made_by_the_client, &replies);
    }
    #[test]
    fn every_connection_to_redis_sends_without_nagle_delays() {
        // Nagle's algorithm holds a command written while an earlier one is unacknowledged
        // until Redis's reply acknowledges it: on a multiplexed connection, concurrent
        // commands would each wait for the one before to come back.
        assert!(tcp_settings().nodelay());
        let options = RedisOptions {
            client_cache_ttl: Some(Duration::from_secs(1)),
            ..RedisOptions::default()
        };
        for url in ["redis://127.0.0.1:6379", "rediss://u:p@127.0.0.1:6380/2"] {
            for options in [RedisOptions::default(), options.clone()] {
                let info = standalone_info(url, &options).unwrap();
                assert!(info.tcp_settings().nodelay(), "{url}");
                // Client-side caching needs RESP3 (its invalidations are pushes).
                let resp3 = info.redis_settings().protocol() == ProtocolVersion::RESP3;
                assert_eq!(resp3, options.client_cache_ttl.is_some(), "{url}");
            }
        }
    }
}
