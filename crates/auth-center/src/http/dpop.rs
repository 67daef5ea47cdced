//! The `DPoP` header (RFC 9449) of the routes that issue tokens: login and refresh, and any
//! other token endpoint (the [`DpopProof`] extractor), and of the routes that take an access
//! token with the DPoP scheme ([`presented_proof`], used by the `Authenticated` extractor).
//! Proofs are checked with the one `verifier::dpop::DpopChecker` of the service, against the
//! route's path as the client sent it (before nesting stripped `/v1`).

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use verifier::dpop::{DpopError, ProofRequest, VerifiedProof, proof_header};

use super::error::ApiError;
use crate::domain::{AuthError, AuthService};

/// The `DPoP` header of a token endpoint, for the OpenAPI document (read by [`DpopProof`] or
/// [`token_endpoint_proof`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // never built: it documents a header that the extractors read
pub(super) struct DpopHeader {
    /// A DPoP proof JWT (RFC 9449 §4) for this request (`htm`, `htu`): the session, or the
    /// client's token, is bound to its key. An invalid proof is `400 invalid_dpop_proof`.
    #[param(rename = "DPoP")]
    proof: Option<String>,
}

/// The request's DPoP proof, checked for this route with no access token: `None` without a
/// `DPoP` header. An invalid proof (or two headers) is refused with `400
/// invalid_dpop_proof` before the handler runs, so before any password work.
///
/// A token endpoint takes it and passes the proof to `AuthService::login` or
/// `AuthService::refresh`; one that answers in another error shape (RFC 6749 §5.2) calls
/// [`token_endpoint_proof`] instead.
pub(super) struct DpopProof(pub Option<VerifiedProof>);

impl FromRequestParts<Arc<AuthService>> for DpopProof {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        auth: &Arc<AuthService>,
    ) -> Result<Self, Self::Rejection> {
        token_endpoint_proof(auth, parts)
            .map(DpopProof)
            .map_err(|e| AuthError::InvalidDpopProof(e).into())
    }
}

/// The request's DPoP proof for this route, with no access token: `Ok(None)` without a
/// `DPoP` header, an error for two headers or an invalid proof (`invalid_dpop_proof`).
pub(super) fn token_endpoint_proof(
    auth: &AuthService,
    parts: &Parts,
) -> Result<Option<VerifiedProof>, DpopError> {
    let Some(proof) = proof_header(&parts.headers)? else {
        return Ok(None);
    };
    let request = ProofRequest::new(parts.method.as_str(), path(parts));
    auth.dpop().check(proof, &request).map(Some)
}

/// The proof that must come with `access_token` presented as `Authorization: DPoP`:
/// exactly one `DPoP` header, for this request and this token (`ath`).
pub(super) fn presented_proof(
    auth: &AuthService,
    parts: &Parts,
    access_token: &str,
) -> Result<VerifiedProof, DpopError> {
    let proof = proof_header(&parts.headers)?.ok_or(DpopError::Missing)?;
    let request =
        ProofRequest::new(parts.method.as_str(), path(parts)).with_access_token(access_token);
    auth.dpop().check(proof, &request)
}

/// The path the client requested: inside a nested router `uri` has lost the prefix.
fn path(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.path(), |OriginalUri(uri)| uri.path())
}
