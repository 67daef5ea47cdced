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
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{self, Client, MediaType, RawBody};
use super::oauth::{
    INTROSPECTION_ENDPOINT_PATH, OAuthError, Params, client_credentials, endpoint_url,
};
use crate::domain::AuthError;
use crate::domain::introspection::{Introspection, Introspector};

/// Body of an introspection request (RFC 7662): form-encoded or JSON.
#[derive(Deserialize)]
pub(super) struct IntrospectRequest {
    token: String,
}

/// `POST /v1/introspect`. Anything but an active access token is `{"active": false}`.
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

/// The answer: the RFC 7662 members of an active token, or exactly `{"active": false}`;
/// never stored by a cache.
fn answer_json(introspection: Option<Introspection>) -> Response {
    let body = match introspection {
        Some(i) => active_json(i),
        None => json!({ "active": false }),
    };
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
) -> Value {
    let mut body = Map::new();
    body.insert("active".into(), true.into());
    // RFC 7662 §2.2: the token type of RFC 6749 §5.1, `DPoP` for a DPoP-bound token as the
    // token endpoint names it (RFC 9449 §5).
    let token_type = if c.cnf.is_some() { "DPoP" } else { "Bearer" };
    body.insert("token_type".into(), token_type.into());
    let optional = [
        ("client_id", c.client_id),
        ("scope", c.scope),
        ("username", username),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            body.insert(name.into(), value.into());
        }
    }
    body.insert("iss".into(), c.iss.into());
    body.insert("sub".into(), c.sub.into());
    body.insert("aud".into(), json!(c.aud));
    body.insert("exp".into(), c.exp.into());
    body.insert("iat".into(), c.iat.into());
    if let Some(nbf) = c.nbf {
        body.insert("nbf".into(), nbf.into());
    }
    body.insert("jti".into(), c.jti.into());
    body.insert("sid".into(), c.sid.into());
    body.insert("roles".into(), json!(c.roles));
    // A DPoP-bound token: its key, so a resource server can check the proof (RFC 9449 §6.2).
    if let Some(cnf) = c.cnf {
        body.insert("cnf".into(), json!({ "jkt": cnf.jkt }));
    }
    Value::Object(body)
}
