//! The demo-service's settings: the verifier's ([`VerifierSettings`], shared with the gateway)
//! and its listen address, loaded like the auth-center's configuration from defaults, an
//! optional TOML file (`--config FILE` or `DEMO_CONFIG_FILE`) and the environment, in that
//! order (later wins).
//!
//! Names in the environment follow the auth-center's conventions: `LISTEN_ADDR`, `METRICS_ADDR`,
//! `TLS_CERT_FILE` and `TLS_KEY_FILE` (TLS on the listener, `[tls]` in the file), and the
//! verifier's (`AUTH_JWKS_URL`, `AUTH_ISSUER`, `REDIS_URL`, ...; see [`verifier::settings`]).
//! Any of them can be given as `<NAME>_FILE`, the path of a file holding the value. An
//! unknown field in the TOML file is an error.

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::Env;
use serde::Deserialize;
use service_kit::TlsSettings;
use verifier::settings::{Environment, VerifierSettings};

/// Settings of the demo-service.
///
/// ```
/// let settings = demo_service::Settings {
///     verifier: verifier::settings::VerifierSettings {
///         jwks_url: "http://127.0.0.1:8080/.well-known/jwks.json".into(),
///         issuer: "http://127.0.0.1:8080".into(),
///         ..Default::default()
///     },
///     ..demo_service::Settings::default()
/// };
/// assert_eq!(settings.listen_addr.port(), 8081);
/// assert!(settings.verifier.validate().is_ok());
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where to listen (`LISTEN_ADDR`).
    pub listen_addr: SocketAddr,
    /// TLS on the listener (`[tls]`; `TLS_CERT_FILE`, `TLS_KEY_FILE`): off unless both
    /// files are set.
    pub tls: TlsSettings,
    /// Where to serve `/metrics` instead of on `listen_addr` (`METRICS_ADDR`; plain HTTP).
    /// Unset: `/metrics` is on the main listener.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the verifier's layer sits for `/me` and `/admin` (`layout`, `DEMO_LAYOUT`):
    /// `whole-router` (default) or `route-layer`.
    pub layout: Layout,
    /// The verifier's settings, at the top level of the file beside `listen_addr`.
    #[serde(skip)]
    pub verifier: VerifierSettings,
}

/// Where the demo-service puts the verifier's layer.
///
/// ```
/// assert_eq!(demo_service::Layout::default(), demo_service::Layout::WholeRouter);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// The layer around the whole router (the default): every path needs a token but the
    /// layer's public paths, `/baseline/me`, `/healthz`, `/metrics` and the routes that
    /// verify on their own (`/route-layer/me`, `/handler/me`, `/verified/me`). A route added
    /// later is covered without a word; no boxed route level per protected route.
    #[default]
    WholeRouter,
    /// `route_layer` on `/me` and `/admin`, as `/route-layer/me` has in both layouts;
    /// everything else is public unless it verifies on its own.
    RouteLayer,
}

impl Default for Settings {
    /// Every default; the verifier's `jwks_url` and `issuer` are empty and must be set.
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            tls: TlsSettings::default(),
            metrics_addr: None,
            layout: Layout::default(),
            verifier: VerifierSettings::default(),
        }
    }
}

impl Settings {
    /// Loads the defaults, then `file` (TOML) if given, then the environment, and checks
    /// that the settings can work.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let figment = verifier::settings::figment(file)
            .merge(Environment::new(|env: Env| {
                env.only(&service_kit::LISTENER_ENV)
                    .map(|name| service_kit::tls::env_key(name.as_str()).into())
            }))
            .merge(Environment::new(|env: Env| {
                env.only(&["DEMO_LAYOUT"]).map(|_| "layout".into())
            }));
        let (verifier, settings) = verifier::settings::extract::<Settings>(&figment)?;
        settings.tls.validate()?;
        Ok(Settings {
            verifier,
            ..settings
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::result_large_err)] // figment::Jail's closures return its error

    use super::*;

    #[test]
    fn the_listen_address_is_a_typed_setting_beside_the_verifiers() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "demo.toml",
                "listen_addr = \"0.0.0.0:9000\"\njwks_url = \"http://a/jwks\"\nissuer = \"http://a\"\n",
            )?;
            let settings =
                Settings::load(Some(Path::new("demo.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(settings.listen_addr, SocketAddr::from(([0, 0, 0, 0], 9000)));
            assert_eq!(settings.verifier.issuer, "http://a");
            jail.set_env("LISTEN_ADDR", "localhost");
            let error = Settings::load(Some(Path::new("demo.toml")))
                .unwrap_err()
                .to_string();
            assert!(error.contains("LISTEN_ADDR"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_layout_comes_from_demo_layout_and_a_wrong_one_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file(
                "demo.toml",
                "jwks_url = \"http://a/jwks\"\nissuer = \"http://a\"\n",
            )?;
            let file = Some(Path::new("demo.toml"));
            let settings = Settings::load(file).map_err(|e| e.to_string())?;
            assert_eq!(settings.layout, Layout::WholeRouter);
            jail.set_env("DEMO_LAYOUT", "route-layer");
            let settings = Settings::load(file).map_err(|e| e.to_string())?;
            assert_eq!(settings.layout, Layout::RouteLayer);
            jail.set_env("DEMO_LAYOUT", "everywhere");
            let error = Settings::load(file).unwrap_err().to_string();
            assert!(error.contains("DEMO_LAYOUT"), "{error}");
            Ok(())
        });
    }
}
