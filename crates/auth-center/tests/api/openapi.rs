//! The OpenAPI contract as the server publishes it: `/openapi.json` is OpenAPI 3.1 and
//! describes exactly the routes of the API (those of the route table in docs/http-api.md,
//! both ways), every documented operation is routed and answers no other method, every error
//! answer has its body; the UI at `/docs` is served from the binary under a strict CSP; both
//! are gone with `http.api_docs = false`. Validation against the official OpenAPI 3.1 schema
//! and fuzzing against the contract are in the e2e suite (`tests/e2e/contract.rs`).

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::for_backends;
use crate::helpers::*;

for_backends! { sqlite_memory: [
    the_document_is_openapi_3_1_and_documents_exactly_the_routes_of_http_api_md,
    every_documented_operation_is_routed_and_answers_no_other_method,
    every_operation_has_a_success_answer_and_every_error_answer_a_body,
    the_document_names_its_security_schemes_and_carries_examples,
    the_ui_is_served_from_the_binary_under_a_strict_content_security_policy,
    without_api_docs_neither_the_document_nor_the_ui_is_served,
    the_cli_prints_the_document_the_server_serves,
] }

/// Routes of the table in docs/http-api.md that are not part of the API document, by name:
/// `/metrics` is added around the API by `startup` (Prometheus text, possibly on its own
/// listener), not an operation of the contract.
const NOT_IN_THE_DOCUMENT: &[&str] = &["GET /metrics"];

/// The methods an operation can have.
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

/// Every `METHOD /path` of the document.
fn operations(document: &Value) -> BTreeSet<String> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations
}

/// Every `METHOD /path` of the route table in docs/http-api.md (query strings dropped).
fn routes_of_http_api_md() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/http-api.md"
    ))
    .expect("docs/http-api.md");
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(route, _)| route))
        .filter_map(|route| {
            let (method, path) = route.split_once(' ')?;
            METHODS
                .contains(&method.to_lowercase().as_str())
                .then(|| format!("{method} {}", path.split('?').next().unwrap_or(path)))
        })
        .collect()
}

async fn the_document_is_openapi_3_1_and_documents_exactly_the_routes_of_http_api_md(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "auth-center");

    let documented = operations(&document);
    let table: BTreeSet<String> = routes_of_http_api_md()
        .into_iter()
        .filter(|route| !NOT_IN_THE_DOCUMENT.contains(&route.as_str()))
        .collect();
    assert!(table.len() > 30, "the route table was not read: {table:?}");
    let undocumented: Vec<_> = table.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without documentation: {undocumented:?}"
    );
    let unlisted: Vec<_> = documented.difference(&table).collect();
    assert!(
        unlisted.is_empty(),
        "documented, but not in docs/http-api.md: {unlisted:?}"
    );
}

/// `path` with every `{parameter}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn every_documented_operation_is_routed_and_answers_no_other_method(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = document(&app).await;
    for (path, item) in document["paths"].as_object().unwrap() {
        let url = concrete(path);
        for method in METHODS {
            let response = app
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &url,
                )
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if item.get(method).is_some() {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {url}: {body}"
                );
                assert_ne!(
                    body["message"], "no such route",
                    "{method} {url} is not routed"
                );
            } else {
                assert_eq!(
                    (status, &body["error"]),
                    (
                        StatusCode::METHOD_NOT_ALLOWED,
                        &Value::from("method_not_allowed")
                    ),
                    "{method} {url} answers although it is not documented"
                );
            }
        }
    }
    // A path the document does not have is no route at all.
    assert_error(
        app.get("/v1/undocumented").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn every_operation_has_a_success_answer_and_every_error_answer_a_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = document(&app).await;
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let responses = operation["responses"].as_object().expect(&what);
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{what} has no success answer"
            );
            assert!(
                responses.contains_key("503"),
                "{what}: 503 is not documented"
            );
            for (status, response) in responses {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"];
                assert!(schema.is_object(), "{what} {status} has no error body");
                for name in ["ErrorBody", "OAuthErrorBody"] {
                    assert!(schemas.contains_key(name), "no schema {name}");
                }
            }
            let secured = operation["security"]
                .as_array()
                .is_some_and(|reqs| reqs.iter().any(|r| r.get("bearer").is_some()));
            if secured {
                assert!(
                    responses.contains_key("401"),
                    "{what}: 401 is not documented"
                );
            }
            if operation.get("requestBody").is_some() {
                assert!(
                    responses.contains_key("413"),
                    "{what}: 413 is not documented"
                );
            }
        }
    }
    // The OAuth endpoints answer errors in the RFC 6749 §5.2 shape.
    let token = &document["paths"]["/oauth2/token"]["post"]["responses"];
    assert_eq!(
        token["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/OAuthErrorBody"
    );
    assert_eq!(
        document["paths"]["/v1/login"]["post"]["responses"]["401"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/ErrorBody"
    );
}

async fn the_document_names_its_security_schemes_and_carries_examples(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = document(&app).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["dpop"]["scheme"], "DPoP");
    assert_eq!(schemes["refresh_cookie"]["in"], "cookie");
    assert_eq!(schemes["refresh_cookie"]["name"], "__Host-refresh");
    assert_eq!(schemes["client_secret_basic"]["scheme"], "basic");
    assert_eq!(
        schemes["client_credentials"]["flows"]["clientCredentials"]["tokenUrl"],
        "http://auth.test/oauth2/token"
    );
    // Every scheme an operation names exists.
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.get(name).is_some(), "no security scheme {name}");
                }
            }
        }
    }
    let login = &document["paths"]["/v1/login"]["post"];
    let headers: Vec<&Value> = login["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    for header in ["X-Token-Transport", "Origin", "DPoP"] {
        assert!(
            headers.contains(&&Value::from(header)),
            "{header} in {headers:?}"
        );
    }
    let token_form = &document["paths"]["/oauth2/token"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"];
    assert!(token_form["schema"].is_object(), "{token_form}");
    let schemas = &document["components"]["schemas"];
    for name in [
        "UserResponse",
        "TokenResponse",
        "AuditEntry",
        "ClientResponse",
        "KeyResponse",
    ] {
        assert!(
            schemas[name]["example"].is_object(),
            "{name} has no example"
        );
    }
}

async fn the_ui_is_served_from_the_binary_under_a_strict_content_security_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/docs").await;
    // reqwest follows the redirect to `/docs/`.
    assert_eq!(response.url().path(), "/docs/");
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} not in {csp}");
    }
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    let html = response.text().await.unwrap();
    // No inline script: every script is a file of this server.
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or_default();
        assert!(
            tag.contains("src=\"./"),
            "an inline or foreign script: <script{tag}>"
        );
    }
    let initializer = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status(), StatusCode::OK);
    assert!(initializer.text().await.unwrap().contains("/openapi.json"));
    let bundle = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.headers()["content-security-policy"].to_str().is_ok());
    assert_error(
        app.get("/docs/no-such-file.js").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn without_api_docs_neither_the_document_nor_the_ui_is_served(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.http.api_docs = false).await;
    for path in [
        "/openapi.json",
        "/docs",
        "/docs/",
        "/docs/swagger-ui-bundle.js",
    ] {
        assert_error(app.get(path).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    // The API itself is unchanged.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

async fn the_cli_prints_the_document_the_server_serves(backend: Backend) {
    let app = spawn_app(backend).await;
    let served = document(&app).await;
    let output = crate::cli::auth_center_with_env(
        "sqlite::memory:",
        &[("AUTH_ISSUER", "http://auth.test")],
        &["openapi"],
        "",
    );
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).expect("a JSON document");
    assert_eq!(printed, served);
}
