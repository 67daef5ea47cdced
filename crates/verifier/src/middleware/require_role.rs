//! [`require_role`]: a guard that answers `403` unless the caller has a role. It is the
//! [`GuardLayer`] with the rule [`HasRole`].

use std::sync::Arc;

use axum_core::response::Response;
use http::StatusCode;

use super::guard::{Guard, GuardLayer, Rule};
use crate::claims::Claims;
use crate::error::ErrorBody;

pub use super::guard::ResponseFuture;

/// A guard that lets a request through only when its caller has `role`.
///
/// It reads the caller that [`VerifierLayer`](crate::VerifierLayer) stored, so the verifier
/// layer must wrap it (with `route_layer`, added after the guard). The answers:
///
/// * `403 insufficient_role` when the caller lacks the role;
/// * `401` when the layer let an anonymous request through
///   ([`allow_anonymous`](crate::VerifierLayer::allow_anonymous));
/// * `500`, "is `VerifierLayer` enabled?", when no verifier layer ran for the request: a
///   set-up mistake, not the client's.
///
/// ```
/// # fn demo(verifier: verifier::Verifier) {
/// use axum::{Router, routing::get};
/// let app: Router = Router::new()
///     .route("/admin", get(|| async { "ok" }))
///     .route_layer(verifier::require_role("admin"))
///     .route_layer(verifier::VerifierLayer::new(verifier));
/// # }
/// ```
pub fn require_role(role: impl Into<String>) -> RequireRoleLayer {
    RequireRoleLayer::new(role)
}

/// The layer made by [`require_role`]: a [`GuardLayer`] with the rule [`HasRole`].
///
/// ```
/// let layer = verifier::RequireRoleLayer::new("admin");
/// ```
pub type RequireRoleLayer = GuardLayer<HasRole>;

impl RequireRoleLayer {
    /// A guard for `role`; the same as [`require_role`].
    ///
    /// ```
    /// # fn demo(verifier: verifier::Verifier) {
    /// use axum::{Router, routing::get};
    /// use verifier::{RequireRoleLayer, VerifierLayer};
    /// let app: Router = Router::new()
    ///     .route("/admin", get(|| async { "ok" }).route_layer(RequireRoleLayer::new("admin")))
    ///     .route_layer(VerifierLayer::new(verifier));
    /// # }
    /// ```
    pub fn new(role: impl Into<String>) -> Self {
        Self::from_rule(HasRole::new(role))
    }
}

/// The service made by [`RequireRoleLayer`].
///
/// ```
/// use tower_layer::Layer as _;
/// use verifier::{RequireRole, require_role};
/// let inner = tower::service_fn(|_: http::Request<axum::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
/// });
/// let service: RequireRole<_> = require_role("admin").layer(inner);
/// ```
pub type RequireRole<S> = Guard<S, HasRole>;

/// The rule of [`require_role`]: the caller's `roles` claim holds the role.
///
/// ```
/// use verifier::middleware::require_role::HasRole;
/// let rule = HasRole::new("admin");
/// ```
#[derive(Debug, Clone)]
pub struct HasRole {
    role: Arc<str>,
}

impl HasRole {
    /// The rule for `role`.
    ///
    /// ```
    /// let rule = verifier::middleware::require_role::HasRole::new("admin");
    /// ```
    pub fn new(role: impl Into<String>) -> Self {
        Self {
            role: role.into().into(),
        }
    }
}

impl Rule for HasRole {
    fn refuse(&self, caller: &Claims) -> Option<Response> {
        (!caller.has_role(&self.role)).then(|| {
            ErrorBody::new(
                "insufficient_role",
                "this route needs a role the caller lacks",
            )
            .into_response_with(StatusCode::FORBIDDEN)
        })
    }
}
