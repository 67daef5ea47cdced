//! The tower middleware, one module per middleware, each with its layer, its service and its
//! response future (the layout of `tower-http`). Feature `axum`.
//!
//! * [`verify`]: [`VerifierLayer`](crate::VerifierLayer) verifies the bearer token and puts
//!   the caller in the request extensions, where the
//!   [`Authenticated`](crate::Authenticated) extractor and the guards find it;
//! * [`require_role`]: [`require_role`](crate::require_role) answers `403` to a caller
//!   without a role;
//! * [`require_scope`]: [`require_scope`](crate::require_scope) answers `403` to a caller
//!   whose token lacks a scope;
//! * [`guard`]: the one guard both are made of ([`GuardLayer`](guard::GuardLayer) with a
//!   [`Rule`](guard::Rule)), for rules of your own.
//!
//! A guard or an extractor on a route that `VerifierLayer` does not cover is a set-up
//! mistake: it answers `500` with a message that asks "is `VerifierLayer` enabled?", never
//! a `401` that would blame the client. Apply the layer with `route_layer`, after (outside)
//! the guards:
//!
//! ```
//! # fn demo(verifier: verifier::Verifier) {
//! use axum::{Router, routing::get};
//! use verifier::{VerifierLayer, require_role};
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "ok" }).route_layer(require_role("admin")))
//!     .route("/me", get(|| async { "ok" }))
//!     .route_layer(VerifierLayer::new(verifier));
//! # }
//! ```

pub mod guard;
pub mod require_role;
pub mod require_scope;
pub mod verify;
