//! `POST /v1/introspect` (RFC 7662), over `domain/introspection.rs`. Two kinds of caller:
//!
//! - an access token with the `introspect` or `admin` role, `Bearer` or `DPoP` with its
//!   proof (any `Authorization` other than Basic, or none and no client parameter): errors
//!   in the common shape, as always;
//! - a client authenticating as at the token endpoint (`Authorization: Basic`, or the form's
//!   client parameters): errors in the OAuth shape (RFC 7662 §2.3, RFC 6749 §5.2).

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{self, Client, MediaType, RawBody};
use super::oauth::{
    ClientAuthParams, INTROSPECTION_ENDPOINT_PATH, OAuthError, Params, client_credentials,
    endpoint_url,
};
use crate::domain::AuthError;
use crate::domain::introspection::{Introspection, Introspector};

/// Body of an introspection request (RFC 7662): form-encoded or JSON.
#[derive(Deserialize, ToSchema)]
pub(super) struct IntrospectRequest {
    /// The token to introspect: an access token; anything else is inactive.
    token: String,
}

/// The form of an introspection request, for the OpenAPI document: the token, a hint, and
/// a client's authentication in the body (read by `Params` and `client_credentials`).
#[derive(ToSchema)]
#[allow(dead_code)] // never built: the form is read as `Params` (RFC 6749 §3.2 rules)
pub(super) struct IntrospectForm {
    /// The token to introspect.
    token: String,
    /// Ignored (`access_token` or `refresh_token`).
    token_type_hint: Option<String>,
    #[schema(inline)]
    #[serde(flatten)]
    client: ClientAuthParams,
}

/// `POST /v1/introspect`. Anything but an active access token is `{"active": false}`.
#[utoipa::path(post, path = "/introspect", tag = "oauth2",
    summary = "Token introspection (RFC 7662)",
    description = "For a bearer caller with the `introspect` or `admin` role (errors in the common shape), or a client registered with `introspect` authenticating as at the token endpoint (errors in the OAuth shape). Media types are compared without case, parameters ignored.",
    request_body(content(
        (IntrospectForm = "application/x-www-form-urlencoded"),
        (IntrospectRequest = "application/json"),
    )),
    security(("bearer" = []), ("dpop" = []), ("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "The RFC 7662 members of an active access token, or exactly `{\"active\": false}` for anything else; never cached. An outage is never `active: false`.", body = IntrospectionResponse),
        (status = 400, description = "`invalid_request` (no token; a malformed body; more than one client authentication method)."),
        (status = 401, description = "A token error of the bearer caller, or `invalid_client` (client authentication failed)."),
        (status = 403, description = "`forbidden`: the bearer caller lacks the `introspect` and `admin` roles; `unauthorized_client`: the client may not introspect."),
        (status = 429, description = "`rate_limited`: too many failed client authentications from this network."),
    ))]
pub(super) async fn introspect(
    State(auth): AppState,
    Client(info): Client,
    parts: Parts,
    body: Result<RawBody, ApiError>,
) -> Response {
    let headers = &parts.headers;
    let authorization = headers.get(header::AUTHORIZATION);
    let basic = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let form = match &body {
        Ok(RawBody(MediaType::Form, bytes)) => Some(Params::parse(bytes)),
        _ => None,
    };
    // A client_id alone makes a client only when no Authorization header says otherwise.
    let client_parameters = matches!(&form,
        Some(Ok(params)) if params.has_client_parameters(authorization.is_none()));
    if !basic && !client_parameters {
        return as_bearer(&auth, &parts, body)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    let answer = async {
        let (params, token) = match (form, body) {
            (Some(params), _) => {
                let params = params?;
                let token = params.required("token")?.to_string();
                (Some(params), token)
            }
            (None, body) => (None, json_token(body?)?),
        };
        let empty = Params::parse(b"")?;
        let credentials = client_credentials(headers, params.as_ref().unwrap_or(&empty))?;
        let url = endpoint_url(&auth, INTROSPECTION_ENDPOINT_PATH);
        let client = auth.authenticate_client(credentials, &url, &info).await?;
        auth.introspect(Introspector::Client(&client), &token)
            .await
            .map_err(|e| match e {
                // Authenticated, but not allowed to introspect at all.
                AuthError::UnauthorizedClient(m) => {
                    OAuthError::new(StatusCode::FORBIDDEN, "unauthorized_client", m)
                }
                e => e.into(),
            })
    };
    match answer.await {
        Ok(introspection) => answer_json(introspection),
        Err(e) => e.into_response(),
    }
}

/// The caller with an access token (`Bearer`, or `DPoP` with its proof): the token is
/// checked before the body is read, as ever.
async fn as_bearer(
    auth: &crate::domain::AuthService,
    parts: &Parts,
    body: Result<RawBody, ApiError>,
) -> Result<Response, ApiError> {
    let caller = extract::authenticated(auth, parts).await?;
    let RawBody(media, body) = body?;
    // Every problem with the body is `invalid_request` here, a syntax error included.
    let request: IntrospectRequest = match media {
        MediaType::Form => extract::form(&body),
        MediaType::Json => extract::json_object(&body),
    }
    .map_err(|e| e.into_api_error("invalid_request"))?;
    let introspection = auth
        .introspect(Introspector::Bearer(&caller), &request.token)
        .await?;
    Ok(answer_json(introspection))
}

/// The token of a JSON body (a client authenticating with Basic may send JSON too).
fn json_token(body: RawBody) -> Result<String, OAuthError> {
    let RawBody(_, body) = body;
    extract::json_object::<IntrospectRequest>(&body)
        .map(|r| r.token)
        .map_err(|e| e.into_api_error("invalid_request").into())
}

/// An introspection answer (RFC 7662 §2.2): every member but `active` is present for an
/// active token only.
#[derive(Serialize, ToSchema, Default)]
#[schema(example = json!({
    "active": true, "token_type": "Bearer", "client_id": "first-party", "username": "alice",
    "iss": "https://auth.example", "sub": "5f0c6f9e-8d1c-4b7e-9a35-2f6d1e0b9c47", "aud": ["api"],
    "exp": 1768470300, "iat": 1768469400, "nbf": 1768469400, "jti": "Qm9vbGVhbg",
    "sid": "3q2-7w-f4kZ9s1n0", "roles": ["admin"]
}))]
pub(super) struct IntrospectionResponse {
    active: bool,
    /// `Bearer`, or `DPoP` for a DPoP-bound token (RFC 9449 §5).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    /// The audience: a string or an array of strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    aud: Option<verifier::Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    /// The key a DPoP-bound token is bound to, so a resource server can check the proof
    /// (RFC 9449 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// The confirmation of a DPoP-bound token (RFC 9449 §6.1).
#[derive(Serialize, ToSchema)]
pub(super) struct Confirmation {
    /// The JWK SHA-256 thumbprint of the key.
    jkt: String,
}

/// The answer: the RFC 7662 members of an active token, or exactly `{"active": false}`;
/// never stored by a cache.
fn answer_json(introspection: Option<Introspection>) -> Response {
    let body = introspection.map(active_json).unwrap_or_default();
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn active_json(
    Introspection {
        claims: c,
        username,
    }: Introspection,
) -> IntrospectionResponse {
    IntrospectionResponse {
        active: true,
        // RFC 7662 §2.2: the token type of RFC 6749 §5.1, `DPoP` for a DPoP-bound token as
        // the token endpoint names it (RFC 9449 §5).
        token_type: Some(if c.cnf.is_some() { "DPoP" } else { "Bearer" }),
        client_id: c.client_id,
        scope: c.scope,
        username,
        iss: Some(c.iss),
        sub: Some(c.sub),
        aud: Some(c.aud),
        exp: Some(c.exp),
        iat: Some(c.iat),
        nbf: c.nbf,
        jti: Some(c.jti),
        sid: Some(c.sid),
        roles: Some(c.roles),
        cnf: c.cnf.map(|cnf| Confirmation { jkt: cnf.jkt }),
    }
}
