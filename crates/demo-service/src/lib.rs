//! demo-service: a downstream service that embeds the verifier.
//!
//! * `GET /me` — the caller's claims (any valid token with a live session), behind the
//!   verifier's layer around the whole router;
//! * `GET /admin` — needs the `admin` role;
//! * `GET /route-layer/me` — the same as `/me`, with the layer as a `route_layer` on its
//!   route instead, which adds axum's boxed route level (compared in the benchmarks);
//! * `GET /handler/me` — the same, with the layer on the handler itself
//!   (`me.layer(VerifierLayer::new(..))`);
//! * `GET /verified/me` — the same, verified by the [`Verified`] extractor instead of a
//!   layer;
//! * `GET /baseline/me` — the same handler with no auth at all (the benchmark baseline);
//! * `GET /healthz`;
//! * `GET /metrics` (Prometheus: the HTTP series and the verifier's; on `METRICS_ADDR`
//!   instead when that is set).
//!
//! By default ([`Layout::WholeRouter`]) the verifier's layer wraps the whole router (in the
//! request metrics' router level), so every path needs a token but its public paths:
//! `/baseline/me`, `/healthz`, `/metrics`, and the three routes above that verify on their
//! own. With `DEMO_LAYOUT=route-layer` ([`Layout::RouteLayer`]) `/me` and `/admin` have the
//! layer as a `route_layer` instead, and a path no route serves is a `404` without a token.
//!
//! Configured like the auth-center, from an optional TOML file and the environment
//! (`AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`, `REDIS_URL` or `REDIS_CLUSTER_URLS`,
//! `LISTEN_ADDR`, ...): see [`Settings`]. With `PUBLIC_URL`, the URL clients reach it under,
//! DPoP-bound tokens (RFC 9449) are accepted with the `DPoP` scheme and a proof for that URL.

mod config;

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::handler::Handler as _;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use service_kit::access::{AccessLog, Caller};
use verifier::{Authenticated, Claims, Verified, Verifier, VerifierLayer, require_role};

pub use crate::config::{Layout, Settings};

/// The routes with the request metrics (and `/metrics` unless it has a listener of its own),
/// the verifier's layer for `/me` and `/admin` placed as `layout` says.
fn app(verifier: Verifier, layout: Layout, exporter: &service_kit::metrics::Exporter) -> Router {
    let routes = self_verifying_routes(verifier.clone());
    match layout {
        // In the metrics' router level: a level of its own would cost every request more
        // than the placement saves.
        Layout::WholeRouter => exporter.instrument_with(
            routes.merge(protected_routes()),
            VerifierLayer::new(verifier).public_paths(WHOLE_ROUTER_PUBLIC_PATHS),
        ),
        Layout::RouteLayer => exporter
            .instrument(routes.merge(protected_routes().route_layer(VerifierLayer::new(verifier)))),
    }
}

/// The paths the layer around the whole router lets through without a token: the no-auth
/// baseline, the health check and the metrics, and the routes that verify on their own (so
/// that they are not verified twice).
const WHOLE_ROUTER_PUBLIC_PATHS: [&str; 6] = [
    "/baseline/me",
    "/healthz",
    "/metrics",
    "/route-layer/me",
    "/handler/me",
    "/verified/me",
];

/// `/me` and `/admin`, which need the verifier's layer from outside.
fn protected_routes() -> Router {
    Router::new()
        .route("/admin", get(admin).route_layer(require_role("admin")))
        .route("/me", get(me))
}

/// The routes of both layouts: the no-auth baseline and the health check, and `/me` protected
/// in three other ways: `route_layer` (two lines), the layer on the handler, the extractor
/// with the verifier as its route's state.
fn self_verifying_routes(verifier: Verifier) -> Router {
    let route_layer = Router::new()
        .route("/route-layer/me", get(me))
        .route_layer(VerifierLayer::new(verifier.clone()));
    Router::new()
        .merge(route_layer)
        // The layer on the handler: no boxed route level of its own.
        .route(
            "/handler/me",
            get(me.layer(VerifierLayer::new(verifier.clone()))),
        )
        // The verifier as this one route's state: no router nested for it.
        .route("/verified/me", get(verified_me).with_state(verifier))
        .route("/baseline/me", get(baseline_me))
        .route("/healthz", get(healthz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Request ids and the access line around everything the demo-service serves
/// (`service_kit::access`). It trusts no proxy: a client's `X-Request-Id` is always replaced
/// and the client IP is the peer.
fn access_log() -> AccessLog {
    AccessLog::new(|peer, _| Caller {
        client_ip: peer,
        trusted_proxy: false,
    })
}

async fn me(user: Authenticated) -> Response {
    claims_json(&user)
}

async fn verified_me(user: Verified) -> Response {
    claims_json(&user)
}

/// What `/me`, `/handler/me` and `/verified/me` answer.
fn claims_json(user: &Claims) -> Response {
    Json(Me {
        sub: &user.sub,
        sid: &user.sid,
        roles: &user.roles,
        aud: &user.aud,
        exp: user.exp,
    })
    .into_response()
}

async fn admin(user: Authenticated) -> Json<Value> {
    Json(json!({ "admin": true, "sub": user.sub }))
}

/// The no-auth baseline: the same handler minus verification. Its fixed values have the
/// shape and length of a real caller's (a UUID `sub`, a 22-character `sid`, one role, a
/// 10-digit `exp`), so both answers cost the same to serialize and send.
async fn baseline_me() -> Response {
    static ROLES: std::sync::LazyLock<[String; 1]> =
        std::sync::LazyLock::new(|| ["user".to_owned()]);
    Json(Me {
        sub: "00000000-0000-4000-8000-000000000000",
        sid: "AAAAAAAAAAAAAAAAAAAAAA",
        roles: &*ROLES,
        aud: "api",
        exp: 1_700_000_000,
    })
    .into_response()
}

/// What `/me` answers: the caller's claims, serialized from borrowed fields.
#[derive(Serialize)]
struct Me<'a, A> {
    sub: &'a str,
    sid: &'a str,
    roles: &'a [String],
    aud: A,
    exp: i64,
}

/// Binds and serves until Ctrl-C or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let scheme = settings.tls.scheme();
    let (addr, server) = bind_until(settings, service_kit::shutdown_signal()).await?;
    tracing::info!(%addr, scheme, "demo-service listening");
    server.await
}

/// Binds; returns the address and the server future. The server is the workspace's serve
/// loop (`service_kit::serve`: timeouts, connection cap) with its default options, over TLS
/// when `settings.tls` names a certificate (reloaded when its files change); it runs until
/// the process is stopped.
pub async fn bind(
    settings: Settings,
) -> anyhow::Result<(
    SocketAddr,
    impl std::future::Future<Output = anyhow::Result<()>>,
)> {
    bind_until(settings, std::future::pending()).await
}

/// [`bind`], with a server that stops (after finishing the requests in flight) when
/// `shutdown` completes.
pub async fn bind_until(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(
    SocketAddr,
    impl std::future::Future<Output = anyhow::Result<()>>,
)> {
    // The global registry before the verifier: its series are registered as it is built.
    let registry = service_kit::metrics::Registry::global();
    let exporter = service_kit::metrics::Exporter::bind(registry, settings.metrics_addr).await?;
    let verifier = settings.verifier.build().await?;
    let bound = service_kit::Bound::bind(settings.listen_addr, &settings.tls).await?;
    let addr = bound.local_addr()?;
    if let Some(metrics_addr) = exporter.metrics_addr() {
        tracing::info!(%metrics_addr, "demo-service metrics listening");
    }
    let app = access_log().wrap(app(verifier, settings.layout, &exporter));
    Ok((addr, async move {
        let options = service_kit::ServeOptions::default();
        exporter
            .run(bound.serve(app, &options, shutdown))
            .await
            .context("serve")
    }))
}
