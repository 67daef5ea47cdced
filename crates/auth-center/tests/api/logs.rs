//! Request ids and the access log: an id on every response, a client's id kept only from a
//! trusted proxy and only when valid, one access line per request without credentials, the
//! id on the request's other log lines and in its audit events; `/readyz` naming its checks.
//!
//! The logs are captured by one process-wide JSON subscriber (tests run in parallel on many
//! threads, and the server's tasks run on the runtime's threads, so a thread-local
//! subscriber would miss them); each test reads only the lines of its own request ids.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const MEMORY: Backend = Backend {
    db: Db::Sqlite,
    sessions: Sessions::Memory,
};

/// Every log line of this test process from the first call on, as JSON.
#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured(Arc::default());
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter("info")
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

/// The captured lines whose span says `request_id`.
fn lines_of(request_id: &str) -> Vec<Value> {
    let bytes = captured()
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["span"]["request_id"] == request_id)
        .collect()
}

/// The one access line of `request_id`.
fn access_line(request_id: &str) -> Value {
    let access: Vec<Value> = lines_of(request_id)
        .into_iter()
        .filter(|line| line["target"] == "access")
        .collect();
    assert_eq!(access.len(), 1, "one access line: {access:?}");
    access.into_iter().next().unwrap()
}

/// The captured text of every line of `request_id`.
fn text_of(request_id: &str) -> String {
    lines_of(request_id)
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("an X-Request-Id on the response")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn get_with_id(app: &TestApp, path: &str, id: &[u8]) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(id).unwrap(),
        )
        .send()
        .await
        .unwrap()
}

fn is_generated(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4)
}

#[tokio::test]
async fn every_response_carries_a_new_request_id() {
    let app = spawn_app(MEMORY).await;
    let mut ids = Vec::new();
    for path in ["/healthz", "/healthz", "/no/such/route", "/metrics"] {
        let response = app.get(path).await;
        ids.push(request_id(&response));
    }
    assert!(ids.iter().all(|id| is_generated(id)), "{ids:?}");
    ids.dedup();
    assert_eq!(ids.len(), 4, "each request has its own id");
}

#[tokio::test]
async fn a_request_id_from_an_untrusted_peer_is_replaced() {
    let app = spawn_app(MEMORY).await;
    let response = get_with_id(&app, "/healthz", b"client-chosen-id").await;
    let id = request_id(&response);
    assert_ne!(id, "client-chosen-id");
    assert!(is_generated(&id), "{id}");
}

#[tokio::test]
async fn a_trusted_proxy_s_request_id_is_kept() {
    let app = proxied_app(MEMORY, |_| {}).await;
    let sent = format!("proxy-{}", uuid::Uuid::new_v4().simple());
    let response = get_with_id(&app, "/healthz", sent.as_bytes()).await;
    assert_eq!(request_id(&response), sent);
    let longest = "x".repeat(128);
    let response = get_with_id(&app, "/healthz", longest.as_bytes()).await;
    assert_eq!(request_id(&response), longest);
}

#[tokio::test]
async fn an_invalid_request_id_from_a_trusted_proxy_is_replaced() {
    let app = proxied_app(MEMORY, |_| {}).await;
    let too_long = "x".repeat(129);
    for invalid in [
        b"two words".as_slice(),
        too_long.as_bytes(),
        "caf\u{e9}".as_bytes(),
        b"",
    ] {
        let response = get_with_id(&app, "/healthz", invalid).await;
        let id = request_id(&response);
        assert!(is_generated(&id), "{invalid:?} became {id}");
    }
}

#[tokio::test]
async fn each_request_has_one_access_line_with_its_fields_and_no_credentials() {
    captured();
    let app = spawn_app(MEMORY).await;
    let tokens = app.register_and_login("logged").await;
    let response = app
        .client
        .get(app.url(&format!("/v1/me?access_token={}", tokens.access_token)))
        .bearer_auth(&tokens.access_token)
        .header("cookie", format!("__Host-refresh={}", tokens.refresh_token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = request_id(&response);
    let access = access_line(&id);
    let fields = &access["fields"];
    assert_eq!(access["level"], "INFO");
    assert_eq!(fields["message"], "request");
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/v1/me");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["client_ip"], "127.0.0.1");
    assert!(fields["latency_ms"].as_f64().is_some(), "{fields}");
    let text = text_of(&id);
    assert!(!text.contains(&tokens.access_token), "{text}");
    assert!(!text.contains(&tokens.refresh_token), "{text}");
    assert!(!text.contains("access_token="), "no query string: {text}");

    // A path with an id is logged as its route template; a refusal has its line too.
    let response = app
        .delete_bearer("/v1/sessions/not-a-session", &tokens.access_token)
        .await;
    let id = request_id(&response);
    let access = access_line(&id);
    assert_eq!(access["fields"]["route"], "/v1/sessions/{sid}");
    assert_eq!(access["fields"]["method"], "DELETE");
    assert_eq!(access["fields"]["status"], response.status().as_u16());
}

#[tokio::test]
async fn the_access_line_names_the_forwarded_client_behind_a_trusted_proxy() {
    captured();
    let app = proxied_app(MEMORY, |_| {}).await;
    let response = app
        .client
        .get(app.url("/no/such/route"))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    let id = request_id(&response);
    let access = access_line(&id);
    assert_eq!(access["fields"]["client_ip"], "198.51.100.7");
    assert_eq!(access["fields"]["route"], "unmatched");
    assert_eq!(access["fields"]["status"], 404);
}

#[tokio::test]
async fn a_login_s_audit_event_and_log_lines_carry_the_response_s_request_id() {
    captured();
    let app = spawn_app(MEMORY).await;
    app.register("audited", PASSWORD).await;
    let response = app.login("audited", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let id = request_id(&response);

    let events = app.audit_events("login.success").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].request_id.as_deref(), Some(id.as_str()));
    // The domain's own lines inside the request carry the id too.
    let audit_lines = lines_of(&id)
        .into_iter()
        .filter(|line| line["target"] == "audit")
        .count();
    assert_eq!(audit_lines, 1, "{}", text_of(&id));

    // The admin API shows it.
    let admin = app.admin_login("auditor").await;
    let audit = app
        .get_json_ok("/v1/admin/audit", &admin.access_token)
        .await;
    let login = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "login.success" && e["request_id"] == id.as_str());
    assert!(login.is_some(), "{audit}");
}

#[tokio::test]
async fn readyz_names_each_check() {
    let app = spawn_app(MEMORY).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "status": "ready", "checks": { "database": "ok", "memory": "ok" } })
    );
}

#[tokio::test]
async fn readyz_names_redis_when_it_does_not_answer() {
    let mut redis = test_support::RedisServer::start().unwrap();
    let url = redis.url();
    let app = spawn_app_with(MEMORY, |c| {
        c.redis = RedisConfig::standalone(&url).unwrap();
    })
    .await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["checks"], json!({ "database": "ok", "redis": "ok" }));
    redis.stop().unwrap();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["error"], "unavailable", "the common error shape stays");
    assert!(body["message"].is_string());
    assert_eq!(body["checks"]["database"], "ok");
    let redis_state = body["checks"]["redis"].as_str().unwrap();
    assert!(redis_state.starts_with("error: "), "{body}");
    assert!(!redis_state.contains(&url), "no address in {body}");
}
