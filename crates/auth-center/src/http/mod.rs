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
mod openapi;
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
use http_body::{Frame, SizeHint};
use service_kit::access::{AccessLog, Caller};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use json::rfc3339;
pub use openapi::{DOCUMENT_PATH, UI_PATH};

use crate::domain::AuthService;

/// The state of every handler: the domain service.
type AppState = State<Arc<AuthService>>;

/// Largest request body accepted on the auth routes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The whole HTTP API, but `/metrics` and the request metrics (`service_kit::metrics`,
/// added by `startup`); with `http.api_docs`, also the OpenAPI document and its UI.
pub fn router(auth: Arc<AuthService>) -> Router {
    let (api, generated) = documented_routes().split_for_parts();
    let api = if auth.config().http.api_docs {
        api.merge(openapi::routes(&openapi::document(
            generated,
            &auth.config().issuer,
        )))
    } else {
        api
    };
    let cors = cors(&auth.config().browser.allowed_origins);
    let routes = api
        .merge(pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            auth.config().http.body_read_timeout(),
            body_deadline,
        ))
        // Inside the routes: CORS answers a preflight itself, and only inside a route is it
        // counted and logged under that route's template (outside, as `unmatched`).
        .layer(cors)
        .with_state(auth);
    // Around the whole router once, outermost first: `Router::layer` would put them around
    // each route, and axum clones a route's whole stack on every request.
    let layers = ServiceBuilder::new()
        // Outermost, so errors, fallbacks, timeouts and panics carry it too.
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            HeaderName::from_static("dpop"),
        ]))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(request_timeout));
    service_kit::wrap_router(routes, layers)
}

/// The OpenAPI document alone, as `/openapi.json` serves it (whether or not it is served).
pub fn openapi_document(issuer: &str) -> serde_json::Value {
    openapi::document(documented_routes().into_openapi(), issuer)
}

/// Every route of the API with its documentation: `routes!` registers a handler and its
/// `#[utoipa::path]` operation together, so nothing is routed here that the document does not
/// describe. (Never `.route(...)` here: that would route without documenting.)
fn documented_routes() -> OpenApiRouter<Arc<AuthService>> {
    let v1 = OpenApiRouter::default()
        .routes(routes!(login::register))
        .routes(routes!(login::login))
        .routes(routes!(login::me))
        .routes(routes!(refresh::refresh))
        .routes(routes!(refresh::logout))
        .routes(routes!(refresh::logout_all))
        .routes(routes!(devices::my_sessions))
        .routes(routes!(devices::end_my_session))
        .routes(routes!(passwords::change_password))
        .routes(routes!(introspection::introspect))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::get_user))
        .routes(routes!(admin::set_roles))
        .routes(routes!(admin::disable_user))
        .routes(routes!(admin::enable_user))
        .routes(routes!(admin::user_sessions, admin::force_logout_user))
        .routes(routes!(admin::force_logout_session))
        .routes(routes!(admin::audit_log))
        .routes(routes!(clients::list_clients, clients::create_client))
        .routes(routes!(clients::get_client))
        .routes(routes!(clients::rotate_secret))
        .routes(routes!(clients::set_keys))
        .routes(routes!(clients::disable_client))
        .routes(routes!(clients::enable_client))
        .routes(routes!(keys::list))
        .routes(routes!(keys::rotate));
    let oauth2 = OpenApiRouter::default()
        .routes(routes!(oauth::token))
        .routes(routes!(oauth::revoke));
    // No OpenID Connect discovery document: there is no ID token, no authorization endpoint
    // and no userinfo endpoint to describe (docs/http-api.md).
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/v1", limited_and_not_stored(v1))
        .nest("/oauth2", limited_and_not_stored(oauth2))
        .routes(routes!(keys::jwks))
        .routes(routes!(oauth::metadata))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
}

/// The routes under `/v1` and `/oauth2`: bodies within [`MAX_BODY_BYTES`] (a declared
/// `Content-Length` over it refused before any of it is read), and no answer stored by a
/// cache: accounts, sessions, audit entries, and tokens (RFC 6749 §5.1), errors included.
fn limited_and_not_stored(
    routes: OpenApiRouter<Arc<AuthService>>,
) -> OpenApiRouter<Arc<AuthService>> {
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
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

#[cfg(test)]
mod tests {
    /// `documented_routes` routes only with `routes!`, which takes a handler together with its
    /// `#[utoipa::path]` operation; axum's `.route` (or a service) there would route without
    /// documenting. (`tests/api/openapi.rs` checks the served document against the routes.)
    #[test]
    fn the_api_routes_nothing_without_its_documentation() {
        let source = include_str!("mod.rs");
        let body = source
            .split("fn documented_routes()")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .expect("documented_routes in mod.rs");
        assert!(body.contains(".routes(routes!("), "{body}");
        for undocumented in [".route(", ".route_service(", ".nest_service(", ".fallback"] {
            assert!(
                !body.contains(undocumented),
                "{undocumented} in documented_routes"
            );
        }
    }
}
