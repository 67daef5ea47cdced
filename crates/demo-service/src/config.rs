//! The demo-service's settings: one typed tree, loaded like the auth-center's configuration
//! from defaults, an optional TOML file (`--config FILE` or `DEMO_CONFIG_FILE`) and the
//! environment, in that order (later wins).
//!
//! Names in the environment follow the auth-center's conventions: `REDIS_URL`,
//! `REDIS_CLUSTER_URLS`, `LISTEN_ADDR`, `PUBLIC_URL`, `TLS_CERT_FILE` and `TLS_KEY_FILE`
//! without a prefix, every other setting as
//! `AUTH_<FIELD>` (`AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`, `AUTH_REDIS_PREFIX`,
//! `AUTH_REVOCATION`, `AUTH_MAX_STALENESS_MS`, `AUTH_MAX_STALL_MS`,
//! `AUTH_JWKS_COOLDOWN_MS`). Other `AUTH_*` variables are the auth-center's and are ignored,
//! so both programs can share one environment; an unknown field in the TOML file is an error.
//! Any of these variables can be given as `<NAME>_FILE` instead, the path of a file holding the
//! value (`service_kit::env`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use service_kit::TlsSettings;
use service_kit::env::Environment;
use verifier::{RedisTarget, RevocationMode, Verifier};

/// The settings that the environment sets through `AUTH_<FIELD>`.
const AUTH_FIELDS: [&str; 8] = [
    "jwks_url",
    "issuer",
    "audience",
    "redis_prefix",
    "revocation",
    "max_staleness_ms",
    "max_stall_ms",
    "jwks_cooldown_ms",
];

/// Settings of the demo-service.
///
/// ```
/// let settings = demo_service::Settings {
///     jwks_url: "http://127.0.0.1:8080/.well-known/jwks.json".into(),
///     issuer: "http://127.0.0.1:8080".into(),
///     ..demo_service::Settings::default()
/// };
/// assert_eq!(settings.audience, "api");
/// assert!(settings.redis.target().is_none());
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where to listen (`LISTEN_ADDR`).
    pub listen_addr: SocketAddr,
    /// The auth-center's JWKS URL (`AUTH_JWKS_URL`, required).
    pub jwks_url: String,
    /// Expected `iss` (`AUTH_ISSUER`, required).
    pub issuer: String,
    /// Expected `aud` (`AUTH_AUDIENCE`).
    pub audience: String,
    /// The session store: `REDIS_URL` or `REDIS_CLUSTER_URLS`, not both.
    #[serde(flatten)]
    pub redis: SessionStore,
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
    /// Minimum time between JWKS refetches on unknown `kid`s (`jwks_cooldown_ms`,
    /// `AUTH_JWKS_COOLDOWN_MS`).
    #[serde(rename = "jwks_cooldown_ms", deserialize_with = "millis")]
    pub jwks_cooldown: Duration,
    /// The URL clients reach this service under (`PUBLIC_URL`: scheme, host, port, any path
    /// prefix a proxy adds). Set, DPoP-bound tokens (RFC 9449) are accepted with the `DPoP`
    /// scheme and a proof whose `htu` is it plus the route; unset, they are refused.
    pub public_url: Option<String>,
    /// TLS on the listener (`[tls]`; `TLS_CERT_FILE`, `TLS_KEY_FILE`): off unless both
    /// files are set.
    pub tls: TlsSettings,
}

/// A duration written in milliseconds.
fn millis<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}

impl Default for Settings {
    /// Every default; `jwks_url` and `issuer` are empty and must be set.
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            jwks_url: String::new(),
            issuer: String::new(),
            audience: "api".into(),
            redis: SessionStore::None,
            redis_prefix: "auth".into(),
            revocation: RevocationMode::Tracked,
            max_staleness: Duration::from_secs(5),
            max_stall: verifier::DEFAULT_MAX_STALL,
            jwks_cooldown: Duration::from_secs(10),
            public_url: None,
            tls: TlsSettings::default(),
        }
    }
}

impl Settings {
    /// Loads the defaults, then `file` (TOML) if given, then the environment, and checks
    /// that the required settings are there.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let settings: Settings = figment
            .merge(Environment::new(|env: Env| {
                env.only(&[
                    "REDIS_URL",
                    "REDIS_CLUSTER_URLS",
                    "LISTEN_ADDR",
                    "PUBLIC_URL",
                    "TLS_CERT_FILE",
                    "TLS_KEY_FILE",
                ])
                .map(|name| service_kit::tls::env_key(name.as_str()).into())
            }))
            .merge(Environment::new(|env: Env| {
                Environment::prefixed(env, "AUTH_").only(&AUTH_FIELDS)
            }))
            .extract()
            .map_err(|e| anyhow::anyhow!("settings: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings that cannot work: the JWKS URL and the issuer are required, and a
    /// public URL must be one a DPoP proof can name.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.jwks_url.trim().is_empty() {
            bail!("settings: jwks_url (AUTH_JWKS_URL) must be set");
        }
        if self.issuer.trim().is_empty() {
            bail!("settings: issuer (AUTH_ISSUER) must be set");
        }
        self.dpop_checker()?;
        self.tls.validate()?;
        Ok(())
    }

    /// The DPoP proof checker for [`public_url`](Self::public_url), if it is set.
    fn dpop_checker(&self) -> anyhow::Result<Option<verifier::dpop::DpopChecker>> {
        let Some(url) = &self.public_url else {
            return Ok(None);
        };
        let checker = verifier::dpop::DpopChecker::builder()
            .public_url(url)
            .build()
            .map_err(|e| anyhow::anyhow!("settings: public_url (PUBLIC_URL): {}", e.0))?;
        Ok(Some(checker))
    }

    /// Builds the verifier these settings describe.
    pub async fn verifier(&self) -> anyhow::Result<Verifier> {
        let mut builder = Verifier::builder()
            .issuer(&self.issuer)
            .audience(&self.audience)
            .jwks_url(&self.jwks_url)
            .jwks_cooldown(self.jwks_cooldown)
            .key_prefix(&self.redis_prefix)
            .revocation(self.revocation)
            .max_staleness(self.max_staleness)
            .max_stall(self.max_stall);
        if let Some(target) = self.redis.target() {
            builder = builder.redis(target);
        }
        if let Some(checker) = self.dpop_checker()? {
            builder = builder.dpop(checker);
        }
        Ok(builder.build().await?)
    }
}

/// `verifier::RevocationMode` as it is written in settings.
#[derive(Deserialize)]
#[serde(remote = "RevocationMode", rename_all = "kebab-case")]
enum Revocation {
    Tracked,
    EveryRequest,
    Off,
}

/// The session store the verifier checks, decided when the settings load from `redis_url`
/// (`REDIS_URL`) and `redis_cluster_urls` (`REDIS_CLUSTER_URLS`, comma-separated seed nodes).
/// The URLs may carry a password: they are secrets, and `Debug` shows none of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "RedisUrls")]
pub enum SessionStore {
    /// No Redis: only for `AUTH_REVOCATION=off`.
    #[default]
    None,
    /// A standalone Redis.
    Standalone(SecretString),
    /// A Redis Cluster, through at least one seed node.
    Cluster(Vec<SecretString>),
}

/// The two settings [`SessionStore`] is read from.
#[derive(Deserialize)]
struct RedisUrls {
    redis_url: Option<SecretString>,
    redis_cluster_urls: Option<SecretString>,
}

impl TryFrom<RedisUrls> for SessionStore {
    type Error = String;

    fn try_from(urls: RedisUrls) -> Result<Self, String> {
        match (urls.redis_url, urls.redis_cluster_urls) {
            (None, None) => Ok(SessionStore::None),
            (Some(url), None) => Ok(SessionStore::Standalone(url)),
            (None, Some(urls)) => {
                let seeds: Vec<SecretString> = urls
                    .expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|url| !url.is_empty())
                    .map(SecretString::from)
                    .collect();
                if seeds.is_empty() {
                    return Err("redis_cluster_urls (REDIS_CLUSTER_URLS) names no seed node".into());
                }
                Ok(SessionStore::Cluster(seeds))
            }
            (Some(_), Some(_)) => Err(
                "set redis_url (REDIS_URL) or redis_cluster_urls (REDIS_CLUSTER_URLS), not both"
                    .into(),
            ),
        }
    }
}

impl SessionStore {
    /// What the verifier connects to; `None` without Redis.
    pub fn target(&self) -> Option<RedisTarget> {
        match self {
            SessionStore::None => None,
            SessionStore::Standalone(url) => {
                Some(RedisTarget::Standalone(url.expose_secret().to_owned()))
            }
            SessionStore::Cluster(seeds) => Some(RedisTarget::Cluster(
                seeds.iter().map(|s| s.expose_secret().to_owned()).collect(),
            )),
        }
    }
}

impl From<RedisTarget> for SessionStore {
    fn from(target: RedisTarget) -> Self {
        match target {
            RedisTarget::Standalone(url) => SessionStore::Standalone(url.into()),
            RedisTarget::Cluster(urls) => {
                SessionStore::Cluster(urls.into_iter().map(SecretString::from).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(toml: &str) -> Result<Settings, String> {
        Figment::from(Toml::string(toml))
            .extract::<Settings>()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_has_a_typed_field() {
        let settings = from_toml(
            r#"
            listen_addr = "0.0.0.0:9000"
            jwks_url = "http://auth:8080/.well-known/jwks.json"
            issuer = "http://auth:8080"
            audience = "orders"
            redis_cluster_urls = "redis://:hunter2@a:7000, redis://b:7000,"
            redis_prefix = "p"
            revocation = "every-request"
            max_staleness_ms = 60000
            max_stall_ms = 50
            jwks_cooldown_ms = 100
            public_url = "https://demo.example/api"
            "#,
        )
        .unwrap();
        assert_eq!(settings.listen_addr, SocketAddr::from(([0, 0, 0, 0], 9000)));
        assert_eq!(settings.audience, "orders");
        assert_eq!(
            settings.redis.target(),
            Some(RedisTarget::Cluster(vec![
                "redis://:hunter2@a:7000".into(),
                "redis://b:7000".into()
            ]))
        );
        assert_eq!(settings.revocation, RevocationMode::EveryRequest);
        assert_eq!(settings.max_staleness, Duration::from_secs(60));
        assert_eq!(settings.max_stall, Duration::from_millis(50));
        assert_eq!(settings.jwks_cooldown, Duration::from_millis(100));
        assert_eq!(
            settings.public_url.as_deref(),
            Some("https://demo.example/api")
        );
        assert!(settings.validate().is_ok());
        // The password is a secret.
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn the_defaults_are_those_of_the_environment_variables() {
        let settings = from_toml("").unwrap();
        assert_eq!(
            settings.listen_addr,
            SocketAddr::from(([127, 0, 0, 1], 8081))
        );
        assert_eq!(settings.audience, "api");
        assert_eq!(settings.redis_prefix, "auth");
        assert!(settings.redis.target().is_none());
        assert_eq!(settings.revocation, RevocationMode::Tracked);
        assert_eq!(settings.max_staleness, Duration::from_secs(5));
        assert_eq!(settings.max_stall, verifier::DEFAULT_MAX_STALL);
        assert_eq!(settings.jwks_cooldown, Duration::from_secs(10));
        assert_eq!(settings.public_url, None, "DPoP-bound tokens are refused");
        // The two settings without a default.
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("AUTH_JWKS_URL"), "{error}");
        let settings = from_toml("jwks_url = \"http://a/jwks\"").unwrap();
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("AUTH_ISSUER"), "{error}");
    }

    #[test]
    fn a_setting_that_cannot_work_is_an_error_naming_it() {
        for (toml, field) in [
            ("revocation = \"sometimes\"", "revocation"),
            ("max_stall_ms = \"fast\"", "max_stall_ms"),
            ("listen_addr = \"localhost\"", "listen_addr"),
            ("no_such_setting = 1", "no_such_setting"),
            (
                "redis_url = \"redis://a\"\nredis_cluster_urls = \"redis://b\"",
                "redis_cluster_urls",
            ),
            ("redis_cluster_urls = \" , \"", "redis_cluster_urls"),
        ] {
            let error = from_toml(toml).map(drop).expect_err(toml);
            assert!(error.contains(field), "{toml}: {error}");
        }
        // A public URL no DPoP proof can name is refused when the settings are checked.
        for url in [
            "demo.example",
            "ftp://demo.example",
            "https://demo.example/?x=1",
        ] {
            let settings = Settings {
                jwks_url: "http://a/jwks".into(),
                issuer: "http://a".into(),
                public_url: Some(url.into()),
                ..Settings::default()
            };
            let error = settings.validate().unwrap_err().to_string();
            assert!(error.contains("PUBLIC_URL"), "{url}: {error}");
        }
    }
}
