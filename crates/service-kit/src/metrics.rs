//! Prometheus metrics for the workspace's servers, through the `metrics` facade and
//! `metrics-exporter-prometheus`:
//!
//! * [`Registry`]: a Prometheus recorder, either the process-global one ([`Registry::global`],
//!   which also receives what libraries record through the facade, such as the verifier's
//!   series) or one of its own ([`Registry::private`], for several applications in one
//!   process); both with the histogram buckets of every histogram of the workspace
//!   ([`BUCKETS`]);
//! * [`Exporter`]: what a binary does with it: the request metrics middleware on its router
//!   (`http_request_duration_seconds{method, route, status}`, `http_requests_in_flight`),
//!   and `GET /metrics` either on the main listener or, with `METRICS_ADDR`, on a separate
//!   plain-HTTP listener of its own, so metrics need not be public.
//!
//! Code records through pre-registered handles (`metrics::Counter`, ...): it registers them
//! once inside [`Registry::register`], which makes the registry the recorder of the facade's
//! macros for that call, so the same code serves the global and a private registry.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::route::{Around, AroundLayer, RouteSlot, wrap_router};
use crate::serve::{BindError, Bound, ServeOptions};

/// Request latency by method, matched route template and status.
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
/// Requests being answered now.
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
/// The `route` label of a request no route matched (404s of the fallback).
pub const UNMATCHED: &str = "unmatched";

/// HTTP requests: 0.5 ms to 10 s.
const HTTP_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Revocation lag: 0.1 ms to 1 s.
const LAG_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Argon2 (queue wait and hash): 10 ms to 10 s.
const ARGON2_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// A Redis command or an SQL query: 0.1 ms to 2.5 s.
const STORE_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// A forward-auth decision: from a cached answer (50 µs) to a Redis timeout (1 s).
const DECISION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// The buckets of every histogram of the workspace (seconds), by metric name. A histogram not
/// listed here is exported as a summary.
///
/// ```
/// let (_, buckets) = service_kit::metrics::BUCKETS
///     .iter()
///     .find(|(name, _)| *name == "verifier_revocation_lag_seconds")
///     .unwrap();
/// assert_eq!(buckets.first(), Some(&0.000_1));
/// ```
pub const BUCKETS: &[(&str, &[f64])] = &[
    (HTTP_REQUEST_DURATION, HTTP_BUCKETS),
    ("verifier_revocation_lag_seconds", LAG_BUCKETS),
    ("auth_selftest_revocation_lag_seconds", LAG_BUCKETS),
    ("auth_password_hash_queue_wait_seconds", ARGON2_BUCKETS),
    ("auth_password_hash_duration_seconds", ARGON2_BUCKETS),
    ("auth_redis_command_duration_seconds", STORE_BUCKETS),
    ("auth_sql_query_duration_seconds", STORE_BUCKETS),
    ("gateway_decision_duration_seconds", DECISION_BUCKETS),
];

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// A Prometheus recorder and what renders it. Cheap to clone.
///
/// ```
/// let registry = service_kit::metrics::Registry::private();
/// let logins = registry.register(|| metrics::counter!("logins_total", "outcome" => "success"));
/// logins.increment(2);
/// assert!(registry.render().contains("logins_total{outcome=\"success\"} 2"));
/// ```
#[derive(Clone)]
pub struct Registry {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// The process-global recorder, installed as the `metrics` facade's on first use. What
    /// any library records through the facade (the verifier's `verifier_*` series) is in
    /// it. When another recorder was installed first, this one still works for what is
    /// registered through it, and a warning says the facade's series are elsewhere.
    ///
    /// ```
    /// let registry = service_kit::metrics::Registry::global();
    /// metrics::counter!("doc_global_total").increment(1);
    /// assert!(registry.render().contains("doc_global_total 1"));
    /// ```
    pub fn global() -> Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let registry = Registry::private();
                if metrics::set_global_recorder(registry.recorder.clone()).is_err() {
                    tracing::warn!(
                        "another metrics recorder is installed: /metrics lacks what libraries record"
                    );
                }
                registry
            })
            .clone()
    }

    /// A recorder of its own, not the facade's: only handles registered through
    /// [`register`](Self::register) record into it.
    ///
    /// ```
    /// let a = service_kit::metrics::Registry::private();
    /// let b = service_kit::metrics::Registry::private();
    /// a.register(|| metrics::counter!("only_in_a_total")).increment(1);
    /// assert!(!b.render().contains("only_in_a_total"));
    /// ```
    pub fn private() -> Registry {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in BUCKETS {
            builder = match builder.set_buckets_for_metric(Matcher::Full((*name).into()), buckets) {
                Ok(builder) => builder,
                // Only an empty bucket list is refused; none of ours is empty.
                Err(_) => PrometheusBuilder::new(),
            };
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let registry = Registry {
            recorder: Arc::new(recorder),
            handle,
        };
        registry.register(|| {
            metrics::describe_histogram!(
                HTTP_REQUEST_DURATION,
                Unit::Seconds,
                "Time to answer a request, by method, route template and status."
            );
            metrics::describe_gauge!(HTTP_REQUESTS_IN_FLIGHT, "Requests being answered now.");
        });
        registry
    }

    /// Runs `f` with this registry as the facade's recorder (on this thread, for this call):
    /// the handles `metrics::counter!`, `gauge!` and `histogram!` return in `f` record here.
    ///
    /// ```
    /// let registry = service_kit::metrics::Registry::private();
    /// let in_flight = registry.register(|| metrics::gauge!("jobs_running"));
    /// in_flight.set(3.0);
    /// assert!(registry.render().contains("jobs_running 3"));
    /// ```
    pub fn register<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// The Prometheus text exposition of everything recorded.
    ///
    /// ```
    /// let text = service_kit::metrics::Registry::private().render();
    /// assert!(!text.contains("NaN"));
    /// ```
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Folds histogram samples into their buckets every few seconds while the registry lives,
    /// so memory stays bounded when nobody scrapes. Needs a Tokio runtime.
    fn spawn_upkeep(&self) {
        let handle = Arc::downgrade(&self.recorder);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                let Some(recorder) = handle.upgrade() else {
                    return;
                };
                recorder.handle().run_upkeep();
            }
        });
    }
}

/// `GET /metrics` of `registry`, in the Prometheus text format (with
/// `X-Content-Type-Options: nosniff`, whatever router it is merged into).
///
/// ```
/// let app: axum::Router = service_kit::metrics::route(service_kit::metrics::Registry::private());
/// ```
pub fn route(registry: Registry) -> Router {
    Router::new().route(
        "/metrics",
        get(|State(registry): State<Registry>| async move {
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4"),
                    ),
                    (
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    ),
                ],
                registry.render(),
            )
                .into_response()
        })
        .with_state(registry),
    )
}

/// A binary's metrics: its registry and where `/metrics` is served.
///
/// ```no_run
/// # async fn run() -> anyhow::Result<()> {
/// use service_kit::metrics::{Exporter, Registry};
/// let exporter = Exporter::bind(Registry::global(), Some("127.0.0.1:9090".parse()?)).await?;
/// let app = exporter.instrument(axum::Router::new());
/// let bound = service_kit::Bound::bind("127.0.0.1:0".parse()?, &Default::default()).await?;
/// exporter
///     .run(bound.serve(app, &Default::default(), service_kit::shutdown_signal()))
///     .await?;
/// # Ok(()) }
/// ```
pub struct Exporter {
    registry: Registry,
    /// The separate listener of `/metrics` (`METRICS_ADDR`), if any.
    separate: Option<Bound>,
}

impl Exporter {
    /// Metrics of `registry`; with `metrics_addr`, `/metrics` is served there (plain HTTP,
    /// bound now) instead of on the main listener.
    pub async fn bind(
        registry: Registry,
        metrics_addr: Option<SocketAddr>,
    ) -> Result<Self, BindError> {
        let separate = match metrics_addr {
            Some(addr) => Some(Bound::bind(addr, &crate::TlsSettings::default()).await?),
            None => None,
        };
        Ok(Self { registry, separate })
    }

    /// The address of the separate metrics listener, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.separate.as_ref().and_then(|b| b.local_addr().ok())
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `app` with the request metrics, and `GET /metrics` unless it has a listener of its
    /// own. Call it on the finished router: a route added afterwards is not measured.
    pub fn instrument(&self, app: Router) -> Router {
        let app = match self.separate {
            Some(_) => app,
            None => app.merge(route(self.registry.clone())),
        };
        track_requests(app, &self.registry)
    }

    /// What [`track_requests`] records with, in `self.registry`.
    fn tracking(&self) -> Arc<Tracking> {
        tracking(&self.registry)
    }

    /// [`instrument`](Self::instrument), with `layer` around the whole router inside the
    /// request metrics and in the same router level, so it adds no level of its own (a
    /// router level costs about 2 000 instructions per request): for a layer every request
    /// goes through, such as the verifier's around a whole router. The metrics count what
    /// `layer` answers itself too, but under the route `unmatched` (the route template is
    /// noted inside the router, which such an answer never reaches); `GET /metrics` on the
    /// main listener goes through `layer`.
    ///
    /// ```
    /// # async fn demo() -> anyhow::Result<()> {
    /// use service_kit::metrics::{Exporter, Registry};
    /// let exporter = Exporter::bind(Registry::private(), None).await?;
    /// let app: axum::Router = exporter.instrument_with(
    ///     axum::Router::new().route("/", axum::routing::get(|| async { "hi" })),
    ///     tower::layer::util::Identity::new(),
    /// );
    /// # Ok(()) }
    /// ```
    pub fn instrument_with<L>(&self, app: Router, layer: L) -> Router
    where
        L: tower::Layer<Router>,
        L::Service: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<Request>>::Future: Send + 'static,
    {
        let app = match self.separate {
            Some(_) => app,
            None => app.merge(route(self.registry.clone())),
        };
        let tracking = AroundLayer(self.tracking());
        wrap_router(app, tower::layer::util::Stack::new(layer, tracking))
    }

    /// Runs `server` (the main listener's serve future) and, meanwhile, the separate metrics
    /// listener and the registry's upkeep; both stop when `server` ends.
    pub async fn run<T>(self, server: impl Future<Output = T>) -> T {
        self.registry.spawn_upkeep();
        let separate = self.separate.map(|bound| {
            let app = route(self.registry.clone());
            tokio::spawn(async move {
                let options = ServeOptions::default();
                if let Err(e) = bound.serve(app, &options, std::future::pending()).await {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            })
        });
        let result = server.await;
        if let Some(task) = separate {
            task.abort();
        }
        result
    }
}

/// `app` with `http_request_duration_seconds{method, route, status}` and
/// `http_requests_in_flight` recorded in `registry` for every request, answered by a route
/// (its template: `/v1/sessions/{sid}`, never the raw path) or not ([`UNMATCHED`]). The
/// method is one of the standard ones or `OTHER`, so clients cannot grow the label set.
///
/// ```
/// use service_kit::metrics::{Registry, track_requests};
/// let registry = Registry::private();
/// let app: axum::Router = track_requests(
///     axum::Router::new().route("/items/{id}", axum::routing::get(|| async { "item" })),
///     &registry,
/// );
/// ```
pub fn track_requests(app: Router, registry: &Registry) -> Router {
    wrap_router(app, AroundLayer(tracking(registry)))
}

/// The request metrics' state, registered in `registry`.
fn tracking(registry: &Registry) -> Arc<Tracking> {
    let in_flight = registry.register(|| metrics::gauge!(HTTP_REQUESTS_IN_FLIGHT));
    Arc::new(Tracking {
        registry: registry.clone(),
        in_flight,
        durations: quick_cache::sync::Cache::new(DURATION_HANDLES),
    })
}

/// Most request-duration handles [`Tracking`] keeps at hand: far more than the (route
/// template, method, status) combinations a service answers. One evicted is registered again
/// (the series itself stays in the registry).
const DURATION_HANDLES: usize = 4096;

struct Tracking {
    registry: Registry,
    in_flight: Gauge,
    /// The duration histogram of each series, so a request finds its handle with one look-up
    /// instead of building a metrics key (three labels, two of them allocated) and having the
    /// recorder hash it.
    durations: quick_cache::sync::Cache<Series, Histogram>,
}

/// The labels of one `http_request_duration_seconds` series.
#[derive(Hash, PartialEq, Eq)]
struct Series {
    method: &'static str,
    route: Box<str>,
    status: u16,
}

/// [`Series`] borrowed from a request: the look-up key. Its derived `Hash` equals that of the
/// `Series` it stands for (the same fields, in the same order; `&str` and `Box<str>` hash
/// alike), as the cache requires.
#[derive(Hash)]
struct SeriesRef<'a> {
    method: &'static str,
    route: &'a str,
    status: u16,
}

impl quick_cache::Equivalent<Series> for SeriesRef<'_> {
    fn equivalent(&self, series: &Series) -> bool {
        self.method == series.method && *self.route == *series.route && self.status == series.status
    }
}

impl Tracking {
    /// The duration histogram of `series`, registered on first use.
    fn duration(&self, series: SeriesRef<'_>) -> Histogram {
        if let Some(histogram) = self.durations.get(&series) {
            return histogram;
        }
        let histogram = self.registry.register(|| {
            metrics::histogram!(
                HTTP_REQUEST_DURATION,
                "method" => series.method,
                "route" => series.route.to_owned(),
                "status" => series.status.to_string()
            )
        });
        self.durations.insert(
            Series {
                method: series.method,
                route: series.route.into(),
                status: series.status,
            },
            histogram.clone(),
        );
        histogram
    }
}

/// Decrements the in-flight gauge however the request ends (a client that goes away
/// drops the future).
struct InFlight(Arc<Tracking>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}

/// What the duration histogram needs once the response head is ready.
struct Pending {
    started: Instant,
    method: &'static str,
    slot: RouteSlot,
    in_flight: InFlight,
}

/// Outside the router: times every request, fallbacks, timeouts and panics included.
impl Around for Arc<Tracking> {
    type Pending = Pending;

    #[allow(clippy::disallowed_methods)] // real time: request latency
    fn before(&self, request: &mut Request) -> Pending {
        self.in_flight.increment(1.0);
        Pending {
            started: Instant::now(),
            method: method_label(request.method()),
            slot: RouteSlot::of(request),
            in_flight: InFlight(self.clone()),
        }
    }

    fn after(pending: Pending, response: &mut Response) {
        let histogram = pending.in_flight.0.duration(SeriesRef {
            method: pending.method,
            route: pending.slot.route().unwrap_or(UNMATCHED),
            status: response.status().as_u16(),
        });
        histogram.record(pending.started.elapsed().as_secs_f64());
    }
}

/// The method as a label: the standard ones by name, anything else `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    async fn get_status(app: &Router, method: &str, path: &str) -> u16 {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        app.clone()
            .oneshot(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn app(registry: &Registry) -> Router {
        let routes = Router::new().route("/items/{id}", get(|| async { "item" }));
        track_requests(routes.merge(route(registry.clone())), registry)
    }

    #[tokio::test]
    async fn requests_are_counted_under_their_route_template_method_and_status() {
        let registry = Registry::private();
        let app = app(&registry);
        assert_eq!(get_status(&app, "GET", "/items/1").await, 200);
        assert_eq!(get_status(&app, "GET", "/items/2").await, 200);
        assert_eq!(get_status(&app, "POST", "/items/2").await, 405);
        let text = registry.render();
        assert!(
            text.contains(
                r#"http_request_duration_seconds_count{method="GET",route="/items/{id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"method="POST",route="/items/{id}",status="405"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/items/{id}",status="200",le="0.0005"}"#),
            "{text}"
        );
        assert!(!text.contains("/items/1"), "{text}");
        assert!(text.contains("http_requests_in_flight 0"), "{text}");
    }

    #[test]
    fn a_series_and_its_borrowed_key_hash_alike() {
        use std::hash::BuildHasher as _;
        let state = std::hash::RandomState::new();
        let series = Series {
            method: "GET",
            route: "/items/{id}".into(),
            status: 200,
        };
        let borrowed = SeriesRef {
            method: "GET",
            route: "/items/{id}",
            status: 200,
        };
        assert_eq!(state.hash_one(&series), state.hash_one(&borrowed));
        assert!(quick_cache::Equivalent::equivalent(&borrowed, &series));
    }

    #[tokio::test]
    async fn interleaved_requests_each_count_in_their_own_series() {
        let registry = Registry::private();
        let routes = Router::new()
            .route("/a", get(|| async { "a" }))
            .route("/b", get(|| async { axum::http::StatusCode::NOT_FOUND }));
        let app = track_requests(routes, &registry);
        for round in 1..=3 {
            assert_eq!(get_status(&app, "GET", "/a").await, 200);
            assert_eq!(get_status(&app, "GET", "/b").await, 404);
            assert_eq!(get_status(&app, "DELETE", "/a").await, 405);
            if round < 3 {
                assert_eq!(get_status(&app, "GET", "/nowhere").await, 404);
            }
        }
        let text = registry.render();
        for series in [
            r#"{method="GET",route="/a",status="200"} 3"#,
            r#"{method="GET",route="/b",status="404"} 3"#,
            r#"{method="DELETE",route="/a",status="405"} 3"#,
            r#"{method="GET",route="unmatched",status="404"} 2"#,
        ] {
            assert!(
                text.contains(&format!("http_request_duration_seconds_count{series}")),
                "{series} in {text}"
            );
        }
        assert_eq!(
            text.matches("http_request_duration_seconds_count{").count(),
            4,
            "{text}"
        );
    }

    #[tokio::test]
    async fn unmatched_paths_and_made_up_methods_share_bounded_series() {
        let registry = Registry::private();
        let app = app(&registry);
        for i in 0..3 {
            assert_eq!(get_status(&app, "GET", &format!("/no/such/{i}")).await, 404);
            assert_eq!(
                get_status(&app, &format!("XYZZY{i}"), "/items/1").await,
                405
            );
        }
        let text = registry.render();
        assert!(
            text.contains(r#"{method="GET",route="unmatched",status="404"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{method="OTHER",route="/items/{id}",status="405"} 3"#),
            "{text}"
        );
        assert!(
            !text.contains("/no/such") && !text.contains("XYZZY"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn metrics_served_on_a_separate_listener_are_not_on_the_main_router() {
        let exporter = Exporter::bind(Registry::private(), Some(([127, 0, 0, 1], 0).into()))
            .await
            .unwrap();
        assert!(exporter.metrics_addr().is_some());
        let app = exporter.instrument(Router::new().route("/items/{id}", get(|| async { "" })));
        assert_eq!(get_status(&app, "GET", "/metrics").await, 404);
        let inline = Exporter::bind(Registry::private(), None).await.unwrap();
        let app = inline.instrument(Router::new());
        assert_eq!(get_status(&app, "GET", "/metrics").await, 200);
    }
}
