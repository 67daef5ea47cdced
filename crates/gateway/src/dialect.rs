//! The three ways a proxy asks: where each one puts the original request's method and URI.

use std::borrow::Cow;

use http::HeaderMap;
use http::request::Parts;

/// The path under which Envoy's `ext_authz` (`path_prefix`) sends the original path.
pub(crate) const EXT_AUTHZ_PREFIX: &str = "/authz/ext-authz";

/// A proxy's way of asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// nginx `auth_request` at `/authz/auth-request`: `X-Original-URI` (required) and
    /// `X-Original-Method`.
    AuthRequest = 0,
    /// Traefik `ForwardAuth` and Caddy `forward_auth` at `/authz/forward-auth`:
    /// `X-Forwarded-Uri` (required) and `X-Forwarded-Method`.
    ForwardAuth = 1,
    /// Envoy `ext_authz` (HTTP service) under `/authz/ext-authz`: the check request has the
    /// original method, and the original path after the prefix.
    ExtAuthz = 2,
}

impl Dialect {
    /// Every dialect, in the order of their discriminants.
    pub(crate) const ALL: [Dialect; 3] = [
        Dialect::AuthRequest,
        Dialect::ForwardAuth,
        Dialect::ExtAuthz,
    ];

    /// The dialect's name in metrics and logs.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Dialect::AuthRequest => "auth_request",
            Dialect::ForwardAuth => "forward_auth",
            Dialect::ExtAuthz => "ext_authz",
        }
    }

    /// The headers that carry the original method and URI, if the dialect has them.
    fn headers(self) -> Option<(&'static str, &'static str)> {
        match self {
            Dialect::AuthRequest => Some(("X-Original-Method", "X-Original-URI")),
            Dialect::ForwardAuth => Some(("X-Forwarded-Method", "X-Forwarded-Uri")),
            Dialect::ExtAuthz => None,
        }
    }

    /// The original request that `request` asks about.
    pub(crate) fn original(self, request: &Parts) -> Result<Original<'_>, BadRequest> {
        let (method, target) = match self.headers() {
            Some((method_header, uri_header)) => {
                let headers = &request.headers;
                let target =
                    one_header(headers, uri_header)?.ok_or(BadRequest::MissingUri(uri_header))?;
                let method =
                    one_header(headers, method_header)?.unwrap_or_else(|| request.method.as_str());
                (method, target)
            }
            None => {
                let path = request.uri.path();
                let target = path
                    .strip_prefix(EXT_AUTHZ_PREFIX)
                    .filter(|rest| !rest.is_empty())
                    .ok_or(BadRequest::MissingPath)?;
                (request.method.as_str(), target)
            }
        };
        if http::Method::from_bytes(method.as_bytes()).is_err() {
            return Err(BadRequest::BadMethod);
        }
        Ok(Original { method, target })
    }
}

/// The value of the one `name` header: `None` without it; refused when there are several,
/// or when it is not visible ASCII.
fn one_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, BadRequest> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(BadRequest::Repeated(name)),
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| BadRequest::NotAscii(name)),
    }
}

/// The original request, as the proxy described it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Original<'a> {
    /// The method, as sent.
    pub(crate) method: &'a str,
    /// The request target: a path with any query, or an absolute URI.
    pub(crate) target: &'a str,
}

impl Original<'_> {
    /// The method in upper case, as the rules compare it (a server may read `post` as
    /// `POST`).
    pub(crate) fn rule_method(&self) -> Cow<'_, str> {
        if self.method.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(self.method.to_ascii_uppercase())
        } else {
            Cow::Borrowed(self.method)
        }
    }
}

impl BadRequest {
    /// Whether the proxy, not its client, got something wrong: the headers that describe the
    /// original request are missing or repeated.
    pub(crate) fn is_proxy_setup(&self) -> bool {
        matches!(
            self,
            BadRequest::MissingUri(_) | BadRequest::MissingPath | BadRequest::Repeated(_)
        )
    }
}

/// Why a forward-auth request cannot be answered (`400`): the proxy is misconfigured, or the
/// original request is one the gateway refuses to judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadRequest {
    /// The dialect's original-URI header is missing.
    #[error(
        "the {0} header with the original request's URI is missing; is the proxy set up to send it?"
    )]
    MissingUri(&'static str),
    /// An `ext_authz` check request without a path after the prefix.
    #[error(
        "the original path is missing after {EXT_AUTHZ_PREFIX}; set path_prefix: {EXT_AUTHZ_PREFIX}"
    )]
    MissingPath,
    /// A header that must come once came several times.
    #[error("the {0} header must come once")]
    Repeated(&'static str),
    /// A header that is not visible ASCII.
    #[error("the {0} header is not visible ASCII")]
    NotAscii(&'static str),
    /// The original method is not an HTTP method.
    #[error("the original method is not an HTTP method")]
    BadMethod,
    /// The original URI is refused.
    #[error(transparent)]
    Uri(#[from] crate::uri::UriError),
}
