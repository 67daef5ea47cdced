//! The gateway's metrics, recorded through the `metrics` facade and served at `/metrics` in
//! the Prometheus text format by `metrics-exporter-prometheus`:
//!
//! * `gateway_decisions_total{dialect, outcome}`: every answer, by dialect (`auth_request`,
//!   `forward_auth`, `ext_authz`) and [`Outcome`];
//! * `gateway_decision_duration_seconds{dialect}`: a histogram of the time to decide.
//!
//! The recorder is the process's global one, installed once; every label pair is registered
//! up front, so a scrape shows each counter from zero.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use metrics::{Counter, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::decision::Outcome;
use crate::dialect::Dialect;

const DECISIONS: &str = "gateway_decisions_total";
const DECISION_SECONDS: &str = "gateway_decision_duration_seconds";

/// Histogram buckets of a decision, in seconds: from a cached answer to a Redis timeout.
const DECISION_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// How often histogram samples are folded into their buckets between scrapes.
pub(crate) const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder, installed on first use.
pub(crate) fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DECISION_SECONDS.into()), &DECISION_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics will stay empty");
        }
        metrics::describe_counter!(DECISIONS, "Forward-auth answers by dialect and outcome.");
        metrics::describe_histogram!(
            DECISION_SECONDS,
            Unit::Seconds,
            "Time to decide a forward-auth request, by dialect."
        );
        handle
    })
}

/// `GET /metrics`.
pub(crate) async fn render() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
}

/// The counters and histograms of decisions, registered once.
pub(crate) struct DecisionMetrics {
    decisions: [[Counter; Outcome::ALL.len()]; Dialect::ALL.len()],
    durations: [Histogram; Dialect::ALL.len()],
}

impl DecisionMetrics {
    pub(crate) fn new() -> Self {
        handle();
        Self {
            decisions: Dialect::ALL.map(|dialect| {
                Outcome::ALL.map(|outcome| {
                    metrics::counter!(
                        DECISIONS,
                        "dialect" => dialect.label(),
                        "outcome" => outcome.label()
                    )
                })
            }),
            durations: Dialect::ALL
                .map(|dialect| metrics::histogram!(DECISION_SECONDS, "dialect" => dialect.label())),
        }
    }

    pub(crate) fn record(&self, dialect: Dialect, outcome: Outcome, elapsed: Duration) {
        self.decisions[dialect as usize][outcome as usize].increment(1);
        self.durations[dialect as usize].record(elapsed.as_secs_f64());
    }
}
