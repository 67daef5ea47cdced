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
/// asked), and the inner service never sees it. Use it with `route_layer`, so that unknown
/// paths still answer `404`, or on one handler with axum's `Handler::layer`, which does the
/// same without the boxed route level `route_layer` adds per request (~300 fewer
/// instructions per request, measured in `docs/benchmarks.md`). The path a proof's `htu` is
/// checked against is the one this layer sees, after the checker's public URL.
///
/// ```
/// # fn demo(verifier: verifier::Verifier) {
/// use axum::{Router, handler::Handler as _, routing::get};
/// use verifier::{Authenticated, VerifierLayer};
/// async fn me(user: Authenticated) -> String {
///     user.sub.clone()
/// }
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .route_layer(VerifierLayer::new(verifier.clone()))
///     // One handler: the layer on the handler itself.
///     .route("/whoami", get(me.layer(VerifierLayer::new(verifier))));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct VerifierLayer {
    verifier: Verifier,
    allow_anonymous: bool,
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
        }
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
        // An anonymous request where allowed, and a repeat bearer token whose session tracked
        // mode's cache holds, are answered without an await: the inner service (the one made
        // ready) is called at once, nothing boxed.
        if self.layer.allow_anonymous && !request.headers().contains_key(header::AUTHORIZATION) {
            request.extensions_mut().insert(Anonymous);
            let future = self.inner.call(request);
            return ResponseFuture {
                state: State::Inner { future },
            };
        }
        let cached = self.layer.verifier.verify_cached_headers(request.headers());
        let state = match cached {
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
