//! The gateway's metrics, recorded through the `metrics` facade and served at `/metrics` in
//! the Prometheus text format by `metrics-exporter-prometheus`:
//!
//! * `gateway_decisions_total{dialect, outcome}`: every answer, by dialect (`auth_request`,
//!   `forward_auth`, `ext_authz`) and [`Outcome`];
//! * `gateway_decision_duration_seconds{dialect}`: a histogram of the time to decide.
//!
//! The recorder is the process's global one (`service_kit::metrics::Registry::global`, with
//! the decision histogram's buckets), which the verifier's `verifier_*` series reach too;
//! every label pair is registered up front, so a scrape shows each counter from zero.

use std::time::Duration;

use metrics::{Counter, Histogram, Unit};
use service_kit::metrics::Registry;

use crate::decision::Outcome;
use crate::dialect::Dialect;

const DECISIONS: &str = "gateway_decisions_total";
const DECISION_SECONDS: &str = "gateway_decision_duration_seconds";

/// The counters and histograms of decisions, registered once.
pub(crate) struct DecisionMetrics {
    decisions: [[Counter; Outcome::ALL.len()]; Dialect::ALL.len()],
    durations: [Histogram; Dialect::ALL.len()],
}

impl DecisionMetrics {
    pub(crate) fn new(registry: &Registry) -> Self {
        registry.register(|| {
            metrics::describe_counter!(DECISIONS, "Forward-auth answers by dialect and outcome.");
            metrics::describe_histogram!(
                DECISION_SECONDS,
                Unit::Seconds,
                "Time to decide a forward-auth request, by dialect."
            );
            Self::register()
        })
    }

    fn register() -> Self {
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
