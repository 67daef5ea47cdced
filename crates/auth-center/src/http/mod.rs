//! The HTTP edge: routes, extractors, and the mapping of errors to responses. The only
//! module that knows axum.

mod admin;
mod clients;
mod cookie;
mod devices;
mod dpop;
mod error;
mod extract;
mod health;
mod introspection;
mod json;
mod keys;
mod login;
mod oauth;
mod pages;
mod passwords;
mod refresh;
mod repeated;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Version};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use http_body::{Frame, SizeHint};
use service_kit::access::{AccessLog, Caller};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::ApiError;
pub use json::rfc3339;

use crate::domain::AuthService;

/// The state of every handler: the domain service.
type AppState = State<Arc<AuthService>>;

/// Largest request body accepted on the auth routes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The whole HTTP API, but `/metrics` and the request metrics (`service_kit::metrics`,
/// added by `startup`).
pub fn router(auth: Arc<AuthService>) -> Router {
    let v1 = Router::new()
        .route("/register", post(login::register))
        .route("/login", post(login::login))
        .route("/me", get(login::me))
        .route("/refresh", post(refresh::refresh))
        .route("/logout", post(refresh::logout))
        .route("/logout-all", post(refresh::logout_all))
        .route("/sessions", get(devices::my_sessions))
        .route("/sessions/{sid}", delete(devices::end_my_session))
        .route("/password", post(passwords::change_password))
        .route("/introspect", post(introspection::introspect))
        .route(
            "/admin/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route("/admin/users/{id}", get(admin::get_user))
        .route("/admin/users/{id}/roles", put(admin::set_roles))
        .route("/admin/users/{id}/disable", post(admin::disable_user))
        .route("/admin/users/{id}/enable", post(admin::enable_user))
        .route(
            "/admin/users/{id}/sessions",
            get(admin::user_sessions).delete(admin::force_logout_user),
        )
        .route(
            "/admin/users/{id}/sessions/{sid}",
            delete(admin::force_logout_session),
        )
        .route("/admin/audit", get(admin::audit_log))
        .route(
            "/admin/clients",
            get(clients::list_clients).post(clients::create_client),
        )
        .route("/admin/clients/{id}", get(clients::get_client))
        .route("/admin/clients/{id}/secret", post(clients::rotate_secret))
        .route("/admin/clients/{id}/keys", put(clients::set_keys))
        .route("/admin/clients/{id}/disable", post(clients::disable_client))
        .route("/admin/clients/{id}/enable", post(clients::enable_client))
        .route("/admin/keys", get(keys::list))
        .route("/admin/keys/rotate", post(keys::rotate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        // Accounts, sessions, audit entries: nothing under /v1 may be stored by a cache.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    // Tokens (RFC 6749 §5.1): never stored by a cache either, errors included.
    let oauth2 = Router::new()
        .route("/token", post(oauth::token))
        .route("/revoke", post(oauth::revoke))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .nest("/v1", v1)
        .nest("/oauth2", oauth2)
        .route("/.well-known/jwks.json", get(keys::jwks))
        // No OpenID Connect discovery document: there is no ID token, no authorization
        // endpoint and no userinfo endpoint to describe (docs/http-api.md).
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            auth.config().http.body_read_timeout(),
            body_deadline,
        ))
        .layer(cors(&auth.config().browser.allowed_origins))
        .layer(axum::middleware::from_fn(request_timeout))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            HeaderName::from_static("dpop"),
        ]))
        .with_state(auth)
        // Outermost, so errors, fallbacks, timeouts, panics and /metrics carry it too
        // (`startup` adds /metrics and the request metrics around this router).
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

/// Request ids and the access line, with the caller resolved as everywhere in the
/// auth-center: the client IP behind trusted proxies, whose `X-Request-Id` is kept.
/// `startup` wraps the whole application in it, `/metrics` and the request metrics included.
pub fn access_log(auth: Arc<AuthService>) -> AccessLog {
    AccessLog::new(move |peer, headers| {
        let forwarded = extract::forwarded_for(headers);
        Caller {
            client_ip: peer.map(|peer| auth.client_ip(peer, forwarded.as_deref())),
            trusted_proxy: peer.is_some_and(|peer| auth.is_trusted_proxy(peer)),
        }
    })
}

/// CORS for browser clients: only the configured origins, with credentials; an origin
/// that is not on the list gets no `Access-Control-Allow-Origin` (never a reflected Origin),
/// which is what makes the browser refuse; the other CORS headers are fixed and say nothing
/// about it.
fn cors(allowed: &[crate::config::Origin]) -> CorsLayer {
    let origins: Vec<HeaderValue> = allowed
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.as_str()).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(cookie::TRANSPORT_HEADER),
            HeaderName::from_static("dpop"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// Longest time a request may take before it is answered with 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A request that takes too long gets the common 503 (with `Retry-After`), not a bare one.
async fn request_timeout(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::from(crate::domain::AuthError::unavailable(
            "the request took longer than REQUEST_TIMEOUT",
        ))
        .into_response(),
    }
}

/// A body whose declared `Content-Length` is over the limit is refused before any of it is
/// read (the limit itself only stops a body while it is being read).
async fn refuse_declared_oversize(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        let refusal = ApiError::http(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        );
        return closing(request.version(), refusal.into_response());
    }
    next.run(request).await
}

/// A request body must arrive within `limit` of its head. When the handler is still
/// waiting for it then, the read fails and the answer is `408 request_timeout`, whatever
/// the handler made of the failed read: a slow client is not a backend outage.
async fn body_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let version = request.version();
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(limit)),
            expired: expired.clone(),
        })
    });
    let response = next.run(request).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    let timeout = ApiError::http(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        BODY_TIMED_OUT,
    );
    closing(version, timeout.into_response())
}

const BODY_TIMED_OUT: &str = "the request body did not arrive in time";

/// A request body that fails once its deadline has passed while it is awaited.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.expired.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(BODY_TIMED_OUT))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Asks an HTTP/1 client to close the connection after this response: the rest of its
/// request body is not going to be read.
fn closing(version: Version, mut response: Response) -> Response {
    if version <= Version::HTTP_11 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::http(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::http(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    error::error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error",
    )
}
