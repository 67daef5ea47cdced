//! The monitoring files of `deploy/` against the real tools: Debian's Prometheus scraping the
//! real auth-center, demo-service and gateway with `deploy/prometheus/prometheus.yml` and its
//! rules, `promtool` checking the configuration and running the rules' unit tests, and the
//! dashboard's generator (`deploy/grafana/dashboard.py`, Grafana Foundation SDK) making the
//! committed JSON, whose every query runs against that Prometheus.
//!
//! The real-Prometheus test drives a known load (logins, one of them with a wrong password,
//! refreshes with a reuse detection, requests to the demo-service and the gateway, a `DEL` of
//! a session key, revocation self-test rounds every second) and asserts through Prometheus's HTTP API that the key series
//! ([`key_series`]) were scraped with the values that load produced. Everything polls with a
//! generous bound; nothing is timed.
//!
//! Without Prometheus, promtool or the virtualenv the tests are skipped with a warning, except
//! in CI (`CI=true`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use verifier::RevocationMode;

use crate::helpers::*;
use crate::python::{repo_path, skip_or_fail, venv_python};

/// Longest Prometheus may take to scrape and evaluate what the load produced (never reached
/// when things work: it scrapes every [`INTERVAL`]).
const SCRAPED_BOUND: Duration = Duration::from_secs(60);
/// Scrape and rule-evaluation interval of the test's Prometheus.
const INTERVAL: &str = "250ms";
/// What the dashboard's `$__rate_interval` stands for here: many scrapes of [`INTERVAL`].
const RATE_INTERVAL: &str = "10s";

/// The load. Successful logins: two registrations (each logs in) and two more logins.
const LOGINS: u64 = 4;
/// Rotations before the first refresh token is replayed (a reuse detection).
const ROTATIONS: u64 = 2;
/// Requests with a live token to the demo-service, and to the gateway.
const DEMO_REQUESTS: u64 = 10;
const GATEWAY_REQUESTS: u64 = 5;

/// What a key series' value must be after the load.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The auth-center's series: its registry is its own application's, so exact.
    Exactly(f64),
    /// The verifier's and the gateway's series: they record into the process-global registry,
    /// which the other e2e tests of this process share, so at least what this load did.
    AtLeast(f64),
}

impl Expect {
    fn holds(self, value: f64) -> bool {
        match self {
            Expect::Exactly(expected) => value == expected,
            Expect::AtLeast(least) => value >= least,
        }
    }
}

/// The key series, in one place: an instant query with one sample, and its expected value
/// once Prometheus scraped what the load did.
fn key_series() -> Vec<(&'static str, Expect)> {
    use Expect::*;
    let logins = LOGINS as f64;
    vec![
        (r#"up{job="auth-center"}"#, Exactly(1.0)),
        (r#"up{job="demo-service"}"#, Exactly(1.0)),
        (r#"up{job="gateway"}"#, Exactly(1.0)),
        (
            r#"auth_logins_total{job="auth-center",outcome="success"}"#,
            Exactly(logins),
        ),
        (
            r#"auth_logins_total{job="auth-center",outcome="wrong_password"}"#,
            Exactly(1.0),
        ),
        (
            r#"auth_logins_total{job="auth-center",outcome="unknown_user"}"#,
            Exactly(1.0),
        ),
        (
            r#"auth_refreshes_total{job="auth-center",outcome="rotated"}"#,
            Exactly(ROTATIONS as f64),
        ),
        (
            r#"auth_refreshes_total{job="auth-center",outcome="reuse_detected"}"#,
            Exactly(1.0),
        ),
        (
            r#"auth_sessions_created_total{job="auth-center",kind="login"}"#,
            Exactly(logins),
        ),
        (
            r#"auth_sessions_ended_total{job="auth-center",cause="theft"}"#,
            Exactly(1.0),
        ),
        (
            r#"auth_sessions_ended_total{job="auth-center",cause="logout"}"#,
            Exactly(1.0),
        ),
        // Every login request: the successful ones and the two failures.
        (
            r#"sum(http_request_duration_seconds_count{job="auth-center",route="/v1/login"})"#,
            Exactly(logins + 2.0),
        ),
        (
            r#"sum(auth_redis_command_duration_seconds_count{job="auth-center",op="session_rotate"})"#,
            Exactly(ROTATIONS as f64 + 1.0),
        ),
        (
            r#"sum(auth_sql_query_duration_seconds_count{job="auth-center"}) > 0"#,
            AtLeast(1.0),
        ),
        (
            r#"auth_password_hash_duration_seconds_count{job="auth-center"}"#,
            AtLeast(logins + 2.0),
        ),
        (
            r#"verifier_tokens_total{job="demo-service",outcome="valid"}"#,
            AtLeast(DEMO_REQUESTS as f64),
        ),
        (
            r#"verifier_tokens_total{job="demo-service",outcome="revoked"}"#,
            AtLeast(1.0),
        ),
        (
            r#"verifier_invalidations_total{job="demo-service"}"#,
            AtLeast(1.0),
        ),
        (
            r#"sum(http_request_duration_seconds_count{job="demo-service",route="/me"})"#,
            AtLeast(DEMO_REQUESTS as f64 + 1.0),
        ),
        (
            r#"gateway_decisions_total{job="gateway",dialect="auth_request",outcome="allowed"}"#,
            AtLeast(GATEWAY_REQUESTS as f64),
        ),
        (
            r#"gateway_decisions_total{job="gateway",dialect="auth_request",outcome="revoked"}"#,
            AtLeast(1.0),
        ),
        // The revocation self-test: rounds in which every verifier acknowledged the probe's
        // deletion, their lag as the auth-center and as each verifier measured it.
        (
            r#"auth_selftest_rounds_total{job="auth-center",outcome="ok"}"#,
            AtLeast(1.0),
        ),
        (
            r#"auth_selftest_revocation_lag_seconds_count{job="auth-center"}"#,
            AtLeast(1.0),
        ),
        (
            r#"auth_selftest_verifiers{job="auth-center"}"#,
            AtLeast(1.0),
        ),
        (
            r#"verifier_revocation_lag_seconds_count{job="demo-service"}"#,
            AtLeast(1.0),
        ),
        // The recording rules ran over what was scraped.
        (
            r#"count(job_route:http_requests:rate5m{job="auth-center",route="/v1/login"})"#,
            Exactly(1.0),
        ),
        (
            r#"count(job:verifier_session_cache_hit:ratio_rate5m{job="demo-service"})"#,
            Exactly(1.0),
        ),
    ]
}

/// Series this load need not produce: a round that missed an acknowledgement. The
/// dashboard's panels over them must evaluate, but may be empty.
const NOT_PRODUCED_HERE: [&str; 1] = ["auth_selftest_missed_acks_total"];

/// The repository's `deploy/prometheus/prometheus.yml` for the test's servers: each
/// target and interval replaced, the rule files named by absolute paths; nothing else changed.
fn scrape_config(auth_center: &str, demo: &str, gateway: &str) -> String {
    let deploy = repo_path("deploy/prometheus");
    let mut config = std::fs::read_to_string(format!("{deploy}/prometheus.yml"))
        .expect("deploy/prometheus/prometheus.yml");
    for (from, to) in [
        (r#""auth-center:8080""#, format!(r#""{auth_center}""#)),
        (r#""demo-service:8081""#, format!(r#""{demo}""#)),
        (r#""gateway:8082""#, format!(r#""{gateway}""#)),
        (
            "scrape_interval: 15s",
            format!("scrape_interval: {INTERVAL}"),
        ),
        (
            "evaluation_interval: 15s",
            format!("evaluation_interval: {INTERVAL}"),
        ),
        (
            "- rules/recording.yml",
            format!("- {deploy}/rules/recording.yml"),
        ),
        ("- rules/alerts.yml", format!("- {deploy}/rules/alerts.yml")),
    ] {
        assert_eq!(
            config.matches(from).count(),
            1,
            "deploy/prometheus/prometheus.yml should have {from} once"
        );
        config = config.replace(from, &to);
    }
    config
}

/// Prometheus's HTTP API.
struct Api {
    url: String,
    client: reqwest::Client,
}

impl Api {
    /// `GET /api/v1/<path>` with `params`: the `data` of a `success` answer, or the error.
    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/{path}", self.url), params)
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if status == StatusCode::OK && body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{status}: {body}"))
        }
    }

    /// The samples of an instant query: `(labels, value)`.
    async fn query(&self, promql: &str) -> Result<Vec<(Value, f64)>, String> {
        let data = self.get("query", &[("query", promql)]).await?;
        let samples = data["result"].as_array().cloned().unwrap_or_default();
        Ok(samples
            .into_iter()
            .map(|s| {
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (s["metric"].clone(), value)
            })
            .collect())
    }

    /// The one value of `promql`, when it has exactly one sample.
    async fn value(&self, promql: &str) -> Option<f64> {
        match self.query(promql).await.ok()?.as_slice() {
            [(_, value)] => Some(*value),
            _ => None,
        }
    }
}

/// Polls `check` until it returns `None` (done) or [`SCRAPED_BOUND`] passes; then panics
/// with the last thing it said was missing.
async fn until_done<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let deadline = Instant::now() + SCRAPED_BOUND;
    loop {
        let Some(missing) = check().await else {
            return;
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {SCRAPED_BOUND:?}: {missing}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every query of the committed dashboard: `(panel title, expression)`.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_path("deploy/grafana/dashboards/auth.json"))
        .expect("deploy/grafana/dashboards/auth.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            queries.push((
                panel["title"].as_str().unwrap_or_default().to_owned(),
                expr.replace("$__rate_interval", RATE_INTERVAL),
            ));
        }
    }
    queries
}

/// Every rule of an `/api/v1/rules` answer, all groups together.
fn rules_of(data: &Value) -> Vec<Value> {
    data["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The anchors of the headings of docs/operations.md, as GitHub makes them.
fn operations_anchors() -> Vec<String> {
    std::fs::read_to_string(repo_path("docs/operations.md"))
        .expect("docs/operations.md")
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// The load of [`key_series`], on a live auth-center, demo-service and gateway.
async fn drive_load(center: &AuthCenter, demo: &Demo, gateway: &str) {
    let alice = center.register_and_login("alice").await;
    let bob = center.register_and_login("bob").await;
    let carol = center.login_ok("alice").await;
    center.login_ok("bob").await;
    let wrong = center
        .request(Method::POST, "/v1/login")
        .json(&json!({ "username": "alice", "password": "not the password at all" }))
        .send()
        .await
        .expect("login");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let unknown = center
        .request(Method::POST, "/v1/login")
        .json(&json!({ "username": "nobody", "password": PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    // Rotations, then a replay of the first refresh token: a reuse detection (no grace
    // period), which ends the session as a theft.
    let refresh = |token: String| async move {
        center
            .request(Method::POST, "/v1/refresh")
            .json(&json!({ "refresh_token": token }))
            .send()
            .await
            .expect("refresh")
    };
    let mut current = alice.refresh_token.clone();
    for _ in 0..ROTATIONS {
        let r = refresh(current).await;
        assert_eq!(r.status(), StatusCode::OK);
        current = r.json::<Tokens>().await.expect("tokens").refresh_token;
    }
    let reused = Answer::of(refresh(alice.refresh_token.clone()).await).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{reused:?}");
    assert_eq!(reused.code(), Some("refresh_token_reused"));
    center.logout(&carol).await;

    let client = http_client();
    let ask_gateway = |tokens: &Tokens| {
        client
            .get(format!("http://{gateway}/authz/auth-request"))
            .header("X-Original-URI", "/anything")
            .bearer_auth(&tokens.access_token)
            .send()
    };
    for _ in 0..DEMO_REQUESTS {
        demo.me(&bob).await.assert_ok();
    }
    for _ in 0..GATEWAY_REQUESTS {
        let r = ask_gateway(&bob).await.expect("gateway");
        assert_eq!(r.status(), StatusCode::OK);
    }

    // An operator's DEL of bob's session key: both refuse it from then on.
    center
        .redis_on_key("DEL", &center.session_key(&bob), &[])
        .await;
    poll_until(
        "the demo-service refuses the deleted session",
        POLL_BOUND,
        || demo.me(&bob),
        |a| a.is_401("session_revoked"),
    )
    .await;
    poll_until(
        "the gateway refuses the deleted session",
        POLL_BOUND,
        || async { Answer::of(ask_gateway(&bob).await.expect("gateway")).await },
        |a| a.status == StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_what_the_load_and_a_del_produced_and_runs_every_rule_and_panel()
{
    if test_support::prometheus_binary().is_none() {
        skip_or_fail("prometheus is not installed");
        return;
    }
    // Metrics on the auth-center's separate listener, as docs/operations.md advises; no
    // grace period, so a replayed refresh token is a reuse detection at once.
    let center = AuthCenter::spawn_with(Store::Standalone.shared_target(), |config| {
        config.metrics_addr = Some("127.0.0.1:0".parse().expect("addr"));
        config.sessions.grace_ms = 0;
        // A revocation self-test round every second: the demo-service's and the gateway's
        // verifiers (tracked) report in and acknowledge each probe's deletion.
        config.selftest.interval_secs = 1;
    })
    .await;
    let demo = center.demo(RevocationMode::Tracked).await;
    let (gateway, serving) = gateway::bind(gateway::Settings {
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        verifier: center.verifier_settings(),
        ..gateway::Settings::default()
    })
    .await
    .expect("the gateway binds");
    tokio::spawn(serving);

    let config = scrape_config(
        center
            .metrics_address
            .as_deref()
            .expect("a metrics listener"),
        demo.address.trim_start_matches("http://"),
        &gateway.to_string(),
    );
    let prometheus = blocking(|| test_support::Prometheus::start(&config))
        .expect("Prometheus starts with deploy/prometheus/prometheus.yml and its rules");
    let api = Api {
        url: prometheus.url(),
        client: http_client(),
    };

    // Prometheus applies a new scrape configuration after a few seconds: the load starts
    // once every service was scraped, so that its counters are seen rising from where they
    // were.
    until_done("the first scrape of every service", || async {
        for job in ["auth-center", "demo-service", "gateway"] {
            let up = api.value(&format!(r#"up{{job="{job}"}}"#)).await;
            if up != Some(1.0) {
                return Some(format!("up of {job}: {up:?}"));
            }
        }
        None
    })
    .await;
    drive_load(&center, &demo, &gateway.to_string()).await;

    // The key series, with the values the load produced.
    let series = key_series();
    until_done("the key series", || async {
        for (promql, expect) in &series {
            match api.value(promql).await {
                Some(value) if expect.holds(value) => {}
                other => return Some(format!("{promql}: {other:?}, expected {expect:?}")),
            }
        }
        None
    })
    .await;

    // Every rule loaded and evaluated without error; every alert has its runbook section.
    let anchors = operations_anchors();
    until_done("every rule evaluated", || async {
        let data = match api.get("rules", &[]).await {
            Ok(data) => data,
            Err(e) => return Some(e),
        };
        let rules = rules_of(&data);
        if rules.len() < 2 {
            return Some(format!("the rules did not load: {data}"));
        }
        let not_ok: Vec<_> = rules.iter().filter(|r| r["health"] != "ok").collect();
        if !not_ok.is_empty() {
            return Some(format!("rules not evaluated ok: {not_ok:?}"));
        }
        None
    })
    .await;
    let data = api.get("rules", &[("type", "alert")]).await.expect("rules");
    let alerts = rules_of(&data);
    assert!(alerts.len() >= 10, "the alert rules: {data}");
    for alert in &alerts {
        let name = alert["name"].as_str().expect("name");
        let runbook = alert["annotations"]["runbook_url"].as_str().unwrap_or("");
        let anchor = runbook
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| {
                panic!("{name}: runbook_url {runbook:?} is not in docs/operations.md")
            });
        assert!(
            anchors.iter().any(|a| a == anchor),
            "{name}: docs/operations.md has no section #{anchor}"
        );
        for field in ["summary", "description"] {
            assert!(
                alert["annotations"][field].is_string(),
                "{name} has no {field}"
            );
        }
        assert!(
            alert["labels"]["severity"].is_string(),
            "{name} has no severity"
        );
    }

    // Every panel's query evaluates; those over series this load produced return data.
    let queries = dashboard_queries();
    assert!(queries.len() >= 30, "the dashboard's queries: {queries:?}");
    until_done("every dashboard query", || async {
        for (panel, expr) in &queries {
            let samples = match api.query(expr).await {
                Ok(samples) => samples,
                Err(e) => return Some(format!("panel {panel:?}: {expr}: {e}")),
            };
            let may_be_empty = NOT_PRODUCED_HERE.iter().any(|s| expr.contains(s));
            if samples.is_empty() && !may_be_empty {
                return Some(format!("panel {panel:?}: {expr} returned no data"));
            }
        }
        None
    })
    .await;
    drop(prometheus);
}

/// Runs `promtool` with `args` in `deploy/prometheus`; panics with its output on failure.
fn promtool(args: &[&str]) -> String {
    let promtool = test_support::promtool_binary().expect("promtool");
    let out = Command::new(&promtool)
        .args(args)
        .current_dir(repo_path("deploy/prometheus"))
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_configuration_and_rules_and_every_alert_passes_its_unit_tests() {
    if test_support::promtool_binary().is_none() {
        skip_or_fail("promtool (Debian's prometheus package) is not installed");
        return;
    }
    let config = promtool(&["check", "config", "prometheus.yml"]);
    assert!(config.contains("SUCCESS"), "{config}");
    let rules = promtool(&["check", "rules", "rules/recording.yml", "rules/alerts.yml"]);
    assert!(rules.contains("SUCCESS"), "{rules}");
    let tests = promtool(&["test", "rules", "tests/alerts.yml"]);
    assert!(tests.contains("SUCCESS"), "{tests}");
    // Each alert has a test case (its name appears in the unit tests).
    let alerts = std::fs::read_to_string(repo_path("deploy/prometheus/rules/alerts.yml"))
        .expect("alerts.yml");
    let cases = std::fs::read_to_string(repo_path("deploy/prometheus/tests/alerts.yml"))
        .expect("tests/alerts.yml");
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            cases.contains(&format!("alertname: {name}\n")),
            "deploy/prometheus/tests/alerts.yml has no test of {name}"
        );
    }
}

#[test]
fn the_committed_dashboard_is_what_its_generator_makes() {
    let Some(python) = venv_python() else {
        return;
    };
    let out = Command::new(&python)
        .arg(repo_path("deploy/grafana/dashboard.py"))
        .output()
        .expect("dashboard.py runs");
    assert!(
        out.status.success(),
        "deploy/grafana/dashboard.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read(repo_path("deploy/grafana/dashboards/auth.json"))
        .expect("deploy/grafana/dashboards/auth.json");
    assert!(
        out.stdout == committed,
        "deploy/grafana/dashboards/auth.json is not what deploy/grafana/dashboard.py makes: \
         run `python3 deploy/grafana/dashboard.py > deploy/grafana/dashboards/auth.json` \
         (in the virtualenv of tests/requirements.txt) and commit it"
    );
    assert!(
        Path::new(&repo_path(
            "deploy/grafana/provisioning/dashboards/auth.yml"
        ))
        .is_file()
    );
}
