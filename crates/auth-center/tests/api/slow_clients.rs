//! Slow, idle and oversized clients cost the server a bounded time: half-sent request heads,
//! idle kept-alive connections, stalled or oversized bodies, and connections left open at
//! shutdown. The tests speak raw HTTP/1.1 over a `TcpStream` so they can stop mid-request,
//! and set the `[http]` timeouts small; the only time bounds are generous polling limits.

use std::time::Duration;

use auth_center::{Application, Config};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        a_half_sent_request_is_closed_after_the_header_read_timeout,
        an_idle_keep_alive_connection_is_closed_after_the_idle_timeout,
        a_connection_over_the_cap_waits_until_a_slot_frees,
        shutdown_ends_within_the_grace_period_despite_half_sent_and_stalled_requests,
        an_oversized_content_length_is_refused_before_the_body_is_sent,
        a_stalled_body_is_answered_with_408_in_the_common_shape,
        connection_settings_that_cannot_work_are_refused,
    ],
}

/// A timeout that no test should ever wait out.
const LONG_MS: u64 = 60_000;

/// How long a test waits for something that should happen after a small timeout: many
/// times that timeout, so a loaded machine does not fail the test.
const BOUND: Duration = Duration::from_secs(10);

const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// A login whose head declares 100 body bytes, followed by only a few of them.
const STALLING_LOGIN: &[u8] = b"POST /v1/login HTTP/1.1\r\nHost: x\r\n\
    Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":";

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect")
}

fn port_of(app: &TestApp) -> u16 {
    app.address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the address")
}

/// Waits until the server closes the connection (EOF or reset); panics if it is still
/// open after `BOUND`. Returns what was read before the close.
async fn closed_by_server(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut seen = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(BOUND, read_all).await.is_err() {
        panic!("{what}: the connection was still open after {BOUND:?}");
    }
    seen
}

/// One HTTP/1.1 response: status, lower-cased headers, body.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `{"error","message"}` body's code.
    fn error_code(&self) -> String {
        let body: Value = serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "{}: not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        });
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message missing in {body}"
        );
        body["error"].as_str().expect("an error code").to_string()
    }
}

/// Reads one response (with a `Content-Length` body) within `BOUND`.
async fn read_response(stream: &mut TcpStream, what: &str) -> RawResponse {
    let read = async {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "{what}: closed before a response: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .expect("a content-length");
        let mut body = raw[head_end..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "{what}: closed in the middle of the body");
            body.extend_from_slice(&buf[..n]);
        }
        RawResponse {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .unwrap_or_else(|_| panic!("{what}: no response within {BOUND:?}"))
}

async fn a_half_sent_request_is_closed_after_the_header_read_timeout(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.http.header_read_timeout_ms = 300;
        c.http.idle_timeout_ms = LONG_MS;
    })
    .await;
    let port = port_of(&app);

    // A new connection that never finishes its first head.
    let mut fresh = connect(port).await;
    fresh.write_all(HALF_HEAD).await.unwrap();
    // A connection that completes one request, then starts another and stalls.
    let mut reused = connect(port).await;
    reused.write_all(HEALTHZ).await.unwrap();
    assert_eq!(
        read_response(&mut reused, "first request").await.status,
        200
    );
    reused.write_all(b"GET /heal").await.unwrap();
    // A new connection that sends nothing at all.
    let mut silent = connect(port).await;

    closed_by_server(&mut fresh, "half-sent first head").await;
    closed_by_server(&mut reused, "half-sent second head").await;
    closed_by_server(&mut silent, "silent new connection").await;
}

async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.http.header_read_timeout_ms = LONG_MS;
        c.http.idle_timeout_ms = 300;
    })
    .await;
    let mut conn = connect(port_of(&app)).await;
    for _ in 0..2 {
        conn.write_all(HEALTHZ).await.unwrap();
        let response = read_response(&mut conn, "keep-alive request").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, br#"{"status":"ok"}"#);
        assert_ne!(response.header("connection"), Some("close"));
    }
    let after = closed_by_server(&mut conn, "idle keep-alive connection").await;
    assert!(after.is_empty(), "nothing more was sent: {after:?}");
}

async fn a_connection_over_the_cap_waits_until_a_slot_frees(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.http.max_connections = 1;
        c.http.header_read_timeout_ms = 1_000;
        c.http.idle_timeout_ms = LONG_MS;
    })
    .await;
    let port = port_of(&app);
    // The one slot: a half-sent head, held until its header-read timeout.
    let mut holder = connect(port).await;
    holder.write_all(HALF_HEAD).await.unwrap();

    // Over the cap: queued, not refused, and served once the slot is free.
    let mut queued = connect(port).await;
    queued.write_all(HEALTHZ).await.unwrap();
    assert_eq!(
        read_response(&mut queued, "queued request").await.status,
        200
    );

    // It was served only after the holder had been closed.
    let mut buf = [0u8; 64];
    match holder.try_read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the slot holder was still open when the queued one was served: {other:?}"),
    }
}

async fn shutdown_ends_within_the_grace_period_despite_half_sent_and_stalled_requests(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(backend, &dir);
    config.http.shutdown_grace_ms = 300;
    config.http.header_read_timeout_ms = LONG_MS;
    config.http.idle_timeout_ms = LONG_MS;
    config.http.body_read_timeout_ms = 14_000;
    let app = Application::build(config).await.unwrap();
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    // A kept-alive connection, served once.
    let mut idle = connect(port).await;
    idle.write_all(HEALTHZ).await.unwrap();
    assert_eq!(
        read_response(&mut idle, "before shutdown").await.status,
        200
    );
    // A request head that never ends.
    let mut half = connect(port).await;
    half.write_all(HALF_HEAD).await.unwrap();
    // A request in flight whose body never ends.
    let mut stalled = connect(port).await;
    stalled.write_all(STALLING_LOGIN).await.unwrap();
    // Gives the server time to start the login, so that it is in flight at the stop; the
    // assertions hold either way.
    tokio::time::sleep(Duration::from_millis(100)).await;

    stop.send(()).unwrap();
    let grace_and_margin = Duration::from_millis(300) + BOUND;
    match tokio::time::timeout(grace_and_margin, server).await {
        Ok(served) => served.unwrap().unwrap(),
        Err(_) => panic!("the server was still serving {grace_and_margin:?} after shutdown"),
    }
    closed_by_server(&mut idle, "idle connection").await;
    closed_by_server(&mut half, "half-sent head").await;
    closed_by_server(&mut stalled, "stalled body").await;
    drop(dir);
}

async fn an_oversized_content_length_is_refused_before_the_body_is_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let port = port_of(&app);
    for path in ["/v1/login", "/v1/register"] {
        let mut conn = connect(port).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 99999999\r\n\r\n"
        );
        // Only the head: the answer must not depend on the body.
        conn.write_all(head.as_bytes()).await.unwrap();
        let response = read_response(&mut conn, path).await;
        assert_eq!(
            (response.status, response.error_code().as_str()),
            (413, "payload_too_large"),
            "{path}"
        );
        closed_by_server(&mut conn, "after 413").await;
    }
    // A body at the limit is still read (and judged on its content).
    let at_limit = "x".repeat(auth_center::http::MAX_BODY_BYTES);
    let response = app
        .post_raw("/v1/login", "application/json", at_limit)
        .await;
    assert_error(response, reqwest::StatusCode::BAD_REQUEST, "invalid_json").await;
}

async fn a_stalled_body_is_answered_with_408_in_the_common_shape(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.http.body_read_timeout_ms = 300).await;
    let mut conn = connect(port_of(&app)).await;
    conn.write_all(STALLING_LOGIN).await.unwrap();
    let response = read_response(&mut conn, "stalled body").await;
    assert_eq!(
        (response.status, response.error_code().as_str()),
        (408, "request_timeout")
    );
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.header("retry-after"), None, "not an outage");
    closed_by_server(&mut conn, "after 408").await;

    // A body that arrives in time, in pieces, is served as usual.
    let mut conn = connect(port_of(&app)).await;
    let body = br#"{"username":"nobody","password":"wrong password"}"#;
    let head = format!(
        "POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    conn.write_all(&body[10..]).await.unwrap();
    let response = read_response(&mut conn, "timely body").await;
    assert_eq!(
        (response.status, response.error_code().as_str()),
        (401, "invalid_credentials")
    );
}

async fn connection_settings_that_cannot_work_are_refused(_backend: Backend) {
    type Tweak = fn(&mut Config);
    let tweaks: [(&str, Tweak); 6] = [
        ("no connections", |c| c.http.max_connections = 0),
        ("no header time", |c| c.http.header_read_timeout_ms = 0),
        ("no idle time", |c| c.http.idle_timeout_ms = 0),
        ("no body time", |c| c.http.body_read_timeout_ms = 0),
        ("body time past the request timeout", |c| {
            c.http.body_read_timeout_ms = 15_000
        }),
        ("a grace of hours", |c| c.http.shutdown_grace_ms = 3_600_000),
    ];
    for (what, tweak) in tweaks {
        let mut config = Config::default();
        tweak(&mut config);
        assert!(config.validate().is_err(), "{what} was accepted");
    }
    assert!(Config::default().validate().is_ok());
}
