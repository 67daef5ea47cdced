//! Extractors whose rejections use the common error shape.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use service_kit::access::RequestId;
use verifier::{AccessToken, Claims, VerifyError};

use super::error::ApiError;
use super::repeated::{self, JsonKind};
use crate::domain::{AuthService, ClientInfo};

/// `Json<T>` whose rejections (bad syntax, wrong content type, too large, not an object,
/// a member repeated at any depth, unknown or missing fields) answer in the common error
/// shape.
pub(super) struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // axum checks the content type, the size and the syntax; the text is kept as sent,
        // because a map in between would hide repeated members.
        let axum::Json(raw) =
            axum::Json::<Box<serde_json::value::RawValue>>::from_request(req, state)
                .await
                .map_err(json_rejection)?;
        json_object(raw.get().as_bytes())
            .map(ApiJson)
            .map_err(|e| e.into_api_error("invalid_json"))
    }
}

/// `Option<ApiJson<T>>`: `None` for an empty body; any body at all must be a JSON object
/// as above (a body without a JSON content type is refused, not ignored).
impl<S, T> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(Request::from_parts(parts.clone(), body), state).await?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// The whole body, within the route's size limit; a refusal in the common error shape.
pub(super) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
            _ => ApiError::http(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request body could not be read",
            ),
        })
}

fn payload_too_large() -> ApiError {
    ApiError::http(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is too large",
    )
}

/// Why a body could not be read.
#[derive(Debug)]
pub(super) enum BodyError {
    /// Not valid JSON (or form encoding).
    Syntax(String),
    /// Well-formed, but not what the route takes: not an object, a member or parameter
    /// repeated, an unknown, missing or mistyped field.
    Invalid(String),
}

impl BodyError {
    /// The common error: `400` with `syntax_code` for a syntax error, `invalid_request`
    /// otherwise.
    pub(super) fn into_api_error(self, syntax_code: &'static str) -> ApiError {
        match self {
            BodyError::Syntax(message) => {
                ApiError::http(StatusCode::BAD_REQUEST, syntax_code, message)
            }
            BodyError::Invalid(message) => {
                ApiError::http(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
        }
    }
}

/// A JSON body as `T`: it must be an object, and no member may appear twice in any object
/// of it.
pub(super) fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    match repeated::check_json(body) {
        Ok(JsonKind::Object) => {}
        // serde would otherwise accept a struct written as an array.
        Ok(JsonKind::Other) => {
            return Err(BodyError::Invalid(
                "the request body must be a JSON object".into(),
            ));
        }
        Err(e) if e.is_data() => {
            return Err(BodyError::Invalid(format!("invalid request body: {e}")));
        }
        Err(_) => {
            return Err(BodyError::Syntax(
                "the request body is not valid JSON".into(),
            ));
        }
    }
    serde_json::from_slice(body)
        .map_err(|e| BodyError::Invalid(format!("invalid request body: {e}")))
}

/// An `application/x-www-form-urlencoded` body as `T`; no parameter may appear twice
/// (RFC 6749 §3.2).
pub(super) fn form<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    repeated::check_params(body).map_err(|e| BodyError::Invalid(format!("invalid form: {e}")))?;
    serde_urlencoded::from_bytes(body).map_err(|e| BodyError::Invalid(format!("invalid form: {e}")))
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::http(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a body with Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::http(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body must be a JSON object",
        ),
        _ => ApiError::http(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the request body is not valid JSON",
        ),
    }
}

/// The caller's IP (the TCP peer, or the forwarded client when the peer is a trusted
/// proxy), user agent and the request's id.
pub(super) struct Client(pub ClientInfo);

/// The request's `X-Forwarded-For` values, joined with commas; `None` without any.
pub(super) fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<String> {
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!forwarded.is_empty()).then(|| forwarded.join(","))
}

impl FromRequestParts<Arc<AuthService>> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        auth: &Arc<AuthService>,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = forwarded_for(&parts.headers);
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| auth.client_ip(addr.ip(), forwarded.as_deref()).to_string())
            .unwrap_or_default();
        // Browsers may send UTF-8 here; bytes that are not UTF-8 become U+FFFD.
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let device_token = super::cookie::device_cookie(&parts.headers).map(SecretString::from);
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.as_str().to_owned());
        Ok(Client(ClientInfo {
            ip,
            user_agent,
            device_token,
            request_id,
        }))
    }
}

/// Query parameters whose rejection uses the common error shape; a parameter that appears
/// twice is refused.
pub(super) struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        repeated::check_params(query.as_bytes()).map_err(|e| {
            ApiError::http(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("invalid query string: {e}"),
            )
        })?;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::http(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
    }
}

/// A caller with a valid access token whose session is alive: `Authorization: Bearer`, or
/// `Authorization: DPoP` with a `DPoP` proof for this request and token, checked as every
/// verifier checks them (a DPoP-bound token is refused as a bearer token).
pub(super) struct Authenticated(pub Claims);

impl FromRequestParts<Arc<AuthService>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        auth: &Arc<AuthService>,
    ) -> Result<Self, Self::Rejection> {
        authenticated(auth, parts).await.map(Authenticated)
    }
}

/// The claims of the request's access token, checked as [`Authenticated`] says: for a
/// handler that decides for itself whether the caller presents a token at all.
pub(super) async fn authenticated(auth: &AuthService, parts: &Parts) -> Result<Claims, ApiError> {
    let (token, proof) = match verifier::access_token(&parts.headers) {
        None => return Err(VerifyError::Invalid("missing bearer token").into()),
        Some(AccessToken::Bearer(token)) => (token, None),
        Some(AccessToken::Dpop(token)) => {
            let proof = super::dpop::presented_proof(auth, parts, token)
                .map_err(VerifyError::InvalidDpopProof)?;
            (token, Some(proof))
        }
    };
    Ok(auth.authenticate(token, proof.as_ref()).await?)
}

/// Path parameters whose rejection (a segment that is not UTF-8, say) uses the common
/// error shape.
pub(super) struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| {
                ApiError::http(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("invalid path: {}", e.body_text()),
                )
            })
    }
}

/// A body's media type, as far as the routes that take more than one care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaType {
    /// `application/json`
    Json,
    /// `application/x-www-form-urlencoded`
    Form,
}

/// The media type of a body, from the essence of its `Content-Type` (parameters dropped,
/// compared without regard to case): JSON, a form, or `None` for anything else.
pub(super) fn media_type(headers: &axum::http::HeaderMap) -> Option<MediaType> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Some(MediaType::Json),
        Some("application/x-www-form-urlencoded") => Some(MediaType::Form),
        _ => None,
    }
}

/// The whole body as bytes, with the size limit and read errors in the common error shape,
/// and its media type: the essence of `Content-Type` (parameters dropped, compared without
/// regard to case), JSON or a form; anything else, or none, is `415`.
pub(super) struct RawBody(pub MediaType, pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media = match media_type(req.headers()) {
            Some(media) => media,
            None => {
                return Err(ApiError::http(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "expected Content-Type: application/json or application/x-www-form-urlencoded",
                ));
            }
        };
        let bytes = read_body(req, state).await?;
        Ok(RawBody(media, bytes))
    }
}
