//! [`require_scope`]: a guard that answers `403` unless the caller's token grants a scope
//! (RFC 9068 `scope`). It is the [`GuardLayer`] with the rule [`HasScope`].

use std::sync::Arc;

use axum_core::response::Response;
use http::{HeaderValue, StatusCode, header};

use super::guard::{Guard, GuardLayer, Rule};
use crate::claims::Claims;
use crate::error::ErrorBody;

pub use super::guard::ResponseFuture;

/// A guard that lets a request through only when its caller's token grants `scope`: every
/// scope in it, if it names several separated by spaces.
///
/// It reads the caller that [`VerifierLayer`](crate::VerifierLayer) stored, so the verifier
/// layer must wrap it (with `route_layer`, added after the guard). The answers:
///
/// * `403 insufficient_scope` with `WWW-Authenticate: Bearer error="insufficient_scope",
///   scope="<scope>"` (RFC 6750 §3.1; the scheme is `DPoP` for a DPoP-bound token) when a
///   scope is missing;
/// * `401` when the layer let an anonymous request through
///   ([`allow_anonymous`](crate::VerifierLayer::allow_anonymous));
/// * `500`, "is `VerifierLayer` enabled?", when no verifier layer ran for the request: a
///   set-up mistake, not the client's.
///
/// A `scope` with no scope in it (empty, or only spaces) lets no caller through.
///
/// ```
/// # fn demo(verifier: verifier::Verifier) {
/// use axum::{Router, routing::{get, post}};
/// let app: Router = Router::new()
///     .route("/invoices", get(|| async { "list" }).route_layer(verifier::require_scope("invoices:read")))
///     .route("/invoices/pay", post(|| async { "paid" }).route_layer(verifier::require_scope("invoices:write")))
///     .route_layer(verifier::VerifierLayer::new(verifier));
/// # }
/// ```
pub fn require_scope(scope: impl Into<String>) -> RequireScopeLayer {
    RequireScopeLayer::new(scope)
}

/// The layer made by [`require_scope`]: a [`GuardLayer`] with the rule [`HasScope`].
///
/// ```
/// let layer = verifier::RequireScopeLayer::new("invoices:read");
/// ```
pub type RequireScopeLayer = GuardLayer<HasScope>;

impl RequireScopeLayer {
    /// A guard for `scope`; the same as [`require_scope`].
    ///
    /// ```
    /// # fn demo(verifier: verifier::Verifier) {
    /// use axum::{Router, routing::get};
    /// use verifier::{RequireScopeLayer, VerifierLayer};
    /// let app: Router = Router::new()
    ///     .route("/reports", get(|| async { "ok" }).route_layer(RequireScopeLayer::new("reports")))
    ///     .route_layer(VerifierLayer::new(verifier));
    /// # }
    /// ```
    pub fn new(scope: impl Into<String>) -> Self {
        Self::from_rule(HasScope::new(scope))
    }
}

/// The service made by [`RequireScopeLayer`].
///
/// ```
/// use tower_layer::Layer as _;
/// use verifier::{RequireScope, require_scope};
/// let inner = tower::service_fn(|_: http::Request<axum::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
/// });
/// let service: RequireScope<_> = require_scope("read").layer(inner);
/// ```
pub type RequireScope<S> = Guard<S, HasScope>;

/// The rule of [`require_scope`]: the caller's `scope` claim grants every scope named.
///
/// ```
/// use verifier::middleware::require_scope::HasScope;
/// let rule = HasScope::new("read write"); // both
/// ```
#[derive(Debug, Clone)]
pub struct HasScope {
    scopes: Arc<[String]>,
    /// The `scope` attribute of the challenge, when the scopes can be written in one.
    challenge_scope: Option<Arc<str>>,
}

impl HasScope {
    /// The rule for `scope` (several scopes separated by spaces: all of them).
    ///
    /// ```
    /// let rule = verifier::middleware::require_scope::HasScope::new("invoices:read");
    /// ```
    pub fn new(scope: impl Into<String>) -> Self {
        let scope = scope.into();
        let scopes: Arc<[String]> = scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        // RFC 6749 §3.3 scope tokens (NQCHAR): nothing that would break the quoted string.
        let writable = !scopes.is_empty()
            && scopes.iter().all(|s| {
                s.bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            });
        Self {
            challenge_scope: writable.then(|| scopes.join(" ").into()),
            scopes,
        }
    }
}

impl Rule for HasScope {
    fn refuse(&self, caller: &Claims) -> Option<Response> {
        if !self.scopes.is_empty() && self.scopes.iter().all(|s| caller.has_scope(s)) {
            return None;
        }
        let mut response = ErrorBody::new(
            "insufficient_scope",
            "this route needs a scope the caller's token does not grant",
        )
        .into_response_with(StatusCode::FORBIDDEN);
        // A DPoP-bound token was presented with the DPoP scheme (RFC 9449 §7.1).
        let scheme = if caller.cnf.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        let challenge = match &self.challenge_scope {
            Some(scope) => format!(r#"{scheme} error="insufficient_scope", scope="{scope}""#),
            None => format!(r#"{scheme} error="insufficient_scope""#),
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        Some(response)
    }
}
