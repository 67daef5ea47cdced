//! demo-service: a downstream service that embeds the verifier.
//!
//! * `GET /me` — the caller's claims (any valid token with a live session);
//! * `GET /admin` — needs the `admin` role;
//! * `GET /baseline/me` — the same handler with no auth at all (the benchmark baseline);
//! * `GET /healthz`.
//!
//! Configured from the environment: `AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`,
//! `REDIS_URL` or `REDIS_CLUSTER_URLS`, `LISTEN_ADDR`, plus `AUTH_REDIS_PREFIX`
//! (default `auth`), `AUTH_REVOCATION` (`tracked` | `every-request` | `off`),
//! `AUTH_MAX_STALENESS_MS` (default 5000) and `AUTH_MAX_STALL_MS` (default 200), and
//! `PUBLIC_URL`: the URL clients reach it under; when set, DPoP-bound tokens (RFC 9449) are
//! accepted with the `DPoP` scheme and a proof for that URL.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use verifier::{Authenticated, RedisTarget, RevocationMode, Verifier, VerifierLayer, require_role};

/// Settings of the demo-service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub listen_addr: SocketAddr,
    /// The auth-center's JWKS URL.
    pub jwks_url: String,
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Session store.
    pub redis: Option<RedisTarget>,
    /// Session-key prefix shared with the auth-center.
    pub redis_prefix: String,
    /// Revocation mode.
    pub revocation: RevocationMode,
    /// Tracked mode's safety-net TTL.
    pub max_staleness: Duration,
    /// Tracked mode's bound on cached answers from a Redis that stopped answering.
    pub max_stall: Duration,
    /// Minimum time between JWKS refetches on unknown `kid`s.
    pub jwks_cooldown: Duration,
    /// The URL clients reach this service under; set, DPoP-bound tokens are accepted with
    /// proofs whose `htu` is it plus the route.
    pub public_url: Option<String>,
}

impl Settings {
    /// Reads the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let required = |name: &str| var(name).with_context(|| format!("{name} must be set"));
        let redis = match (var("REDIS_URL"), var("REDIS_CLUSTER_URLS")) {
            (Some(url), None) => Some(RedisTarget::Standalone(url)),
            (None, Some(urls)) => Some(RedisTarget::cluster_from_csv(&urls)),
            (None, None) => None,
            (Some(_), Some(_)) => anyhow::bail!("set REDIS_URL or REDIS_CLUSTER_URLS, not both"),
        };
        let revocation = match var("AUTH_REVOCATION").as_deref() {
            None | Some("tracked") => RevocationMode::Tracked,
            Some("every-request") => RevocationMode::EveryRequest,
            Some("off") => RevocationMode::Off,
            Some(other) => {
                anyhow::bail!("AUTH_REVOCATION={other}: expected tracked, every-request or off")
            }
        };
        let millis = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            match var(name) {
                Some(v) => Ok(Duration::from_millis(
                    v.parse()
                        .with_context(|| format!("{name} must be milliseconds"))?,
                )),
                None => Ok(default),
            }
        };
        Ok(Self {
            listen_addr: var("LISTEN_ADDR")
                .unwrap_or_else(|| "127.0.0.1:8081".into())
                .parse()
                .context("LISTEN_ADDR")?,
            jwks_url: required("AUTH_JWKS_URL")?,
            issuer: required("AUTH_ISSUER")?,
            audience: var("AUTH_AUDIENCE").unwrap_or_else(|| "api".into()),
            redis,
            redis_prefix: var("AUTH_REDIS_PREFIX").unwrap_or_else(|| "auth".into()),
            revocation,
            max_staleness: millis("AUTH_MAX_STALENESS_MS", Duration::from_secs(5))?,
            max_stall: millis("AUTH_MAX_STALL_MS", verifier::DEFAULT_MAX_STALL)?,
            jwks_cooldown: millis("AUTH_JWKS_COOLDOWN_MS", Duration::from_secs(10))?,
            public_url: var("PUBLIC_URL"),
        })
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
        if let Some(target) = &self.redis {
            builder = builder.redis(target.clone());
        }
        if let Some(url) = &self.public_url {
            builder = builder.dpop(
                verifier::dpop::DpopChecker::builder()
                    .public_url(url)
                    .build()
                    .context("PUBLIC_URL")?,
            );
        }
        Ok(builder.build().await?)
    }
}

/// The routes: protecting `/me` and `/admin` is the two `route_layer` lines.
pub fn router(verifier: Verifier) -> Router {
    let protected = Router::new()
        .route("/admin", get(admin).route_layer(require_role("admin")))
        .route("/me", get(me))
        .route_layer(VerifierLayer::new(verifier));
    Router::new()
        .merge(protected)
        .route("/baseline/me", get(baseline_me))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
}

async fn me(user: Authenticated) -> Json<Value> {
    Json(claims_json(&user))
}

async fn admin(user: Authenticated) -> Json<Value> {
    Json(json!({ "admin": true, "sub": user.sub }))
}

/// The no-auth baseline: same work minus verification.
async fn baseline_me() -> Json<Value> {
    Json(json!({ "sub": "baseline", "sid": "baseline", "roles": [], "aud": "api", "exp": 0 }))
}

fn claims_json(user: &Authenticated) -> Value {
    json!({ "sub": user.sub, "sid": user.sid, "roles": user.roles, "aud": user.aud, "exp": user.exp })
}

/// Binds and serves until the process stops.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let (addr, server) = bind(settings).await?;
    tracing::info!(%addr, "demo-service listening");
    server.await
}

/// Binds; returns the address and the server future.
pub async fn bind(
    settings: Settings,
) -> anyhow::Result<(
    SocketAddr,
    impl std::future::Future<Output = anyhow::Result<()>>,
)> {
    let verifier = settings.verifier().await?;
    let listener = tokio::net::TcpListener::bind(settings.listen_addr)
        .await
        .context("bind")?;
    let addr = listener.local_addr()?;
    let app = router(verifier);
    Ok((addr, async move {
        axum::serve(listener, app).await.context("serve")
    }))
}
