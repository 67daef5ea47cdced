//! The auth-center's OpenAPI contract checked from outside, with independent tools from PyPI
//! that `scripts/test.sh` installs (pinned) in the test virtualenv:
//!
//! - openapi-spec-validator validates the published `/openapi.json` against the official
//!   OpenAPI 3.1 schema;
//! - Schemathesis fuzzes a running auth-center against that document, a bounded number of
//!   examples per operation from a fixed seed, with the checks for server errors, status
//!   codes and response schemas. The server runs on SQLite and the test Redis with generous
//!   rate limits (a `429` is documented, but fuzzing only `429`s would test nothing), seeded
//!   with an admin and a registered client, so authenticated operations get exercised.
//!
//! Without the virtualenv the tests are skipped, except in CI (`CI=true`), where that is a
//! failure.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::python::{run_bounded, venv_python};

/// Longest one Schemathesis run may take (every run so far has taken far less).
const FUZZ_BOUND: Duration = Duration::from_secs(300);
/// Longest the validator may take.
const VALIDATE_BOUND: Duration = Duration::from_secs(60);
/// Test cases per operation and phase.
const MAX_EXAMPLES: &str = "15";
/// A fixed seed, and deterministic generation: the same cases on every run.
const SEED: &str = "20261126";

/// The tool `name` of the virtualenv whose interpreter is `python`.
fn venv_tool(python: &str, name: &str) -> String {
    std::path::Path::new(python)
        .with_file_name(name)
        .to_string_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_document_validates_against_the_openapi_3_1_schema() {
    let Some(python) = venv_python() else {
        return;
    };
    let center = AuthCenter::spawn(Store::Standalone).await;
    let document: Value = center
        .request(reqwest::Method::GET, "/openapi.json")
        .send()
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("a JSON document");
    assert_eq!(document["openapi"], "3.1.0");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).expect("write the document");
    let output = run_bounded(
        tokio::process::Command::new(venv_tool(&python, "openapi-spec-validator"))
            .args(["--schema", "3.1", "--validation-errors", "all"])
            .arg(&file),
        VALIDATE_BOUND,
    )
    .await
    .expect("openapi-spec-validator finishes within VALIDATE_BOUND");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "the document does not validate ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One Schemathesis run against `center` with `extra` arguments (filters, credentials);
/// panics with its report when it finds anything.
async fn fuzz(python: &str, center: &AuthCenter, what: &str, extra: &[&str]) {
    let started = Instant::now();
    let output = run_bounded(
        tokio::process::Command::new(venv_tool(python, "st"))
            .arg("run")
            .arg(format!("{}/openapi.json", center.address))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                MAX_EXAMPLES,
                "--seed",
                SEED,
                "--generation-deterministic",
                "--generation-database",
                "none",
                "--workers",
                "1",
                "--request-timeout",
                "20",
                "--no-color",
            ])
            .args(extra),
        FUZZ_BOUND,
    )
    .await
    .unwrap_or_else(|| panic!("Schemathesis ({what}) takes longer than {FUZZ_BOUND:?}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "Schemathesis ({what}) took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "Schemathesis ({what}) found problems ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_contract() {
    let Some(python) = venv_python() else {
        return;
    };
    let center = AuthCenter::spawn_with(Store::Standalone.shared_target(), |c| {
        let l = &mut c.limits;
        for max in [
            &mut l.login_ip_max,
            &mut l.login_account_ip_failures_max,
            &mut l.login_account_failures_max,
            &mut l.register_ip_max,
            &mut l.refresh_ip_max,
            &mut l.login_device_failures_max,
            &mut l.client_auth_ip_failures_max,
        ] {
            *max = 1_000_000;
        }
    })
    .await;
    let admin = center.admin_login("root").await;
    let made = center
        .request(reqwest::Method::POST, "/v1/admin/clients")
        .bearer_auth(&admin.access_token)
        .json(&json!({"client_id": "fuzzer", "introspect": true, "scopes": ["read"]}))
        .send()
        .await
        .expect("register a client");
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.expect("the client");
    let secret = made["client_secret"]
        .as_str()
        .expect("a secret")
        .to_string();

    // The API under /v1 as an admin, but the operations that end the caller's session or
    // withdraw the key that signed its token: they run last, below.
    let bearer = format!("Authorization: Bearer {}", admin.access_token);
    let last = "^/v1/(logout|logout-all|admin/keys/rotate)$";
    fuzz(
        &python,
        &center,
        "/v1 as an admin",
        &[
            "--include-path-regex",
            "^/v1/",
            "--exclude-path-regex",
            last,
            "--header",
            &bearer,
        ],
    )
    .await;
    // The OAuth endpoints, the JWKS, the metadata and health, as a registered client
    // (`client_secret_basic`); introspection as a client too.
    let basic = format!("fuzzer:{secret}");
    fuzz(
        &python,
        &center,
        "OAuth and public routes as a client",
        &[
            "--exclude-path-regex",
            "^/v1/(?!introspect$)",
            "--auth",
            &basic,
        ],
    )
    .await;
    let last_admin = center.login_ok("root").await;
    let bearer = format!("Authorization: Bearer {}", last_admin.access_token);
    fuzz(
        &python,
        &center,
        "logout and key rotation",
        &["--include-path-regex", last, "--header", &bearer],
    )
    .await;
}
