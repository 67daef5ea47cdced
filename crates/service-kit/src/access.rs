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
use axum::body::Bytes;
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
/// Its text is one shared buffer: the extension, the request's `X-Request-Id` and the
/// response's hold the same bytes (a clone counts a reference, it copies nothing).
///
/// ```
/// let id = service_kit::access::RequestId::generate();
/// assert_eq!(id.as_str().len(), 36);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A new id: a UUID v4, hyphenated.
    pub fn generate() -> Self {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        // One allocation, which every clone shares. Hex digits and hyphens are always a valid
        // header value; the fallback is never taken.
        Self(
            HeaderValue::from_maybe_shared(Bytes::from_owner(text)).unwrap_or_else(|_| {
                HeaderValue::from_static("00000000-0000-0000-0000-000000000000")
            }),
        )
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
        if !Self::valid(value.as_bytes()) {
            return None;
        }
        HeaderValue::from_str(value).ok().map(Self)
    }

    /// [`RequestId::parse`] of a header's value, sharing its bytes instead of copying them.
    fn from_header(value: &HeaderValue) -> Option<Self> {
        Self::valid(value.as_bytes()).then(|| Self(value.clone()))
    }

    fn valid(value: &[u8]) -> bool {
        (1..=MAX_REQUEST_ID_LEN).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Visible ASCII by construction (`generate`, `parse`), so never the empty fallback.
        self.0.to_str().unwrap_or_default()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    header: HeaderValue,
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
        let id = match request.headers().get(REQUEST_ID_HEADER) {
            Some(sent) if caller.trusted_proxy => RequestId::from_header(sent),
            _ => None,
        }
        .unwrap_or_else(RequestId::generate);
        let header = id.0.clone();
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, header.clone());
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
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER, pending.header);
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    /// The ids a handler saw: the extension's text and the request header's bytes, as
    /// addresses, and the texts.
    type Seen = Arc<Mutex<Vec<(usize, usize, String, String)>>>;

    fn app(trusted_proxy: bool, seen: Seen) -> Router {
        let routes = Router::new().route(
            "/",
            get(move |request: Request| async move {
                let id = request.extensions().get::<RequestId>().cloned();
                let header = request.headers().get(REQUEST_ID_HEADER).cloned();
                if let (Some(id), Some(header)) = (id, header) {
                    seen.lock().unwrap().push((
                        id.as_str().as_ptr() as usize,
                        header.as_bytes().as_ptr() as usize,
                        id.to_string(),
                        header.to_str().unwrap().to_owned(),
                    ));
                }
                "ok"
            }),
        );
        AccessLog::new(move |peer, _| Caller {
            client_ip: peer,
            trusted_proxy,
        })
        .wrap(routes)
    }

    async fn call(app: Router, sent_id: Option<&str>) -> Response {
        let mut request = Request::builder().uri("/");
        if let Some(id) = sent_id {
            request = request.header(REQUEST_ID_HEADER, id);
        }
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_new_request_id_is_one_text_shared_by_the_extension_and_both_headers() {
        let seen = Seen::default();
        let response = call(app(false, seen.clone()), Some("from-an-untrusted-peer")).await;
        let seen = seen.lock().unwrap();
        let (id_at, header_at, id, header) = seen.first().unwrap();
        assert_eq!(id, header);
        assert_eq!(id.len(), 36);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_eq!(response.headers()[REQUEST_ID_HEADER], id.as_str());
        // One allocation for the text, however many places hold it.
        assert_eq!(id_at, header_at);
        assert_eq!(
            response.headers()[REQUEST_ID_HEADER].as_bytes().as_ptr() as usize,
            *id_at
        );
    }

    #[tokio::test]
    async fn a_trusted_proxys_request_id_is_kept_and_a_malformed_one_replaced() {
        let longest = "x".repeat(MAX_REQUEST_ID_LEN);
        let too_long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        for (sent, kept) in [
            ("req-42", true),
            (longest.as_str(), true),
            (too_long.as_str(), false),
            ("two words", false),
            ("é", false),
        ] {
            let seen = Seen::default();
            let response = call(app(true, seen.clone()), Some(sent)).await;
            let seen = seen.lock().unwrap();
            let (id_at, header_at, id, header) = seen.first().unwrap();
            assert_eq!(id, header);
            assert_eq!(id_at, header_at, "a kept or new id is one buffer");
            assert_eq!(id == sent, kept, "{sent:?} gave {id:?}");
            if !kept {
                assert!(uuid::Uuid::parse_str(id).is_ok(), "{sent:?} gave {id:?}");
            }
            assert_eq!(response.headers()[REQUEST_ID_HEADER], id.as_str());
        }
    }
}
