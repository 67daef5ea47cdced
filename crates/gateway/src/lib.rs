//! # gateway
//!
//! A forward-auth server on the verifier: a proxy (nginx, Traefik, Caddy, Envoy) asks it
//! about every request, and it answers as a service embedding the verifier would, with the
//! same signature cache and the same Redis-pushed revocation, so that services in any
//! language get instant logout without a round trip to the auth-center.
//!
//! * `/authz/auth-request`: nginx `auth_request` (`X-Original-URI`, `X-Original-Method`);
//! * `/authz/forward-auth`: Traefik `ForwardAuth`, Caddy `forward_auth` (`X-Forwarded-Uri`,
//!   `X-Forwarded-Method`);
//! * `/authz/ext-authz/...`: Envoy `ext_authz` over HTTP with `path_prefix: /authz/ext-authz`
//!   (the original method, the original path after the prefix);
//! * `/healthz`, `/readyz` (Redis answers), `/metrics` (Prometheus: the gateway's, the
//!   verifier's and the HTTP series; on `METRICS_ADDR` instead when that is set).
//!
//! The answer: `200` with the caller's identity in `X-Auth-Subject`, `X-Auth-Session`,
//! `X-Auth-Roles`, `X-Auth-Scope` and `X-Auth-Client-Id` (names configurable); `401` with
//! `WWW-Authenticate` for a missing, invalid, expired or revoked token; `403` for a missing
//! role or scope of a [`Rule`]; `503` with `Retry-After` when Redis cannot be asked (fail
//! closed); `400` when the proxy did not say which request it asks about, or the original
//! URI is one the gateway refuses to judge ([`OriginalPath`]). Identity headers a client
//! sends are never read. The user guide is `docs/gateway.md`.
//!
//! Built on the verifier's public API only: [`verifier::Verifier`], its settings (feature
//! `settings`), the token extraction and the role and scope guards' rules.

mod decision;
mod dialect;
mod metrics;
mod rules;
mod settings;
mod uri;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{MethodRouter, any, get};
use axum::{Json, Router};
use http::header;
use serde_json::json;
use service_kit::access::{AccessLog, Caller};
use service_kit::ready::Check;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use verifier::settings::SettingsError;
use verifier::{RevocationMode, Verifier};

use crate::decision::{Gateway, IDENTITY_CACHE_ENTRIES, IdentityCache};
use crate::dialect::{Dialect, EXT_AUTHZ_PREFIX};

pub use crate::rules::{Rule, RuleError};
pub use crate::settings::{IdentityHeaders, Settings};
pub use crate::uri::{OriginalPath, UriError};

/// The gateway's routes, answering with `verifier` under `settings`' headers and rules
/// (which it checks: [`Settings::check`]). Without `/metrics` and the request metrics:
/// [`bind`] adds them (`service_kit::metrics::Exporter`).
///
/// ```
/// # async fn demo(verifier: verifier::Verifier) -> anyhow::Result<()> {
/// let app: axum::Router = gateway::router(verifier, &gateway::Settings::default())?;
/// # Ok(()) }
/// ```
pub fn router(verifier: Verifier, settings: &Settings) -> Result<Router, SettingsError> {
    settings.check()?;
    let dpop_algs = settings
        .verifier
        .dpop_checker()?
        .map(|checker| checker.signing_alg_values().join(" "));
    let gateway = Arc::new(Gateway {
        verifier,
        rules: settings.compiled_rules()?,
        headers: settings.headers.clone(),
        missing_challenge: Gateway::missing_challenge(dpop_algs.as_deref()),
        dpop_algs,
        metrics: metrics::DecisionMetrics::new(&service_kit::metrics::Registry::global()),
        revocation: settings.verifier.revocation,
        identities: IdentityCache::new(IDENTITY_CACHE_ENTRIES),
    });
    let ext_authz = endpoint(Dialect::ExtAuthz);
    let app = Router::new()
        .route("/authz/auth-request", endpoint(Dialect::AuthRequest))
        .route("/authz/forward-auth", endpoint(Dialect::ForwardAuth))
        .route(EXT_AUTHZ_PREFIX, ext_authz.clone())
        .route(&format!("{EXT_AUTHZ_PREFIX}/"), ext_authz.clone())
        .route(&format!("{EXT_AUTHZ_PREFIX}/{{*path}}"), ext_authz)
        .route("/readyz", get(ready))
        .with_state(gateway)
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
            header::HeaderName::from_static("dpop"),
        ]));
    Ok(app)
}

/// Request ids and the access line around everything the gateway serves. Its peers are the
/// proxies in front of it (docs/security.md: it trusts its network position), so their
/// `X-Request-Id` is kept; the client IP is the peer.
fn access_log() -> AccessLog {
    AccessLog::new(|peer, _| Caller {
        client_ip: peer,
        trusted_proxy: true,
    })
}

/// The route of one dialect: every method.
fn endpoint(dialect: Dialect) -> MethodRouter<Arc<Gateway>> {
    any(
        move |State(gateway): State<Arc<Gateway>>, request: Request| async move {
            gateway.answer(dialect, request).await
        },
    )
}

/// `GET /readyz`: `200` when the verifier can check sessions (the `redis` check: Redis
/// answers; no check when revocation is off), else `503` with `Retry-After`; each check by
/// name (`service_kit::ready`).
async fn ready(State(gateway): State<Arc<Gateway>>) -> Response {
    // The verifier's own refusal says how soon to retry.
    let mut retry_after_secs = 1;
    let checks: Vec<Check> = if gateway.revocation == RevocationMode::Off {
        Vec::new()
    } else {
        let failure = gateway.verifier.check_ready().await.err().map(|e| {
            tracing::warn!(error = %e, "the readiness check of Redis failed");
            let refusal = e.into_response();
            if let Some(secs) = refusal
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse().ok())
            {
                retry_after_secs = secs;
            }
            "Redis does not answer".to_owned()
        });
        vec![Check {
            name: "redis",
            failure,
        }]
    };
    service_kit::ready::response(&checks, retry_after_secs)
}

/// Binds and serves until the process gets `SIGTERM` or `SIGINT` (`Ctrl-C`); then it stops
/// accepting connections and finishes the requests it has.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let scheme = settings.tls.scheme();
    let (addr, server) = bind_until(settings, service_kit::shutdown_signal()).await?;
    tracing::info!(%addr, scheme, "gateway listening");
    server.await
}

/// Builds the verifier, binds; returns the address and the server future, which serves until
/// it is dropped.
pub async fn bind(
    settings: Settings,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    bind_until(settings, std::future::pending()).await
}

/// [`bind`], the server stopping gracefully when `shutdown` completes. It is the workspace's
/// serve loop (`service_kit::serve`: header-read and idle timeouts, a connection cap, a
/// shutdown deadline), over TLS when `settings.tls` names a certificate.
async fn bind_until(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    // The global registry before the verifier: its series are registered as it is built.
    let registry = service_kit::metrics::Registry::global();
    let exporter = service_kit::metrics::Exporter::bind(registry, settings.metrics_addr).await?;
    let app = router(settings.verifier.build().await?, &settings)?;
    let app = access_log().wrap(exporter.instrument(app));
    let bound = service_kit::Bound::bind(settings.listen_addr, &settings.tls).await?;
    let addr = bound.local_addr()?;
    if let Some(metrics_addr) = exporter.metrics_addr() {
        tracing::info!(%metrics_addr, "gateway metrics listening");
    }
    Ok((addr, async move {
        let options = service_kit::ServeOptions::default();
        exporter
            .run(bound.serve(app, &options, shutdown))
            .await
            .context("serve")
    }))
}
