//! The OAuth 2 endpoints over `domain/oauth.rs` and `domain/clients.rs`: `POST /oauth2/token`
//! (RFC 6749), `POST /oauth2/revoke` (RFC 7009) and the RFC 8414 metadata; and what they
//! share with introspection: form parameters (RFC 6749 §3.2), the client authentication of a
//! request, and errors in the RFC 6749 §5.2 shape `{"error", "error_description"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use verifier::contract::RETRY_AFTER_SECS;

use super::AppState;
use super::dpop::{DpopHeader, token_endpoint_proof};
use super::error::{ApiError, basic_challenge, log_cause};
use super::extract::{self, Client, MediaType, read_body};
use super::login::{TokenResponse, token_response};
use super::repeated;
use crate::domain::client_assertion::{ASSERTION_ALGORITHMS, ASSERTION_TYPE};
use crate::domain::clients::{ClientCredentials, TOKEN_ENDPOINT_PATH};
use crate::domain::{AuthError, AuthService};

/// The revocation endpoint's path.
pub(super) const REVOCATION_ENDPOINT_PATH: &str = "/oauth2/revoke";
/// The introspection endpoint's path.
pub(super) const INTROSPECTION_ENDPOINT_PATH: &str = "/v1/introspect";

/// The URL of one of this server's endpoints: the configured issuer (never the request's
/// `Host`) and the path.
pub(super) fn endpoint_url(auth: &AuthService, path: &str) -> String {
    format!("{}{path}", auth.config().issuer.trim_end_matches('/'))
}

/// An error of an OAuth endpoint: `{"error", "error_description"}` (RFC 6749 §5.2), never
/// stored by a cache.
#[derive(Debug)]
pub(super) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// Whether it carries the `Basic` challenge (a failed client authentication).
    challenge: bool,
    /// Its `Retry-After`, seconds.
    retry_after: Option<u64>,
}

impl OAuthError {
    pub(super) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            challenge: false,
            retry_after: None,
        }
    }

    /// `400 invalid_request`.
    pub(super) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// `503 temporarily_unavailable` with `Retry-After`: an outage, whatever was sent.
    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "a backend is unavailable, retry shortly",
        )
        .retrying_after(RETRY_AFTER_SECS)
    }

    fn retrying_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl From<AuthError> for OAuthError {
    fn from(e: AuthError) -> Self {
        let description = e.to_string();
        let (status, error) = match &e {
            AuthError::InvalidClient => {
                return Self {
                    challenge: true,
                    ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
                };
            }
            // The refresh policy's refusals too: the grant is no longer valid (RFC 6749
            // §5.2), and the description says why.
            AuthError::InvalidRefreshToken
            | AuthError::RefreshTokenReused
            | AuthError::RefreshLimitReached
            | AuthError::RefreshContextChanged => (StatusCode::BAD_REQUEST, "invalid_grant"),
            AuthError::UnauthorizedClient(_) => (StatusCode::BAD_REQUEST, "unauthorized_client"),
            // RFC 9449 §5, §7: a proof that is invalid, or from another key than the one
            // the refresh token is bound to.
            AuthError::InvalidDpopProof(_) | AuthError::DpopKeyMismatch => {
                (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
            }
            AuthError::InvalidScope(_) => (StatusCode::BAD_REQUEST, "invalid_scope"),
            AuthError::RateLimited {
                retry_after_secs, ..
            } => {
                return Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", description)
                    .retrying_after(*retry_after_secs);
            }
            AuthError::Unavailable(_) | AuthError::Overloaded => {
                log_cause(&e);
                return Self::unavailable();
            }
            AuthError::Token(v) if v.is_unavailable() => return Self::unavailable(),
            AuthError::Internal(_) => {
                log_cause(&e);
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error",
                );
            }
            AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "unauthorized_client"),
            AuthError::InvalidInput(_)
            | AuthError::Token(_)
            | AuthError::InvalidCredentials
            | AuthError::UsernameTaken
            | AuthError::RegistrationDisabled
            | AuthError::SessionNotFound
            | AuthError::UserNotFound
            | AuthError::ClientNotFound
            | AuthError::ClientIdTaken => (StatusCode::BAD_REQUEST, "invalid_request"),
        };
        Self::new(status, error, description)
    }
}

/// A refusal made before the OAuth handler ran (a body too large, unreadable) keeps its
/// status and code, in the OAuth shape.
impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Http(status, code, message) => Self::new(status, code, message),
            ApiError::Domain(e) => e.into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.error, "error_description": self.description }));
        let mut headers = no_store(HeaderMap::new());
        if self.challenge {
            headers.insert(header::WWW_AUTHENTICATE, basic_challenge());
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        (self.status, headers, body).into_response()
    }
}

/// `headers` plus `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
fn no_store(mut headers: HeaderMap) -> HeaderMap {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers
}

/// The parameters of a form body (RFC 6749 §3.2): a parameter given twice is refused,
/// one given empty counts as absent, and unknown ones are ignored.
pub(super) struct Params(HashMap<String, String>);

impl Params {
    /// Parses a form body.
    pub(super) fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        repeated::check_params(body)
            .map_err(|e| OAuthError::invalid_request(format!("invalid form: {e}")))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| OAuthError::invalid_request(format!("invalid form: {e}")))?;
        Ok(Self(pairs.into_iter().collect()))
    }

    /// The value of a parameter that was given and is not empty.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required parameter.
    pub(super) fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
    }

    /// Whether the request carries client credentials in the body (`client_secret`,
    /// `client_assertion`, `client_assertion_type`), or, when `alone`, at least names a
    /// client (`client_id`).
    pub(super) fn has_client_parameters(&self, alone: bool) -> bool {
        let credentials = ["client_secret", "client_assertion", "client_assertion_type"];
        credentials.iter().any(|name| self.get(name).is_some())
            || (alone && self.get("client_id").is_some())
    }
}

/// The form body of an OAuth endpoint: `application/x-www-form-urlencoded` only (RFC 6749
/// §4.4.2, RFC 7009 §2.1), within the body limit.
pub(super) struct OAuthForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if extract::media_type(req.headers()) != Some(MediaType::Form) {
            return Err(OAuthError::invalid_request(
                "expected Content-Type: application/x-www-form-urlencoded",
            ));
        }
        let body = read_body(req, state).await?;
        Params::parse(&body).map(OAuthForm)
    }
}

/// A client's authentication in a form body, for the OpenAPI document (read by
/// [`client_credentials`]); exactly one method per request, `Authorization: Basic`
/// (`client_secret_basic`) included.
#[derive(ToSchema)]
#[allow(dead_code)] // never built: the form is read as `Params` (RFC 6749 §3.2 rules)
pub(super) struct ClientAuthParams {
    /// The client; with nothing else, a public client.
    #[schema(example = "billing-service")]
    client_id: Option<String>,
    /// `client_secret_post`.
    #[schema(format = Password)]
    client_secret: Option<String>,
    /// `private_key_jwt` (RFC 7523): a JWT signed with one of the client's registered keys,
    /// `iss` and `sub` the client id, `aud` this endpoint's URL.
    client_assertion: Option<String>,
    /// With `client_assertion`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    #[schema(pattern = "^urn:ietf:params:oauth:client-assertion-type:jwt-bearer$")]
    client_assertion_type: Option<String>,
}

/// The form of `POST /oauth2/token`, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)] // never built: the form is read as `Params`
pub(super) struct TokenForm {
    /// `client_credentials` or `refresh_token`.
    #[schema(
        example = "client_credentials",
        pattern = "^(client_credentials|refresh_token)$"
    )]
    grant_type: String,
    /// With `refresh_token`: the refresh token to rotate.
    refresh_token: Option<String>,
    /// Space-separated scopes, a subset of the client's registered ones.
    scope: Option<String>,
    #[schema(inline)]
    #[serde(flatten)]
    client: ClientAuthParams,
}

/// The form of `POST /oauth2/revoke`, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)] // never built: the form is read as `Params`
pub(super) struct RevokeForm {
    /// An access token or a refresh token of the client.
    token: String,
    /// `access_token` or `refresh_token`: where to look first.
    token_type_hint: Option<String>,
    #[schema(inline)]
    #[serde(flatten)]
    client: ClientAuthParams,
}

/// The client authentication of a request: an `Authorization: Basic` header
/// (`client_secret_basic`, its id and secret form-urlencoded inside, RFC 6749 §2.3.1), or
/// the form's `client_secret` (`client_secret_post`) or `client_assertion`
/// (`private_key_jwt`), or just `client_id` (a public client). More than one method is
/// `invalid_request`; so is an `Authorization` header given twice.
pub(super) fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<ClientCredentials, OAuthError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let (header, None) = (authorization.next(), authorization.next()) else {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    };
    let client_id = params.get("client_id");
    let secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let assertion_type = params.get("client_assertion_type");
    let methods = [header.is_some(), secret.is_some(), assertion.is_some()];
    if methods.iter().filter(|used| **used).count() > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        ));
    }
    if assertion.is_some() != assertion_type.is_some() {
        return Err(OAuthError::invalid_request(
            "client_assertion and client_assertion_type go together",
        ));
    }
    if let Some(header) = header {
        let (id, secret) = match basic_credentials(header) {
            Ok(basic) => basic,
            Err(reason) => return Ok(ClientCredentials::Malformed(reason)),
        };
        if client_id.is_some_and(|body_id| body_id != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Authorization header",
            ));
        }
        return Ok(ClientCredentials::Secret {
            client_id: id,
            secret,
        });
    }
    if let Some(secret) = secret {
        let client_id = client_id
            .ok_or_else(|| OAuthError::invalid_request("client_secret needs client_id"))?;
        return Ok(ClientCredentials::Secret {
            client_id: client_id.into(),
            secret: SecretString::from(secret),
        });
    }
    if let Some(assertion) = assertion {
        if assertion_type != Some(ASSERTION_TYPE) {
            return Err(OAuthError::invalid_request(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        return Ok(ClientCredentials::Assertion {
            client_id: client_id.map(String::from),
            assertion: SecretString::from(assertion),
        });
    }
    Ok(match client_id {
        Some(id) => ClientCredentials::Id(id.into()),
        None => ClientCredentials::Absent,
    })
}

/// The id and secret of an `Authorization: Basic` header; any other scheme, or a value
/// that does not decode, is the reason client authentication fails.
fn basic_credentials(value: &HeaderValue) -> Result<(String, SecretString), &'static str> {
    let value = value
        .to_str()
        .map_err(|_| "unreadable Authorization header")?;
    let (_, encoded) = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .ok_or("Authorization header of another scheme than Basic")?;
    let malformed = "malformed Basic credentials";
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or(malformed)?;
    let (id, secret) = (
        form_decode(id).ok_or(malformed)?,
        form_decode(secret).ok_or(malformed)?,
    );
    Ok((id, SecretString::from(secret)))
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space, `%XX` a byte;
/// `None` for a broken escape or a result that is not UTF-8.
fn form_decode(encoded: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut input = encoded.bytes();
    while let Some(b) = input.next() {
        bytes.push(match b {
            b'+' => b' ',
            b'%' => {
                let hex = [input.next()?, input.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(bytes).ok()
}

/// The answer of the client-credentials grant (RFC 6749 §4.4.3): no refresh token.
#[derive(Serialize, ToSchema)]
// For the document only (serde ignores it when serialising): no other member, which tells
// this answer from the token response of the refresh grant.
#[serde(deny_unknown_fields)]
pub(super) struct ClientTokenResponse {
    access_token: String,
    /// `Bearer`, or `DPoP` when bound to the proof's key.
    #[schema(value_type = String, pattern = "^(Bearer|DPoP)$")]
    token_type: &'static str,
    /// Seconds the access token is valid.
    expires_in: u64,
    /// The scopes granted, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// The answers of the token endpoint, for the OpenAPI document: one per grant.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // never built: `token` answers with one of the two
pub(super) enum TokenEndpointResponse {
    /// `client_credentials`.
    Client(ClientTokenResponse),
    /// `refresh_token`.
    Refresh(TokenResponse<'static>),
}

/// `POST /oauth2/token`: `grant_type=client_credentials` (a confidential client's own
/// token, `scope` optional) or `grant_type=refresh_token` (`refresh_token`; the rotation of
/// `/v1/refresh`). Either may come with a `DPoP` proof (RFC 9449), checked before the client
/// is: an invalid one is `400 invalid_dpop_proof` whatever the credentials, as a login's is
/// refused before any password work.
#[utoipa::path(post, path = "/token", tag = "oauth2",
    summary = "The token endpoint (RFC 6749): client credentials, refresh",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    params(DpopHeader),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "Client credentials: the client's access token; refresh: the token response. Never cached.",
            body = TokenEndpointResponse),
        (status = 400, description = "`invalid_request` (also for a body that is not a form), `unsupported_grant_type`, `invalid_grant` (the refresh token is invalid, reused, at its limit, or its context changed), `invalid_scope`, `unauthorized_client`, `invalid_dpop_proof`."),
        (status = 401, description = "`invalid_client`: client authentication failed; `WWW-Authenticate: Basic`."),
        (status = 403, description = "`unauthorized_client`: the client may not use this grant."),
        (status = 429, description = "`rate_limited`: too many failed client authentications from this network, or refreshes."),
    ))]
pub(super) async fn token(
    State(auth): AppState,
    Client(info): Client,
    parts: Parts,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    let grant_type = params.required("grant_type")?;
    let refresh_token = match grant_type {
        "client_credentials" => None,
        "refresh_token" => Some(params.required("refresh_token")?),
        _ => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be client_credentials or refresh_token",
            ));
        }
    };
    let proof = token_endpoint_proof(&auth, &parts).map_err(AuthError::InvalidDpopProof)?;
    let credentials = client_credentials(&parts.headers, &params)?;
    let url = endpoint_url(&auth, TOKEN_ENDPOINT_PATH);
    let client = auth.authenticate_client(credentials, &url, &info).await?;
    let scope = params.get("scope");
    match refresh_token {
        Some(refresh_token) => {
            let tokens = auth
                .refresh_for_client(&client, refresh_token, scope, proof.as_ref(), &info)
                .await?;
            Ok(token_response(&tokens, None, 0))
        }
        None => {
            let token = auth
                .client_credentials(&client, scope, proof.as_ref(), &info)
                .await?;
            let body = ClientTokenResponse {
                access_token: token.access_token,
                token_type: if token.dpop_bound { "DPoP" } else { "Bearer" },
                expires_in: token.expires_in,
                scope: token.scope,
            };
            Ok((no_store(HeaderMap::new()), Json(body)).into_response())
        }
    }
}

/// `POST /oauth2/revoke` (RFC 7009): `token`, optionally `token_type_hint`. `200` with an
/// empty body whether or not anything was revoked.
#[utoipa::path(post, path = "/revoke", tag = "oauth2",
    summary = "Token revocation (RFC 7009)",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "Empty, whether or not anything was revoked: a refresh token ends its session, an access token its session too."),
        (status = 400, description = "`invalid_request`: no `token`, not a form, more than one client authentication method."),
        (status = 401, description = "`invalid_client`: client authentication failed; `WWW-Authenticate: Basic`."),
        (status = 429, description = "`rate_limited`: too many failed client authentications from this network."),
    ))]
pub(super) async fn revoke(
    State(auth): AppState,
    Client(info): Client,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    let token = params.required("token")?;
    let credentials = client_credentials(&headers, &params)?;
    let url = endpoint_url(&auth, REVOCATION_ENDPOINT_PATH);
    let client = auth.authenticate_client(credentials, &url, &info).await?;
    auth.revoke(&client, token, &info).await?;
    Ok((StatusCode::OK, no_store(HeaderMap::new())).into_response())
}

/// The authorization server metadata (RFC 8414 §2): exactly what this server has.
#[derive(Serialize, ToSchema)]
pub(super) struct AuthorizationServerMetadata {
    issuer: String,
    token_endpoint: String,
    #[schema(value_type = Vec<String>)]
    token_endpoint_auth_methods_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    token_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    grant_types_supported: &'static [&'static str],
    revocation_endpoint: String,
    #[schema(value_type = Vec<String>)]
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    revocation_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    introspection_endpoint: String,
    #[schema(value_type = Vec<String>)]
    introspection_endpoint_auth_methods_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    introspection_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    jwks_uri: String,
    /// RFC 8414 §2: REQUIRED. There is no authorization endpoint (RFC 8414 §2 lets
    /// `authorization_endpoint` be left out when no grant type uses it), and
    /// `response_type` is a parameter of that endpoint only (RFC 6749 §3.1.1), so the set
    /// of supported response types is empty. (Authlib's metadata `validate()` takes an
    /// empty array for a missing one; the document is still correct.) `scopes_supported`
    /// is left out: scopes are registered per client and change with the registrations
    /// (RFC 8414 §2 lets a server leave out some or all of them).
    #[schema(value_type = Vec<String>)]
    response_types_supported: &'static [&'static str],
    /// DPoP (RFC 9449 §5.1): the algorithms of the one proof checker, which the token
    /// endpoint and `/v1/login` and `/v1/refresh` share.
    dpop_signing_alg_values_supported: Vec<&'static str>,
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414): exactly what this server has.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth2",
    summary = "Authorization server metadata (RFC 8414)",
    responses((status = 200, description = "The metadata.", body = AuthorizationServerMetadata)))]
pub(super) async fn metadata(State(auth): AppState) -> Json<AuthorizationServerMetadata> {
    Json(metadata_document(&auth))
}

fn metadata_document(auth: &Arc<AuthService>) -> AuthorizationServerMetadata {
    let issuer = auth.config().issuer.trim_end_matches('/');
    // Public clients (`none`) may use the token endpoint (refresh) and revoke their tokens;
    // introspection takes authenticated clients only (or, outside this document, a bearer
    // token with the introspect role).
    const CLIENT_METHODS: &[&str] = &[
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    const WITH_PUBLIC: &[&str] = &[
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ];
    AuthorizationServerMetadata {
        issuer: issuer.to_string(),
        token_endpoint: format!("{issuer}{TOKEN_ENDPOINT_PATH}"),
        token_endpoint_auth_methods_supported: WITH_PUBLIC,
        token_endpoint_auth_signing_alg_values_supported: &ASSERTION_ALGORITHMS,
        grant_types_supported: &["client_credentials", "refresh_token"],
        revocation_endpoint: format!("{issuer}{REVOCATION_ENDPOINT_PATH}"),
        revocation_endpoint_auth_methods_supported: WITH_PUBLIC,
        revocation_endpoint_auth_signing_alg_values_supported: &ASSERTION_ALGORITHMS,
        introspection_endpoint: format!("{issuer}{INTROSPECTION_ENDPOINT_PATH}"),
        introspection_endpoint_auth_methods_supported: CLIENT_METHODS,
        introspection_endpoint_auth_signing_alg_values_supported: &ASSERTION_ALGORITHMS,
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        response_types_supported: &[],
        dpop_signing_alg_values_supported: auth.dpop_signing_alg_values(),
    }
}
