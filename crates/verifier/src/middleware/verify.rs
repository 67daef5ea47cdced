//! [`VerifierLayer`]: lets a request through only with a valid bearer token whose session
//! exists, and puts the caller in the request extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::response::{IntoResponse, Response};
use http::{HeaderMap, Method, Request, header};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::Claims;
use crate::dpop::{DpopError, proof_header};
use crate::error::VerifyError;
use crate::extract::{AccessToken, Anonymous, Authenticated, access_token};
use crate::verify::Verifier;

/// A [`Layer`] that lets a request through only with a valid access token whose session
/// exists, and stores [`Authenticated`] in its extensions for the extractor and the guards.
///
/// The token comes as `Authorization: Bearer <token>`, or, when the verifier accepts DPoP
/// ([`VerifierBuilder::dpop`](crate::VerifierBuilder::dpop)), as `Authorization: DPoP
/// <token>` with exactly one `DPoP` proof header for this request's method and path
/// ([`Verifier::verify_dpop`]). A DPoP-bound token presented as a bearer token is refused.
///
/// A request without a valid token gets `401` (`503` when the session store cannot be
/// asked), and the inner service never sees it. Three ways to place it:
///
/// * around the whole router, as a tower layer of the service (`layer.layer(router)`), with
///   the paths that need no token listed in [`public_paths`](Self::public_paths): every
///   route is covered, including one added later, and a request costs no boxed route level
///   (about 1 000 fewer instructions per request than `route_layer`, measured in
///   `docs/benchmarks.md`); an unknown path answers `401` to a caller without a valid token;
/// * with `route_layer`, which covers the routes added before it (unknown paths still
///   answer `404`);
/// * on one handler with axum's `Handler::layer`.
///
/// A browser's CORS preflight (`OPTIONS`) never carries a token: put a CORS layer (tower-http's
/// `CorsLayer`) outside this one, so that it answers preflights itself. Inside, a preflight
/// gets `401` without CORS headers, and the browser reports the real request as a CORS failure.
///
/// The path a proof's `htu` is checked against is the one this layer sees, after the
/// checker's public URL.
///
/// ```
/// # fn demo(verifier: verifier::Verifier) {
/// use axum::{Router, handler::Handler as _, routing::get};
/// use tower_layer::Layer as _;
/// use verifier::{Authenticated, VerifierLayer, VerifierService};
/// async fn me(user: Authenticated) -> String {
///     user.sub.clone()
/// }
/// // The whole router: every route needs a token but the public paths.
/// let service: VerifierService<Router> = VerifierLayer::new(verifier.clone())
///     .public_paths(["/healthz"])
///     .layer(
///         Router::new()
///             .route("/healthz", get(|| async { "ok" }))
///             .route("/me", get(me)),
///     );
/// // The routes added before `route_layer`, and one handler.
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .route_layer(VerifierLayer::new(verifier.clone()))
///     .route("/whoami", get(me.layer(VerifierLayer::new(verifier))));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct VerifierLayer {
    verifier: Verifier,
    allow_anonymous: bool,
    /// Request paths whose `GET` and `HEAD` requests go through without a token, matched
    /// byte for byte.
    public_paths: Arc<[Box<str>]>,
}

impl VerifierLayer {
    /// Protects the wrapped routes with `verifier`.
    ///
    /// ```
    /// # fn demo(verifier: verifier::Verifier) {
    /// let layer = verifier::VerifierLayer::new(verifier);
    /// # }
    /// ```
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            allow_anonymous: false,
            public_paths: Arc::new([]),
        }
    }

    /// Paths whose `GET` and `HEAD` requests go through without any check (added to those
    /// given before), for a layer around a whole router: health checks, a public listing.
    /// A request's path (the URI's path, without the query, as this layer sees it) must equal
    /// one of them byte for byte: no percent-decoding, no case or trailing-slash folding, no
    /// dot segments resolved, so `/healthz/` or `/health%7A` still need a token even where
    /// the router would serve them the same handler. Other methods on the same path need a
    /// token (a public listing at `GET /items`, a creation at `POST /items` that needs one).
    ///
    /// Give each public path a route of its own: the exemption is by path, not by route, so
    /// a public path that the router would send to a parameter or wildcard route (`/{slug}`),
    /// a nested router or the fallback opens that handler to `GET` without a token.
    ///
    /// The request is passed on as if the layer were not there: nothing is stored in its
    /// extensions, so on a public path [`Authenticated`](crate::Authenticated),
    /// `Option<Authenticated>` and the role and scope guards answer `500` (a set-up mistake).
    /// An entry that no request path can equal (not starting with `/`, or with a `?` or `#`;
    /// `*` and the empty path included) is dropped with a warning.
    ///
    /// ```no_run
    /// # async fn demo(verifier: verifier::Verifier) -> std::io::Result<()> {
    /// use axum::{Router, extract::Request, routing::get};
    /// use tower_layer::Layer as _;
    /// async fn me(user: verifier::Authenticated) -> String {
    ///     user.sub.clone()
    /// }
    /// let service = verifier::VerifierLayer::new(verifier)
    ///     .public_paths(["/healthz", "/readyz"])
    ///     .layer(
    ///         Router::new()
    ///             .route("/healthz", get(|| async { "ok" }))
    ///             .route("/readyz", get(|| async { "ready" }))
    ///             .route("/me", get(me)),
    ///     );
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
    /// axum::serve(listener, axum::ServiceExt::<Request>::into_make_service(service)).await
    /// # }
    /// ```
    pub fn public_paths<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        let mut all: Vec<Box<str>> = self.public_paths.iter().cloned().collect();
        for path in paths {
            let path = path.into();
            if !path.starts_with('/') || path.contains(['?', '#']) {
                tracing::warn!(
                    path,
                    "a public path must start with `/` and hold no `?` or `#`: ignored"
                );
                continue;
            }
            all.push(path.into_boxed_str());
        }
        self.public_paths = all.into();
        self
    }

    /// Whether a `method` request to `path` goes through without any check.
    #[inline]
    fn is_public(&self, method: &Method, path: &str) -> bool {
        !self.public_paths.is_empty()
            && (method == Method::GET || method == Method::HEAD)
            && self.public_paths.iter().any(|p| **p == *path)
    }

    /// Whether a request without any `Authorization` header goes through, anonymous
    /// (default `false`). Then `Option<Authenticated>` gives `None`, while `Authenticated`
    /// and [`require_role`](crate::require_role) answer `401`. A request that has an
    /// `Authorization` header is verified as usual: a bad token is still refused.
    ///
    /// ```
    /// # fn demo(verifier: verifier::Verifier) {
    /// use axum::{Router, routing::get};
    /// use verifier::{Authenticated, VerifierLayer};
    /// async fn greet(user: Option<Authenticated>) -> String {
    ///     user.map_or_else(|| "hello stranger".into(), |u| format!("hello {}", u.sub))
    /// }
    /// let app: Router = Router::new()
    ///     .route("/greet", get(greet))
    ///     .route_layer(VerifierLayer::new(verifier).allow_anonymous(true));
    /// # }
    /// ```
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }
}

impl<S> Layer<S> for VerifierLayer {
    type Service = VerifierService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        VerifierService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`VerifierLayer`].
///
/// ```
/// # fn demo(verifier: verifier::Verifier) {
/// use tower_layer::Layer as _;
/// use verifier::{VerifierLayer, VerifierService};
/// let inner = tower::service_fn(|_: http::Request<axum::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
/// });
/// let service: VerifierService<_> = VerifierLayer::new(verifier).layer(inner);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct VerifierService<S> {
    inner: S,
    layer: VerifierLayer,
}

impl<S, B> Service<Request<B>> for VerifierService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // A public path, an anonymous request where allowed, and a repeat bearer token whose
        // session tracked mode's cache holds are answered without an await: the inner service
        // (the one made ready) is called at once, nothing boxed.
        let layer = &self.layer;
        let state = if layer.is_public(request.method(), request.uri().path()) {
            State::Inner {
                future: self.inner.call(request),
            }
        } else if layer.allow_anonymous && !request.headers().contains_key(header::AUTHORIZATION) {
            request.extensions_mut().insert(Anonymous);
            State::Inner {
                future: self.inner.call(request),
            }
        } else {
            match layer.verifier.verify_cached_headers(request.headers()) {
                Some(Ok(claims)) => {
                    request.extensions_mut().insert(Authenticated(claims));
                    State::Inner {
                        future: self.inner.call(request),
                    }
                }
                Some(Err(e)) => State::Refused {
                    response: Some(e.into_response()),
                },
                None => State::Verifying {
                    future: self.verify_then_call(request),
                },
            }
        };
        ResponseFuture { state }
    }
}

impl<S> VerifierService<S> {
    /// Everything that may wait: a signature to check (keys to fetch), Redis to ask, a DPoP
    /// proof.
    fn verify_then_call<B>(&mut self, mut request: Request<B>) -> BoxedResponse<S::Error>
    where
        S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
    {
        // The clone is not ready; swap it in and drive the one that is (tower's idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.layer.verifier.clone();
        Box::pin(async move {
            let verified = verify_request(
                &verifier,
                request.headers(),
                request.method(),
                request.uri().path(),
            )
            .await;
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(Authenticated(claims));
                    inner.call(request).await
                }
                Err(e) => Ok(e.into_response()),
            }
        })
    }
}

/// Verifies a request's access token, whatever may have to wait: a bearer token, or a DPoP
/// token with exactly one proof for this method and path. What [`VerifierLayer`] and the
/// [`Verified`](crate::Verified) extractor both do after the synchronous cache check.
pub(crate) async fn verify_request(
    verifier: &Verifier,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
) -> Result<Arc<Claims>, VerifyError> {
    match access_token(headers) {
        None => Err(VerifyError::Invalid("missing bearer token")),
        Some(AccessToken::Bearer(token)) => verifier.verify_shared(token).await,
        Some(AccessToken::Dpop(token)) => match proof_header(headers) {
            Ok(Some(proof)) => {
                verifier
                    .verify_dpop_shared(token, proof, method.as_str(), path)
                    .await
            }
            Ok(None) => Err(VerifyError::InvalidDpopProof(DpopError::Missing)),
            Err(e) => Err(VerifyError::InvalidDpopProof(e)),
        },
    }
}

type BoxedResponse<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// The response future of [`VerifierService`]: the inner service's future when the
    /// token was answered from the caches, a boxed one when verifying had to wait, or the
    /// refusal.
    ///
    /// ```
    /// fn is_a_future<F: std::future::Future>() {}
    /// is_a_future::<verifier::middleware::verify::ResponseFuture<
    ///     std::future::Ready<Result<axum::response::Response, std::convert::Infallible>>,
    ///     std::convert::Infallible,
    /// >>();
    /// ```
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Inner { #[pin] future: F },
        Verifying { future: BoxedResponse<E> },
        // Taken when polled.
        Refused { response: Option<Response> },
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Verifying { future } => future.as_mut().poll(cx),
            // Polled again after it completed (a caller's bug): an empty response.
            StateProj::Refused { response } => Poll::Ready(Ok(response.take().unwrap_or_default())),
        }
    }
}

impl<F, E> std::fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
