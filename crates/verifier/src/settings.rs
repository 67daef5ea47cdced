//! The verifier's settings as a service reads them (feature `settings`): one typed tree,
//! [`VerifierSettings`], loaded with figment from defaults, an optional TOML file and the
//! environment, in that order (later wins), with the names every binary of this workspace
//! uses.
//!
//! In the environment `REDIS_URL`, `REDIS_CLUSTER_URLS`, `PUBLIC_URL` and how to get into Redis
//! (`REDIS_TLS_CA_FILE`, `REDIS_TLS_CLIENT_CERT_FILE`, `REDIS_TLS_CLIENT_KEY_FILE`,
//! `REDIS_USERNAME`, `REDIS_PASSWORD`) have no prefix; every
//! other field is `AUTH_<FIELD>` (`AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`,
//! `AUTH_REDIS_PREFIX`, `AUTH_REVOCATION`, `AUTH_MAX_STALENESS_MS`, `AUTH_MAX_STALL_MS`,
//! `AUTH_JWKS_COOLDOWN_MS`, `AUTH_REVOCATION_SELFTEST`, `AUTH_INSTANCE_NAME`). Other `AUTH_*` variables are the auth-center's and are
//! ignored, so a service and the auth-center can share one environment. Any of these
//! variables can be given as `<NAME>_FILE` instead, the path of a file holding the value
//! ([`Environment`]).
//!
//! A service keeps its own settings beside the verifier's, in the same file and at the same
//! level: [`figment`] gives the standard sources, the service merges its own environment
//! variables, and [`extract`] reads both trees and refuses a name that neither knows.
//! [`init_logging`] starts logging the way the workspace's binaries do.
//!
//! ```
//! use figment::providers::{Env, Format as _, Toml};
//! use verifier::settings::{self, VerifierSettings};
//!
//! /// A service's own settings; the verifier's come beside them.
//! #[derive(Debug, Default, serde::Deserialize)]
//! #[serde(default)]
//! struct Own {
//!     greeting: String,
//! }
//!
//! let figment = settings::figment(None)
//!     .merge(Toml::string(r#"
//!         jwks_url = "https://auth.example/.well-known/jwks.json"
//!         issuer = "https://auth.example"
//!         revocation = "every-request"
//!         redis_url = "redis://cache:6379"
//!         greeting = "hello"
//!     "#))
//!     .merge(Env::prefixed("MY_SERVICE_").only(&["greeting"]));
//! let (verifier, own): (VerifierSettings, Own) = settings::extract(&figment).unwrap();
//! assert_eq!(own.greeting, "hello");
//! assert_eq!(verifier.audience, "api");
//! assert_eq!(verifier.revocation, verifier::RevocationMode::EveryRequest);
//!
//! let typo = figment::Figment::from(Toml::string("greting = \"hi\""));
//! let error = settings::extract::<Own>(&typo).unwrap_err().to_string();
//! assert!(error.contains("greting"), "{error}");
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format as _, Toml};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Visitor};

pub use crate::environment::Environment;

use crate::builder::{BuildError, VerifierBuilder};
use crate::dpop::DpopChecker;
use crate::redis_access::{RedisAccessSettings, RedisCredentials, RedisTls};
use crate::redis_conn::RedisTarget;
use crate::revocation::{DEFAULT_MAX_STALL, DEFAULT_TRACKING_READER_NICE, RevocationMode};
use crate::verify::Verifier;

/// The fields of [`VerifierSettings`] that the environment sets as `AUTH_<FIELD>`.
const AUTH_FIELDS: [&str; 12] = [
    "jwks_url",
    "issuer",
    "audience",
    "redis_prefix",
    "revocation",
    "max_staleness_ms",
    "max_stall_ms",
    "tracking_reader_realtime",
    "tracking_reader_nice",
    "jwks_cooldown_ms",
    "revocation_selftest",
    "instance_name",
];

/// The fields of [`VerifierSettings`] that the environment sets without a prefix besides
/// the Redis ones ([`RedisAccessSettings::ENVIRONMENT`]).
const RAW_FIELDS: [&str; 1] = ["PUBLIC_URL"];

/// Settings could not be read, or cannot work.
///
/// ```
/// let error = verifier::settings::VerifierSettings::default().validate().unwrap_err();
/// assert!(error.to_string().contains("AUTH_JWKS_URL"), "{error}");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value has the wrong type or a name is unknown; figment's message names the field
    /// and where the value came from.
    #[error("settings: {0}")]
    Load(Box<figment::Error>),
    /// A setting that cannot work, named with its field and its environment variable.
    #[error("settings: {0}")]
    Invalid(String),
    /// The verifier refused the settings, or Redis could not be reached.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The verifier's settings: what [`Verifier::builder`] needs, typed, with every default.
/// `Debug` shows no Redis URL (they may carry a password).
///
/// ```
/// use verifier::settings::VerifierSettings;
/// let settings = VerifierSettings {
///     jwks_url: "http://127.0.0.1:8080/.well-known/jwks.json".into(),
///     issuer: "http://127.0.0.1:8080".into(),
///     ..VerifierSettings::default()
/// };
/// assert_eq!(settings.audience, "api");
/// assert_eq!(settings.redis_target().unwrap(), None);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct VerifierSettings {
    /// The auth-center's JWKS URL (`AUTH_JWKS_URL`, required).
    pub jwks_url: String,
    /// Expected `iss` (`AUTH_ISSUER`, required).
    pub issuer: String,
    /// Expected `aud` (`AUTH_AUDIENCE`).
    pub audience: String,
    /// A standalone Redis (`REDIS_URL`); not with [`redis_cluster_urls`](Self::redis_cluster_urls).
    pub redis_url: Option<SecretString>,
    /// A Redis Cluster's seed nodes, comma-separated (`REDIS_CLUSTER_URLS`).
    pub redis_cluster_urls: Option<SecretString>,
    /// Redis Sentinel's nodes, comma-separated (`REDIS_SENTINEL_URLS`); with
    /// [`redis_sentinel_master`](Self::redis_sentinel_master).
    pub redis_sentinel_urls: Option<SecretString>,
    /// The master's name the sentinels monitor (`REDIS_SENTINEL_MASTER`).
    pub redis_sentinel_master: Option<String>,
    /// The sentinels' own ACL user (`REDIS_SENTINEL_USERNAME`).
    pub redis_sentinel_username: Option<String>,
    /// The sentinels' own password (`REDIS_SENTINEL_PASSWORD`).
    pub redis_sentinel_password: Option<SecretString>,
    /// The CA (PEM) to trust for `rediss://` URLs instead of the public CAs
    /// (`REDIS_TLS_CA_FILE`).
    pub redis_tls_ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for a Redis that asks for one (`REDIS_TLS_CLIENT_CERT_FILE`);
    /// with [`redis_tls_client_key_file`](Self::redis_tls_client_key_file).
    pub redis_tls_client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM, `REDIS_TLS_CLIENT_KEY_FILE`).
    pub redis_tls_client_key_file: Option<PathBuf>,
    /// The Redis ACL user (`REDIS_USERNAME`), in place of one in the URL; needs
    /// [`redis_password`](Self::redis_password).
    pub redis_username: Option<String>,
    /// The Redis password (`REDIS_PASSWORD`), in place of one in the URL.
    pub redis_password: Option<SecretString>,
    /// Session-key prefix shared with the auth-center (`AUTH_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// Revocation mode (`AUTH_REVOCATION`: `tracked`, `every-request` or `off`).
    #[serde(with = "Revocation")]
    pub revocation: RevocationMode,
    /// Tracked mode's safety-net TTL (`max_staleness_ms`, `AUTH_MAX_STALENESS_MS`).
    #[serde(rename = "max_staleness_ms", deserialize_with = "millis")]
    pub max_staleness: Duration,
    /// Tracked mode's bound on cached answers from a Redis that stopped answering
    /// (`max_stall_ms`, `AUTH_MAX_STALL_MS`).
    #[serde(rename = "max_stall_ms", deserialize_with = "millis")]
    pub max_stall: Duration,
    /// Whether tracked mode's reader thread asks for SCHED_FIFO (`tracking_reader_realtime`,
    /// `AUTH_TRACKING_READER_REALTIME`, default `true`; see
    /// [`tracking_reader_realtime`](crate::VerifierBuilder::tracking_reader_realtime)).
    pub tracking_reader_realtime: bool,
    /// Tracked mode's reader thread's nice value, −20 to 19 (`tracking_reader_nice`,
    /// `AUTH_TRACKING_READER_NICE`; see
    /// [`tracking_reader_nice`](crate::VerifierBuilder::tracking_reader_nice)).
    pub tracking_reader_nice: i8,
    /// Minimum time between JWKS refetches on unknown `kid`s (`jwks_cooldown_ms`,
    /// `AUTH_JWKS_COOLDOWN_MS`).
    #[serde(rename = "jwks_cooldown_ms", deserialize_with = "millis")]
    pub jwks_cooldown: Duration,
    /// Whether a tracked verifier takes part in the auth-center's revocation self-test
    /// (`AUTH_REVOCATION_SELFTEST`, default `true`).
    pub revocation_selftest: bool,
    /// The name it reports to the self-test under (`AUTH_INSTANCE_NAME`; default
    /// `<host>/<pid>/<random>`).
    pub instance_name: Option<String>,
    /// The URL clients reach the service under (`PUBLIC_URL`: scheme, host, port, any path
    /// prefix a proxy adds). Set, DPoP-bound tokens (RFC 9449) are accepted with the `DPoP`
    /// scheme and a proof whose `htu` is it plus the request's path; unset, they are refused.
    pub public_url: Option<String>,
}

impl Default for VerifierSettings {
    /// Every default; `jwks_url` and `issuer` are empty and must be set.
    fn default() -> Self {
        Self {
            jwks_url: String::new(),
            issuer: String::new(),
            audience: "api".into(),
            redis_url: None,
            redis_cluster_urls: None,
            redis_sentinel_urls: None,
            redis_sentinel_master: None,
            redis_sentinel_username: None,
            redis_sentinel_password: None,
            redis_tls_ca_file: None,
            redis_tls_client_cert_file: None,
            redis_tls_client_key_file: None,
            redis_username: None,
            redis_password: None,
            redis_prefix: "auth".into(),
            revocation: RevocationMode::Tracked,
            max_staleness: Duration::from_secs(5),
            max_stall: DEFAULT_MAX_STALL,
            tracking_reader_realtime: true,
            tracking_reader_nice: DEFAULT_TRACKING_READER_NICE,
            jwks_cooldown: Duration::from_secs(10),
            revocation_selftest: true,
            instance_name: None,
            public_url: None,
        }
    }
}

/// A duration written in milliseconds.
fn millis<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}

/// [`RevocationMode`] as it is written in settings.
#[derive(Deserialize)]
#[serde(remote = "RevocationMode", rename_all = "kebab-case")]
enum Revocation {
    Tracked,
    EveryRequest,
    Off,
}

impl VerifierSettings {
    /// These settings with their Redis set to `target` (what tests and programs that already
    /// hold a [`RedisTarget`] use).
    ///
    /// ```
    /// use verifier::{RedisTarget, settings::VerifierSettings};
    /// let target = RedisTarget::Standalone("redis://127.0.0.1:6379".into());
    /// let settings = VerifierSettings::default().with_redis(target.clone());
    /// assert_eq!(settings.redis_target().unwrap(), Some(target));
    /// ```
    pub fn with_redis(mut self, target: RedisTarget) -> Self {
        (
            self.redis_url,
            self.redis_cluster_urls,
            self.redis_sentinel_urls,
        ) = (None, None, None);
        self.redis_sentinel_master = None;
        match target {
            RedisTarget::Standalone(url) => self.redis_url = Some(url.into()),
            RedisTarget::Cluster(urls) => self.redis_cluster_urls = Some(urls.join(",").into()),
            RedisTarget::Sentinel { sentinels, master } => {
                self.redis_sentinel_urls = Some(sentinels.join(",").into());
                self.redis_sentinel_master = Some(master);
            }
        }
        self
    }

    /// The Redis the verifier checks sessions in: `None` without one (only for revocation
    /// `off`). Refuses more than one of `REDIS_URL`, `REDIS_CLUSTER_URLS` and
    /// `REDIS_SENTINEL_URLS`, a list that names no node, and sentinels without a master name
    /// (the rules of [`RedisTopologySettings`](crate::RedisTopologySettings)).
    ///
    /// ```
    /// use verifier::{RedisTarget, settings::VerifierSettings};
    /// let settings = VerifierSettings {
    ///     redis_cluster_urls: Some("redis://a:7000, redis://b:7000,".to_string().into()),
    ///     ..VerifierSettings::default()
    /// };
    /// assert_eq!(
    ///     settings.redis_target().unwrap(),
    ///     Some(RedisTarget::Cluster(vec!["redis://a:7000".into(), "redis://b:7000".into()]))
    /// );
    /// ```
    pub fn redis_target(&self) -> Result<Option<RedisTarget>, SettingsError> {
        crate::RedisTopologySettings {
            url: self.redis_url.as_ref().map(|u| u.expose_secret()),
            cluster_urls: self.redis_cluster_urls.as_ref().map(|u| u.expose_secret()),
            sentinel_urls: self.redis_sentinel_urls.as_ref().map(|u| u.expose_secret()),
            sentinel_master: self.redis_sentinel_master.as_deref(),
        }
        .target()
        .map_err(SettingsError::Invalid)
    }

    /// How to get into Redis: the TLS files and the ACL user, checked against the Redis
    /// URLs (the rules of [`RedisAccessSettings`], shared with the auth-center).
    fn redis_access(&self) -> RedisAccessSettings<'_> {
        RedisAccessSettings {
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

    /// The TLS settings for Redis, files read and checked; `None` when none is set. The
    /// error names the setting.
    ///
    /// ```
    /// use verifier::settings::VerifierSettings;
    /// let settings = VerifierSettings {
    ///     redis_url: Some("rediss://cache:6380".to_string().into()),
    ///     redis_tls_ca_file: Some("/nonexistent/ca.pem".into()),
    ///     ..VerifierSettings::default()
    /// };
    /// let error = settings.redis_tls().unwrap_err().to_string();
    /// assert!(error.contains("REDIS_TLS_CA_FILE"), "{error}");
    /// ```
    pub fn redis_tls(&self) -> Result<Option<RedisTls>, SettingsError> {
        self.redis_access()
            .tls(self.redis_target()?.as_ref())
            .map_err(SettingsError::Invalid)
    }

    /// The Redis user and password, if set.
    ///
    /// ```
    /// use verifier::settings::VerifierSettings;
    /// let settings = VerifierSettings {
    ///     redis_url: Some("redis://cache:6379".to_string().into()),
    ///     redis_username: Some("verifier".into()),
    ///     redis_password: Some("s3cret".to_string().into()),
    ///     ..VerifierSettings::default()
    /// };
    /// assert!(settings.redis_credentials().unwrap().is_some());
    /// assert!(!format!("{settings:?}").contains("s3cret"));
    /// ```
    pub fn redis_credentials(&self) -> Result<Option<RedisCredentials>, SettingsError> {
        self.redis_access()
            .credentials(self.redis_target()?.as_ref())
            .map_err(SettingsError::Invalid)
    }

    /// The sentinels' own user and password, if set.
    ///
    /// ```
    /// use verifier::settings::VerifierSettings;
    /// let settings = VerifierSettings {
    ///     redis_sentinel_urls: Some("redis://s1:26379".to_string().into()),
    ///     redis_sentinel_master: Some("auth".into()),
    ///     redis_sentinel_password: Some("s3cret".to_string().into()),
    ///     ..VerifierSettings::default()
    /// };
    /// assert!(settings.redis_sentinel_credentials().unwrap().is_some());
    /// assert!(!format!("{settings:?}").contains("s3cret"));
    /// ```
    pub fn redis_sentinel_credentials(&self) -> Result<Option<RedisCredentials>, SettingsError> {
        self.redis_access()
            .sentinel_credentials(self.redis_target()?.as_ref())
            .map_err(SettingsError::Invalid)
    }

    /// The DPoP proof checker for [`public_url`](Self::public_url), if it is set.
    ///
    /// ```
    /// use verifier::settings::VerifierSettings;
    /// let settings = VerifierSettings {
    ///     public_url: Some("https://api.example".into()),
    ///     ..VerifierSettings::default()
    /// };
    /// let checker = settings.dpop_checker().unwrap().unwrap();
    /// assert_eq!(checker.public_url(), "https://api.example");
    /// ```
    pub fn dpop_checker(&self) -> Result<Option<DpopChecker>, SettingsError> {
        let Some(url) = &self.public_url else {
            return Ok(None);
        };
        let checker = DpopChecker::builder()
            .public_url(url)
            .build()
            .map_err(|e| invalid(&format!("public_url (PUBLIC_URL): {}", e.0)))?;
        Ok(Some(checker))
    }

    /// Refuses settings that cannot work: the JWKS URL and the issuer are required, the Redis
    /// URLs must name one store, and a public URL must be one a DPoP proof can name. Each
    /// error names the field and its environment variable.
    ///
    /// ```
    /// use verifier::settings::VerifierSettings;
    /// let settings = VerifierSettings { jwks_url: "http://a/jwks".into(), ..Default::default() };
    /// let error = settings.validate().unwrap_err().to_string();
    /// assert!(error.contains("issuer (AUTH_ISSUER)"), "{error}");
    /// ```
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.jwks_url.trim().is_empty() {
            return Err(invalid("jwks_url (AUTH_JWKS_URL) must be set"));
        }
        if self.issuer.trim().is_empty() {
            return Err(invalid("issuer (AUTH_ISSUER) must be set"));
        }
        self.redis_target()?;
        self.redis_tls()?;
        self.redis_credentials()?;
        self.redis_sentinel_credentials()?;
        self.dpop_checker()?;
        Ok(())
    }

    /// A verifier builder with these settings, for a program that adds its own (a clock, the
    /// signature cache's size).
    ///
    /// ```
    /// use verifier::{RevocationMode, settings::VerifierSettings};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let settings = VerifierSettings {
    ///     jwks_url: "http://127.0.0.1:9/.well-known/jwks.json".into(),
    ///     issuer: "http://127.0.0.1:9".into(),
    ///     revocation: RevocationMode::Off,
    ///     ..VerifierSettings::default()
    /// };
    /// let verifier = settings.builder().unwrap().signature_cache_capacity(100).build().await;
    /// assert!(verifier.is_ok());
    /// # });
    /// ```
    pub fn builder(&self) -> Result<VerifierBuilder, SettingsError> {
        self.validate()?;
        let mut builder = Verifier::builder()
            .issuer(&self.issuer)
            .audience(&self.audience)
            .jwks_url(&self.jwks_url)
            .jwks_cooldown(self.jwks_cooldown)
            .key_prefix(&self.redis_prefix)
            .revocation(self.revocation)
            .max_staleness(self.max_staleness)
            .max_stall(self.max_stall)
            .tracking_reader_realtime(self.tracking_reader_realtime)
            .tracking_reader_nice(self.tracking_reader_nice)
            .revocation_selftest(self.revocation_selftest);
        if let Some(name) = &self.instance_name {
            builder = builder.instance_name(name);
        }
        if let Some(target) = self.redis_target()? {
            builder = builder.redis(target);
        }
        if let Some(tls) = self.redis_tls()? {
            builder = builder.redis_tls(tls);
        }
        if let Some(credentials) = self.redis_credentials()? {
            builder = builder.redis_credentials(credentials);
        }
        if let Some(credentials) = self.redis_sentinel_credentials()? {
            builder = builder.redis_sentinel_credentials(credentials);
        }
        if let Some(checker) = self.dpop_checker()? {
            builder = builder.dpop(checker);
        }
        Ok(builder)
    }

    /// Builds the verifier these settings describe.
    ///
    /// ```no_run
    /// # async fn demo(settings: verifier::settings::VerifierSettings) -> anyhow::Result<()> {
    /// let verifier = settings.build().await?;
    /// # Ok(()) }
    /// ```
    pub async fn build(&self) -> Result<Verifier, SettingsError> {
        Ok(self.builder()?.build().await?)
    }
}

impl From<figment::Error> for SettingsError {
    fn from(error: figment::Error) -> Self {
        SettingsError::Load(Box::new(error))
    }
}

fn invalid(message: &str) -> SettingsError {
    SettingsError::Invalid(message.to_owned())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as the workspace's binaries do.
/// Installs the global subscriber once; later calls change nothing.
///
/// ```
/// verifier::settings::init_logging();
/// tracing::info!("starting");
/// ```
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The standard sources, in order: `file` (TOML, which must exist) if given, then the
/// environment variables of [`VerifierSettings`] (see the [module documentation](self)).
/// Serde defaults come first. A service merges its own variables after these.
///
/// ```
/// use figment::providers::Env;
/// let figment = verifier::settings::figment(None).merge(Env::raw().only(&["LISTEN_ADDR"]));
/// ```
pub fn figment(file: Option<&Path>) -> Figment {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment
        .merge(Environment::new(|env: Env| {
            env.only(&RedisAccessSettings::ENVIRONMENT)
        }))
        .merge(Environment::new(|env: Env| env.only(&RAW_FIELDS)))
        .merge(Environment::new(|env: Env| {
            Environment::prefixed(env, "AUTH_").only(&AUTH_FIELDS)
        }))
}

/// Reads the verifier's settings and a service's own settings `S` from `figment`, checks the
/// verifier's ([`VerifierSettings::validate`]) and refuses any top-level name that neither
/// knows, naming it. `S` is a struct with named fields (a field that holds the
/// [`VerifierSettings`] itself is `#[serde(skip)]`).
///
/// ```
/// use figment::{Figment, providers::{Format as _, Toml}};
/// #[derive(Default, serde::Deserialize)]
/// #[serde(default)]
/// struct Own {
///     port: u16,
/// }
/// let figment = Figment::from(Toml::string("port = \"eighty\""));
/// let error = verifier::settings::extract::<Own>(&figment).err().unwrap().to_string();
/// assert!(error.contains("port"), "{error}");
/// ```
pub fn extract<S: DeserializeOwned>(
    figment: &Figment,
) -> Result<(VerifierSettings, S), SettingsError> {
    let names: BTreeMap<String, figment::value::Value> = figment.extract()?;
    let (verifier_fields, own_fields) = (field_names::<VerifierSettings>(), field_names::<S>());
    if let Some(unknown) = names.keys().find(|name| {
        !verifier_fields.contains(&name.as_str()) && !own_fields.contains(&name.as_str())
    }) {
        let mut expected: Vec<&str> = verifier_fields.iter().chain(own_fields).copied().collect();
        expected.sort_unstable();
        return Err(SettingsError::Invalid(format!(
            "unknown field `{unknown}`, expected one of {}",
            expected.join(", ")
        )));
    }
    let verifier: VerifierSettings = figment.extract()?;
    let own: S = figment.extract()?;
    verifier.validate()?;
    Ok((verifier, own))
}

/// The field names a struct's `Deserialize` asks for (serde passes them to
/// `deserialize_struct`); empty for anything that is not a struct with named fields.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields(&'static [&'static str]);

    /// A deserializer that only records the field names it is asked for, then stops.
    struct Recorder<'a>(&'a mut Fields);

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names recorded")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    impl<'de> de::Deserializer<'de> for Recorder<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields = Fields(&[]);
    let _ = T::deserialize(Recorder(&mut fields));
    fields.0
}

#[cfg(test)]
mod tests {
    // Test code: a panic is a failure report; figment::Jail's closures return its error.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

    use super::*;

    /// A service's own settings, as the demo-service and the gateway have them.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Own {
        listen_addr: Option<std::net::SocketAddr>,
        #[serde(skip)]
        _verifier: VerifierSettings,
    }

    fn from_toml(toml: &str) -> Result<VerifierSettings, String> {
        extract::<Own>(&Figment::from(Toml::string(toml)))
            .map(|(verifier, _)| verifier)
            .map_err(|e| e.to_string())
    }

    const REQUIRED: &str = "jwks_url = \"http://a/jwks\"\nissuer = \"http://a\"\n";

    #[test]
    fn every_setting_has_a_typed_field() {
        let settings = from_toml(
            r#"
            jwks_url = "http://auth:8080/.well-known/jwks.json"
            issuer = "http://auth:8080"
            audience = "orders"
            redis_cluster_urls = "redis://:hunter2@a:7000, redis://b:7000,"
            redis_prefix = "p"
            revocation = "every-request"
            max_staleness_ms = 60000
            max_stall_ms = 50
            tracking_reader_realtime = false
            tracking_reader_nice = -5
            jwks_cooldown_ms = 100
            public_url = "https://demo.example/api"
            "#,
        )
        .unwrap();
        assert_eq!(settings.jwks_url, "http://auth:8080/.well-known/jwks.json");
        assert_eq!(settings.issuer, "http://auth:8080");
        assert_eq!(settings.audience, "orders");
        assert_eq!(
            settings.redis_target().unwrap(),
            Some(RedisTarget::Cluster(vec![
                "redis://:hunter2@a:7000".into(),
                "redis://b:7000".into()
            ]))
        );
        assert_eq!(settings.redis_prefix, "p");
        assert_eq!(settings.revocation, RevocationMode::EveryRequest);
        assert_eq!(settings.max_staleness, Duration::from_secs(60));
        assert_eq!(settings.max_stall, Duration::from_millis(50));
        assert!(!settings.tracking_reader_realtime);
        assert_eq!(settings.tracking_reader_nice, -5);
        assert_eq!(settings.jwks_cooldown, Duration::from_millis(100));
        assert_eq!(
            settings.public_url.as_deref(),
            Some("https://demo.example/api")
        );
        // The password is a secret.
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn the_defaults_are_those_of_the_environment_variables() {
        let settings = VerifierSettings::default();
        assert_eq!(settings.audience, "api");
        assert_eq!(settings.redis_prefix, "auth");
        assert_eq!(settings.redis_target().unwrap(), None);
        assert_eq!(settings.revocation, RevocationMode::Tracked);
        assert_eq!(settings.max_staleness, Duration::from_secs(5));
        assert_eq!(settings.max_stall, DEFAULT_MAX_STALL);
        assert!(settings.tracking_reader_realtime);
        assert_eq!(settings.tracking_reader_nice, -20);
        assert_eq!(settings.jwks_cooldown, Duration::from_secs(10));
        assert_eq!(settings.public_url, None, "DPoP-bound tokens are refused");
        // The two settings without a default.
        let error = from_toml("").unwrap_err();
        assert!(error.contains("AUTH_JWKS_URL"), "{error}");
        let error = from_toml("jwks_url = \"http://a/jwks\"").unwrap_err();
        assert!(error.contains("AUTH_ISSUER"), "{error}");
        assert!(from_toml(REQUIRED).is_ok());
    }

    #[test]
    fn a_setting_that_cannot_work_is_an_error_naming_it() {
        for (toml, field) in [
            ("revocation = \"sometimes\"", "revocation"),
            ("max_stall_ms = \"fast\"", "max_stall_ms"),
            ("tracking_reader_nice = -200", "tracking_reader_nice"),
            ("listen_addr = \"localhost\"", "listen_addr"),
            ("no_such_setting = 1", "no_such_setting"),
            (
                "redis_url = \"redis://a\"\nredis_cluster_urls = \"redis://b\"",
                "redis_cluster_urls",
            ),
            ("redis_cluster_urls = \" , \"", "redis_cluster_urls"),
            (
                "redis_url = \"redis://a\"\nredis_sentinel_urls = \"redis://s\"",
                "redis_sentinel_urls",
            ),
            (
                "redis_sentinel_urls = \"redis://s\"",
                "REDIS_SENTINEL_MASTER",
            ),
            ("redis_sentinel_master = \"auth\"", "REDIS_SENTINEL_URLS"),
            (
                "redis_sentinel_urls = \",\"\nredis_sentinel_master = \"auth\"",
                "names no sentinel",
            ),
            (
                "redis_url = \"redis://a\"\nredis_sentinel_password = \"x\"",
                "REDIS_SENTINEL_PASSWORD",
            ),
            ("public_url = \"demo.example\"", "PUBLIC_URL"),
            ("public_url = \"ftp://demo.example\"", "PUBLIC_URL"),
            ("public_url = \"https://demo.example/?x=1\"", "PUBLIC_URL"),
        ] {
            let error = from_toml(&format!("{REQUIRED}{toml}")).expect_err(toml);
            assert!(error.contains(field), "{toml}: {error}");
        }
    }

    #[test]
    fn the_environment_names_are_the_auth_centers() {
        figment::Jail::expect_with(|jail| {
            for (name, value) in [
                ("AUTH_JWKS_URL", "http://a/jwks"),
                ("AUTH_ISSUER", "http://a"),
                ("AUTH_AUDIENCE", "orders"),
                ("REDIS_URL", "redis://cache:6379"),
                ("AUTH_REDIS_PREFIX", "p"),
                ("AUTH_REVOCATION", "every-request"),
                ("AUTH_MAX_STALENESS_MS", "1000"),
                ("AUTH_MAX_STALL_MS", "30"),
                ("AUTH_JWKS_COOLDOWN_MS", "20"),
                ("AUTH_REVOCATION_SELFTEST", "false"),
                ("AUTH_INSTANCE_NAME", "orders-1"),
                ("PUBLIC_URL", "https://api.example"),
                // The auth-center's own settings in a shared environment are not errors.
                ("AUTH_SESSIONS__IDLE_SECS", "3600"),
                ("AUTH_LOG_FORMAT", "json"),
            ] {
                jail.set_env(name, value);
            }
            let (settings, _): (VerifierSettings, Own) =
                extract(&figment(None)).map_err(|e| e.to_string())?;
            assert_eq!(settings.audience, "orders");
            assert_eq!(
                settings.redis_target().map_err(|e| e.to_string())?,
                Some(RedisTarget::Standalone("redis://cache:6379".into()))
            );
            assert_eq!(settings.redis_prefix, "p");
            assert_eq!(settings.revocation, RevocationMode::EveryRequest);
            assert_eq!(settings.max_staleness, Duration::from_secs(1));
            assert_eq!(settings.max_stall, Duration::from_millis(30));
            assert_eq!(settings.jwks_cooldown, Duration::from_millis(20));
            assert_eq!(settings.public_url.as_deref(), Some("https://api.example"));
            assert!(!settings.revocation_selftest);
            assert_eq!(settings.instance_name.as_deref(), Some("orders-1"));
            Ok(())
        });
    }

    #[test]
    fn sentinels_and_their_own_user_come_from_the_auth_centers_names() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTH_JWKS_URL", "http://a/jwks");
            jail.set_env("AUTH_ISSUER", "http://a");
            jail.set_env("REDIS_SENTINEL_URLS", "redis://s1:26379, redis://s2:26379");
            jail.set_env("REDIS_SENTINEL_MASTER", "auth");
            jail.set_env("REDIS_SENTINEL_USERNAME", "watcher");
            jail.set_env("REDIS_SENTINEL_PASSWORD", "sentinel-secret");
            let (settings, _): (VerifierSettings, Own) =
                extract(&figment(None)).map_err(|e| e.to_string())?;
            assert_eq!(
                settings.redis_target().map_err(|e| e.to_string())?,
                Some(RedisTarget::sentinel_from_csv(
                    "redis://s1:26379,redis://s2:26379",
                    "auth"
                ))
            );
            let credentials = settings
                .redis_sentinel_credentials()
                .map_err(|e| e.to_string())?;
            assert!(credentials.is_some());
            assert!(!format!("{settings:?} {credentials:?}").contains("sentinel-secret"));
            Ok(())
        });
    }

    #[test]
    fn the_redis_tls_and_user_settings_come_from_the_auth_centers_names() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ca.pem", "not a certificate")?;
            jail.set_env("AUTH_JWKS_URL", "http://a/jwks");
            jail.set_env("AUTH_ISSUER", "http://a");
            jail.set_env("REDIS_URL", "rediss://cache:6380");
            jail.set_env("REDIS_USERNAME", "verifier");
            jail.set_env("REDIS_PASSWORD", "s3cret");
            jail.set_env("REDIS_TLS_CA_FILE", "ca.pem");
            jail.set_env("REDIS_TLS_CLIENT_CERT_FILE", "client.pem");
            jail.set_env("REDIS_TLS_CLIENT_KEY_FILE", "client.key");
            let error = extract::<Own>(&figment(None)).unwrap_err().to_string();
            // Read, then refused naming the setting: the CA file holds no certificate.
            assert!(
                error.contains("REDIS_TLS_CA_FILE") && error.contains("ca.pem"),
                "{error}"
            );
            assert!(!error.contains("s3cret"), "{error}");
            let settings: VerifierSettings = figment(None).extract()?;
            assert_eq!(settings.redis_username.as_deref(), Some("verifier"));
            let password = settings.redis_password.as_ref().map(|p| p.expose_secret());
            assert_eq!(password, Some("s3cret"));
            assert_eq!(
                settings.redis_tls_client_key_file.as_deref(),
                Some(Path::new("client.key"))
            );
            Ok(())
        });
    }

    #[test]
    fn the_field_names_are_those_serde_reads() {
        let names = field_names::<VerifierSettings>();
        for name in AUTH_FIELDS {
            assert!(names.contains(&name), "{name}");
        }
        for name in RAW_FIELDS.iter().chain(&RedisAccessSettings::ENVIRONMENT) {
            assert!(names.contains(&name.to_lowercase().as_str()), "{name}");
        }
        assert_eq!(field_names::<Own>(), ["listen_addr"]);
        assert!(field_names::<u32>().is_empty());
    }
}
