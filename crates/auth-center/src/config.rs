//! One typed configuration tree, loaded from defaults, an optional TOML file and the
//! environment (in that order, later wins).
//!
//! Stable environment names (DESIGN.md §4a): `DATABASE_URL`, `REDIS_URL`,
//! `REDIS_CLUSTER_URLS`, `LISTEN_ADDR`, `METRICS_ADDR`, and beside the Redis URLs how to get
//! into Redis: `REDIS_TLS_CA_FILE`, `REDIS_TLS_CLIENT_CERT_FILE`, `REDIS_TLS_CLIENT_KEY_FILE`,
//! `REDIS_USERNAME`, `REDIS_PASSWORD`; `TLS_CERT_FILE`, `TLS_KEY_FILE` for TLS on the listener.
//! Every other field is reachable as `AUTH_<SECTION>__<FIELD>`, e.g.
//! `AUTH_SESSIONS__IDLE_SECS=3600`; top-level fields as `AUTH_<FIELD>`, e.g. `AUTH_ISSUER`.
//! Any of these variables can instead be given as `<NAME>_FILE`, the path of a file holding
//! the value (Docker and Kubernetes secrets; see `verifier::settings::Environment`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use verifier::settings::Environment;

use crate::domain::client_ip::IpRange;
pub use crate::domain::refresh_policy::ChangePolicy;

/// Longest allowed `passwords.queue_wait_ms`: a refusal must come well before the 15 s
/// request timeout.
pub const MAX_QUEUE_WAIT_MS: u64 = 10_000;

/// Largest `passwords.hashing_nice` (and the default): the lowest priority `nice` has.
const MAX_HASHING_NICE: u8 = 19;

/// The whole configuration of the auth-center.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Where to serve `/metrics` instead of on `listen_addr` (`METRICS_ADDR`; plain HTTP, so
    /// metrics need not be public). Unset: `/metrics` is on the main listener.
    pub metrics_addr: Option<SocketAddr>,
    /// The `iss` of issued tokens: the public base URL of this service.
    pub issuer: String,
    /// SQL database: `sqlite:<path>` (embedded default) or `postgres://...`.
    pub database_url: SecretString,
    /// Whether a successful login's audit row waits for the disk before the login answers
    /// (`AUTH_LOGIN_AUDIT_SYNC`). Off by default: the row is committed without a sync, so a
    /// power loss or operating-system crash (on PostgreSQL also a server crash or a failover)
    /// can lose the latest such rows, never other writes (users, passwords, roles, devices,
    /// clients and keys always wait); see `storage::sql::LoginAudit`. On: every login pays a
    /// disk sync, as every other write does.
    pub login_audit_sync: bool,
    /// Where sessions and rate-limit counters live: read from `redis_url` (`REDIS_URL`),
    /// `redis_cluster_urls` (`REDIS_CLUSTER_URLS`) or `redis_sentinel_urls` with
    /// `redis_sentinel_master` (`REDIS_SENTINEL_URLS`, `REDIS_SENTINEL_MASTER`); with none, in
    /// process memory.
    #[serde(flatten)]
    pub redis: RedisConfig,
    /// A PEM file with the CA certificate(s) that signed the Redis server's certificate, for
    /// `rediss://` URLs (`REDIS_TLS_CA_FILE`). Unset: the built-in public CAs.
    pub redis_tls_ca_file: Option<PathBuf>,
    /// A PEM client certificate for Redis servers that ask for one (mutual TLS,
    /// `REDIS_TLS_CLIENT_CERT_FILE`); needs `redis_tls_client_key_file`.
    pub redis_tls_client_cert_file: Option<PathBuf>,
    /// The PEM private key of `redis_tls_client_cert_file` (`REDIS_TLS_CLIENT_KEY_FILE`).
    pub redis_tls_client_key_file: Option<PathBuf>,
    /// The Redis ACL user (`REDIS_USERNAME`), in place of a user in the URL; needs
    /// `redis_password`.
    pub redis_username: Option<String>,
    /// The Redis password (`REDIS_PASSWORD`), of `redis_username` or of the `default` user,
    /// in place of a password in the URL.
    pub redis_password: Option<SecretString>,
    /// The sentinels' own ACL user (`REDIS_SENTINEL_USERNAME`), with Sentinel only.
    pub redis_sentinel_username: Option<String>,
    /// The sentinels' own password (`REDIS_SENTINEL_PASSWORD`); else the one in their URLs.
    pub redis_sentinel_password: Option<SecretString>,
    /// Prefix of every Redis key (shared with the verifiers).
    pub redis_prefix: String,
    /// Whether `POST /v1/register` is open.
    pub registration_enabled: bool,
    /// Access-token settings.
    pub tokens: TokenConfig,
    /// Session lifetimes and refresh rotation.
    pub sessions: SessionConfig,
    /// Password hashing.
    pub passwords: PasswordConfig,
    /// Timeouts towards Redis and the database.
    pub timeouts: TimeoutConfig,
    /// Log format: `pretty` or `json`.
    pub log_format: LogFormat,
    /// Rate limits (shared through Redis when Redis is configured).
    pub limits: LimitsConfig,
    /// Proxies whose `X-Forwarded-For` is believed: IPs or CIDRs. Empty: the TCP peer
    /// is always the client.
    pub trusted_proxies: Vec<IpRange>,
    /// Browser clients: cookie mode, CSRF and CORS.
    pub browser: BrowserConfig,
    /// Signing keys: publication before use, JWKS caching, scheduled rotation.
    pub keys: KeysConfig,
    /// Connections: timeouts against slow or idle clients, the connection cap, shutdown.
    pub http: HttpConfig,
    /// TLS on the listener (`TLS_CERT_FILE`, `TLS_KEY_FILE`): off unless both are set.
    pub tls: service_kit::TlsSettings,
    /// The OAuth 2 endpoints: client-credentials tokens and client assertions.
    pub oauth: OAuthConfig,
    /// The refresh policy: a cap on rotations, and what a refresh from another network or
    /// user agent does.
    pub refresh: RefreshConfig,
    /// DPoP (RFC 9449): proof checking and what is bound to the client's key.
    pub dpop: DpopConfig,
    /// The revocation self-test: how often it runs, how long a round waits.
    pub selftest: SelftestConfig,
}

/// The revocation self-test (`[selftest]`): a probe session that every verifier reporting
/// in checks, then sees deleted; each one's delay is measured. It needs Redis: with the
/// in-memory session store no verifier shares the sessions, and it does not run.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelftestConfig {
    /// Whether this instance runs a round every `interval_secs` (default on; with several
    /// instances, a round lock in Redis keeps rounds from overlapping).
    pub enabled: bool,
    /// Seconds between rounds (default 10, 1 to 3600).
    pub interval_secs: u64,
    /// How long a round waits for every verifier that reported in to check the probe, ms
    /// (default 3000; 1500 to 60000: verifiers report in every second).
    pub arm_timeout_ms: u64,
    /// How long a round waits for the verifiers' acknowledgements of the deletion, ms
    /// (default 2000; 100 to 60000).
    pub ack_timeout_ms: u64,
}

impl Default for SelftestConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 10,
            arm_timeout_ms: 3000,
            ack_timeout_ms: 2000,
        }
    }
}

/// DPoP proofs (RFC 9449). A login with a valid proof opens a session bound to the proof's
/// key; every refresh of it needs a proof from that key.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpopConfig {
    /// The URL clients reach this service under (scheme, host, port, any path prefix a
    /// proxy adds), against which a proof's `htu` is checked: it plus the route's path.
    /// Unset: the issuer. Never taken from request headers.
    pub public_url: Option<String>,
    /// Whether access tokens of a bound session are DPoP-bound too (`cnf.jkt`, `token_type`
    /// `DPoP`); they are then refused as bearer tokens, also by every verifier. Default off:
    /// only the refresh token is bound.
    pub bind_access_tokens: bool,
    /// How old a proof's `iat` may be, seconds (default 60, 1 to 300); the clock skew allowed
    /// is `tokens.leeway_secs`.
    pub max_age_secs: u64,
    /// How many proofs the replay cache of this process remembers (default 100 000).
    pub replay_cache_capacity: usize,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            bind_access_tokens: false,
            max_age_secs: 60,
            replay_cache_capacity: 100_000,
        }
    }
}

/// The OAuth 2 endpoints (`/oauth2/token`, `/oauth2/revoke`, introspection with client
/// authentication).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// Most live client-credentials tokens of one client (each has its own session); one
    /// more ends the one closest to expiry (default 1000).
    pub max_tokens_per_client: u64,
    /// Longest accepted lifetime of a `private_key_jwt` client assertion: its `exp` may be at
    /// most this far ahead, seconds (default 300; 10 to 3600).
    pub assertion_max_lifetime_secs: u64,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            max_tokens_per_client: 1000,
            assertion_max_lifetime_secs: 300,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Where sessions and rate-limit counters live, decided when the configuration loads from
/// the settings `redis_url` (`REDIS_URL`), `redis_cluster_urls` (`REDIS_CLUSTER_URLS`,
/// comma-separated seed nodes) and `redis_sentinel_urls` (`REDIS_SENTINEL_URLS`,
/// comma-separated sentinels, with the master's name in `redis_sentinel_master`,
/// `REDIS_SENTINEL_MASTER`). Setting more than one, an empty list, sentinels without a master
/// name or a URL the Redis client refuses is a start-up error naming the setting.
///
/// ```
/// use auth_center::config::RedisConfig;
/// let redis = RedisConfig::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])?;
/// assert_eq!(redis.mode(), "cluster");
/// assert!(RedisConfig::standalone("http://cache:6379").is_err());
/// # Ok::<(), auth_center::config::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(try_from = "RedisSettings")]
pub enum RedisConfig {
    /// Neither is set: sessions and rate-limit counters live in this process's memory, not
    /// shared with other instances or verifiers.
    #[default]
    Memory,
    /// A standalone Redis (`redis_url`).
    Standalone(RedisUrl),
    /// A Redis Cluster, through at least one seed node (`redis_cluster_urls`).
    Cluster(Vec<RedisUrl>),
    /// The master that Redis Sentinel names (`redis_sentinel_urls`, `redis_sentinel_master`),
    /// followed across failovers.
    Sentinel {
        /// The sentinels, at least one.
        sentinels: Vec<RedisUrl>,
        /// The master's name in the sentinels' configuration.
        master: String,
    },
}

/// The settings [`RedisConfig`] is read from, as written.
#[derive(Deserialize)]
struct RedisSettings {
    redis_url: Option<Text>,
    redis_cluster_urls: Option<Text>,
    redis_sentinel_urls: Option<Text>,
    redis_sentinel_master: Option<Text>,
}

/// A setting that should be a string; anything else is refused with the setting's name
/// (the flattened settings have no path in figment's errors).
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    String(SecretString),
    Other(serde::de::IgnoredAny),
}

impl Text {
    fn string(self, field: &str) -> Result<SecretString, String> {
        match self {
            Text::String(s) => Ok(s),
            Text::Other(_) => Err(format!("{field}: expected a string")),
        }
    }
}

const REDIS_URL: &str = "redis_url (REDIS_URL)";
const REDIS_CLUSTER_URLS: &str = "redis_cluster_urls (REDIS_CLUSTER_URLS)";
const REDIS_SENTINEL_URLS: &str = "redis_sentinel_urls (REDIS_SENTINEL_URLS)";
const REDIS_SENTINEL_MASTER: &str = "redis_sentinel_master (REDIS_SENTINEL_MASTER)";

impl TryFrom<RedisSettings> for RedisConfig {
    type Error = String;

    fn try_from(settings: RedisSettings) -> Result<Self, String> {
        let text =
            |setting: Option<Text>, field: &str| setting.map(|t| t.string(field)).transpose();
        let url = text(settings.redis_url, REDIS_URL)?;
        let cluster_urls = text(settings.redis_cluster_urls, REDIS_CLUSTER_URLS)?;
        let sentinel_urls = text(settings.redis_sentinel_urls, REDIS_SENTINEL_URLS)?;
        let sentinel_master = text(settings.redis_sentinel_master, REDIS_SENTINEL_MASTER)?;
        // Which topology: the verifier's rules, shared with every service.
        let target = verifier::RedisTopologySettings {
            url: url.as_ref().map(|u| u.expose_secret()),
            cluster_urls: cluster_urls.as_ref().map(|u| u.expose_secret()),
            sentinel_urls: sentinel_urls.as_ref().map(|u| u.expose_secret()),
            sentinel_master: sentinel_master.as_ref().map(|m| m.expose_secret()),
        }
        .target()?;
        match target {
            None => Ok(RedisConfig::Memory),
            Some(verifier::RedisTarget::Standalone(url)) => Self::parse_standalone(&url),
            Some(verifier::RedisTarget::Cluster(urls)) => Self::parse_cluster(urls),
            Some(verifier::RedisTarget::Sentinel { sentinels, master }) => {
                Ok(RedisConfig::Sentinel {
                    sentinels: parse_urls(sentinels, REDIS_SENTINEL_URLS, "sentinel")?,
                    master,
                })
            }
        }
    }
}

/// Each URL of `urls` checked (blank ones skipped, at least one must remain); errors name
/// `field` and the `what` by its position.
fn parse_urls<I>(urls: I, field: &str, what: &str) -> Result<Vec<RedisUrl>, String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut parsed = Vec::new();
    for url in urls {
        let url = url.as_ref().trim();
        if url.is_empty() {
            continue;
        }
        let url = RedisUrl::parse(url)
            .map_err(|e| format!("{field}, {what} {}: {e}", parsed.len() + 1))?;
        parsed.push(url);
    }
    if parsed.is_empty() {
        return Err(format!("{field}: names no {what}"));
    }
    Ok(parsed)
}

impl RedisConfig {
    /// A standalone Redis at `url`, checked as the Redis client checks it before connecting.
    pub fn standalone(url: &str) -> Result<Self, ConfigError> {
        Self::parse_standalone(url).map_err(ConfigError::Invalid)
    }

    /// A Redis Cluster reached through the seed nodes `urls` (blank entries are skipped, at
    /// least one must remain), each checked as the Redis client checks it.
    pub fn cluster<I>(urls: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::parse_cluster(urls).map_err(ConfigError::Invalid)
    }

    fn parse_standalone(url: &str) -> Result<Self, String> {
        RedisUrl::parse(url)
            .map(RedisConfig::Standalone)
            .map_err(|e| format!("{REDIS_URL}: {e}"))
    }

    fn parse_cluster<I>(urls: I) -> Result<Self, String>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        parse_urls(urls, REDIS_CLUSTER_URLS, "seed node").map(RedisConfig::Cluster)
    }

    /// The master named `master` in Redis Sentinel, through the sentinels `urls` (blank
    /// entries are skipped, at least one must remain).
    ///
    /// ```
    /// use auth_center::config::RedisConfig;
    /// let redis = RedisConfig::sentinel(["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"], "auth")?;
    /// assert_eq!(redis.mode(), "sentinel");
    /// assert!(RedisConfig::sentinel(["redis://10.0.0.1:26379"], " ").is_err());
    /// # Ok::<(), auth_center::config::ConfigError>(())
    /// ```
    pub fn sentinel<I>(urls: I, master: &str) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let master = master.trim();
        if master.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{REDIS_SENTINEL_MASTER} is empty"
            )));
        }
        let sentinels =
            parse_urls(urls, REDIS_SENTINEL_URLS, "sentinel").map_err(ConfigError::Invalid)?;
        Ok(RedisConfig::Sentinel {
            sentinels,
            master: master.to_owned(),
        })
    }

    /// `standalone`, `cluster`, `sentinel` or `in-memory`, for logs.
    pub fn mode(&self) -> &'static str {
        match self {
            RedisConfig::Memory => "in-memory",
            RedisConfig::Standalone(_) => "standalone",
            RedisConfig::Cluster(_) => "cluster",
            RedisConfig::Sentinel { .. } => "sentinel",
        }
    }

    /// What the verifier's Redis connection needs; `None` for [`RedisConfig::Memory`].
    pub fn target(&self) -> Option<verifier::RedisTarget> {
        match self {
            RedisConfig::Memory => None,
            RedisConfig::Standalone(url) => Some(verifier::RedisTarget::Standalone(
                url.0.expose_secret().to_owned(),
            )),
            RedisConfig::Cluster(seeds) => Some(verifier::RedisTarget::Cluster(exposed(seeds))),
            RedisConfig::Sentinel { sentinels, master } => Some(verifier::RedisTarget::Sentinel {
                sentinels: exposed(sentinels),
                master: master.clone(),
            }),
        }
    }
}

fn exposed(urls: &[RedisUrl]) -> Vec<String> {
    urls.iter()
        .map(|url| url.0.expose_secret().to_owned())
        .collect()
}

/// A Redis URL (`redis://[user][:password@]host[:port][/db]`, `rediss://` for TLS) that the
/// Redis client accepts. It may carry a password, so it is a secret: `Debug` prints none of
/// it, and errors about it never quote it.
#[derive(Clone)]
pub struct RedisUrl(SecretString);

impl RedisUrl {
    /// Checks `url` with the Redis client's own parser (without connecting).
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("is empty".into());
        }
        redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| {
            format!(
                "not a usable Redis URL (redis://[[user]:password@]host[:port][/db], or \
                     rediss:// for TLS): {e}"
            )
        })?;
        Ok(Self(SecretString::from(url)))
    }

    /// The URL, password included.
    pub fn as_secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisUrl([redacted])")
    }
}

/// A browser origin, `scheme://host[:port]`, written exactly as browsers send it in the
/// `Origin` header (which it is compared with): `http` or `https`, the host in lower case
/// (international names in punycode), no default port, and no path, trailing slash, query,
/// fragment or user. Anything else, `*` and `null` included, is refused when the
/// configuration loads, with the spelling to use where there is one.
///
/// ```
/// use auth_center::config::Origin;
/// assert_eq!(Origin::parse("https://app.example.com")?.as_str(), "https://app.example.com");
/// let error = Origin::parse("https://App.example.com:443/").unwrap_err();
/// assert!(error.contains("\"https://app.example.com\""), "{error}");
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Origin(String);

impl Origin {
    /// Checks that `origin` is a serialized http(s) origin.
    pub fn parse(origin: &str) -> Result<Self, String> {
        if origin == "*" || origin == "null" {
            return Err(format!(
                "{origin:?} is never allowed: list the origins that may call, one by one"
            ));
        }
        let url =
            url::Url::parse(origin).map_err(|e| format!("{origin:?} is not an origin: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{origin:?} is not an http:// or https:// origin"));
        }
        let serialized = url.origin().ascii_serialization();
        if serialized != origin {
            return Err(format!(
                "{origin:?} is not an origin as browsers send it (scheme, host and port only, \
                 lower case, no default port, no trailing slash); write {serialized:?}"
            ));
        }
        Ok(Self(serialized))
    }

    /// The origin as browsers send it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Origin {
    type Error = String;

    fn try_from(origin: String) -> Result<Self, String> {
        Self::parse(&origin)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Signing keys. A new key is published `publish_delay_secs` before it signs, which must
/// be longer than any verifier caches the JWKS: the JWKS says `max-age=jwks_max_age_secs`,
/// and other instances publish a new key only after their next key reload.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// How long a new key is published before it signs, seconds (default 3600). Must be
    /// greater than `jwks_max_age_secs` plus the key-reload interval (30 s).
    pub publish_delay_secs: u64,
    /// The JWKS `Cache-Control: public, max-age=N`, seconds (default 300).
    pub jwks_max_age_secs: u64,
    /// Rotate automatically: a key signs for this many days (default 0: off).
    pub rotate_every_days: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Config::default().keys
    }
}

/// How the server treats connections. Every timeout is in milliseconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A request head (request line and headers) must arrive within this time: counted
    /// from the accept for a new connection, from its first byte on a kept-alive one.
    pub header_read_timeout_ms: u64,
    /// A kept-alive connection with no request in flight and no new request started is
    /// closed after this time.
    pub idle_timeout_ms: u64,
    /// A request body must have arrived within this time of its head; otherwise `408`.
    /// Below the 15 s request timeout, so a stalled body is never taken for an outage.
    pub body_read_timeout_ms: u64,
    /// On shutdown, requests in flight get this long to finish; then every remaining
    /// connection is dropped.
    pub shutdown_grace_ms: u64,
    /// Most connections served at once; further ones wait in the listen backlog until
    /// a connection closes.
    pub max_connections: usize,
    /// Serve the API's OpenAPI 3.1 document at `/openapi.json` and its reference UI (Swagger
    /// UI, built in) at `/docs` (default on: the document describes only what any client
    /// sees by calling the routes, and served by the server it always matches its version).
    pub api_docs: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 10_000,
            shutdown_grace_ms: 10_000,
            max_connections: 10_000,
            api_docs: true,
        }
    }
}

/// Rate limits: `*_max` hits per `*_window_secs` fixed window. Exceeding one answers 429
/// with `Retry-After`; windows end, so no lockout is permanent.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Login attempts per client IP.
    pub login_ip_max: u64,
    /// Window of `login_ip_max`.
    pub login_ip_window_secs: u64,
    /// Failed logins per account from one IP before that IP is refused for the account.
    pub login_account_ip_failures_max: u64,
    /// Window of `login_account_ip_failures_max`.
    pub login_account_ip_window_secs: u64,
    /// Failed logins per account from all IPs together (NIST: at most 100).
    pub login_account_failures_max: u64,
    /// Window of `login_account_failures_max`.
    pub login_account_window_secs: u64,
    /// Registrations per client IP.
    pub register_ip_max: u64,
    /// Window of `register_ip_max`.
    pub register_ip_window_secs: u64,
    /// Refreshes per client IP (0: no limit, and a refresh is one Redis round trip).
    pub refresh_ip_max: u64,
    /// Window of `refresh_ip_max`.
    pub refresh_ip_window_secs: u64,
    /// Failed logins from one trusted device (a client presenting a device token from an
    /// earlier successful login). Such a client is exempt from the two account failure
    /// limits above, so failures spread over many IPs cannot lock its owner out; it gets
    /// this many tries of its own instead.
    pub login_device_failures_max: u64,
    /// Window of `login_device_failures_max`.
    pub login_device_window_secs: u64,
    /// Lifetime of a device token; each successful login hands out a fresh one.
    pub device_token_ttl_secs: u64,
    /// Failed client authentications (OAuth endpoints) per client IP before the IP is
    /// refused for the rest of the window.
    pub client_auth_ip_failures_max: u64,
    /// Window of `client_auth_ip_failures_max`.
    pub client_auth_ip_window_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            login_ip_max: 30,
            login_ip_window_secs: 300,
            login_account_ip_failures_max: 5,
            login_account_ip_window_secs: 900,
            login_account_failures_max: 100,
            login_account_window_secs: 3600,
            register_ip_max: 10,
            register_ip_window_secs: 3600,
            refresh_ip_max: 120,
            refresh_ip_window_secs: 60,
            login_device_failures_max: 10,
            login_device_window_secs: 3600,
            device_token_ttl_secs: 90 * 24 * 3600,
            client_auth_ip_failures_max: 20,
            client_auth_ip_window_secs: 300,
        }
    }
}

/// Browser clients.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserConfig {
    /// Origins (`https://app.example.com`) allowed to call with credentials: the CORS
    /// allow-list and the CSRF Origin check of cookie-authenticated requests. Empty:
    /// no cross-origin access and no cookie mode.
    pub allowed_origins: Vec<Origin>,
}

/// Access tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// The `aud` of issued tokens; the first one is what this service accepts too.
    pub audience: Vec<String>,
    /// Lifetime of an access token, seconds (default 900 = 15 min).
    pub access_ttl_secs: u64,
    /// Clock-skew allowance when checking tokens, seconds.
    pub leeway_secs: u64,
}

/// Sessions and refresh tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Sliding idle lifetime, seconds (default 7 days).
    pub idle_secs: u64,
    /// Absolute lifetime, seconds (default 30 days).
    pub absolute_secs: u64,
    /// Window in which a replay of the just-rotated refresh token gets the same
    /// successor, milliseconds (default 10 000; 0 disables it).
    pub grace_ms: u64,
    /// Most sessions one user may have; a new login beyond it ends the least recently
    /// used ones (default 50).
    pub max_per_user: u64,
    /// Replicas that must acknowledge a new session before its tokens are handed out
    /// (`AUTH_SESSIONS__WAIT_REPLICAS`, default 0: none, Redis's asynchronous replication).
    /// Set, a login runs `WAIT <n> <wait_timeout_ms>` on the session's master after writing
    /// it; fewer acknowledgements in time fail the login closed (503, the session deleted
    /// again), so a failover right after a login cannot lose a session whose tokens were
    /// issued to fewer than `n` replicas. Only with Redis (standalone with replicas, Sentinel,
    /// Cluster with replicas).
    pub wait_replicas: u32,
    /// How long a login waits for the replicas, milliseconds (`AUTH_SESSIONS__WAIT_TIMEOUT_MS`,
    /// default 100, 1 to 5000).
    pub wait_timeout_ms: u64,
}

/// Argon2id parameters and hashing concurrency.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    /// Memory cost in KiB (OWASP minimum 19456).
    pub memory_kib: u32,
    /// Iterations (OWASP minimum 2 at 19 MiB).
    pub iterations: u32,
    /// Parallelism.
    pub parallelism: u32,
    /// Hashes computed at once; 0 means one per CPU core.
    pub max_concurrent_hashes: usize,
    /// Longest wait for a place in the hashing queue, milliseconds, before the request is
    /// refused with `503 overloaded` (each slot runs one hash and holds one more queued
    /// behind it; default 1000; 0 refuses at once when every place is taken; at most
    /// 10 000, below the request timeout). A queued hash then waits about one hash more.
    pub queue_wait_ms: u64,
    /// How much nicer than the rest of the process the hashing threads run (added to the
    /// process's nice value, as `nice -n` does, and capped at 19; default 19, 0 leaves them
    /// at the process's priority, at most 19). It sets their share of a busy core when
    /// `hashing_idle` is off; with it on, the nice value does not count (it is kept, should
    /// the policy be changed). Nice alone lets a hash finish its time slice before a woken
    /// request thread runs.
    pub hashing_nice: u8,
    /// Whether the hashing threads also take the `SCHED_IDLE` policy (Linux; default `true`):
    /// a woken request-handling thread then preempts a hash at once, where a nice-19 hash
    /// still runs out its time slice first (about 2 ms on the p99 of every request on the
    /// machine during a login flood). Under a request load that keeps every core busy, a
    /// `SCHED_IDLE` hash gets a fifth of a nice-19 one's small share, so logins answer `503
    /// overloaded` sooner; the same for CPU-bound processes in the auth-center's cgroup
    /// (container, systemd unit). `false` leaves them at `hashing_nice` alone.
    pub hashing_idle: bool,
}

/// Timeouts.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Connect and per-command timeout towards Redis, milliseconds.
    pub redis_ms: u64,
    /// Time to wait for a database connection, milliseconds.
    pub database_ms: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Config::default().tokens
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Config::default().sessions
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Config::default().passwords
    }
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Config::default().timeouts
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_addr: None,
            issuer: "http://localhost:8080".into(),
            database_url: SecretString::from("sqlite:auth-center.db"),
            login_audit_sync: false,
            redis: RedisConfig::Memory,
            redis_tls_ca_file: None,
            redis_tls_client_cert_file: None,
            redis_tls_client_key_file: None,
            redis_username: None,
            redis_password: None,
            redis_sentinel_username: None,
            redis_sentinel_password: None,
            redis_prefix: "auth".into(),
            registration_enabled: true,
            tokens: TokenConfig {
                audience: vec!["api".into()],
                access_ttl_secs: 900,
                leeway_secs: 5,
            },
            sessions: SessionConfig {
                idle_secs: 7 * 24 * 3600,
                absolute_secs: 30 * 24 * 3600,
                grace_ms: 10_000,
                max_per_user: 50,
                wait_replicas: 0,
                wait_timeout_ms: 100,
            },
            passwords: PasswordConfig {
                memory_kib: argon2::Params::DEFAULT_M_COST,
                iterations: argon2::Params::DEFAULT_T_COST,
                parallelism: argon2::Params::DEFAULT_P_COST,
                max_concurrent_hashes: 0,
                queue_wait_ms: 1000,
                hashing_nice: MAX_HASHING_NICE,
                hashing_idle: true,
            },
            timeouts: TimeoutConfig {
                redis_ms: 500,
                database_ms: 2000,
            },
            log_format: LogFormat::Pretty,
            limits: LimitsConfig::default(),
            trusted_proxies: Vec::new(),
            browser: BrowserConfig::default(),
            keys: KeysConfig {
                publish_delay_secs: 3600,
                jwks_max_age_secs: 300,
                rotate_every_days: 0,
            },
            http: HttpConfig::default(),
            tls: service_kit::TlsSettings::default(),
            oauth: OAuthConfig::default(),
            refresh: RefreshConfig::default(),
            dpop: DpopConfig::default(),
            selftest: SelftestConfig::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets (URLs may carry passwords) are never printed.
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("issuer", &self.issuer)
            .field("database_url", &"[redacted]")
            .field("login_audit_sync", &self.login_audit_sync)
            .field("redis", &self.redis_mode())
            .field("redis_tls_ca_file", &self.redis_tls_ca_file)
            .field(
                "redis_tls_client_cert_file",
                &self.redis_tls_client_cert_file,
            )
            .field("redis_tls_client_key_file", &self.redis_tls_client_key_file)
            .field("redis_username", &self.redis_username)
            .field(
                "redis_password",
                &self.redis_password.as_ref().map(|_| "[redacted]"),
            )
            .field("redis_sentinel_username", &self.redis_sentinel_username)
            .field(
                "redis_sentinel_password",
                &self.redis_sentinel_password.as_ref().map(|_| "[redacted]"),
            )
            .field("redis_prefix", &self.redis_prefix)
            .field("registration_enabled", &self.registration_enabled)
            .field("tokens", &self.tokens)
            .field("sessions", &self.sessions)
            .field("passwords", &self.passwords)
            .field("timeouts", &self.timeouts)
            .field("limits", &self.limits)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("browser", &self.browser)
            .field("keys", &self.keys)
            .field("http", &self.http)
            .field("tls", &self.tls)
            .field("oauth", &self.oauth)
            .field("refresh", &self.refresh)
            .field("dpop", &self.dpop)
            .field("selftest", &self.selftest)
            .finish()
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or parsed.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of range or inconsistent.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads defaults, then `file` (TOML) if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment
            .merge(Environment::new(|env: Env| {
                env.only(&[
                    "DATABASE_URL",
                    "LISTEN_ADDR",
                    "METRICS_ADDR",
                    "TLS_CERT_FILE",
                    "TLS_KEY_FILE",
                ])
                .map(|name| service_kit::tls::env_key(name.as_str()).into())
            }))
            .merge(Environment::new(|env: Env| {
                env.only(&verifier::RedisAccessSettings::ENVIRONMENT)
            }))
            .merge(
                Environment::new(|env: Env| {
                    Environment::prefixed(env, "AUTH_")
                        .ignore(&[
                            // AUTH_CONFIG_FILE is the command line's TOML file, not the
                            // file of a setting `config`.
                            "config",
                            "config_file",
                            "jwks_url",
                            "audience",
                            "revocation",
                            "max_staleness_ms",
                            "max_stall_ms",
                            "jwks_cooldown_ms",
                            "revocation_selftest",
                            "instance_name",
                        ])
                        .split("__")
                })
                // Settings that are paths although their names end in `_file`.
                .paths(service_kit::tls::PATH_SETTINGS.map(|key| format!("tls.{key}")))
                .paths([
                    "redis_tls_ca_file",
                    "redis_tls_client_cert_file",
                    "redis_tls_client_key_file",
                ]),
            )
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if !(1..=3600).contains(&self.selftest.interval_secs) {
            return bad("selftest.interval_secs must be between 1 and 3600");
        }
        if !(1500..=60_000).contains(&self.selftest.arm_timeout_ms) {
            return bad("selftest.arm_timeout_ms must be between 1500 and 60000");
        }
        if !(100..=60_000).contains(&self.selftest.ack_timeout_ms) {
            return bad("selftest.ack_timeout_ms must be between 100 and 60000");
        }
        if self.tokens.audience.is_empty() || self.tokens.audience.iter().any(String::is_empty) {
            return bad("tokens.audience needs at least one non-empty audience");
        }
        if !(60..=3600).contains(&self.tokens.access_ttl_secs) {
            return bad("tokens.access_ttl_secs must be between 60 and 3600");
        }
        if self.tokens.leeway_secs > 60 {
            return bad("tokens.leeway_secs must be at most 60");
        }
        if self.sessions.idle_secs == 0 || self.sessions.absolute_secs < self.sessions.idle_secs {
            return bad("sessions.idle_secs must be > 0 and <= sessions.absolute_secs");
        }
        if self.sessions.max_per_user == 0 {
            return bad("sessions.max_per_user must be at least 1");
        }
        if !(1..=5000).contains(&self.sessions.wait_timeout_ms) {
            return bad("sessions.wait_timeout_ms must be between 1 and 5000");
        }
        if self.sessions.wait_replicas > 0 && matches!(self.redis, RedisConfig::Memory) {
            return bad(
                "sessions.wait_replicas needs Redis (REDIS_URL, REDIS_CLUSTER_URLS or REDIS_SENTINEL_URLS)",
            );
        }
        if self.sessions.grace_ms > 60_000 {
            return bad("sessions.grace_ms must be at most 60000");
        }
        if self.passwords.memory_kib < 12 * 1024 || self.passwords.iterations < 1 {
            return bad("passwords: memory_kib must be >= 12288 and iterations >= 1 (OWASP)");
        }
        if !(60..=400 * 24 * 3600).contains(&self.limits.device_token_ttl_secs) {
            return bad("limits.device_token_ttl_secs must be between 60 and 34560000 (400 days)");
        }
        if self.passwords.queue_wait_ms > MAX_QUEUE_WAIT_MS {
            return bad("passwords.queue_wait_ms must be at most 10000");
        }
        if self.passwords.hashing_nice > MAX_HASHING_NICE {
            return bad(
                "passwords.hashing_nice must be between 0 and 19 (0 leaves the hashing threads \
                 at the process's priority)",
            );
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(['{', '}']) {
            return bad("redis_prefix must be non-empty and must not contain '{' or '}'");
        }
        self.redis_tls()?;
        self.redis_credentials()?;
        self.redis_access()
            .sentinel_credentials(self.redis.target().as_ref())
            .map_err(ConfigError::Invalid)?;
        if !(1..=100_000).contains(&self.oauth.max_tokens_per_client) {
            return bad("oauth.max_tokens_per_client must be between 1 and 100000");
        }
        if !(10..=3600).contains(&self.oauth.assertion_max_lifetime_secs) {
            return bad("oauth.assertion_max_lifetime_secs must be between 10 and 3600");
        }
        self.keys.validate()?;
        self.http.validate()?;
        self.tls
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.refresh.validate()?;
        self.dpop_checker(std::sync::Arc::new(verifier::SystemClock))
            .map(|_| ())
            .map_err(|e| ConfigError::Invalid(format!("dpop: {}", e.0)))
    }

    /// The DPoP proof checker these settings describe, on `clock`.
    pub fn dpop_checker(
        &self,
        clock: std::sync::Arc<dyn verifier::Clock>,
    ) -> Result<verifier::dpop::DpopChecker, verifier::dpop::DpopConfigError> {
        verifier::dpop::DpopChecker::builder()
            .public_url(self.dpop.public_url.as_deref().unwrap_or(&self.issuer))
            .max_age(Duration::from_secs(self.dpop.max_age_secs))
            .leeway(Duration::from_secs(self.tokens.leeway_secs))
            .replay_cache_capacity(self.dpop.replay_cache_capacity)
            .clock(clock)
            .build()
    }

    /// How the Redis settings say to get in (the `redis_tls_*` files, `redis_username`,
    /// `redis_password`); their rules are the verifier's, shared with every service.
    fn redis_access(&self) -> verifier::RedisAccessSettings<'_> {
        verifier::RedisAccessSettings {
            tls_ca_file: self.redis_tls_ca_file.as_deref(),
            tls_client_cert_file: self.redis_tls_client_cert_file.as_deref(),
            tls_client_key_file: self.redis_tls_client_key_file.as_deref(),
            username: self.redis_username.as_deref(),
            password: self.redis_password.as_ref().map(|p| p.expose_secret()),
            sentinel_username: self.redis_sentinel_username.as_deref(),
            sentinel_password: self
                .redis_sentinel_password
                .as_ref()
                .map(|p| p.expose_secret()),
        }
    }

    /// The TLS settings for Redis, their files read and checked; `None` when none is set.
    /// Refused: a client certificate without its key (or the reverse), TLS settings without
    /// Redis or with a `redis://` URL, a file that cannot be read or holds no PEM certificate
    /// or key. The error names the setting.
    pub fn redis_tls(&self) -> Result<Option<verifier::RedisTls>, ConfigError> {
        self.redis_access()
            .tls(self.redis.target().as_ref())
            .map_err(ConfigError::Invalid)
    }

    /// The Redis user and password, if set; a user without a password, or either without
    /// Redis, is refused.
    pub fn redis_credentials(&self) -> Result<Option<verifier::RedisCredentials>, ConfigError> {
        self.redis_access()
            .credentials(self.redis.target().as_ref())
            .map_err(ConfigError::Invalid)
    }

    /// How to reach Redis: its address, TLS and credentials, with these timeouts; `None` for
    /// the in-memory stores.
    pub fn redis_connection(
        &self,
        options: verifier::contract::RedisOptions,
    ) -> Result<Option<(verifier::RedisTarget, verifier::contract::RedisOptions)>, ConfigError>
    {
        let Some(target) = self.redis.target() else {
            return Ok(None);
        };
        let options = verifier::contract::RedisOptions {
            tls: self.redis_tls()?,
            credentials: self.redis_credentials()?,
            sentinel_credentials: self
                .redis_access()
                .sentinel_credentials(Some(&target))
                .map_err(ConfigError::Invalid)?,
            ..options
        };
        Ok(Some((target, options)))
    }

    /// Which session store this configuration selects, for logs: [`RedisConfig::mode`].
    pub fn redis_mode(&self) -> &'static str {
        self.redis.mode()
    }

    /// Access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.tokens.access_ttl_secs)
    }
}

impl KeysConfig {
    /// A new key must reach every verifier before it signs: published by every instance
    /// (within one key reload) and then fetched again by every cache (within the max-age).
    fn validate(&self) -> Result<(), ConfigError> {
        use crate::domain::keys::KEY_RELOAD_SECS;
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.jwks_max_age_secs > 86_400 {
            return bad("keys.jwks_max_age_secs must be at most 86400 (1 day)".into());
        }
        if self.publish_delay_secs <= self.jwks_max_age_secs + KEY_RELOAD_SECS {
            return bad(format!(
                "keys.publish_delay_secs ({}) must be greater than keys.jwks_max_age_secs ({}) \
                 plus the key-reload interval ({KEY_RELOAD_SECS} s): a new key must be in every \
                 verifier's cached JWKS before it signs",
                self.publish_delay_secs, self.jwks_max_age_secs
            ));
        }
        if self.publish_delay_secs > 7 * 86_400 {
            return bad("keys.publish_delay_secs must be at most 604800 (7 days)".into());
        }
        if self.rotate_every_days > 3650 {
            return bad("keys.rotate_every_days must be at most 3650 (0 turns it off)".into());
        }
        if self.rotate_every_days > 0 && self.rotate_every_days * 86_400 <= self.publish_delay_secs
        {
            return bad(
                "keys.rotate_every_days must be longer than keys.publish_delay_secs".into(),
            );
        }
        Ok(())
    }
}

impl HttpConfig {
    /// Rejects connection settings that cannot work.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if !(1..=300_000).contains(&self.header_read_timeout_ms) {
            return bad("http.header_read_timeout_ms must be between 1 and 300000");
        }
        if !(1..=3_600_000).contains(&self.idle_timeout_ms) {
            return bad("http.idle_timeout_ms must be between 1 and 3600000");
        }
        let request_timeout_ms = crate::http::REQUEST_TIMEOUT.as_millis();
        if self.body_read_timeout_ms == 0
            || u128::from(self.body_read_timeout_ms) >= request_timeout_ms
        {
            return Err(ConfigError::Invalid(format!(
                "http.body_read_timeout_ms must be greater than 0 and below the request \
                 timeout ({request_timeout_ms} ms)"
            )));
        }
        if self.shutdown_grace_ms > 300_000 {
            return bad("http.shutdown_grace_ms must be at most 300000");
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return bad("http.max_connections must be between 1 and 1000000");
        }
        Ok(())
    }

    /// [`Self::header_read_timeout_ms`].
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// [`Self::idle_timeout_ms`].
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// [`Self::body_read_timeout_ms`].
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// [`Self::shutdown_grace_ms`].
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// What the serve loop needs of these settings.
    pub fn serve_options(&self) -> service_kit::ServeOptions {
        service_kit::ServeOptions {
            header_read_timeout: self.header_read_timeout(),
            idle_timeout: self.idle_timeout(),
            shutdown_grace: self.shutdown_grace(),
            max_connections: self.max_connections,
        }
    }
}

// ---- the refresh policy ------------------------------------------------------------------

/// The refresh policy (`[refresh]`, `AUTH_REFRESH__*`), enforced by the session store in the
/// same atomic step as the rotation. See `domain/refresh_policy.rs` and docs/security.md.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefreshConfig {
    /// Most rotations of one session (default 0: no cap). The refresh that would rotate a
    /// session one more time ends it instead (`401 refresh_limit_reached`); the user logs in
    /// again. At most 1 000 000 000.
    pub max_rotations: u64,
    /// What a refresh from another network than the session's last-seen one does: `allow`
    /// (the default), `audit` or `revoke`.
    pub on_network_change: ChangePolicy,
    /// What a refresh with another user agent (numbers ignored) than the session's last-seen
    /// one does: `allow` (the default), `audit` or `revoke`.
    pub on_user_agent_change: ChangePolicy,
    /// Leading bits of an IPv4 address that make its network (default 24), 0 to 32.
    pub ipv4_prefix: u8,
    /// Leading bits of an IPv6 address that make its network (default 64), 0 to 128.
    pub ipv6_prefix: u8,
}

/// Largest `refresh.max_rotations`: far beyond any real session, and exact in Lua numbers.
pub const MAX_ROTATIONS_LIMIT: u64 = 1_000_000_000;

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            max_rotations: 0,
            on_network_change: ChangePolicy::Allow,
            on_user_agent_change: ChangePolicy::Allow,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
        }
    }
}

impl RefreshConfig {
    /// Rejects refresh-policy settings that cannot work, naming the field.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.max_rotations > MAX_ROTATIONS_LIMIT {
            return bad(format!(
                "refresh.max_rotations must be at most {MAX_ROTATIONS_LIMIT} (0 turns the cap off)"
            ));
        }
        if self.ipv4_prefix > 32 {
            return bad("refresh.ipv4_prefix must be between 0 and 32".into());
        }
        if self.ipv6_prefix > 128 {
            return bad("refresh.ipv6_prefix must be between 0 and 128".into());
        }
        Ok(())
    }
}
