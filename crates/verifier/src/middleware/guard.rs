//! [`GuardLayer`]: the one guard behind [`require_role`](crate::require_role) and
//! [`require_scope`](crate::require_scope). It lets a request through only when the caller
//! that [`VerifierLayer`](crate::VerifierLayer) verified satisfies a [`Rule`]; each guard is
//! this layer with its own rule.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::response::{IntoResponse, Response};
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::Claims;
use crate::extract::caller;

/// What a guard asks of the verified caller.
///
/// The guard answers for the cases every guard shares: `401` when the verifier layer let an
/// anonymous request through, and `500`, "is `VerifierLayer` enabled?", when no verifier
/// layer ran. A rule only judges a caller that is there.
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use verifier::Claims;
/// use verifier::middleware::guard::{GuardLayer, Rule};
///
/// /// Only tokens issued to one OAuth client.
/// #[derive(Clone)]
/// struct FromClient(&'static str);
///
/// impl Rule for FromClient {
///     fn refuse(&self, caller: &Claims) -> Option<Response> {
///         let ok = caller.client_id.as_deref() == Some(self.0);
///         (!ok).then(|| http::StatusCode::FORBIDDEN.into_response())
///     }
/// }
/// let layer = GuardLayer::from_rule(FromClient("billing"));
/// ```
pub trait Rule: Clone {
    /// `None` when `caller` may pass; otherwise the response that refuses the request.
    fn refuse(&self, caller: &Claims) -> Option<Response>;
}

/// A guard layer: lets a request through only when its caller satisfies the rule `R`.
/// [`RequireRoleLayer`](crate::RequireRoleLayer) and
/// [`RequireScopeLayer`](crate::RequireScopeLayer) are this layer with their rules.
///
/// The verifier layer must wrap it (with `route_layer`, added after the guard).
///
/// ```
/// # fn demo(verifier: verifier::Verifier) {
/// use axum::{Router, routing::get};
/// use verifier::middleware::guard::GuardLayer;
/// use verifier::middleware::require_role::HasRole;
/// let app: Router = Router::new()
///     .route("/admin", get(|| async { "ok" }))
///     .route_layer(GuardLayer::from_rule(HasRole::new("admin"))) // = require_role("admin")
///     .route_layer(verifier::VerifierLayer::new(verifier));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GuardLayer<R> {
    rule: R,
}

impl<R: Rule> GuardLayer<R> {
    /// A guard that applies `rule`.
    ///
    /// ```
    /// use verifier::middleware::guard::GuardLayer;
    /// use verifier::middleware::require_scope::HasScope;
    /// let layer = GuardLayer::from_rule(HasScope::new("read")); // = require_scope("read")
    /// ```
    pub fn from_rule(rule: R) -> Self {
        Self { rule }
    }
}

impl<S, R: Rule> Layer<S> for GuardLayer<R> {
    type Service = Guard<S, R>;
    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            rule: self.rule.clone(),
        }
    }
}

/// The service made by [`GuardLayer`].
///
/// ```
/// use tower_layer::Layer as _;
/// use verifier::middleware::guard::Guard;
/// use verifier::middleware::require_role::HasRole;
/// let inner = tower::service_fn(|_: http::Request<axum::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
/// });
/// let service: Guard<_, HasRole> = verifier::require_role("admin").layer(inner);
/// ```
#[derive(Debug, Clone)]
pub struct Guard<S, R> {
    inner: S,
    rule: R,
}

impl<S, R, B> Service<Request<B>> for Guard<S, R>
where
    S: Service<Request<B>, Response = Response>,
    R: Rule,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let refusal = match caller(request.extensions()) {
            Ok(user) => self.rule.refuse(user),
            Err(rejection) => Some(rejection.into_response()),
        };
        let state = match refusal {
            None => State::Allowed(Box::pin(self.inner.call(request))),
            Some(refusal) => State::Refused(Some(refusal)),
        };
        ResponseFuture { state }
    }
}

/// The response future of a guard: the inner service's, or the refusal.
///
/// ```
/// fn is_a_future<F: std::future::Future>() {}
/// is_a_future::<verifier::middleware::guard::ResponseFuture<std::future::Ready<
///     Result<axum::response::Response, std::convert::Infallible>,
/// >>>();
/// ```
pub struct ResponseFuture<F> {
    state: State<F>,
}

enum State<F> {
    Allowed(Pin<Box<F>>),
    /// Taken when polled.
    Refused(Option<Response>),
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Allowed(inner) => inner.as_mut().poll(cx),
            // Polled again after it completed (a caller's bug): an empty response.
            State::Refused(refusal) => Poll::Ready(Ok(refusal.take().unwrap_or_default())),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
