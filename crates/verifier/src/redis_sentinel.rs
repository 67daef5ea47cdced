//! A connection to the master that Redis Sentinel names, which follows a failover: it asks
//! the sentinels for the master, connects, checks that the node it reached really is the
//! master, and asks again whenever the connection fails, lands on a replica (`READONLY`,
//! `MASTERDOWN`, or `ROLE` saying so) or is lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo as _, Pipeline,
    ProtocolVersion, PushInfo, PushKind, RedisError, RedisFuture, RedisResult, Role,
    ServerErrorKind, TlsMode, Value,
};

use crate::redis_access::refused_for_good;
use crate::redis_conn::{RedisFailure, RedisOptions, cache_config, push_sender};

/// After a failed look-up, callers fail at once for this long instead of asking the
/// sentinels again (under load, every request would otherwise ask them).
const RESOLVE_BACKOFF: Duration = Duration::from_millis(100);

/// How often the node behind the connection is asked for its `ROLE`: a master that Sentinel
/// demoted while the connection stayed up is left within this time.
const ROLE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// A multiplexed connection to the master of a Sentinel-monitored Redis, re-resolved through
/// the sentinels after every connection failure and every sign that the node is no longer
/// the master. Each new master connection runs the handshake again (credentials, RESP3,
/// `CLIENT TRACKING` when client-side caching is on), and the push handler receives a
/// [`PushKind::Disconnection`] first, so a cache filled from the old master is dropped
/// before the new one answers. Cheap to clone.
///
/// Made by [`RedisConnection::connect`](crate::contract::RedisConnection::connect) with a
/// [`RedisTarget::Sentinel`](crate::RedisTarget::Sentinel) target.
///
/// ```
/// use verifier::RedisTarget;
/// use verifier::contract::{RedisConnection, RedisOptions};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // Lazy: no sentinel listens on port 1, yet connecting succeeds; commands fail until one does.
/// let target = RedisTarget::Sentinel { sentinels: vec!["redis://127.0.0.1:1".into()], master: "auth".into() };
/// let mut conn = RedisConnection::connect(&target, RedisOptions::default()).await.unwrap();
/// assert!(matches!(conn, RedisConnection::Sentinel(_)));
/// assert!(redis::cmd("PING").query_async::<String>(&mut conn).await.is_err());
/// # });
/// ```
#[derive(Clone)]
pub struct SentinelConnection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SentinelConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelConnection")
            .field("master", &self.inner.master)
            .finish_non_exhaustive()
    }
}

struct Inner {
    master: String,
    /// The sentinels; one look-up at a time.
    resolver: tokio::sync::Mutex<Resolver>,
    /// The connection to the current master, if there is one.
    current: RwLock<Option<Current>>,
    /// Numbers the master connections.
    next_id: AtomicU64,
    config: AsyncConnectionConfig,
    on_push: Option<crate::redis_conn::PushHandler>,
    /// Bounds one look-up and connect.
    resolve_timeout: Duration,
}

struct Resolver {
    client: SentinelClient,
    failed_at: Option<tokio::time::Instant>,
}

#[derive(Clone)]
struct Current {
    id: u64,
    conn: MultiplexedConnection,
}

impl SentinelConnection {
    /// Builds the connection; nothing is asked before the first command. `sentinels` are
    /// `redis://` or `rediss://` URLs (all the same scheme): with `rediss://` the sentinels
    /// and the data nodes are both reached over TLS with `options.tls`. The data nodes use
    /// `options.credentials`; the sentinels `sentinel_credentials`, else the user and
    /// password in their URLs.
    pub(crate) async fn connect(
        sentinels: &[String],
        master: &str,
        options: RedisOptions,
    ) -> RedisResult<Self> {
        let mut addrs = Vec::with_capacity(sentinels.len());
        let mut url_credentials = None;
        for url in sentinels {
            let info = url.as_str().into_connection_info()?;
            let settings = info.redis_settings();
            if url_credentials.is_none()
                && let Some(password) = settings.password()
            {
                url_credentials =
                    Some((settings.username().map(str::to_owned), password.to_owned()));
            }
            addrs.push(info.addr().clone());
        }
        let tls = addrs
            .iter()
            .filter(|a| matches!(a, ConnectionAddr::TcpTls { .. }))
            .count();
        if addrs.is_empty() {
            return Err(invalid("no sentinel URL"));
        }
        if tls != 0 && tls != addrs.len() {
            return Err(invalid(
                "the sentinel URLs mix redis:// and rediss://: use one scheme for all",
            ));
        }
        let tls = tls != 0;
        crate::redis_conn::check_tls_scheme(tls, &options)?;

        let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
            .set_client_to_redis_tcp_settings(crate::redis_conn::tcp_settings())
            .set_client_to_sentinel_tcp_settings(crate::redis_conn::tcp_settings());
        if tls {
            builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
            if let Some(certificates) = &options.tls {
                builder = builder
                    .set_client_to_redis_certificates(certificates.certificates())
                    .set_client_to_sentinel_certificates(certificates.certificates());
            }
        }
        if let Some(credentials) = &options.credentials {
            if let Some(username) = &credentials.username {
                builder = builder.set_client_to_redis_username(username);
            }
            builder = builder.set_client_to_redis_password(&credentials.password);
        }
        let sentinel_credentials = options
            .sentinel_credentials
            .as_ref()
            .map(|c| (c.username.clone(), c.password.clone()))
            .or(url_credentials);
        if let Some((username, password)) = sentinel_credentials {
            if let Some(username) = username {
                builder = builder.set_client_to_sentinel_username(username);
            }
            builder = builder.set_client_to_sentinel_password(password);
        }
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout));
        if let Some(ttl) = options.client_cache_ttl {
            // Client-side caching needs RESP3 push messages for invalidations.
            builder = builder.set_client_to_redis_protocol(ProtocolVersion::RESP3);
            config = config.set_cache_config(cache_config(ttl));
        }
        if let Some(handler) = options.on_push.clone() {
            config = config.set_push_sender(push_sender(handler));
        }
        let connection = SentinelConnection {
            inner: Arc::new(Inner {
                master: master.to_owned(),
                resolver: tokio::sync::Mutex::new(Resolver {
                    client: builder.build()?,
                    failed_at: None,
                }),
                current: RwLock::new(None),
                next_id: AtomicU64::new(0),
                config,
                on_push: options.on_push,
                resolve_timeout: options.connect_timeout * 2 + options.response_timeout,
            }),
        };
        // As for a standalone server: refused TLS or credentials are an error now, an
        // unreachable sentinel or master is left to the retries.
        if let Err(e) = connection.master().await
            && let Some(refused) = refused_for_good(&e)
        {
            return Err(refused);
        }
        spawn_role_check(Arc::downgrade(&connection.inner));
        Ok(connection)
    }

    /// The connection to the current master, looked up through the sentinels if there is
    /// none.
    #[allow(clippy::disallowed_methods)] // real time: a back-off between look-ups, not domain time
    async fn master(&self) -> RedisResult<Current> {
        if let Some(current) = self.inner.current() {
            return Ok(current);
        }
        let mut resolver = self.inner.resolver.lock().await;
        if let Some(current) = self.inner.current() {
            return Ok(current);
        }
        if resolver
            .failed_at
            .is_some_and(|at| at.elapsed() < RESOLVE_BACKOFF)
        {
            return Err(RedisError::from((
                ErrorKind::Io,
                "no Redis master: the sentinels were asked moments ago, and failed",
            )));
        }
        let resolved = tokio::time::timeout(
            self.inner.resolve_timeout,
            resolve(&mut resolver.client, &self.inner.config),
        )
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from((
                ErrorKind::Io,
                "no Redis master: the sentinels or the master did not answer in time",
            )))
        });
        match resolved {
            Ok(conn) => {
                resolver.failed_at = None;
                let current = Current {
                    id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
                    conn,
                };
                // Whatever was cached came from another connection, perhaps another master.
                self.inner.forget_cache();
                if let Ok(mut slot) = self.inner.current.write() {
                    *slot = Some(current.clone());
                }
                tracing::info!(master = %self.inner.master, "connected to the Redis master the sentinels name");
                Ok(current)
            }
            Err(e) => {
                resolver.failed_at = Some(tokio::time::Instant::now());
                Err(no_master(e))
            }
        }
    }
}

impl Inner {
    fn current(&self) -> Option<Current> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// Drops connection `id` if it is still the current one: the next command looks the
    /// master up again.
    fn forget(&self, id: u64, why: &dyn std::fmt::Display) {
        let Ok(mut slot) = self.current.write() else {
            return;
        };
        if slot.as_ref().is_some_and(|c| c.id == id) {
            *slot = None;
            drop(slot);
            self.forget_cache();
            tracing::warn!(master = %self.master, reason = %why, "left the Redis master connection; asking the sentinels again");
        }
    }

    fn forget_cache(&self) {
        if let Some(handler) = &self.on_push {
            handler(&PushInfo {
                kind: PushKind::Disconnection,
                data: Vec::new(),
            });
        }
    }
}

/// Asks the sentinels for the master, connects to it, and checks on that very connection
/// that the node is the master (it may have been demoted since the sentinels answered).
async fn resolve(
    client: &mut SentinelClient,
    config: &AsyncConnectionConfig,
) -> RedisResult<MultiplexedConnection> {
    let master = client.async_get_client().await?;
    let mut conn = master
        .get_multiplexed_async_connection_with_config(config)
        .await?;
    match redis::cmd("ROLE").query_async::<Role>(&mut conn).await {
        Ok(Role::Primary { .. }) => Ok(conn),
        Ok(_) => Err(not_master()),
        // A user without `ROLE` (the sentinels' own check also needs it or `INFO`).
        Err(e) if e.code() == Some("NOPERM") => Ok(conn),
        Err(e) => Err(e),
    }
}

/// A failed look-up is an outage to the caller (a `503`), whatever the sentinels' reason
/// (the master they name refuses connections or is not master yet, no master is known, no
/// sentinel answers), except refused TLS or credentials, which waiting does not fix.
fn no_master(error: RedisError) -> RedisError {
    if let Some(refused) = refused_for_good(&error) {
        return refused;
    }
    if RedisFailure::of(&error) == RedisFailure::Unavailable {
        return error;
    }
    RedisError::from((
        ErrorKind::Io,
        "no Redis master: the sentinels name none that answers as master",
        error.to_string(),
    ))
}

fn not_master() -> RedisError {
    RedisError::from((
        ErrorKind::Server(ServerErrorKind::ReadOnly),
        "the node the sentinels named is not the master (any more)",
    ))
}

fn invalid(message: &'static str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, message))
}

/// Whether `error` on the master connection means the connection or the node's role is
/// gone, so the master must be looked up again.
fn needs_new_master(error: &RedisError) -> bool {
    match error.kind() {
        ErrorKind::Io | ErrorKind::Parse | ErrorKind::AuthenticationFailed => true,
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading
        ),
        _ => error.is_unrecoverable_error() || error.is_timeout(),
    }
}

/// Every [`ROLE_CHECK_INTERVAL`], asks the current master connection's node for its role,
/// and leaves the connection if the node is a replica now. Ends with the connection.
fn spawn_role_check(inner: Weak<Inner>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(ROLE_CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            let Some(mut current) = inner.current() else {
                continue;
            };
            match redis::cmd("ROLE")
                .query_async::<Role>(&mut current.conn)
                .await
            {
                Ok(Role::Primary { .. }) => {}
                Ok(_) => inner.forget(current.id, &"the node is not the master any more"),
                Err(e) if needs_new_master(&e) => inner.forget(current.id, &e),
                Err(_) => {}
            }
        }
    });
}

impl SentinelConnection {
    async fn run<T, F>(&self, call: F) -> RedisResult<T>
    where
        F: AsyncFnOnce(&mut MultiplexedConnection) -> RedisResult<T>,
    {
        let mut current = self.master().await?;
        let result = call(&mut current.conn).await;
        if let Err(e) = &result
            && needs_new_master(e)
        {
            self.inner.forget(current.id, e);
        }
        result
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.run(async |conn: &mut MultiplexedConnection| conn.req_packed_command(cmd).await)
                .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.run(async |conn: &mut MultiplexedConnection| {
                conn.req_packed_commands(pipeline, offset, count).await
            })
            .await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_look_up_is_an_outage_unless_the_credentials_are_refused() {
        let unknown = RedisError::from((
            ErrorKind::MasterNameNotFoundBySentinel,
            "Master with given name not found in sentinel",
        ));
        assert_eq!(
            RedisFailure::of(&no_master(unknown)),
            RedisFailure::Unavailable
        );
        let wrong = RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert!(no_master(wrong).to_string().contains("credentials"));
    }

    #[test]
    fn a_lost_connection_or_a_replica_needs_a_new_master_and_a_script_error_does_not() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(needs_new_master(&io));
        assert!(needs_new_master(&not_master()));
        let reply = |line: &str| {
            redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
                .and_then(Value::extract_error)
                .err()
        };
        for line in [
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
        ] {
            assert!(reply(line).is_some_and(|e| needs_new_master(&e)), "{line}");
        }
        for line in [
            "WRONGTYPE Operation against a key",
            "NOSCRIPT No matching script.",
        ] {
            assert!(reply(line).is_some_and(|e| !needs_new_master(&e)), "{line}");
        }
    }
}
