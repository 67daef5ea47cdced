//! The auth-center's OpenAPI contract checked from outside, with independent tools from PyPI
//! that `scripts/test.sh` installs (pinned) in the test virtualenv:
//!
//! - openapi-spec-validator validates the published `/openapi.json` against the official
//!   OpenAPI 3.1 schema;
//! - Schemathesis fuzzes a running auth-center against that document, a bounded number of
//!   examples per operation, deterministically, with the checks for server errors, status
//!   codes and response schemas (and the documented content types and response headers). The server runs on SQLite and the test Redis with generous
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

/// One Schemathesis run against `center` with `extra` arguments (filters, credentials) and,
/// when given, a configuration file (`schemathesis.toml`); panics with its report when it finds
/// anything.
async fn fuzz(
    python: &str,
    center: &AuthCenter,
    what: &str,
    config: Option<&std::path::Path>,
    extra: &[&str],
) {
    let started = Instant::now();
    // Run in a directory of its own: Schemathesis keeps a cache of the crashes it found
    // (`.schemathesis/`) in its working directory, which would steer the next run.
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut command = tokio::process::Command::new(venv_tool(python, "st"));
    command.current_dir(cwd.path());
    if let Some(config) = config {
        command.arg("--config-file").arg(config);
    }
    let output = run_bounded(
        command
            .arg("run")
            .arg(format!("{}/openapi.json", center.address))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,response_schema_conformance,\
                 content_type_conformance,response_headers_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                MAX_EXAMPLES,
                // The same cases on every run; implies no example database, so nothing is
                // remembered between runs either.
                "--generation-deterministic",
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
        "Schemathesis ({what}) took {:.1} s:\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "Schemathesis ({what}) found problems ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The operations that end sessions or withdraw keys: fuzzed apart, so that the admin whose
/// token the fuzzer uses keeps it for the rest (Schemathesis reuses the ids it saw in answers,
/// the admin's own among them).
const ENDING_A_USER: &str =
    "^/v1/(sessions/\\{sid\\}|admin/users/\\{id\\}/(roles|disable|sessions|sessions/\\{sid\\}))$";
const ENDING_THE_CALLER: &str = "^/v1/(logout|logout-all|admin/keys/rotate)$";

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

    // First, as the registered client (`client_secret_basic`): the OAuth endpoints and
    // introspection, the JWKS, the metadata and health (the admin API below may disable it).
    let basic = format!("fuzzer:{secret}");
    fuzz(
        &python,
        &center,
        "OAuth and public routes as a client",
        None,
        &[
            "--exclude-path-regex",
            "^/v1/(?!introspect$)",
            "--auth",
            &basic,
        ],
    )
    .await;
    // The API under /v1 as an admin, but the operations that could end the admin's session.
    let bearer = format!("Authorization: Bearer {}", admin.access_token);
    let ending = format!("{ENDING_A_USER}|{ENDING_THE_CALLER}");
    fuzz(
        &python,
        &center,
        "/v1 as an admin",
        None,
        &[
            "--include-path-regex",
            "^/v1/",
            "--exclude-path-regex",
            &ending,
            "--header",
            &bearer,
        ],
    )
    .await;
    // Those that end a user's sessions, aimed at a user who has one.
    let victim = center
        .auth
        .create_user("victim", secrecy::SecretString::from(PASSWORD), vec![])
        .await
        .expect("create a user");
    let session = center.login_ok("victim").await.session_id;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[parameters]\n\"path.id\" = \"{}\"\n\"path.sid\" = \"{session}\"\n",
            victim.id
        ),
    )
    .expect("write schemathesis.toml");
    fuzz(
        &python,
        &center,
        "ending a user's sessions",
        Some(&config),
        &["--include-path-regex", ENDING_A_USER, "--header", &bearer],
    )
    .await;
    // Last, those that end the caller's own session or its key.
    fuzz(
        &python,
        &center,
        "logout and key rotation",
        None,
        &[
            "--include-path-regex",
            ENDING_THE_CALLER,
            "--header",
            &bearer,
        ],
    )
    .await;
}
