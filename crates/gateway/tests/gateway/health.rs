//! `/healthz`, `/readyz` and `/metrics`.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_health_endpoints_answer_when_redis_does() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let health = gateway.get("/healthz").await;
    assert_eq!(
        (health.status.as_u16(), &health.body),
        (200, &json!({ "status": "ok" }))
    );
    let ready = gateway.get("/readyz").await;
    assert_eq!(
        (ready.status.as_u16(), &ready.body),
        (
            200,
            &json!({ "status": "ready", "checks": { "redis": "ok" } })
        )
    );
}

#[tokio::test]
async fn every_answer_carries_the_proxy_s_request_id_or_a_new_one() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let asked = Answer::of(
        gateway
            .ask(Dialect::AuthRequest, "GET", "/public/page")
            .header("x-request-id", "nginx-4f2a"),
    )
    .await;
    assert_eq!(asked.header("x-request-id"), Some("nginx-4f2a"));
    let invalid = Answer::of(
        gateway
            .ask(Dialect::AuthRequest, "GET", "/public/page")
            .header("x-request-id", "two words"),
    )
    .await;
    let generated = invalid.header("x-request-id").expect("a request id");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    let health = gateway.get("/healthz").await;
    assert!(health.header("x-request-id").is_some());
}

/// The value of the sample `name{labels}` in a Prometheus text page.
fn sample(page: &str, name_and_labels: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[tokio::test]
async fn the_metrics_count_decisions_by_dialect_and_outcome() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let token = env.token("user-1", json!({})).await;
    let counter = |page: &str, dialect: Dialect, outcome: &str| {
        let labels = format!(
            "gateway_decisions_total{{dialect=\"{}\",outcome=\"{outcome}\"}}",
            dialect.label()
        );
        sample(page, &labels).unwrap_or_else(|| panic!("no {labels} in {page}"))
    };
    let page = |answer: Answer| answer.body.as_str().unwrap_or_default().to_owned();
    let before = page(gateway.get("/metrics").await);
    // Every pair is there from the start (other tests in this process count too).
    for dialect in DIALECTS {
        for outcome in [
            "allowed",
            "anonymous",
            "missing",
            "invalid",
            "expired",
            "revoked",
            "forbidden",
            "unavailable",
            "bad_request",
        ] {
            counter(&before, dialect, outcome);
        }
    }
    for dialect in DIALECTS {
        gateway
            .with_token(dialect, "/", &token)
            .await
            .assert_allowed();
        gateway.with_token(dialect, "/", "x.y.z").await;
    }
    let metrics = gateway.get("/metrics").await;
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let after = page(metrics);
    for dialect in DIALECTS {
        for outcome in ["allowed", "invalid"] {
            assert!(
                counter(&after, dialect, outcome) >= counter(&before, dialect, outcome) + 1.0,
                "{dialect:?} {outcome}: {after}"
            );
        }
        let count = format!(
            "gateway_decision_duration_seconds_count{{dialect=\"{}\"}}",
            dialect.label()
        );
        assert!(
            sample(&after, &count).is_some_and(|n| n >= 2.0),
            "{count}: {after}"
        );
    }
    assert!(
        after.contains("gateway_decision_duration_seconds_bucket{"),
        "{after}"
    );
    assert!(
        after.contains("# TYPE gateway_decisions_total counter"),
        "{after}"
    );
}

#[tokio::test]
async fn the_verifiers_series_and_the_request_durations_are_exported_at_metrics() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let token = env.token("user-1", json!({})).await;
    let page = |answer: Answer| answer.body.as_str().unwrap_or_default().to_owned();
    let value = |page: &str, series: &str| {
        sample(page, series).unwrap_or_else(|| panic!("no {series} in {page}"))
    };
    let series = [
        r#"verifier_tokens_total{outcome="valid"}"#,
        r#"verifier_signature_cache_total{result="hit"}"#,
        r#"verifier_session_cache_total{result="hit"}"#,
        "verifier_redis_requests_total",
    ];
    let before = page(gateway.get("/metrics").await);
    for _ in 0..3 {
        gateway
            .with_token(Dialect::AuthRequest, "/", &token)
            .await
            .assert_allowed();
    }
    // A verification off the hot path folds the hot path's counts in (the verifier counts
    // repeat tokens in one atomic of its own between such folds).
    gateway.with_token(Dialect::AuthRequest, "/", "x.y.z").await;
    let after = page(gateway.get("/metrics").await);
    // Other tests in this process verify too: at least this test's own.
    for name in series {
        assert!(
            value(&after, name) > value(&before, name),
            "{name} did not grow: {after}"
        );
    }
    assert!(
        value(&after, r#"verifier_tokens_total{outcome="valid"}"#)
            >= value(&before, r#"verifier_tokens_total{outcome="valid"}"#) + 3.0
    );
    let requests = r#"http_request_duration_seconds_count{method="GET",route="/authz/auth-request",status="200"}"#;
    assert!(value(&after, requests) >= 3.0, "{after}");
}
