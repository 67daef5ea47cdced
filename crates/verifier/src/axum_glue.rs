//! axum/tower glue (feature `axum`): a [`VerifierLayer`] for `route_layer`, the
//! [`Authenticated`] extractor (and `Option<Authenticated>`), a role guard, and
//! [`VerifyError`] as a response.
//!
//! Protecting routes takes a few lines:
//!
//! ```no_run
//! use axum::{Router, routing::get};
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
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "secret" }).route_layer(require_role("admin")))
//!     .route("/me", get(me))
//!     .route_layer(VerifierLayer::new(verifier.clone()))
//!     .with_state(verifier); // lets `Authenticated` verify on routes without the layer
//! # Ok(()) }
//! ```
//!
//! With your own state type, implement `FromRef<YourState> for Verifier`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use tower::{Layer, Service};

use crate::claims::Claims;
use crate::error::{ErrorBody, VerifyError};
use crate::verifier::Verifier;

/// Seconds a client is told to wait after a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

impl IntoResponse for VerifyError {
    /// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750), or 503 with
    /// `Retry-After` when the session store could not be asked; the common JSON body.
    fn into_response(self) -> Response {
        let body = axum::Json(ErrorBody::from(&self));
        if self.is_unavailable() {
            tracing::warn!(error = %self, "session check unavailable; failing closed");
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            return response;
        }
        let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        );
        response
    }
}

/// The bearer token of a request, if it has exactly one `Authorization` header with the
/// `Bearer` scheme. Two `Authorization` headers give `None`, as does any other scheme.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("authorization", "Bearer abc".parse().unwrap());
/// assert_eq!(verifier::bearer_token(&headers), Some("abc"));
/// headers.append("authorization", "Bearer xyz".parse().unwrap());
/// assert_eq!(verifier::bearer_token(&headers), None);
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    // Exactly one: with two, a proxy reading the last and this service reading the first
    // would see different callers.
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The verified caller: the claims of a valid token whose session exists.
///
/// As an extractor it reads what [`VerifierLayer`] stored, or verifies the bearer token
/// itself when the state provides a [`Verifier`] (`Verifier: FromRef<S>`).
/// `Option<Authenticated>` gives `None` when there is no `Authorization` header, and
/// still rejects a bad token with 401.
///
/// ```
/// use verifier::Authenticated;
/// async fn handler(user: Authenticated) -> String {
///     format!("{} has roles {:?}", user.sub, user.roles)
/// }
/// async fn maybe(user: Option<Authenticated>) -> &'static str {
///     if user.is_some() { "signed in" } else { "anonymous" }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Claims>);

impl std::ops::Deref for Authenticated {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(found) = parts.extensions.get::<Authenticated>() {
            return Ok(found.clone());
        }
        let token =
            bearer_token(&parts.headers).ok_or(VerifyError::Invalid("missing bearer token"))?;
        let claims = Verifier::from_ref(state).verify_shared(token).await?;
        Ok(Authenticated(claims))
    }
}

impl<S> OptionalFromRequestParts<S> for Authenticated
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = VerifyError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION)
            && parts.extensions.get::<Authenticated>().is_none()
        {
            return Ok(None);
        }
        <Authenticated as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// The future of the verifier's middleware services.
pub struct ResponseFuture<E> {
    inner: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>,
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// A [`Layer`] that lets a request through only with a valid bearer token whose session
/// exists, and stores [`Authenticated`] in its extensions. Use it with `route_layer` so
/// unknown paths still answer 404.
///
/// ```
/// # fn demo(verifier: verifier::Verifier) {
/// use axum::{Router, routing::get};
/// let app: Router = Router::new()
///     .route("/me", get(|| async { "ok" }))
///     .route_layer(verifier::VerifierLayer::new(verifier));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct VerifierLayer {
    verifier: Verifier,
}

impl VerifierLayer {
    /// Protects the wrapped routes with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for VerifierLayer {
    type Service = VerifierService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        VerifierService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service made by [`VerifierLayer`].
#[derive(Debug, Clone)]
pub struct VerifierService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S, B> Service<Request<B>> for VerifierService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone is not ready; swap it in and drive the one that is (tower's idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        ResponseFuture {
            inner: Box::pin(async move {
                let verified = match bearer_token(request.headers()) {
                    None => Err(VerifyError::Invalid("missing bearer token")),
                    Some(token) => verifier.verify_shared(token).await,
                };
                match verified {
                    Ok(claims) => {
                        request.extensions_mut().insert(Authenticated(claims));
                        inner.call(request).await
                    }
                    Err(e) => Ok(e.into_response()),
                }
            }),
        }
    }
}

/// A guard that answers 403 unless the caller (set by [`VerifierLayer`]) has `role`,
/// and 401 if there is no verified caller at all.
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
    RequireRoleLayer {
        role: role.into().into(),
    }
}

/// The layer made by [`require_role`].
#[derive(Debug, Clone)]
pub struct RequireRoleLayer {
    role: Arc<str>,
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
#[derive(Debug, Clone)]
pub struct RequireRole<S> {
    inner: S,
    role: Arc<str>,
}

impl<S, B> Service<Request<B>> for RequireRole<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let allowed = request
            .extensions()
            .get::<Authenticated>()
            .map(|a| a.has_role(&self.role));
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            inner: Box::pin(async move {
                match allowed {
                    Some(true) => inner.call(request).await,
                    Some(false) => Ok((
                        StatusCode::FORBIDDEN,
                        axum::Json(ErrorBody::new(
                            "insufficient_role",
                            "this route needs a role the caller lacks",
                        )),
                    )
                        .into_response()),
                    None => Ok(VerifyError::Invalid("missing bearer token").into_response()),
                }
            }),
        }
    }
}
