//! [`require_role`]: a guard that answers `403` unless the caller has a role.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ErrorBody;
use crate::extract::caller;

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

/// The layer made by [`require_role`].
///
/// ```
/// let layer = verifier::RequireRoleLayer::new("admin");
/// ```
#[derive(Debug, Clone)]
pub struct RequireRoleLayer {
    role: Arc<str>,
}

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
        Self {
            role: role.into().into(),
        }
    }
}

impl<S> Layer<S> for RequireRoleLayer {
    type Service = RequireRole<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequireRole {
            inner,
            role: self.role.clone(),
        }
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
#[derive(Debug, Clone)]
pub struct RequireRole<S> {
    inner: S,
    role: Arc<str>,
}

impl<S, B> Service<Request<B>> for RequireRole<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let refusal = match caller(request.extensions()) {
            Ok(user) if user.has_role(&self.role) => {
                return ResponseFuture {
                    state: State::Allowed(Box::pin(self.inner.call(request))),
                };
            }
            Ok(_) => ErrorBody::new(
                "insufficient_role",
                "this route needs a role the caller lacks",
            )
            .into_response_with(StatusCode::FORBIDDEN),
            Err(rejection) => rejection.into_response(),
        };
        ResponseFuture {
            state: State::Refused(Some(refusal)),
        }
    }
}

/// The response future of [`RequireRole`]: the inner service's, or the refusal.
///
/// ```
/// fn is_a_future<F: std::future::Future>() {}
/// is_a_future::<verifier::middleware::require_role::ResponseFuture<std::future::Ready<
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
