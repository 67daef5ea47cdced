//! The matched route template for middleware outside the router ([`crate::access`],
//! [`crate::metrics`]): such middleware runs before routing, so it never sees axum's
//! `MatchedPath` on the request. It puts a [`RouteSlot`] in the request; [`NoteRoute`], a
//! route layer inside the router, fills it. Several outer layers share one slot.

use std::sync::{Arc, OnceLock};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use pin_project_lite::pin_project;

/// Where [`NoteRoute`] leaves the matched route for the layers outside the router.
#[derive(Clone, Default)]
pub(crate) struct RouteSlot(Arc<OnceLock<MatchedPath>>);

impl RouteSlot {
    /// The request's slot, put there by an outer layer before, or a new one.
    pub(crate) fn of(request: &mut Request) -> Self {
        request
            .extensions_mut()
            .get_or_insert_with(RouteSlot::default)
            .clone()
    }

    /// The route template that matched, if one did.
    pub(crate) fn route(&self) -> Option<&str> {
        self.0.get().map(MatchedPath::as_str)
    }
}

/// Inside the router (a route layer): the route that matched, into the request's slot.
///
/// A plain layer rather than `from_fn`: it calls the ready inner service directly, so a
/// request costs no clone of the layers below it and no boxed future.
#[derive(Clone, Copy, Default)]
pub(crate) struct NoteRoute;

impl<S> tower::Layer<S> for NoteRoute {
    type Service = NoteRouteService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        NoteRouteService { inner }
    }
}

/// The service of [`NoteRoute`].
#[derive(Clone)]
pub(crate) struct NoteRouteService<S> {
    inner: S,
}

impl<S: tower::Service<Request>> tower::Service<Request> for NoteRouteService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let (Some(slot), Some(path)) = (
            request.extensions().get::<RouteSlot>(),
            request.extensions().get::<MatchedPath>(),
        ) {
            let _ = slot.0.set(path.clone());
        }
        self.inner.call(request)
    }
}

/// `router` inside `layer` (any tower layer, a `ServiceBuilder` stack say) as one service,
/// its routes noting their template for the access log and the request metrics outside.
/// What `Router::layer` does, without its cost: that puts the layers around each route,
/// and axum clones a route's whole stack of services on every request it answers.
///
/// ```
/// use axum::{Router, routing::get};
/// let routes = Router::new().route("/items/{id}", get(|| async { "item" }));
/// let app: Router = service_kit::wrap_router(routes, tower::ServiceBuilder::new());
/// ```
pub fn wrap_router<L>(router: Router, layer: L) -> Router
where
    L: tower::Layer<Router>,
    L::Service:
        tower::Service<Request, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<Request>>::Response: axum::response::IntoResponse,
    <L::Service as tower::Service<Request>>::Future: Send + 'static,
{
    // A router already wrapped has no routes of its own (axum refuses a route layer then);
    // its inner router's routes note their template.
    let router = if router.has_routes() {
        router.route_layer(NoteRoute)
    } else {
        router
    };
    Router::new().fallback_service(layer.layer(router.with_state(())))
}

/// A middleware with synchronous work before the request and after its response head,
/// made into a layer by [`AroundLayer`]. Unlike `from_fn`, the layer calls the ready inner
/// service directly: no clone of everything below it and no boxed future per request.
pub(crate) trait Around: Clone + Send + Sync + 'static {
    /// What `before` hands to `after`; dropped without `after` when the request is dropped.
    type Pending: Send + 'static;
    fn before(&self, request: &mut Request) -> Self::Pending;
    /// The span the inner service runs in, if any.
    fn span(_pending: &Self::Pending) -> Option<&tracing::Span> {
        None
    }
    fn after(pending: Self::Pending, response: &mut Response);
}

/// The layer of an [`Around`] middleware.
#[derive(Clone)]
pub(crate) struct AroundLayer<A>(pub(crate) A);

impl<S, A: Clone> tower::Layer<S> for AroundLayer<A> {
    type Service = AroundService<S, A>;
    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            inner,
            around: self.0.clone(),
        }
    }
}

/// The service of an [`AroundLayer`].
#[derive(Clone)]
pub(crate) struct AroundService<S, A> {
    inner: S,
    around: A,
}

impl<S, A> tower::Service<Request> for AroundService<S, A>
where
    S: tower::Service<Request, Response = Response>,
    A: Around,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AroundFuture<S::Future, A>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let pending = self.around.before(&mut request);
        let future = {
            let _entered = A::span(&pending).map(tracing::Span::enter);
            self.inner.call(request)
        };
        AroundFuture {
            future,
            pending: Some(pending),
        }
    }
}

pin_project! {
    /// The response future of an [`AroundService`].
    pub(crate) struct AroundFuture<F, A: Around> {
        #[pin]
        future: F,
        pending: Option<A::Pending>,
    }
}

impl<F, A, E> Future for AroundFuture<F, A>
where
    F: Future<Output = Result<Response, E>>,
    A: Around,
{
    type Output = Result<Response, E>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _entered = this
                .pending
                .as_ref()
                .and_then(A::span)
                .map(tracing::Span::enter);
            this.future.poll(cx)
        };
        let mut response = match polled {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(pending) = this.pending.take() {
            A::after(pending, &mut response);
        }
        Poll::Ready(Ok(response))
    }
}
