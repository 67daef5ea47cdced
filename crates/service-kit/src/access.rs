//! Request ids and the access log, the same in every server.
//!
//! [`AccessLog`] gives each request an id and one `INFO` line when its response head is
//! ready:
//!
//! * **Request id.** A client's `X-Request-Id` is kept only when the TCP peer is a proxy the
//!   server trusts ([`Caller::trusted_proxy`]) and the id is 1 to [`MAX_REQUEST_ID_LEN`]
//!   visible ASCII characters; otherwise a new one (a UUID v4) replaces it. The id is in the
//!   request's extensions ([`RequestId`]) and headers for the handler, in the response's
//!   `X-Request-Id`, and a field (`request_id`) of the `request` span that wraps the whole
//!   request, so every log line written while it is handled carries it.
//! * **Access line.** Target `access`, message `request`, fields `method`, `route` (the
//!   route template, e.g. `/v1/sessions/{sid}`, or `unmatched`; never the raw path or its
//!   query string), `status`, `latency_ms` (until the response head), `client_ip` and, from
//!   the span, `request_id`. No header is logged. `RUST_LOG=info,access=off` switches the
//!   line off.
//!
//! Who the caller is (its IP, whether its peer is a trusted proxy) is the server's decision:
//! it hands [`AccessLog::new`] a function from the TCP peer and the request headers to a
//! [`Caller`].

// Latency is real time, not domain time.
#![allow(clippy::disallowed_methods)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::Response;

use crate::metrics::UNMATCHED;
use crate::route::{Around, AroundLayer, RouteSlot, wrap_router};

/// The request-id header, `X-Request-Id`.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a trusted proxy, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's id, in its extensions, for handlers that pass it on (audit events).
///
/// ```
/// let id = service_kit::access::RequestId::generate();
/// assert_eq!(id.as_str().len(), 36);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// A new id: a UUID v4, hyphenated.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string().into())
    }

    /// `value` when it may serve as an id: 1 to [`MAX_REQUEST_ID_LEN`] bytes, each visible
    /// ASCII (`!` to `~`, so no spaces or control characters that could forge log lines).
    ///
    /// ```
    /// use service_kit::access::RequestId;
    /// assert!(RequestId::parse("req-42").is_some());
    /// assert!(RequestId::parse("two words").is_none());
    /// assert!(RequestId::parse("").is_none());
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        let valid = (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_graphic());
        valid.then(|| Self(value.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who sent a request, as the server resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The client's IP (the peer, or the client a trusted proxy forwarded for); `None`
    /// without a peer address.
    pub client_ip: Option<IpAddr>,
    /// Whether the TCP peer is a trusted proxy, whose `X-Request-Id` is kept.
    pub trusted_proxy: bool,
}

/// How a server resolves a [`Caller`]: from the TCP peer (`None` when the request came
/// without `ConnectInfo`) and the request's headers.
pub type ResolveCaller = dyn Fn(Option<IpAddr>, &HeaderMap) -> Caller + Send + Sync;

/// The request-id and access-log layer of a router; see the [module](self).
///
/// ```
/// use service_kit::access::{AccessLog, Caller};
/// let app: axum::Router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// // A server without trusted proxies: the caller is the peer, its request ids are replaced.
/// let app = AccessLog::new(|peer, _headers| Caller { client_ip: peer, trusted_proxy: false })
///     .wrap(app);
/// ```
#[derive(Clone)]
pub struct AccessLog {
    resolve: Arc<ResolveCaller>,
}

impl AccessLog {
    /// The layer, with the server's way of resolving the caller.
    pub fn new(
        resolve: impl Fn(Option<IpAddr>, &HeaderMap) -> Caller + Send + Sync + 'static,
    ) -> Self {
        Self {
            resolve: Arc::new(resolve),
        }
    }

    /// `router` with request ids and the access line, around everything it serves: call it
    /// last, once every route is added, so it sees each route's template and wraps the other
    /// layers (timeouts, panics, fallbacks).
    pub fn wrap(self, router: Router) -> Router {
        wrap_router(router, AroundLayer(self))
    }
}

/// What the access line needs once the response head is ready.
pub(crate) struct Pending {
    started: Instant,
    header: Option<HeaderValue>,
    slot: RouteSlot,
    method: Method,
    client_ip: Option<IpAddr>,
    span: tracing::Span,
}

impl Around for AccessLog {
    type Pending = Pending;

    #[allow(clippy::disallowed_methods)] // real time: request latency
    fn before(&self, request: &mut Request) -> Pending {
        let started = Instant::now();
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let caller = (self.resolve)(peer, request.headers());
        let sent = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok());
        let id = match sent {
            Some(sent) if caller.trusted_proxy => RequestId::parse(sent),
            _ => None,
        }
        .unwrap_or_else(RequestId::generate);
        // Visible ASCII only, by construction.
        let header = HeaderValue::from_str(id.as_str()).ok();
        if let Some(header) = &header {
            request
                .headers_mut()
                .insert(REQUEST_ID_HEADER, header.clone());
        }
        let span = tracing::info_span!("request", request_id = %id);
        request.extensions_mut().insert(id);
        Pending {
            started,
            header,
            slot: RouteSlot::of(request),
            method: request.method().clone(),
            client_ip: caller.client_ip,
            span,
        }
    }

    fn span(pending: &Pending) -> Option<&tracing::Span> {
        Some(&pending.span)
    }

    fn after(pending: Pending, response: &mut Response) {
        if let Some(header) = pending.header {
            response.headers_mut().insert(REQUEST_ID_HEADER, header);
        }
        let route = pending.slot.route().unwrap_or(UNMATCHED);
        let client_ip = pending.client_ip.map(tracing::field::display);
        pending.span.in_scope(|| {
            tracing::info!(
                target: "access",
                method = %pending.method,
                route,
                status = response.status().as_u16(),
                latency_ms = pending.started.elapsed().as_secs_f64() * 1000.0,
                client_ip,
                "request"
            );
        });
    }
}
