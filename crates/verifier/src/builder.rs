//! [`VerifierBuilder`]: the settings of a [`Verifier`], checked once by `build()`.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::clock::{Clock, SystemClock};
use crate::dpop::DpopChecker;
use crate::keys::KeySet;
#[cfg(feature = "jwks")]
use crate::keys::jwks::JwksSource;
use crate::metrics::VerifierMetrics;
use crate::sig_cache::SignatureCache;
use crate::token::{DEFAULT_LEEWAY_SECS, TokenValidator};
use crate::verify::{Inner, KeySource, Verifier};
#[cfg(feature = "redis")]
use crate::{
    redis_access::{RedisCredentials, RedisTls},
    redis_conn::{PushHandler, RedisConnection, RedisOptions, RedisTarget},
    revocation::{
        DEFAULT_MAX_STALL, DEFAULT_TRACKING_READER_NICE, MAX_MAX_STALL, MIN_MAX_STALL,
        RevocationMode, SessionCheck,
        reader::{ReaderPriority, TrackingReader},
        selftest,
        tracked::{TrackedCache, spawn_heartbeat},
    },
    session_keys::{SelftestKeys, SessionKeys},
    verify::KeyedCheck,
};

/// A verifier could not be built.
///
/// ```
/// use verifier::{BuildError, Verifier};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let refused = Verifier::builder().audience("api").build().await;
/// assert!(matches!(refused, Err(BuildError::Config(m)) if m.contains("issuer")));
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A required setting is missing or settings contradict each other.
    #[error("verifier configuration: {0}")]
    Config(String),
    /// Redis could not be reached (cluster seeds must answer at start-up).
    #[error("redis: {0}")]
    Redis(String),
    /// Tracked mode's reader thread (`verifier-tracking`) could not be started.
    #[error("the verifier-tracking thread: {0}")]
    Thread(String),
}

/// Builds a [`Verifier`].
///
/// ```
/// # async fn demo() {
/// use verifier::{KeySet, RevocationMode, Verifier, VerifyingKey};
/// let verifier = Verifier::builder()
///     .issuer("https://auth.example.com")
///     .audience("api")
///     .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &[0u8; 32])]))
///     .revocation(RevocationMode::Off) // explicit: no Redis, tokens live until `exp`
///     .build()
///     .await
///     .unwrap();
/// assert!(verifier.verify("not a token").await.is_err());
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo());
/// ```
pub struct VerifierBuilder {
    issuer: Option<String>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_secs: i64,
    static_keys: Option<KeySet>,
    #[cfg(feature = "jwks")]
    jwks_url: Option<String>,
    #[cfg(feature = "jwks")]
    jwks_cooldown: Duration,
    #[cfg(feature = "jwks")]
    jwks_refresh_interval: Duration,
    #[cfg(feature = "redis")]
    redis: Option<RedisTarget>,
    #[cfg(feature = "redis")]
    redis_tls: Option<RedisTls>,
    #[cfg(feature = "redis")]
    redis_credentials: Option<RedisCredentials>,
    #[cfg(feature = "redis")]
    redis_sentinel_credentials: Option<RedisCredentials>,
    #[cfg(feature = "redis")]
    key_prefix: String,
    #[cfg(feature = "redis")]
    revocation: RevocationMode,
    #[cfg(feature = "redis")]
    max_staleness: Duration,
    #[cfg(feature = "redis")]
    max_stall: Duration,
    #[cfg(feature = "redis")]
    redis_timeout: Duration,
    #[cfg(feature = "redis")]
    revocation_selftest: bool,
    #[cfg(feature = "redis")]
    tracking_reader_realtime: bool,
    #[cfg(feature = "redis")]
    tracking_reader_nice: i8,
    #[cfg(feature = "redis")]
    instance_name: Option<String>,
    sig_cache_capacity: usize,
    clock: Arc<dyn Clock>,
    dpop: Option<DpopChecker>,
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        Self {
            issuer: None,
            audiences: Vec::new(),
            algorithms: vec![Algorithm::EdDSA],
            leeway_secs: DEFAULT_LEEWAY_SECS,
            static_keys: None,
            #[cfg(feature = "jwks")]
            jwks_url: None,
            #[cfg(feature = "jwks")]
            jwks_cooldown: Duration::from_secs(10),
            #[cfg(feature = "jwks")]
            jwks_refresh_interval: Duration::from_secs(300),
            #[cfg(feature = "redis")]
            redis: None,
            #[cfg(feature = "redis")]
            redis_tls: None,
            #[cfg(feature = "redis")]
            redis_credentials: None,
            #[cfg(feature = "redis")]
            redis_sentinel_credentials: None,
            #[cfg(feature = "redis")]
            key_prefix: "auth".into(),
            #[cfg(feature = "redis")]
            revocation: RevocationMode::Tracked,
            #[cfg(feature = "redis")]
            max_staleness: Duration::from_secs(5),
            #[cfg(feature = "redis")]
            max_stall: DEFAULT_MAX_STALL,
            #[cfg(feature = "redis")]
            redis_timeout: Duration::from_millis(500),
            #[cfg(feature = "redis")]
            revocation_selftest: true,
            #[cfg(feature = "redis")]
            tracking_reader_realtime: true,
            #[cfg(feature = "redis")]
            tracking_reader_nice: DEFAULT_TRACKING_READER_NICE,
            #[cfg(feature = "redis")]
            instance_name: None,
            sig_cache_capacity: 10_000,
            clock: Arc::new(SystemClock),
            dpop: None,
        }
    }
}

impl VerifierBuilder {
    /// The expected `iss` (required).
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().issuer("https://auth.example.com");
    /// ```
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// An accepted `aud` (at least one required; call again to accept several).
    ///
    /// ```
    /// // Accepts tokens whose `aud` contains "api" or "admin-api".
    /// let builder = verifier::Verifier::builder().audience("api").audience("admin-api");
    /// ```
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The algorithm allow-list (default: EdDSA only). Never taken from the token.
    ///
    /// ```
    /// use verifier::{Algorithm, Verifier};
    /// let builder = Verifier::builder().algorithms([Algorithm::EdDSA, Algorithm::ES256]);
    /// ```
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock-skew allowance for `exp`/`nbf`/`iat` (default 5 s, at most 60 s).
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().leeway(std::time::Duration::from_secs(2));
    /// ```
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway_secs = i64::try_from(leeway.as_secs()).unwrap_or(60).min(60);
        self
    }

    /// Trust exactly these keys (from PEM, JWK or raw bytes).
    ///
    /// ```
    /// use verifier::{KeySet, Verifier, VerifyingKey};
    /// let keys = KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]);
    /// let builder = Verifier::builder().static_keys(keys);
    /// ```
    pub fn static_keys(mut self, keys: KeySet) -> Self {
        self.static_keys = Some(keys);
        self
    }

    /// Fetch keys from this JWKS URL (cached; refetched on an unknown `kid`).
    ///
    /// ```
    /// let builder = verifier::Verifier::builder()
    ///     .jwks_url("https://auth.example.com/.well-known/jwks.json");
    /// ```
    #[cfg(feature = "jwks")]
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Minimum time between two JWKS fetches triggered by unknown `kid`s (default 10 s).
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().jwks_cooldown(std::time::Duration::from_secs(30));
    /// ```
    #[cfg(feature = "jwks")]
    pub fn jwks_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks_cooldown = cooldown;
        self
    }

    /// How often the JWKS is refetched in the background (default 5 min).
    ///
    /// ```
    /// let builder = verifier::Verifier::builder()
    ///     .jwks_refresh_interval(std::time::Duration::from_secs(600));
    /// ```
    #[cfg(feature = "jwks")]
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_refresh_interval = interval;
        self
    }

    /// Where the session records live (required unless revocation is off).
    ///
    /// ```
    /// use verifier::{RedisTarget, Verifier};
    /// let builder = Verifier::builder().redis(RedisTarget::Standalone("redis://127.0.0.1:6379".into()));
    /// let cluster = Verifier::builder()
    ///     .redis(RedisTarget::cluster_from_csv("redis://10.0.0.1:7000,redis://10.0.0.2:7000"));
    /// // Sentinel: the master named "auth", followed across failovers; tracked mode
    /// // re-enables CLIENT TRACKING on the new master and drops its cache on the switch.
    /// let sentinel = Verifier::builder().redis(RedisTarget::sentinel_from_csv(
    ///     "redis://10.0.0.1:26379,redis://10.0.0.2:26379,redis://10.0.0.3:26379",
    ///     "auth",
    /// ));
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(mut self, target: RedisTarget) -> Self {
        self.redis = Some(target);
        self
    }

    /// TLS settings for a `rediss://` target: a CA file to trust instead of the built-in
    /// public CAs, and a client certificate for mutual TLS. A `rediss://` URL needs none of
    /// them when its server has a certificate from a public CA; with a `redis://` URL they
    /// are an error at `build()`. A server certificate the CA does not vouch for, or a client
    /// certificate the server refuses, is an error at `build()` too.
    ///
    /// ```no_run
    /// use verifier::{RedisTarget, RedisTls, Verifier};
    /// let tls = RedisTls::new()
    ///     .ca_file("/etc/redis-tls/ca.pem")?
    ///     .client_identity_files("/etc/redis-tls/client.pem", "/etc/redis-tls/client.key")?;
    /// let builder = Verifier::builder()
    ///     .redis(RedisTarget::Standalone("rediss://redis.internal:6380".into()))
    ///     .redis_tls(tls);
    /// # Ok::<(), verifier::RedisTlsError>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis_tls(mut self, tls: RedisTls) -> Self {
        self.redis_tls = Some(tls);
        self
    }

    /// The Redis ACL user and password, in place of any in the URL (which then need not
    /// carry a secret). Redis refusing them is an error at `build()`. A verifier needs only
    /// a read-only user: see the operations guide's Redis ACLs.
    ///
    /// ```
    /// use verifier::{RedisCredentials, RedisTarget, Verifier};
    /// let builder = Verifier::builder()
    ///     .redis(RedisTarget::Standalone("redis://redis.internal:6379".into()))
    ///     .redis_credentials(RedisCredentials::new(Some("verifier"), "s3cret"));
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis_credentials(mut self, credentials: RedisCredentials) -> Self {
        self.redis_credentials = Some(credentials);
        self
    }

    /// With a [`RedisTarget::Sentinel`]: the sentinels' own ACL user and password, in place of
    /// those in the sentinel URLs ([`redis_credentials`](Self::redis_credentials) are for the
    /// master).
    ///
    /// ```
    /// use verifier::{RedisCredentials, RedisTarget, Verifier};
    /// let builder = Verifier::builder()
    ///     .redis(RedisTarget::sentinel_from_csv("redis://10.0.0.1:26379", "auth"))
    ///     .redis_sentinel_credentials(RedisCredentials::new(Some("watcher"), "s3cret"));
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis_sentinel_credentials(mut self, credentials: RedisCredentials) -> Self {
        self.redis_sentinel_credentials = Some(credentials);
        self
    }

    /// The session-key prefix shared with the auth-center (default `auth`).
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().key_prefix("auth");
    /// ```
    #[cfg(feature = "redis")]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How revocation is checked (default: tracked).
    ///
    /// ```
    /// use verifier::{RevocationMode, Verifier};
    /// let builder = Verifier::builder().revocation(RevocationMode::EveryRequest);
    /// ```
    #[cfg(feature = "redis")]
    pub fn revocation(mut self, mode: RevocationMode) -> Self {
        self.revocation = mode;
        self
    }

    /// Longest time a cached "session exists" answer is trusted without Redis confirming
    /// it (tracked mode's safety net; default 5 s). An answer is never trusted past the
    /// session key's own expiry either, whichever comes first.
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().max_staleness(std::time::Duration::from_secs(2));
    /// ```
    #[cfg(feature = "redis")]
    pub fn max_staleness(mut self, ttl: Duration) -> Self {
        self.max_staleness = ttl;
        self
    }

    /// Tracked mode's bound on serving cached answers from a Redis that stopped answering
    /// (paused, partitioned, overloaded), which sends neither invalidations nor a
    /// disconnect (default 200 ms; 20 ms to 60 s, or `build()` fails).
    ///
    /// The verifier asks Redis `CLIENT ID` on its tracked connection (on a cluster, of every
    /// primary; `PING` for a user not allowed it) every `max_stall / 4` and drops its cache
    /// once `max_stall` has passed since the latest answered probe was sent, or as soon as a
    /// connection's id changed (the client replaced it, and what Redis tracked with it);
    /// until Redis answers again, every request asks Redis (and fails closed). The worst
    /// case is therefore a cached `200` served `max_stall` after Redis stopped answering,
    /// plus however late the heartbeat task and its timer run: they run on the verifier's
    /// own `verifier-tracking` thread, so a starved application runtime (blocking work on
    /// its workers) does not delay them, but a thread the kernel does not schedule (no CPU)
    /// does. The request path does no extra work for it.
    ///
    /// Redis must answer the probe well within `3/4 × max_stall`, or the cache is dropped
    /// needlessly and requests go to Redis until the next probe is answered.
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().max_stall(std::time::Duration::from_millis(500));
    /// ```
    #[cfg(feature = "redis")]
    pub fn max_stall(mut self, bound: Duration) -> Self {
        self.max_stall = bound;
        self
    }

    /// Time allowed for a Redis answer before failing closed (default 500 ms).
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().redis_timeout(std::time::Duration::from_millis(250));
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// Whether this verifier takes part in the auth-center's revocation self-test (default:
    /// on; tracked mode only, as every-request mode refuses a deleted session at once by
    /// construction and off mode never does). A background task reports the verifier in
    /// every second, checks each probe session the auth-center creates through the same
    /// session check as a request, and acknowledges its deletion with the time it took to
    /// learn of it (`verifier_revocation_lag_seconds`). It needs the self-test's permissions
    /// in the Redis ACL (see the operations guide); without them it logs one warning, backs
    /// off, and verification goes on unaffected.
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().revocation_selftest(false);
    /// ```
    #[cfg(feature = "redis")]
    pub fn revocation_selftest(mut self, on: bool) -> Self {
        self.revocation_selftest = on;
        self
    }

    /// Whether tracked mode's reader thread, the one that applies Redis's invalidations to
    /// the cache, asks for the real-time scheduling class (`SCHED_FIFO`, priority 1; default
    /// on). Refused, or off, it runs at [`tracking_reader_nice`](Self::tracking_reader_nice).
    ///
    /// When the request threads keep every core busy, a reader at their priority waits up to
    /// a scheduler slice (1–3 ms) after a push arrives, and meanwhile cached answers for the
    /// revoked session go out: up to hundreds in one revocation under load. At nice −20 it
    /// usually preempts them at once, but not always (a busy thread may finish its slice
    /// first: measured, a few revocations in a thousand still had a burst of stale answers);
    /// in the real-time class it always preempts them. The thread only handles the tracked
    /// connection (pushes, the `PTTL` of cache misses, the heartbeat), so it cannot take
    /// CPU from the requests beyond the work they give it, and the kernel caps real-time
    /// threads at 95 % of a CPU in any case.
    ///
    /// `SCHED_FIFO` needs an `RLIMIT_RTPRIO` of at least 1 (systemd `LimitRTPRIO=1`, `docker
    /// run --ulimit rtprio=1`: this works for a non-root process such as this project's
    /// images) or `CAP_SYS_NICE`, which Docker and Kubernetes give only to a process running
    /// as root (`--cap-add SYS_NICE`, `capabilities.add: [SYS_NICE]`). With a real-time
    /// group scheduler in the kernel (`CONFIG_RT_GROUP_SCHED`) a container may be refused
    /// even so, and the thread falls back to the nice value. Threads the reader starts (the
    /// blocking pool of a DNS look-up when it reconnects) inherit its class. Linux only.
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().tracking_reader_realtime(false);
    /// ```
    #[cfg(feature = "redis")]
    pub fn tracking_reader_realtime(mut self, on: bool) -> Self {
        self.tracking_reader_realtime = on;
        self
    }

    /// The nice value of tracked mode's reader thread when it does not run in the real-time
    /// class ([`tracking_reader_realtime`](Self::tracking_reader_realtime) off or refused;
    /// default −20, the highest priority; −20 to 19, or `build()` fails).
    ///
    /// Going below the thread's current value needs an `RLIMIT_NICE` allowing it (systemd
    /// `LimitNICE=-20`, `docker run --ulimit nice=40`) or `CAP_SYS_NICE` (root). The thread
    /// never takes a lower priority than the one it starts with (its builder's thread's): a
    /// process started at a lower nice value keeps its reader there. Without them the
    /// thread takes the lowest value allowed and logs a warning once. Linux only: elsewhere
    /// the thread keeps its priority.
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().tracking_reader_nice(-10);
    /// ```
    #[cfg(feature = "redis")]
    pub fn tracking_reader_nice(mut self, nice: i8) -> Self {
        self.tracking_reader_nice = nice;
        self
    }

    /// The name this verifier reports to the revocation self-test under: 1 to 128 printable
    /// ASCII characters, no spaces, unique among the verifiers sharing a Redis (default:
    /// `<host>/<pid>/<random>`). `build()` refuses another name.
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().instance_name("orders-7f9c/1");
    /// ```
    #[cfg(feature = "redis")]
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.instance_name = Some(name.into());
        self
    }

    /// How many verified tokens to remember (default 10 000; 0 disables the cache).
    ///
    /// ```
    /// let builder = verifier::Verifier::builder().signature_cache_capacity(50_000);
    /// ```
    pub fn signature_cache_capacity(mut self, capacity: usize) -> Self {
        self.sig_cache_capacity = capacity;
        self
    }

    /// The time source (tests inject a `ManualClock`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use verifier::{SystemClock, Verifier};
    /// let builder = Verifier::builder().clock(Arc::new(SystemClock));
    /// ```
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Accept DPoP-bound access tokens (RFC 9449), presented as `Authorization: DPoP
    /// <token>` with a `DPoP` proof that `checker` verifies ([`Verifier::verify_dpop`] and
    /// [`VerifierLayer`](crate::VerifierLayer)). Without it, a DPoP-bound token is always
    /// refused; bearer tokens are accepted either way, except bound ones. Give the checker
    /// the same clock as the verifier.
    ///
    /// ```
    /// use verifier::{Verifier, dpop::DpopChecker};
    /// let checker = DpopChecker::builder().public_url("https://api.example.com").build().unwrap();
    /// let builder = Verifier::builder().dpop(checker);
    /// ```
    pub fn dpop(mut self, checker: DpopChecker) -> Self {
        self.dpop = Some(checker);
        self
    }

    /// Checks the settings, connects to Redis and fetches the JWKS once (a failed first
    /// fetch is logged and retried on demand, so a service can start before the
    /// auth-center).
    ///
    /// ```
    /// use verifier::{KeySet, RevocationMode, Verifier, VerifyingKey};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let verifier = Verifier::builder()
    ///     .issuer("https://auth.example.com")
    ///     .audience("api")
    ///     .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]))
    ///     .revocation(RevocationMode::Off)
    ///     .build()
    ///     .await?;
    /// # Ok::<_, verifier::BuildError>(()) }).unwrap();
    /// ```
    pub async fn build(self) -> Result<Verifier, BuildError> {
        crate::keys::install_crypto_provider();
        let config = |m: &str| BuildError::Config(m.into());
        let issuer = self.issuer.ok_or_else(|| config("an issuer is required"))?;
        if self.audiences.is_empty() {
            return Err(config("at least one audience is required"));
        }
        check_algorithms(&self.algorithms)?;
        #[cfg(feature = "redis")]
        if let Some(name) = &self.instance_name
            && !selftest::is_instance_name(name)
        {
            return Err(BuildError::Config(format!(
                "instance_name must be 1 to {} printable ASCII characters without spaces",
                selftest::MAX_INSTANCE_NAME
            )));
        }
        #[cfg(feature = "redis")]
        if !(-20..=19).contains(&self.tracking_reader_nice) {
            return Err(BuildError::Config(format!(
                "tracking_reader_nice must be between -20 and 19, not {}",
                self.tracking_reader_nice
            )));
        }
        #[cfg(feature = "redis")]
        if !(MIN_MAX_STALL..=MAX_MAX_STALL).contains(&self.max_stall) {
            return Err(BuildError::Config(format!(
                "max_stall must be between {MIN_MAX_STALL:?} and {MAX_MAX_STALL:?}, not {:?}",
                self.max_stall
            )));
        }
        let validator =
            TokenValidator::new(issuer, self.audiences, self.algorithms.iter().copied())
                .with_leeway_secs(self.leeway_secs);
        let sig_cache = SignatureCache::new(self.sig_cache_capacity);
        // The metrics hook: handles of the recorder installed now (none: they do nothing).
        let metrics = Arc::new(VerifierMetrics::register());

        #[cfg(feature = "jwks")]
        let jwks_url = self.jwks_url;
        #[cfg(not(feature = "jwks"))]
        let jwks_url: Option<String> = None;
        let keys = match (self.static_keys, jwks_url) {
            (Some(_), Some(_)) => return Err(config("choose static keys or a JWKS URL, not both")),
            (None, None) => {
                return Err(config(
                    "a key source (static keys or a JWKS URL) is required",
                ));
            }
            (Some(keys), None) => {
                for kid in keys.kids() {
                    let alg = keys.get(kid).map(|k| k.algorithm());
                    if !alg.is_some_and(|a| self.algorithms.contains(&a)) {
                        return Err(BuildError::Config(format!(
                            "key {kid}: its algorithm is not allowed"
                        )));
                    }
                }
                KeySource::Static(keys)
            }
            #[cfg(feature = "jwks")]
            (None, Some(url)) => {
                if !url.starts_with("https://") && !is_loopback_http(&url) {
                    tracing::warn!(%url, "JWKS URL is not HTTPS: keys can be tampered with in transit");
                }
                let source = JwksSource::new(url, Duration::from_secs(5), self.jwks_cooldown)
                    .map_err(|e| BuildError::Config(format!("JWKS client: {e}")))?;
                let source = Arc::new(source);
                source.refresh().await;
                KeySource::Jwks(source)
            }
            #[cfg(not(feature = "jwks"))]
            (None, Some(_)) => return Err(config("JWKS needs the `jwks` feature")),
        };

        #[cfg(feature = "redis")]
        let session_check = {
            // Tracked mode: the connection runs RESP3 client tracking (redis-rs keeps it on
            // across reconnects), and every invalidation it receives also clears the
            // verifier's own cache, which answers repeat requests without Redis.
            let tracked = (self.revocation == RevocationMode::Tracked).then(|| {
                TrackedCache::new(self.max_staleness, metrics.clone(), self.clock.clone())
            });
            // The revocation self-test sees the tracked connection's invalidations.
            let selftest_keys = SelftestKeys::new(self.key_prefix.clone());
            let selftest = tracked
                .as_ref()
                .filter(|_| self.revocation_selftest)
                .map(|cache| {
                    let (signal, events) = selftest::signal(&selftest_keys);
                    cache.watch_for_selftest(signal.clone());
                    (signal, events)
                });
            let options = RedisOptions {
                connect_timeout: self.redis_timeout,
                response_timeout: self.redis_timeout,
                // redis-rs's own cache is only there to keep `CLIENT TRACKING` on across
                // reconnects; with a 1 ms TTL it never answers for Redis, so a cleared
                // verifier cache (disconnect, failed heartbeat) really goes to Redis.
                client_cache_ttl: tracked.as_ref().map(|_| Duration::from_millis(1)),
                on_push: tracked
                    .clone()
                    .map(|cache| -> PushHandler { Arc::new(move |push| cache.on_push(push)) }),
                tls: self.redis_tls,
                credentials: self.redis_credentials,
                sentinel_credentials: self.redis_sentinel_credentials,
            };
            match (self.revocation, self.redis) {
                (RevocationMode::Off, _) => {
                    tracing::warn!(
                        "REVOCATION CHECKS ARE OFF: logged-out and revoked sessions keep working \
                         until their access tokens expire (violates ASVS 5 7.4.1)"
                    );
                    None
                }
                (_, None) => {
                    return Err(config(
                        "revocation needs Redis; set .redis(..) or opt out with RevocationMode::Off",
                    ));
                }
                (_, Some(target)) => {
                    // Tracked mode: the connection lives on its own thread (see
                    // `revocation::reader`), connected there so that redis-rs spawns its
                    // driver there; every-request mode connects on the caller's runtime.
                    let (reader, reader_thread) = match &tracked {
                        Some(_) => {
                            let (reader, thread) = TrackingReader::start(ReaderPriority {
                                realtime: self.tracking_reader_realtime,
                                nice: self.tracking_reader_nice,
                            })
                            .await
                            .map_err(|e| BuildError::Thread(e.to_string()))?;
                            (Some(reader), Some(thread))
                        }
                        None => (None, None),
                    };
                    let conn = match &reader {
                        Some(reader) => reader
                            .run(async move { RedisConnection::connect(&target, options).await })
                            .await
                            .ok_or_else(|| BuildError::Thread("ended while connecting".into()))?,
                        None => RedisConnection::connect(&target, options).await,
                    }
                    .map_err(|e| BuildError::Redis(e.to_string()))?;
                    if let (Some(cache), Some(reader)) = (&tracked, &reader) {
                        spawn_heartbeat(reader, conn.clone(), cache, self.max_stall);
                    }
                    let check = SessionCheck {
                        conn,
                        timeout: self.redis_timeout,
                        tracked,
                        reader: reader.clone(),
                        metrics: metrics.clone(),
                        pttl_refused_at: Arc::default(),
                    };
                    let selftest = selftest.zip(reader).map(|((signal, events), reader)| {
                        let instance = self
                            .instance_name
                            .unwrap_or_else(selftest::default_instance_name);
                        selftest::spawn(
                            &reader,
                            check.clone(),
                            selftest_keys,
                            instance,
                            signal,
                            events,
                            metrics.clone(),
                        )
                    });
                    Some(KeyedCheck {
                        keys: SessionKeys::new(self.key_prefix),
                        check,
                        selftest,
                        _reader_thread: reader_thread,
                    })
                }
            }
        };

        let inner = Arc::new(Inner {
            validator,
            leeway_secs: self.leeway_secs,
            keys,
            sig_cache,
            #[cfg(feature = "redis")]
            session_check,
            clock: self.clock,
            dpop: self.dpop,
            metrics,
        });
        #[cfg(all(feature = "metrics", any(feature = "redis", feature = "jwks")))]
        spawn_metrics_flush(&inner.metrics);
        #[cfg(feature = "jwks")]
        if let KeySource::Jwks(source) = &inner.keys {
            let weak = Arc::downgrade(&inner);
            source.spawn_periodic_refresh(self.jwks_refresh_interval, move || {
                if let Some(inner) = weak.upgrade() {
                    inner.sig_cache.clear();
                }
            });
        }
        Ok(Verifier { inner })
    }
}

/// HS* must not be mixed with asymmetric algorithms (RFC 8725 §3.1, ASVS 9.1.2).
fn check_algorithms(algorithms: &[Algorithm]) -> Result<(), BuildError> {
    if algorithms.is_empty() {
        return Err(BuildError::Config(
            "the algorithm allow-list is empty".into(),
        ));
    }
    let hmac = algorithms
        .iter()
        .filter(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        .count();
    if hmac > 0 && hmac < algorithms.len() {
        return Err(BuildError::Config(
            "do not mix HMAC and asymmetric algorithms".into(),
        ));
    }
    Ok(())
}

#[cfg(feature = "jwks")]
fn is_loopback_http(url: &str) -> bool {
    ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.starts_with(p))
}

/// Folds the hot path's metric counts in every second while the verifier lives.
#[cfg(all(feature = "metrics", any(feature = "redis", feature = "jwks")))]
fn spawn_metrics_flush(metrics: &Arc<VerifierMetrics>) {
    let metrics = Arc::downgrade(metrics);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let Some(metrics) = metrics.upgrade() else {
                return;
            };
            metrics.flush();
        }
    });
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;
    use crate::{RedisTarget, VerifyingKey};

    /// A tracked verifier on a dead (lazy) Redis, with `max_stall` set to `bound`.
    async fn build_with_max_stall(bound: Duration) -> Result<Verifier, BuildError> {
        Verifier::builder()
            .issuer("https://auth.example")
            .audience("api")
            .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]))
            .redis(RedisTarget::Standalone("redis://127.0.0.1:1".into()))
            .max_stall(bound)
            .build()
            .await
    }

    #[tokio::test]
    async fn a_max_stall_of_zero_or_out_of_bounds_is_refused_with_a_clear_error() {
        for bound in [
            Duration::ZERO,
            Duration::from_nanos(1),
            MIN_MAX_STALL - Duration::from_nanos(1),
            MAX_MAX_STALL + Duration::from_nanos(1),
            Duration::MAX,
        ] {
            match build_with_max_stall(bound).await {
                Err(BuildError::Config(message)) => assert!(
                    message.contains("max_stall must be between 20ms and 60s"),
                    "{bound:?}: {message}"
                ),
                other => panic!("{bound:?}: expected a configuration error, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_tracking_reader_nice_out_of_bounds_is_refused_with_a_clear_error() {
        for nice in [-21, 20, i8::MIN, i8::MAX] {
            let built = Verifier::builder()
                .issuer("https://auth.example")
                .audience("api")
                .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]))
                .redis(RedisTarget::Standalone("redis://127.0.0.1:1".into()))
                .tracking_reader_nice(nice)
                .build()
                .await;
            match built {
                Err(BuildError::Config(message)) => assert_eq!(
                    message,
                    format!("tracking_reader_nice must be between -20 and 19, not {nice}")
                ),
                other => panic!("{nice}: expected a configuration error, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_max_stall_within_the_bounds_builds() {
        for bound in [MIN_MAX_STALL, DEFAULT_MAX_STALL, MAX_MAX_STALL] {
            build_with_max_stall(bound)
                .await
                .unwrap_or_else(|e| panic!("{bound:?}: {e}"));
        }
    }
}
