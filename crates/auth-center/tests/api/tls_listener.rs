//! TLS on the listener: HTTPS with a generated certificate, HSTS only over TLS, the
//! certificate replaced on disk while the server runs (new connections see the new one, open
//! ones keep working, a bad replacement changes nothing), the header-read timeout during
//! the handshake, and the `healthcheck` subcommand over plain HTTP and TLS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncReadExt as _;

use crate::helpers::*;

/// How long a test waits for something that takes a few reload intervals.
const BOUND: Duration = Duration::from_secs(20);

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key, as PEM.
struct Pem {
    cert: String,
    key: String,
}

fn generate() -> Pem {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Certificate and key files in a directory of their own.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(pem: &Pem) -> Self {
        let files = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        files.write(pem);
        files
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    /// Replaces both files (each by a rename, as certificate managers do).
    fn write(&self, pem: &Pem) {
        replace(&self.cert(), &pem.cert);
        replace(&self.key(), &pem.key);
    }
}

fn replace(path: &Path, content: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, content).unwrap();
    std::fs::rename(&next, path).unwrap();
}

async fn spawn_tls_app(files: &Files) -> TestApp {
    let (cert, key) = (files.cert(), files.key());
    let mut app = spawn_app_with(SQLITE_MEMORY, move |config| {
        config.tls.cert_file = Some(cert);
        config.tls.key_file = Some(key);
        config.tls.reload_ms = 100;
    })
    .await;
    app.address = app.address.replace("http://127.0.0.1", "https://localhost");
    app
}

const SQLITE_MEMORY: Backend = Backend {
    db: Db::Sqlite,
    sessions: Sessions::Memory,
};

/// A client that trusts only `pem`'s certificate.
fn client_trusting(pem: &Pem) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.cert.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_api_is_served_over_https_with_hsts_on_every_response() {
    let pem = generate();
    let files = Files::new(&pem);
    let mut app = spawn_tls_app(&files).await;
    app.client = client_trusting(&pem);

    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );

    let tokens = app.register_and_login("alice").await;
    let me = app.me(&tokens.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert!(me.headers().contains_key("strict-transport-security"));

    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        missing.headers().contains_key("strict-transport-security"),
        "errors carry HSTS too"
    );
}

#[tokio::test]
async fn plain_http_never_sends_hsts() {
    let app = spawn_app(SQLITE_MEMORY).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(!health.headers().contains_key("strict-transport-security"));
    let login = app
        .post_json(
            "/v1/login",
            &json!({"username": "nobody", "password": PASSWORD}),
        )
        .await;
    assert!(!login.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn a_plain_http_request_to_the_tls_listener_gets_no_answer() {
    let pem = generate();
    let files = Files::new(&pem);
    let app = spawn_tls_app(&files).await;
    let plain = app.address.replace("https://localhost", "http://127.0.0.1");
    let result = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn a_replaced_certificate_reaches_new_connections_while_open_ones_keep_working() {
    let first = generate();
    let files = Files::new(&first);
    let app = spawn_tls_app(&files).await;
    // One kept-alive connection that trusts only the first certificate: it cannot open
    // another connection once the server presents the second.
    let old = client_trusting(&first);
    assert_eq!(
        old.get(app.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );

    let second = generate();
    files.write(&second);
    let new = client_trusting(&second);
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        // A fresh client: a fresh connection and handshake each time.
        let attempt = client_trusting(&second)
            .get(app.url("/healthz"))
            .send()
            .await;
        if attempt.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "new connections still see the old certificate after {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        new.get(app.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let on_the_old_connection = old.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(on_the_old_connection.status(), StatusCode::OK);
    assert!(
        client_trusting(&first)
            .get(app.url("/healthz"))
            .send()
            .await
            .is_err(),
        "a new connection does not get the first certificate any more"
    );
}

#[tokio::test]
async fn a_broken_replacement_keeps_the_current_certificate_until_a_good_one_arrives() {
    let first = generate();
    let files = Files::new(&first);
    let app = spawn_tls_app(&files).await;

    // A key that does not belong to the certificate, then a certificate that is not PEM.
    let other = generate();
    replace(&files.key(), &other.key);
    tokio::time::sleep(Duration::from_millis(500)).await; // several reload checks
    replace(&files.cert(), "-----BEGIN CERTIFICATE-----\nnot base64\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fresh = client_trusting(&first)
        .get(app.url("/healthz"))
        .send()
        .await;
    assert_eq!(
        fresh
            .expect("the first certificate is still served")
            .status(),
        StatusCode::OK
    );

    // The watcher survived the errors: a good pair is taken.
    files.write(&other);
    let deadline = tokio::time::Instant::now() + BOUND;
    while client_trusting(&other)
        .get(app.url("/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the good replacement was not taken within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_silent_client_is_dropped_during_the_handshake_after_the_header_read_timeout() {
    let pem = generate();
    let files = Files::new(&pem);
    let (cert, key) = (files.cert(), files.key());
    let app = spawn_app_with(SQLITE_MEMORY, move |config| {
        config.tls.cert_file = Some(cert);
        config.tls.key_file = Some(key);
        config.http.header_read_timeout_ms = 200;
        config.http.idle_timeout_ms = 60_000;
    })
    .await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // Nothing sent: no ClientHello. The server must close the connection by itself.
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(BOUND, stream.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "the connection was still open after {BOUND:?}: {closed:?}"
    );
}

#[tokio::test]
async fn tls_settings_that_cannot_work_are_refused_at_start_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(SQLITE_MEMORY, &dir);
    config.tls.cert_file = Some(dir.path().join("missing.crt"));
    let error = match auth_center::Application::build(config.clone()).await {
        Ok(_) => panic!("a certificate without a key was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("TLS_KEY_FILE"), "{error}");

    config.tls.key_file = Some(dir.path().join("missing.key"));
    let error = match auth_center::Application::build(config).await {
        Ok(_) => panic!("missing files were accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("missing.crt") && error.contains("cannot read"),
        "{error}"
    );
}

/// Runs `auth-center healthcheck` with `env` (on an empty environment of settings).
fn healthcheck(env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_auth-center"))
        .arg("healthcheck")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .env_remove("LISTEN_ADDR")
        .env_remove("TLS_CERT_FILE")
        .env_remove("TLS_KEY_FILE")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The probe succeeded and printed the status line.
fn assert_healthy(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "HTTP/1.1 200 OK"
    );
}

fn port_of(app: &TestApp) -> String {
    app.address.rsplit(':').next().unwrap().to_owned()
}

#[tokio::test]
async fn healthcheck_asks_the_server_on_its_listen_address_and_fails_when_none_answers() {
    let app = spawn_app(SQLITE_MEMORY).await;
    let listen = format!("0.0.0.0:{}", port_of(&app));
    let out = tokio::task::spawn_blocking(move || healthcheck(&[("LISTEN_ADDR", &listen)]))
        .await
        .unwrap();
    assert_healthy(&out);

    // Nobody listens on the port of a listener that was bound and dropped.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = unused.local_addr().unwrap().to_string();
    drop(unused);
    let out = tokio::task::spawn_blocking(move || healthcheck(&[("LISTEN_ADDR", &listen)]))
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/healthz: cannot connect"), "{stderr}");
}

#[tokio::test]
async fn healthcheck_speaks_tls_to_a_tls_listener() {
    let pem = generate();
    let files = Files::new(&pem);
    let app = spawn_tls_app(&files).await;
    let listen = format!("127.0.0.1:{}", port_of(&app));
    let (cert, key) = (files.cert(), files.key());
    let out = tokio::task::spawn_blocking(move || {
        healthcheck(&[
            ("LISTEN_ADDR", &listen),
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
        ])
    })
    .await
    .unwrap();
    assert_healthy(&out);
}
