//! The gateway's settings: the verifier's ([`VerifierSettings`], shared with the
//! demo-service), the listen address, the names of the identity headers and the per-path
//! rules. Loaded from defaults, an optional TOML file (`--config FILE` or
//! `GATEWAY_CONFIG_FILE`) and the environment, in that order (later wins).
//!
//! The environment: `LISTEN_ADDR`, `METRICS_ADDR`, `TLS_CERT_FILE` and `TLS_KEY_FILE` (TLS on the listener,
//! `[tls]` in the file), the verifier's variables (`AUTH_JWKS_URL`, `AUTH_ISSUER`,
//! `REDIS_URL`, ...; see [`verifier::settings`]), and `GATEWAY_<FIELD>` for the gateway's
//! own, nested fields joined by `__`: `GATEWAY_HEADERS__SUBJECT=X-User`. An unknown field in
//! the file or an unknown `GATEWAY_*` variable is an error that names it. Any variable can be
//! given as `<NAME>_FILE` instead, the path of a file holding the value.

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::Env;
use http::HeaderName;
use serde::{Deserialize, Deserializer};
use service_kit::TlsSettings;
use verifier::settings::{Environment, SettingsError, VerifierSettings};

use crate::rules::{Rule, Rules};

/// Settings of the gateway.
///
/// ```
/// let settings = gateway::Settings {
///     verifier: verifier::settings::VerifierSettings {
///         jwks_url: "http://127.0.0.1:8080/.well-known/jwks.json".into(),
///         issuer: "http://127.0.0.1:8080".into(),
///         ..Default::default()
///     },
///     rules: vec![gateway::Rule {
///         prefix: "/admin".into(),
///         role: Some("admin".into()),
///         ..Default::default()
///     }],
///     ..gateway::Settings::default()
/// };
/// assert_eq!(settings.listen_addr.port(), 8082);
/// assert_eq!(settings.headers.subject, "x-auth-subject");
/// assert!(settings.check().is_ok());
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where to listen (`LISTEN_ADDR`). Only the proxy may reach it.
    pub listen_addr: SocketAddr,
    /// TLS on the listener (`[tls]`; `TLS_CERT_FILE`, `TLS_KEY_FILE`): off unless both
    /// files are set.
    pub tls: TlsSettings,
    /// Where to serve `/metrics` instead of on `listen_addr` (`METRICS_ADDR`; plain HTTP).
    /// Unset: `/metrics` is on the main listener.
    pub metrics_addr: Option<SocketAddr>,
    /// The names of the identity headers of a `200` (`[headers]`).
    pub headers: IdentityHeaders,
    /// Per-path rules (`[[rules]]`); a path no rule matches needs a valid token.
    pub rules: Vec<Rule>,
    /// The verifier's settings, at the top level of the file beside `listen_addr`.
    #[serde(skip)]
    pub verifier: VerifierSettings,
}

impl Default for Settings {
    /// Every default; the verifier's `jwks_url` and `issuer` are empty and must be set.
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8082)),
            tls: TlsSettings::default(),
            metrics_addr: None,
            headers: IdentityHeaders::default(),
            rules: Vec::new(),
            verifier: VerifierSettings::default(),
        }
    }
}

/// The names of the headers that carry the caller's identity in a `200`
/// (`GATEWAY_HEADERS__<FIELD>`).
///
/// ```
/// let headers = gateway::IdentityHeaders::default();
/// assert_eq!(headers.session, "x-auth-session");
/// assert_eq!(headers.client_id, "x-auth-client-id");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityHeaders {
    /// The token's `sub` (`X-Auth-Subject`).
    #[serde(deserialize_with = "header_name")]
    pub subject: HeaderName,
    /// The token's `sid` (`X-Auth-Session`).
    #[serde(deserialize_with = "header_name")]
    pub session: HeaderName,
    /// The token's `roles`, comma-separated, empty for none (`X-Auth-Roles`).
    #[serde(deserialize_with = "header_name")]
    pub roles: HeaderName,
    /// The token's `scope`, space-separated; left out when it has none (`X-Auth-Scope`).
    #[serde(deserialize_with = "header_name")]
    pub scope: HeaderName,
    /// The token's `client_id`; left out when it has none (`X-Auth-Client-Id`).
    #[serde(deserialize_with = "header_name")]
    pub client_id: HeaderName,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            subject: HeaderName::from_static("x-auth-subject"),
            session: HeaderName::from_static("x-auth-session"),
            roles: HeaderName::from_static("x-auth-roles"),
            scope: HeaderName::from_static("x-auth-scope"),
            client_id: HeaderName::from_static("x-auth-client-id"),
        }
    }
}

impl IdentityHeaders {
    /// The five names, each with its field.
    ///
    /// ```
    /// let headers = gateway::IdentityHeaders::default();
    /// assert_eq!(headers.all()[0], ("subject", &headers.subject));
    /// ```
    pub fn all(&self) -> [(&'static str, &HeaderName); 5] {
        [
            ("subject", &self.subject),
            ("session", &self.session),
            ("roles", &self.roles),
            ("scope", &self.scope),
            ("client_id", &self.client_id),
        ]
    }
}

/// Headers an identity header must not be named after: a proxy or the HTTP exchange itself
/// gives them a meaning.
const RESERVED: [&str; 13] = [
    "authorization",
    "cookie",
    "dpop",
    "host",
    "connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "www-authenticate",
    "retry-after",
    "cache-control",
    "set-cookie",
    "location",
];

fn header_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderName, D::Error> {
    let name = String::deserialize(deserializer)?;
    HeaderName::try_from(name.as_str())
        .map_err(|_| serde::de::Error::custom(format!("`{name}` is not a header name")))
}

impl Settings {
    /// Loads the defaults, then `file` (TOML) if given, then the environment, and checks
    /// that the settings can work ([`VerifierSettings::validate`], [`Settings::check`]).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let figment = verifier::settings::figment(file)
            .merge(Environment::new(|env: Env| {
                env.only(&service_kit::LISTENER_ENV)
                    .map(|name| service_kit::tls::env_key(name.as_str()).into())
            }))
            .merge(
                Environment::new(|env: Env| {
                    Environment::prefixed(env, "GATEWAY_")
                        .split("__")
                        // GATEWAY_CONFIG_FILE is the command line's, not a setting `config`.
                        .ignore(&["config_file", "config"])
                })
                .paths(service_kit::tls::PATH_SETTINGS.map(|key| format!("tls.{key}"))),
            );
        Ok(Self::from_figment(&figment)?)
    }

    /// The settings in `figment`, checked.
    fn from_figment(figment: &figment::Figment) -> Result<Self, SettingsError> {
        let (verifier, settings) = verifier::settings::extract::<Settings>(figment)?;
        let settings = Settings {
            verifier,
            ..settings
        };
        settings.check()?;
        Ok(settings)
    }

    /// Checks the gateway's own settings: five distinct identity headers, none named after a
    /// header with a meaning of its own, and rules that can work. Each error names the field.
    ///
    /// ```
    /// let mut settings = gateway::Settings::default();
    /// settings.headers.roles = http::HeaderName::from_static("x-auth-subject");
    /// let error = settings.check().unwrap_err().to_string();
    /// assert!(error.contains("headers.roles"), "{error}");
    /// ```
    pub fn check(&self) -> Result<(), SettingsError> {
        self.tls
            .validate()
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        let headers = self.headers.all();
        for (i, (field, name)) in headers.iter().enumerate() {
            let invalid = |message: &str| {
                SettingsError::Invalid(format!(
                    "headers.{field} (GATEWAY_HEADERS__{}): {message}",
                    field.to_ascii_uppercase()
                ))
            };
            if RESERVED.contains(&name.as_str()) {
                return Err(invalid(&format!(
                    "`{name}` has a meaning of its own in HTTP"
                )));
            }
            if headers[..i].iter().any(|(_, other)| other == name) {
                return Err(invalid(&format!(
                    "`{name}` names another identity header too"
                )));
            }
        }
        self.compiled_rules()?;
        Ok(())
    }

    /// The rules, checked and ordered for matching.
    pub(crate) fn compiled_rules(&self) -> Result<Rules, SettingsError> {
        Rules::new(&self.rules).map_err(|e| SettingsError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    // Test code: a panic is a failure report; figment::Jail's closures return its error.
    #![allow(clippy::unwrap_used, clippy::result_large_err)]

    use std::time::Duration;

    use figment::Figment;
    use figment::providers::{Format as _, Toml};
    use verifier::RevocationMode;

    use super::*;

    const REQUIRED: &str = "jwks_url = \"http://a/jwks\"\nissuer = \"http://a\"\n";

    fn from_toml(toml: &str) -> Result<Settings, String> {
        let figment = Figment::from(Toml::string(&format!("{REQUIRED}{toml}")));
        Settings::from_figment(&figment).map_err(|e| e.to_string())
    }

    fn names(headers: &IdentityHeaders) -> Vec<&str> {
        headers
            .all()
            .iter()
            .map(|(_, name)| name.as_str())
            .collect()
    }

    #[test]
    fn every_setting_has_a_typed_field() {
        let settings = from_toml(
            r#"
            listen_addr = "0.0.0.0:9000"
            redis_url = "redis://:hunter2@cache:6379"
            revocation = "every-request"
            max_stall_ms = 50

            [headers]
            subject = "X-User"
            session = "X-Session"
            roles = "X-Roles"
            scope = "X-Scope"
            client_id = "X-Client"

            [[rules]]
            prefix = "/public"
            anonymous = true

            [[rules]]
            prefix = "/admin/"
            methods = ["POST", "delete"]
            role = "admin"
            scope = "admin:write"
            "#,
        )
        .unwrap();
        assert_eq!(settings.listen_addr, SocketAddr::from(([0, 0, 0, 0], 9000)));
        assert_eq!(settings.verifier.revocation, RevocationMode::EveryRequest);
        assert_eq!(settings.verifier.max_stall, Duration::from_millis(50));
        assert_eq!(
            names(&settings.headers),
            ["x-user", "x-session", "x-roles", "x-scope", "x-client"]
        );
        assert_eq!(
            settings.rules,
            [
                Rule {
                    prefix: "/public".into(),
                    anonymous: true,
                    ..Rule::default()
                },
                Rule {
                    prefix: "/admin/".into(),
                    methods: vec!["POST".into(), "delete".into()],
                    role: Some("admin".into()),
                    scope: Some("admin:write".into()),
                    anonymous: false,
                }
            ]
        );
        // The Redis password is a secret.
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let settings = from_toml("").unwrap();
        assert_eq!(
            settings.listen_addr,
            SocketAddr::from(([127, 0, 0, 1], 8082))
        );
        assert_eq!(settings.headers, IdentityHeaders::default());
        assert_eq!(
            names(&settings.headers),
            [
                "x-auth-subject",
                "x-auth-session",
                "x-auth-roles",
                "x-auth-scope",
                "x-auth-client-id"
            ]
        );
        assert!(settings.rules.is_empty(), "a valid token everywhere");
    }

    #[test]
    fn a_setting_that_cannot_work_is_an_error_naming_it() {
        for (toml, field) in [
            ("listen_addr = \"localhost\"", "listen_addr"),
            ("no_such_setting = 1", "no_such_setting"),
            ("[headers]\nsubject = \"X User\"", "subject"),
            ("[headers]\nuser = \"X-User\"", "user"),
            ("[headers]\nsubject = \"Authorization\"", "headers.subject"),
            ("[headers]\nscope = \"X-Auth-Roles\"", "headers.scope"),
            ("[[rules]]\nprefix = \"admin\"", "rules[0].prefix"),
            ("[[rules]]\nprefix = \"/a\"\nrole = \"\"", "rules[0].role"),
            ("[[rules]]\nprefix = \"/a\"\nrule = \"admin\"", "rule"),
            ("[[rules]]\nrole = \"admin\"", "prefix"),
            (
                "[[rules]]\nprefix = \"/a\"\nanonymous = \"yes\"",
                "anonymous",
            ),
            ("rules = \"/admin\"", "rules"),
        ] {
            let error = from_toml(toml).map(drop).unwrap_err();
            assert!(error.contains(field), "{toml}: {error}");
        }
    }

    #[test]
    fn the_environment_sets_the_gateways_own_settings() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gateway.toml", REQUIRED)?;
            jail.set_env("LISTEN_ADDR", "127.0.0.1:9999");
            jail.set_env("GATEWAY_HEADERS__SUBJECT", "X-User");
            jail.set_env("GATEWAY_RULES", r#"[{prefix="/admin", role="admin"}]"#);
            jail.set_env("GATEWAY_CONFIG_FILE", "gateway.toml");
            jail.set_env("AUTH_REVOCATION", "off");
            let settings =
                Settings::load(Some(Path::new("gateway.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(settings.listen_addr.port(), 9999);
            assert_eq!(settings.headers.subject, "x-user");
            assert_eq!(settings.rules[0].role.as_deref(), Some("admin"));
            assert_eq!(settings.verifier.revocation, RevocationMode::Off);
            jail.set_env("GATEWAY_HEADER__SUBJECT", "X-User");
            let error = Settings::load(Some(Path::new("gateway.toml")))
                .unwrap_err()
                .to_string();
            assert!(error.contains("header"), "{error}");
            Ok(())
        });
    }
}
