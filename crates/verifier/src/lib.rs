//! # verifier
//!
//! Verifies the access tokens the auth-center issues: the signature and claims in-process,
//! then (unless revocation is explicitly off) that the token's session still exists in
//! Redis. A downstream service builds one [`Verifier`] and either calls
//! [`verify`](Verifier::verify) itself or protects its axum routes with [`VerifierLayer`],
//! [`require_role`], [`require_scope`] and the [`Authenticated`] extractor. DPoP-bound
//! tokens (RFC 9449) are accepted once the builder has a [`dpop::DpopChecker`].
//!
//! ```no_run
//! use axum::{Router, extract::Request, routing::get};
//! use tower_layer::Layer as _; // the `tower-layer` crate, or `tower::Layer`
//! use verifier::{Authenticated, RedisTarget, Verifier, VerifierLayer, require_role};
//!
//! async fn me(user: Authenticated) -> String {
//!     format!("hello {}", user.sub)
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder()
//!     .issuer("https://auth.example.com")
//!     .audience("api")
//!     .jwks_url("https://auth.example.com/.well-known/jwks.json")
//!     .redis(RedisTarget::Standalone("redis://127.0.0.1:6379".into()))
//!     .build()
//!     .await?;
//! let router = Router::new()
//!     .route("/admin", get(|| async { "secret" }).route_layer(require_role("admin")))
//!     .route("/me", get(me))
//!     .route("/healthz", get(|| async { "ok" }));
//! // Around the whole router: every path needs a token but the public ones, also a
//! // route added later. `route_layer(VerifierLayer::new(..))` covers only the routes
//! // before it ([`VerifierLayer`] compares the ways).
//! let app = VerifierLayer::new(verifier).public_paths(["/healthz"]).layer(router);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! axum::serve(listener, axum::ServiceExt::<Request>::into_make_service(app)).await?;
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | Name | What it adds | Default? |
//! |---|---|---|
//! | `redis` | Revocation checks against Redis (standalone or cluster): [`RevocationMode`], [`RedisTarget`], [`RedisTls`] (`rediss://`), [`RedisCredentials`] (ACL users) and the builder's Redis settings | yes |
//! | `jwks` | Keys fetched from a JWKS URL ([`VerifierBuilder::jwks_url`]), cached and refetched | yes |
//! | `axum` | The tower middleware ([`VerifierLayer`], [`require_role`]), the [`Authenticated`] extractor and [`VerifyError`] as a response | yes |
//! | `metrics` | Counters of verified tokens, cache hits and misses, invalidations, cache drops and Redis requests, and the revocation-lag histogram, through the `metrics` facade: exported by whatever recorder the embedding process installs ([`metrics`] says which series) | yes |
//! | `settings` | The `verifier::settings` module: `VerifierSettings`, the verifier's settings read from a TOML file and the environment with the names every binary of the workspace uses (`AUTH_JWKS_URL`, `REDIS_URL`, ...) | no |
//! | `contract` | The `verifier::contract` module: what the auth-center shares with the verifier and nobody else needs (the Redis connection and its push handler, the token validator, the session-key layout, a manual clock for tests) | no |
//!
//! DPoP ([`dpop`]) has no feature of its own: it needs no dependency the crate does not
//! already have, the auth-center and every verifier use the same checker, and a verifier
//! must understand `cnf` anyway to refuse a DPoP-bound token presented as a bearer token.
//! Only [`dpop::proof_header`] follows `axum`.
//!
//! The crate never depends on SQL, argon2 or the auth-center. Without `axum` it depends on
//! no web framework; with it, on `axum-core`, `tower-layer` and `tower-service` only.
//!
//! # Modules
//!
//! * [`middleware`]: one module per middleware, each with its layer, service and future;
//! * the extractor [`Authenticated`], [`access_token`] and [`bearer_token`] (feature `axum`);
//! * `metrics` (feature `metrics`): the metrics hook and [`metrics::record_revocation_lag`];
//! * [`dpop`]: DPoP proofs (RFC 9449): the checker, thumbprints, the binding rule;
//! * `settings` (feature `settings`): the verifier's settings from a file and the environment;
//! * `contract` (feature `contract`): the auth-center's side of the wire contract.

mod builder;
#[cfg_attr(not(feature = "contract"), allow(unreachable_pub, dead_code))]
mod claims;
#[cfg_attr(not(feature = "contract"), allow(unreachable_pub, dead_code))]
mod clock;
pub mod dpop;
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
mod drop_cause;
#[cfg(feature = "settings")]
mod environment;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod jws;
#[cfg_attr(not(feature = "contract"), allow(unreachable_pub, dead_code))]
mod keys;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
#[path = "metrics_off.rs"]
mod metrics;
#[cfg(feature = "axum")]
pub mod middleware;
#[cfg(feature = "redis")]
#[cfg_attr(not(feature = "contract"), allow(unreachable_pub, dead_code))]
mod redis_access;
#[cfg(feature = "redis")]
#[cfg_attr(not(feature = "contract"), allow(unreachable_pub, dead_code))]
mod redis_conn;
#[cfg(feature = "redis")]
#[cfg_attr(not(feature = "contract"), allow(unreachable_pub, dead_code))]
mod redis_sentinel;
#[cfg(feature = "redis")]
mod revocation;
#[cfg_attr(not(feature = "contract"), allow(unreachable_pub, dead_code))]
mod session_keys;
#[cfg(feature = "settings")]
pub mod settings;
mod sig_cache;
#[cfg_attr(not(feature = "contract"), allow(unreachable_pub, dead_code))]
mod token;
mod verify;

#[cfg(feature = "contract")]
pub mod contract;

pub use builder::{BuildError, VerifierBuilder};
pub use claims::{Audience, Claims, Confirmation};
pub use clock::{Clock, SystemClock};
pub use error::{ErrorBody, VerifyError};
#[cfg(feature = "axum")]
pub use extract::{
    AccessToken, Authenticated, AuthenticatedRejection, Verified, access_token, bearer_token,
};
pub use jsonwebtoken::Algorithm;
pub use jsonwebtoken::jwk::JwkSet;
pub use keys::{KeyError, KeySet, VerifyingKey};
#[cfg(feature = "axum")]
pub use middleware::require_role::{RequireRole, RequireRoleLayer, require_role};
#[cfg(feature = "axum")]
pub use middleware::require_scope::{RequireScope, RequireScopeLayer, require_scope};
#[cfg(feature = "axum")]
pub use middleware::verify::{VerifierLayer, VerifierService};
#[cfg(feature = "redis")]
pub use redis_access::{
    RedisAccessSettings, RedisCredentials, RedisTls, RedisTlsError, RedisTopologySettings,
};
#[cfg(feature = "redis")]
pub use redis_conn::RedisTarget;
#[cfg(feature = "redis")]
pub use revocation::{DEFAULT_MAX_STALL, DEFAULT_TRACKING_READER_NICE, RevocationMode};
pub use verify::Verifier;
