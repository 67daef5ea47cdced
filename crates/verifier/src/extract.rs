//! The [`Authenticated`] extractor and [`bearer_token`] (feature `axum`).
//!
//! The extractor reads what [`VerifierLayer`](crate::VerifierLayer) put in the request
//! extensions; it needs nothing in the router state. On a route the layer does not cover it
//! answers `500`, "is `VerifierLayer` enabled?": a set-up mistake of the server.

use std::sync::Arc;

use axum_core::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::{Extensions, HeaderMap, StatusCode, header};

use crate::claims::Claims;
use crate::error::{ErrorBody, VerifyError};
use crate::middleware::verify::verify_request;
use crate::verify::Verifier;

/// The bearer token of a request, if it has exactly one `Authorization` header with the
/// `Bearer` scheme. Two `Authorization` headers give `None`, as does any other scheme.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("authorization", "Bearer abc".parse().unwrap());
/// assert_eq!(verifier::bearer_token(&headers), Some("abc"));
/// headers.append("authorization", "Bearer xyz".parse().unwrap());
/// assert_eq!(verifier::bearer_token(&headers), None);
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    match access_token(headers) {
        Some(AccessToken::Bearer(token)) => Some(token),
        _ => None,
    }
}

/// An access token and the scheme it was presented with.
///
/// ```
/// use verifier::AccessToken;
/// let token = AccessToken::Dpop("eyJ...");
/// assert_eq!(token.token(), "eyJ...");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessToken<'a> {
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer(&'a str),
    /// `Authorization: DPoP <token>` (RFC 9449 §7.1): a `DPoP` proof header must come with it.
    Dpop(&'a str),
}

impl<'a> AccessToken<'a> {
    /// The token, whatever the scheme.
    ///
    /// ```
    /// assert_eq!(verifier::AccessToken::Bearer("abc").token(), "abc");
    /// ```
    pub fn token(self) -> &'a str {
        match self {
            AccessToken::Bearer(token) | AccessToken::Dpop(token) => token,
        }
    }
}

/// The access token of a request, if it has exactly one `Authorization` header with the
/// `Bearer` or the `DPoP` scheme (case-insensitive) and a token. Two `Authorization`
/// headers give `None`, as does any other scheme.
///
/// ```
/// use verifier::{AccessToken, access_token};
/// let mut headers = http::HeaderMap::new();
/// headers.insert("authorization", "DPoP abc".parse().unwrap());
/// assert_eq!(access_token(&headers), Some(AccessToken::Dpop("abc")));
/// headers.insert("authorization", "Basic abc".parse().unwrap());
/// assert_eq!(access_token(&headers), None);
/// // Not ASCII: no token.
/// headers.insert("authorization", http::HeaderValue::from_bytes("Bearer abé".as_bytes()).unwrap());
/// assert_eq!(access_token(&headers), None);
/// ```
pub fn access_token(headers: &HeaderMap) -> Option<AccessToken<'_>> {
    let value = single_authorization(headers)?;
    // ASCII only, as `HeaderValue::to_str` would say (a header value holds no control
    // characters but tab), checked a word at a time: `to_str` goes byte by byte, ~500
    // instructions for a token.
    let bytes = value.as_bytes();
    if !bytes.is_ascii() {
        return None;
    }
    let value = std::str::from_utf8(bytes).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(AccessToken::Bearer(token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some(AccessToken::Dpop(token))
    } else {
        None
    }
}

/// The request's `Authorization` header when there is exactly one: with two, a proxy reading
/// the last and this service reading the first would see different callers.
fn single_authorization(headers: &HeaderMap) -> Option<&http::HeaderValue> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// The bytes of the bearer token of a request as [`access_token`] finds it (exactly one
/// `Authorization` header, the `Bearer` scheme in any case, one space, the token without the
/// ASCII whitespace around it), without checking that they are ASCII: for a look-up in the
/// caches alone ([`Verifier::verify_cached_headers`]). Every token in the signature cache
/// passed the compact-JWS format check (`jws::compact_parts`: three base64url segments and
/// two dots, nothing else) and verification, whichever API it came through, so bytes that hit
/// are such a token with only ASCII spaces or tabs around it, and [`access_token`] would give
/// the same. That saves two passes over the token (the ASCII and UTF-8 checks) on the hot
/// path; a miss takes the full check.
fn bearer_bytes(headers: &HeaderMap) -> Option<&[u8]> {
    let (scheme, token) = single_authorization(headers)?
        .as_bytes()
        .split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
}

impl Verifier {
    /// The whole verification of a request's bearer token (exactly one `Authorization:
    /// Bearer` header) when the caches answer it ([`verify_cached`](Self::verify_cached)),
    /// looked up by the header's bytes before any ASCII or UTF-8 pass: what
    /// [`VerifierLayer`](crate::VerifierLayer) and [`Verified`] try first, for a forward-auth
    /// server or another framework to do the same. `None`: nothing the caches answer for (a
    /// new token, a session to ask Redis about, a DPoP token, no or a malformed header);
    /// then take the full path, which also refuses what does not parse.
    ///
    /// ```
    /// use verifier::{AccessToken, VerifyError, access_token};
    /// # async fn demo(verifier: verifier::Verifier, headers: http::HeaderMap) -> Result<(), VerifyError> {
    /// let claims = match verifier.verify_cached_headers(&headers) {
    ///     Some(answer) => answer?,
    ///     None => match access_token(&headers) {
    ///         Some(AccessToken::Bearer(token)) => verifier.verify_shared(token).await?,
    ///         _ => return Err(VerifyError::Invalid("no bearer token")),
    ///     },
    /// };
    /// # Ok(()) }
    /// ```
    pub fn verify_cached_headers(
        &self,
        headers: &HeaderMap,
    ) -> Option<Result<Arc<Claims>, VerifyError>> {
        self.verify_cached_bytes(bearer_bytes(headers)?)
    }
}

/// The verified caller: the claims of a valid token whose session exists.
///
/// As an extractor it reads what [`VerifierLayer`](crate::VerifierLayer) stored in the
/// request extensions, whatever the router's state. `Option<Authenticated>` gives `None`
/// for a request the layer let through anonymously
/// ([`allow_anonymous`](crate::VerifierLayer::allow_anonymous)). On a route the layer does
/// not cover, both answer `500` ([`AuthenticatedRejection::MissingLayer`]).
///
/// ```
/// use verifier::Authenticated;
/// async fn handler(user: Authenticated) -> String {
///     format!("{} has roles {:?}", user.sub, user.roles)
/// }
/// async fn maybe(user: Option<Authenticated>) -> &'static str {
///     if user.is_some() { "signed in" } else { "anonymous" }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Claims>);

impl std::ops::Deref for Authenticated {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.0
    }
}

/// Put in the request extensions by a [`VerifierLayer`](crate::VerifierLayer) that let a
/// request without an `Authorization` header through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anonymous;

/// The caller the verifier layer stored in `extensions`.
pub(crate) fn caller(extensions: &Extensions) -> Result<&Authenticated, AuthenticatedRejection> {
    match extensions.get::<Authenticated>() {
        Some(user) => Ok(user),
        None if extensions.get::<Anonymous>().is_some() => Err(AuthenticatedRejection::Anonymous),
        None => Err(AuthenticatedRejection::MissingLayer),
    }
}

/// Why there is no [`Authenticated`] caller.
///
/// ```
/// use axum::response::IntoResponse as _;
/// use verifier::AuthenticatedRejection;
/// let response = AuthenticatedRejection::MissingLayer.into_response();
/// assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
/// let response = AuthenticatedRejection::Anonymous.into_response();
/// assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthenticatedRejection {
    /// No [`VerifierLayer`](crate::VerifierLayer) ran for this request: the route is not
    /// behind it, or the guard or extractor sits outside it. A set-up mistake of the server:
    /// `500` with the common JSON body, whose message asks "is `VerifierLayer` enabled?".
    MissingLayer,
    /// The layer let the request through without a caller
    /// ([`allow_anonymous`](crate::VerifierLayer::allow_anonymous)), and the route needs
    /// one: `401`, as for a missing token.
    Anonymous,
}

impl IntoResponse for AuthenticatedRejection {
    fn into_response(self) -> Response {
        match self {
            AuthenticatedRejection::MissingLayer => {
                tracing::error!(
                    "a route reads the verified caller, but no VerifierLayer ran for the request"
                );
                ErrorBody::new(
                    "internal_error",
                    "the server is misconfigured: this route needs the verified caller, but \
                     the verifier did not run for it; is `VerifierLayer` enabled?",
                )
                .into_response_with(StatusCode::INTERNAL_SERVER_ERROR)
            }
            AuthenticatedRejection::Anonymous => {
                VerifyError::Invalid("missing bearer token").into_response()
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthenticatedRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        caller(&parts.extensions).cloned()
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = AuthenticatedRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match caller(&parts.extensions) {
            Ok(user) => Ok(Some(user.clone())),
            Err(AuthenticatedRejection::Anonymous) => Ok(None),
            Err(rejection) => Err(rejection),
        }
    }
}

/// The verified caller, checked by the extractor itself with the [`Verifier`] of the router's
/// state: the same checks and answers as [`VerifierLayer`](crate::VerifierLayer) (a bearer
/// token, or a DPoP token with its proof; `401` or `503` with the common JSON body), without
/// a layer.
///
/// For a service that keeps its dependencies in the router state anyway, or that wants the
/// check in the handler's signature. It is not cheaper than the layer: counted with
/// callgrind, a request costs the same within 1 % either way
/// (`docs/benchmarks/notebook.md`, "Where the time goes"). The guards
/// ([`require_role`](crate::require_role), [`require_scope`](crate::require_scope)) read what
/// the layer stored, so a route using `Verified` checks roles and scopes in its handler
/// ([`Claims::has_role`]). Put it first
/// among the handler's extractors (they run in order: one before it could answer `400` or
/// `404` before the `401`).
///
/// ```
/// # fn demo(verifier: verifier::Verifier) {
/// use axum::{Router, routing::get};
/// use verifier::{Verified, Verifier};
/// async fn me(user: Verified) -> String {
///     user.sub.clone()
/// }
/// let app: Router = Router::new().route("/me", get(me)).with_state(verifier);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Verified(pub Arc<Claims>);

impl std::ops::Deref for Verified {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl<S> FromRequestParts<S> for Verified
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Verifier::from_ref(state);
        // A repeat bearer token is answered from the caches without waiting.
        if let Some(verified) = verifier.verify_cached_headers(&parts.headers) {
            return verified.map(Verified).map_err(IntoResponse::into_response);
        }
        verify_request(&verifier, &parts.headers, &parts.method, parts.uri.path())
            .await
            .map(Verified)
            .map_err(IntoResponse::into_response)
    }
}
