//! One forward-auth decision: the original request's path and method, the rules that apply,
//! the token, and the answer with its identity headers or its refusal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use verifier::dpop::{DpopError, proof_header};
use verifier::{AccessToken, Claims, ErrorBody, Verifier, VerifyError, access_token};

use crate::dialect::{BadRequest, Dialect};
use crate::metrics::DecisionMetrics;
use crate::rules::Rules;
use crate::settings::IdentityHeaders;
use crate::uri::OriginalPath;

/// What became of a forward-auth request (the `outcome` label of the decision counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `200` with the caller's identity.
    Allowed = 0,
    /// `200` without identity: an anonymous path and no `Authorization` header.
    Anonymous = 1,
    /// `401`: no `Authorization` header where a token is needed.
    Missing = 2,
    /// `401`: a malformed, forged or otherwise unacceptable token or DPoP proof.
    Invalid = 3,
    /// `401`: the token has expired.
    Expired = 4,
    /// `401`: the token's session no longer exists.
    Revoked = 5,
    /// `403`: a role or a scope is missing.
    Forbidden = 6,
    /// `503`: the session store could not be asked.
    Unavailable = 7,
    /// `400`: the proxy's request cannot be judged.
    BadRequest = 8,
}

impl Outcome {
    /// Every outcome, in the order of their discriminants.
    pub(crate) const ALL: [Outcome; 9] = [
        Outcome::Allowed,
        Outcome::Anonymous,
        Outcome::Missing,
        Outcome::Invalid,
        Outcome::Expired,
        Outcome::Revoked,
        Outcome::Forbidden,
        Outcome::Unavailable,
        Outcome::BadRequest,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Anonymous => "anonymous",
            Outcome::Missing => "missing",
            Outcome::Invalid => "invalid",
            Outcome::Expired => "expired",
            Outcome::Revoked => "revoked",
            Outcome::Forbidden => "forbidden",
            Outcome::Unavailable => "unavailable",
            Outcome::BadRequest => "bad_request",
        }
    }

    fn of(error: &VerifyError) -> Self {
        match error {
            VerifyError::Expired => Outcome::Expired,
            VerifyError::Revoked => Outcome::Revoked,
            VerifyError::Unavailable(_) => Outcome::Unavailable,
            VerifyError::Invalid(_)
            | VerifyError::InvalidDpopProof(_)
            | VerifyError::DpopBinding(_) => Outcome::Invalid,
        }
    }
}

/// Everything a decision needs, shared by the handlers.
pub(crate) struct Gateway {
    pub(crate) verifier: Verifier,
    pub(crate) rules: Rules,
    pub(crate) headers: IdentityHeaders,
    /// The `algs` of the `DPoP` challenge, when DPoP-bound tokens are accepted.
    pub(crate) dpop_algs: Option<String>,
    /// The challenge of a request without a token.
    pub(crate) missing_challenge: HeaderValue,
    pub(crate) metrics: DecisionMetrics,
    /// The verifier's revocation mode (`/readyz` checks Redis unless it is `off`).
    pub(crate) revocation: verifier::RevocationMode,
    /// The answer headers of recently allowed tokens.
    pub(crate) identities: IdentityCache,
}

/// How many callers' identity headers [`IdentityCache`] keeps (each entry holds the
/// token's claims and its headers: a few KiB at most, with the largest tokens).
pub(crate) const IDENTITY_CACHE_ENTRIES: usize = 4096;

/// The headers of the answer already built for a verified token's claims
/// ([`Gateway::identity`]). The verifier hands out the same `Arc<Claims>` for a token for as
/// long as it caches the token, so a repeat request copies the headers instead of checking
/// and converting each value again. Entries are keyed by the claims' address and hold the `Arc`
/// itself: the address cannot be reused while the entry lives, and a hit is only taken for
/// the very same allocation (`Arc::ptr_eq`). It relies on the verifier's signature cache:
/// with that cache off (a library caller's `signature_cache_capacity(0)`) every request
/// misses, and the entries only keep claims alive.
pub(crate) struct IdentityCache(quick_cache::sync::Cache<usize, Arc<Built>>);

struct Built {
    claims: Arc<Claims>,
    headers: HeaderMap,
}

/// Room for the headers an allowed answer gets after the decision (`X-Request-Id` from
/// `service_kit::access`, and `Strict-Transport-Security` from the serve loop over TLS), so
/// adding them does not grow its header map.
const HEADERS_ADDED_LATER: usize = 2;

impl IdentityCache {
    pub(crate) fn new(entries: usize) -> Self {
        Self(quick_cache::sync::Cache::new(entries))
    }

    /// The answer's headers for `claims`: cached, or made by `build` (`None`, not cached,
    /// when a claim cannot be a header value).
    fn get_or_build(
        &self,
        claims: &Arc<Claims>,
        build: impl FnOnce() -> Option<HeaderMap>,
    ) -> Option<HeaderMap> {
        let key = Arc::as_ptr(claims) as usize;
        if let Some(built) = self.0.get(&key)
            && Arc::ptr_eq(&built.claims, claims)
        {
            // Copied into a map with room for the headers added on the way out (the request
            // id): a clone has none, and growing it costs more than filling a new one.
            let mut headers = HeaderMap::with_capacity(built.headers.len() + HEADERS_ADDED_LATER);
            headers.extend(built.headers.iter().map(|(n, v)| (n.clone(), v.clone())));
            return Some(headers);
        }
        let headers = build()?;
        let built = Built {
            claims: Arc::clone(claims),
            headers: headers.clone(),
        };
        self.0.insert(key, Arc::new(built));
        Some(headers)
    }
}

/// How the caller presented its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

impl Gateway {
    /// The `WWW-Authenticate` of a request without a token (RFC 6750 §3.1: no error code),
    /// with the `DPoP` scheme too when it is accepted.
    pub(crate) fn missing_challenge(dpop_algs: Option<&str>) -> HeaderValue {
        let challenge = match dpop_algs {
            Some(algs) => format!(r#"Bearer, DPoP algs="{algs}""#),
            None => "Bearer".to_owned(),
        };
        HeaderValue::from_str(&challenge).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// Answers `request`, asked in `dialect`, and records the outcome.
    pub(crate) async fn answer(&self, dialect: Dialect, request: Request) -> Response {
        #[allow(clippy::disallowed_methods)] // real time: the decision's latency, for a histogram
        let started = Instant::now();
        // The body is never read: a proxy's sub-request has none, or one that is not ours.
        let (request, _body) = request.into_parts();
        let (outcome, response) = self.decide(dialect, &request).await;
        #[allow(clippy::disallowed_methods)] // real time: the decision's latency, for a histogram
        let elapsed: Duration = started.elapsed();
        self.metrics.record(dialect, outcome, elapsed);
        response
    }

    async fn decide(&self, dialect: Dialect, request: &Parts) -> (Outcome, Response) {
        let (original, path) = match dialect
            .original(request)
            .and_then(|original| Ok((original, OriginalPath::parse(original.target)?)))
        {
            Ok(found) => found,
            Err(e) => return (Outcome::BadRequest, bad_request(dialect, &e)),
        };
        let method = original.rule_method();
        let access = self.rules.access(&path, &method);
        let headers = &request.headers;
        if !headers.contains_key(header::AUTHORIZATION) {
            if access.is_anonymous() {
                return (Outcome::Anonymous, no_store(StatusCode::OK.into_response()));
            }
            return (Outcome::Missing, self.missing());
        }
        let (scheme, verified) = self.verify(headers, original.method, path.raw()).await;
        let claims = match verified {
            Ok(claims) => claims,
            Err(e) => {
                tracing::debug!(dialect = dialect.label(), error = %e, "refused");
                return (Outcome::of(&e), self.refusal(e, scheme));
            }
        };
        if let Some(refusal) = access.refuse(&claims) {
            return (Outcome::Forbidden, no_store(refusal));
        }
        match self
            .identities
            .get_or_build(&claims, || self.identity(&claims))
        {
            Some(identity) => {
                // `Cache-Control: no-store` is among them.
                let mut response = Response::new(Body::empty());
                *response.headers_mut() = identity;
                (Outcome::Allowed, response)
            }
            None => {
                let error = VerifyError::Invalid("an identity claim cannot be a header value");
                tracing::warn!(sub = ?claims.sub, error = %error, "refused");
                (Outcome::Invalid, self.refusal(error, scheme))
            }
        }
    }

    /// The token of `headers`, verified for a `method` request to `path`.
    async fn verify(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
    ) -> (Scheme, Result<Arc<Claims>, VerifyError>) {
        // A repeat bearer token is answered from the verifier's caches, as by its middleware.
        if let Some(cached) = self.verifier.verify_cached_headers(headers) {
            return (Scheme::Bearer, cached);
        }
        match access_token(headers) {
            None => (
                Scheme::Bearer,
                Err(VerifyError::Invalid(
                    "not one Authorization header with the Bearer or DPoP scheme",
                )),
            ),
            Some(AccessToken::Bearer(token)) => {
                (Scheme::Bearer, self.verifier.verify_shared(token).await)
            }
            Some(AccessToken::Dpop(token)) => {
                let verified = match proof_header(headers) {
                    Ok(Some(proof)) => {
                        self.verifier
                            .verify_dpop_shared(token, proof, method, path)
                            .await
                    }
                    Ok(None) => Err(VerifyError::InvalidDpopProof(DpopError::Missing)),
                    Err(e) => Err(VerifyError::InvalidDpopProof(e)),
                };
                (Scheme::Dpop, verified)
            }
        }
    }

    /// `401` without a token.
    fn missing(&self) -> Response {
        let body = ErrorBody::new("invalid_token", "this request needs an access token");
        let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.missing_challenge.clone());
        no_store(response)
    }

    /// `401` with the RFC 6750 (or RFC 9449) challenge and its description, or `503`.
    fn refusal(&self, error: VerifyError, scheme: Scheme) -> Response {
        let challenge = self.challenge(&error, scheme);
        let mut response = error.into_response();
        if let Some(challenge) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        no_store(response)
    }

    /// The challenge of a `401` for `error`; `None` for a `503`.
    fn challenge(&self, error: &VerifyError, scheme: Scheme) -> Option<HeaderValue> {
        if error.is_unavailable() {
            return None;
        }
        let code = match error {
            VerifyError::InvalidDpopProof(_) => "invalid_dpop_proof",
            _ => "invalid_token",
        };
        let description = error.public_message();
        let about_dpop = scheme == Scheme::Dpop
            || matches!(
                error,
                VerifyError::InvalidDpopProof(_) | VerifyError::DpopBinding(_)
            );
        let challenge = match &self.dpop_algs {
            Some(algs) if about_dpop => {
                format!(r#"DPoP error="{code}", error_description="{description}", algs="{algs}""#)
            }
            Some(algs) => format!(
                r#"Bearer error="{code}", error_description="{description}", DPoP algs="{algs}""#
            ),
            None => format!(r#"Bearer error="{code}", error_description="{description}""#),
        };
        Some(
            HeaderValue::from_str(&challenge)
                .unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer error="invalid_token""#)),
        )
    }

    /// The headers of the answer that allows `claims`: the identity headers, and
    /// `Cache-Control: no-store` as on every answer; `None` when a claim cannot be a header
    /// value.
    fn identity(&self, claims: &Claims) -> Option<HeaderMap> {
        let names = &self.headers;
        let mut headers = HeaderMap::with_capacity(6 + HEADERS_ADDED_LATER);
        headers.insert(header::CACHE_CONTROL, NO_STORE);
        headers.insert(names.subject.clone(), token_value(&claims.sub)?);
        headers.insert(names.session.clone(), token_value(&claims.sid)?);
        if claims
            .roles
            .iter()
            .any(|role| role.is_empty() || !role.bytes().all(|b| b.is_ascii_graphic() && b != b','))
        {
            return None;
        }
        headers.insert(
            names.roles.clone(),
            HeaderValue::from_str(&claims.roles.join(",")).ok()?,
        );
        if let Some(scope) = &claims.scope {
            let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
            if !scopes
                .iter()
                .all(|s| s.bytes().all(|b| b.is_ascii_graphic()))
            {
                return None;
            }
            if !scopes.is_empty() {
                headers.insert(
                    names.scope.clone(),
                    HeaderValue::from_str(&scopes.join(" ")).ok()?,
                );
            }
        }
        if let Some(client_id) = &claims.client_id {
            headers.insert(names.client_id.clone(), token_value(client_id)?);
        }
        Some(headers)
    }
}

/// `value` as a header value, if it is one visible-ASCII token (no spaces).
fn token_value(value: &str) -> Option<HeaderValue> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    HeaderValue::from_str(value).ok()
}

/// The `Cache-Control` of every answer: a decision holds for one request.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// `response`, marked as not to be cached ([`NO_STORE`]).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, NO_STORE);
    response
}

/// `400` with the common body, saying what the proxy sent wrong. A proxy that does not say
/// what it asks about is misconfigured (a warning); a refused URI is a client's (debug).
fn bad_request(dialect: Dialect, error: &BadRequest) -> Response {
    if error.is_proxy_setup() {
        tracing::warn!(dialect = dialect.label(), error = %error, "bad forward-auth request");
    } else {
        tracing::debug!(dialect = dialect.label(), error = %error, "refused original request");
    }
    let body = ErrorBody::new("invalid_request", error.to_string());
    no_store((StatusCode::BAD_REQUEST, Json(body)).into_response())
}
