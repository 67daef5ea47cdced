//! The API's contract: the OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations (`mod.rs` registers each route and its documentation together
//! with utoipa-axum's `routes!`, so a route cannot be served undocumented), completed here with
//! what every operation shares: the security schemes, the error bodies and the answers that
//! the layers and extractors give on any route. Published at [`DOCUMENT_PATH`], with Swagger
//! UI (built into the binary, nothing fetched at run time) at [`UI_PATH`], when
//! `http.api_docs` is on.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa_swagger_ui::Config as UiConfig;

use super::error::ApiError;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where the reference UI is served.
pub const UI_PATH: &str = "/docs";

/// The Content-Security-Policy of the UI's files: Swagger UI's scripts and styles from this
/// server only (its `index.html` has no inline script; its components set inline `style`
/// attributes, and its icons are `data:` images), requests to this origin only, never framed.
const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The fixed parts of the document: its description and the tags of the operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-center",
        description = "Logs users in over REST and issues access JWTs (EdDSA, RFC 9068) and \
rotating refresh tokens whose sessions live in Redis; the admin API; token introspection \
(RFC 7662), revocation (RFC 7009) and the OAuth 2 token endpoint for registered clients. \
Errors are `{\"error\", \"message\"}`, except at the OAuth endpoints (`/oauth2/*`, and \
`/v1/introspect` with client authentication), which answer RFC 6749 §5.2 \
`{\"error\", \"error_description\"}`. The prose reference is docs/http-api.md.",
    ),
    tags(
        (name = "sessions", description = "Registration, login, refresh and logout: the token \
response, cookie mode for browsers (the refresh token in the `__Host-refresh` cookie, \
`X-Token-Transport: cookie` and an allowed `Origin` against CSRF), DPoP binding."),
        (name = "account", description = "The caller's own account: who am I, \"your devices\" \
(the caller's sessions), the password change."),
        (name = "admin", description = "Users, roles, sessions and the audit log, for the \
`admin` role."),
        (name = "clients", description = "Registered OAuth clients, for the `admin` role. A new \
secret is shown once, in the answer that made it."),
        (name = "keys", description = "Signing keys: the published JWKS and, for the `admin` \
role, their states and rotation."),
        (name = "oauth2", description = "The OAuth 2 endpoints for registered clients: the token \
endpoint, revocation, introspection and the RFC 8414 metadata. Client authentication: \
`client_secret_basic`, `client_secret_post` or `private_key_jwt` (RFC 7523), exactly one per \
request."),
        (name = "health", description = "Liveness and readiness."),
    )
)]
pub(super) struct ApiDoc;

/// The security schemes that the operations' `security` name.
fn security_schemes(issuer: &str) -> Value {
    json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token (`typ: at+jwt`, EdDSA) from a login, a refresh or \
    the token endpoint: `Authorization: Bearer <token>`. Its session must still exist.",
        },
        "dpop": {
            "type": "http",
            "scheme": "DPoP",
            "description": "A DPoP-bound access token (RFC 9449): `Authorization: DPoP <token>` \
    and a `DPoP` header with a proof for this request (`htm`, `htu`, and `ath`, the token's hash) \
    signed by the key the token is bound to (`cnf.jkt`).",
        },
        "refresh_cookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "__Host-refresh",
            "description": "Cookie mode for browsers: the refresh token in a `__Host-` cookie \
    (HttpOnly, Secure, SameSite=Strict), set by a login with `X-Token-Transport: cookie`. A request \
    it authenticates must carry `X-Token-Transport: cookie` and an `Origin` from \
    `AUTH_BROWSER__ALLOWED_ORIGINS` (CSRF protection), else `403 csrf_rejected`.",
        },
        "client_secret_basic": {
            "type": "http",
            "scheme": "basic",
            "description": "Client authentication with the client id and secret, each \
    form-urlencoded, as Basic credentials (RFC 6749 §2.3.1). The form's `client_id` and \
    `client_secret` (`client_secret_post`) and `client_assertion` with `client_assertion_type` \
    (`private_key_jwt`, RFC 7523) are the other methods; exactly one per request.",
        },
        "client_credentials": {
            "type": "oauth2",
            "description": "The client-credentials grant of a registered confidential client: \
    an access token of its own (`sub` = the client id) with its registered roles and scopes.",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": format!("{}/oauth2/token", issuer.trim_end_matches('/')),
                    "scopes": {},
                },
            },
        },
    })
}

/// The error bodies: the common one (`verifier::ErrorBody`, shared with every downstream
/// service), the OAuth one (`OAuthError`), and the answer of a failed readiness check
/// (`service_kit::ready`); and the JWKS (`domain::keys::Jwks`). These shapes are built
/// outside `http/` (the verifier, service-kit, the domain), which knows nothing of OpenAPI.
fn shared_schemas() -> Value {
    let code = |example: &str| json!({"type": "string", "description": "A stable, machine-readable code.", "examples": [example]});
    json!({
        "ErrorBody": {
            "type": "object",
            "description": "An error: a stable code and a message for people.",
            "required": ["error", "message"],
            "properties": {
                "error": code("invalid_credentials"),
                "message": {"type": "string", "examples": ["invalid username or password"]},
            },
        },
        "OAuthErrorBody": {
            "type": "object",
            "description": "An error of an OAuth endpoint (RFC 6749 §5.2).",
            "required": ["error", "error_description"],
            "properties": {
                "error": code("invalid_client"),
                "error_description": {"type": "string", "examples": ["client authentication failed"]},
            },
        },
        "Readiness": {
            "type": "object",
            "description": "Each check by name: `ok`, or `error: <reason>`. Not ready: also the \
    common error members.",
            "required": ["status", "checks"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "unavailable"]},
                "checks": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "examples": [{"database": "ok", "redis": "ok"}],
                },
                "error": {"type": "string", "const": "unavailable"},
                "message": {"type": "string"},
            },
        },
        "Jwks": {
            "type": "object",
            "description": "The published verification keys (RFC 7517): the signing key first, \
    then pending and retired keys.",
            "required": ["keys"],
            "properties": {
                "keys": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kty", "crv", "x", "kid", "alg", "use"],
                        "properties": {
                            "kty": {"type": "string", "const": "OKP"},
                            "crv": {"type": "string", "const": "Ed25519"},
                            "x": {"type": "string", "description": "The public key, base64url."},
                            "kid": {"type": "string"},
                            "alg": {"type": "string", "const": "EdDSA"},
                            "use": {"type": "string", "const": "sig"},
                        },
                    },
                },
            },
        },
    })
}

/// The finished document: the generated one plus the shared parts, as JSON.
pub(super) fn document(generated: utoipa::openapi::OpenApi, issuer: &str) -> Value {
    let mut document = serde_json::to_value(generated).unwrap_or_else(|_| json!({}));
    let components = ensure_object(&mut document, "components");
    ensure_object(components, "schemas")
        .as_object_mut()
        .into_iter()
        .for_each(|schemas| {
            if let Value::Object(shared) = shared_schemas() {
                schemas.extend(shared);
            }
        });
    components["securitySchemes"] = security_schemes(issuer);
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                complete_operation(path, operation);
            }
        }
    }
    document
}

/// `value[key]` as an object, made one if it was missing or something else.
fn ensure_object<'v>(value: &'v mut Value, key: &str) -> &'v mut Value {
    let slot = &mut value[key];
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Which error body a route answers with, for a given status.
fn error_schema(path: &str, status: &str) -> Value {
    let either = || json!({"anyOf": [schema_ref("ErrorBody"), schema_ref("OAuthErrorBody")]});
    // Introspection answers a bearer caller in the common shape and a client in the OAuth
    // one; the body deadline, the declared-size check and the request timeout answer every
    // route in the common shape, before the OAuth handler runs.
    if path == "/v1/introspect"
        || (path.starts_with("/oauth2/") && ["408", "413", "503"].contains(&status))
    {
        either()
    } else if path.starts_with("/oauth2/") {
        schema_ref("OAuthErrorBody")
    } else {
        schema_ref("ErrorBody")
    }
}

/// Adds to one operation the answers every route of its kind can give (documented once
/// here rather than on every handler), and the error body of every error answer.
fn complete_operation(path: &str, operation: &mut Value) {
    let has_body = operation.get("requestBody").is_some();
    let params = |place: &str| {
        operation["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == place))
    };
    let (path_params, query_params) = (params("path"), params("query"));
    let bearer = operation["security"]
        .as_array()
        .is_some_and(|reqs| reqs.iter().any(|r| r.get("bearer").is_some()));
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status)
            .or_insert_with(|| json!({ "description": description }));
    };
    if has_body {
        add(
            "400",
            "The body is malformed or not what the route takes (`invalid_json`, `invalid_request`): not an object, an unknown, missing, repeated or mistyped member.",
        );
        add(
            "408",
            "`request_timeout`: the body did not arrive within `AUTH_HTTP__BODY_READ_TIMEOUT_MS` of the head.",
        );
        add("413", "`payload_too_large`: the body is over 16 KiB.");
        if !path.starts_with("/oauth2/") {
            add(
                "415",
                "`unsupported_media_type`: the body's `Content-Type` is not one the route takes.",
            );
        }
    }
    if path_params || query_params {
        add(
            "400",
            "`invalid_request`: a parameter is malformed, out of range or repeated.",
        );
    }
    if path_params {
        add("404", "`not_found`: no such resource.");
    }
    if bearer {
        add(
            "401",
            "A token error (RFC 6750 §3.1, RFC 9449 §7.1), with `WWW-Authenticate`: `invalid_token` (missing, malformed or badly signed, wrong audience, not yet valid), `token_expired`, `session_revoked` (the session has ended), `invalid_dpop_proof`.",
        );
    }
    if path.starts_with("/v1/admin/") {
        add("403", "`forbidden`: the token lacks the `admin` role.");
    }
    add(
        "503",
        "`unavailable` (a backend is unreachable), `overloaded` (too many password hashes queued) or, at the OAuth endpoints, `temporarily_unavailable`; the request took longer than 15 s; with `Retry-After`.",
    );
    for (status, response) in responses.iter_mut() {
        if !status.starts_with('4') && !status.starts_with('5') {
            continue;
        }
        if response.get("content").is_none() {
            response["content"] =
                json!({"application/json": {"schema": error_schema(path, status)}});
        }
        let header = match status.as_str() {
            "401" => Some((
                "WWW-Authenticate",
                "The challenge: `Bearer error=\"invalid_token\"`, `DPoP error=…` with the accepted `algs`, or `Basic` for a failed client authentication.",
            )),
            "429" | "503" => Some(("Retry-After", "Seconds to wait before retrying.")),
            _ => None,
        };
        if let Some((name, description)) = header {
            ensure_object(response, "headers")[name] =
                json!({"description": description, "schema": {"type": "string"}});
        }
    }
}

/// `GET /openapi.json` and the UI under `/docs`, serving `document`.
pub(super) fn routes<S: Clone + Send + Sync + 'static>(document: &Value) -> Router<S> {
    let json = Bytes::from(document.to_string());
    let ui = Arc::new(UiConfig::from(DOCUMENT_PATH).try_it_out_enabled(true));
    let file = move |tail: Option<Path<String>>| {
        let ui = ui.clone();
        async move { ui_file(tail.as_ref().map_or("", |Path(tail)| tail.as_str()), ui) }
    };
    Router::new()
        .route(
            DOCUMENT_PATH,
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        json,
                    )
                }
            }),
        )
        .route(UI_PATH, get(|| async { Redirect::permanent("/docs/") }))
        .route("/docs/", get(file.clone()))
        .route("/docs/{*file}", get(file))
}

/// One of Swagger UI's files, with the UI's Content-Security-Policy; `404` in the common
/// shape for a file it does not have.
fn ui_file(tail: &str, ui: Arc<UiConfig<'static>>) -> Response {
    let file = match utoipa_swagger_ui::serve(tail, ui) {
        Ok(Some(file)) => file,
        Ok(None) => {
            return ApiError::http(StatusCode::NOT_FOUND, "not_found", "no such file")
                .into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "Swagger UI file");
            return ApiError::from(crate::domain::AuthError::internal(
                "serve a Swagger UI file",
            ))
            .into_response();
        }
    };
    let mut response = file.bytes.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(content_type) = HeaderValue::from_str(&file.content_type) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(UI_CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
