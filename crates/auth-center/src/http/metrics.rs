//! `GET /metrics`: request counts and latency per route and status, in the Prometheus
//! text format. Routes are the matched templates (`/v1/sessions/{sid}`), never raw
//! paths, so the label set stays bounded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::domain::AuthService;

/// (method, route, status) → (count, seconds).
type RequestCounts = BTreeMap<(String, String, u16), (u64, f64)>;

/// Counters shared by the middleware and the `/metrics` handler, plus the domain's own.
pub(super) struct Metrics {
    requests: Mutex<RequestCounts>,
    auth: Arc<AuthService>,
}

impl Metrics {
    /// Metrics of the HTTP layer and of `auth`.
    pub(super) fn new(auth: Arc<AuthService>) -> Self {
        Self {
            requests: Mutex::default(),
            auth,
        }
    }

    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut map) = self.requests.lock() {
            let entry = map
                .entry((method.to_string(), route.to_string(), status))
                .or_default();
            entry.0 += 1;
            entry.1 += seconds;
        }
    }

    fn render(&self) -> String {
        let mut out = String::from(
            "# HELP http_requests_total Requests by method, route and status.\n\
             # TYPE http_requests_total counter\n",
        );
        let mut seconds = String::from(
            "# HELP http_request_duration_seconds_sum Time spent answering, by method, route and status.\n\
             # TYPE http_request_duration_seconds_sum counter\n",
        );
        if let Ok(map) = self.requests.lock() {
            for ((method, route, status), (count, secs)) in map.iter() {
                let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
                out.push_str(&format!("http_requests_total{{{labels}}} {count}\n"));
                seconds.push_str(&format!(
                    "http_request_duration_seconds_sum{{{labels}}} {secs:.6}\n"
                ));
            }
        }
        let mut refusals = String::from(
            "# HELP auth_rate_limit_refusals_total Requests refused by a rate limit, by rule.\n\
             # TYPE auth_rate_limit_refusals_total counter\n",
        );
        for (rule, n) in self.auth.rate_limit_refusals() {
            refusals.push_str(&format!(
                "auth_rate_limit_refusals_total{{rule=\"{rule}\"}} {n}\n"
            ));
        }
        let h = self.auth.password_hashing();
        let hashing = format!(
            "# HELP auth_password_hash_slots Password hashes allowed at once.\n\
             # TYPE auth_password_hash_slots gauge\n\
             auth_password_hash_slots {}\n\
             # HELP auth_password_hashes_running Password hashes running now.\n\
             # TYPE auth_password_hashes_running gauge\n\
             auth_password_hashes_running {}\n\
             # HELP auth_password_hashes_running_peak The most password hashes that ever ran at once.\n\
             # TYPE auth_password_hashes_running_peak gauge\n\
             auth_password_hashes_running_peak {}\n\
             # HELP auth_password_hash_refusals_total Password checks refused as overloaded (no slot within the queue wait).\n\
             # TYPE auth_password_hash_refusals_total counter\n\
             auth_password_hash_refusals_total {}\n\
             # HELP auth_password_hash_abandoned_total Queued password checks skipped because the caller had gone.\n\
             # TYPE auth_password_hash_abandoned_total counter\n\
             auth_password_hash_abandoned_total {}\n",
            h.slots, h.running, h.peak_running, h.refused, h.abandoned
        );
        out + &seconds + &refusals + &hashing
    }
}

/// Middleware: counts every request under its matched route.
#[allow(clippy::disallowed_methods)] // real time: request latency, not domain time
pub(super) async fn track(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The method as a label: the standard ones by name, anything else `OTHER`, so a client
/// that makes up methods cannot grow the label set.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
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

/// `GET /metrics`
pub(super) async fn render(State(metrics): State<Arc<Metrics>>) -> Response {
    let mut response = metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
