//! Cookie mode for browsers: the refresh token in a `__Host-` cookie (HttpOnly, Secure,
//! SameSite=Strict, Path=/), and the CSRF rules for requests it authenticates: the
//! `Origin` must be on the allow-list and the request must carry the custom
//! `X-Token-Transport: cookie` header (so it can never be a "simple" cross-site request).
//!
//! `Cookie` headers are parsed and `Set-Cookie` values built with the `cookie` crate; what is
//! ours is the policy: the names, the attributes, and that a cookie sent twice is refused.
//!
//! The hosted pages (`pages/`) post plain HTML forms, which cannot carry a custom header:
//! their CSRF rule ([`check_form_csrf`]) is a double-submit token (the `__Host-csrf` cookie
//! and the form's hidden field must be equal) with the same `Origin` parsing.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

use super::error::ApiError;

/// The refresh-token cookie.
pub(super) const COOKIE_NAME: &str = "__Host-refresh";
/// The device-token cookie (see `domain::device_token`), set by a cookie-mode login.
pub(super) const DEVICE_COOKIE_NAME: &str = "__Host-device";
/// Request header that selects cookie mode (and makes the request non-simple).
pub(super) const TRANSPORT_HEADER: &str = "x-token-transport";

/// The request headers of cookie mode, for the OpenAPI document (the handlers read them
/// with [`wants_cookie`] and [`check_csrf`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // never built: it documents headers that are read from the `HeaderMap`
pub(super) struct CookieModeHeaders {
    /// `cookie` selects cookie mode: the refresh token travels in the `__Host-refresh`
    /// cookie, never in a body.
    #[param(rename = "X-Token-Transport", value_type = Option<String>, pattern = "^cookie$")]
    transport: Option<String>,
    /// In cookie mode: exactly one, and on `AUTH_BROWSER__ALLOWED_ORIGINS`.
    #[param(rename = "Origin", example = "https://app.example")]
    origin: Option<String>,
}

/// Whether the request asks for cookie mode.
pub(super) fn wants_cookie(headers: &HeaderMap) -> bool {
    headers
        .get(TRANSPORT_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cookie"))
}

/// The refresh token from the cookie, if exactly one was sent (see [`refresh_cookies`]).
pub(super) fn refresh_cookie(headers: &HeaderMap) -> Option<String> {
    only(cookies(headers, COOKIE_NAME))
}

/// How many refresh cookies the request carries. More than one is ambiguous (a planted
/// cookie beside the real one): the request is refused and neither is cleared.
pub(super) fn refresh_cookies(headers: &HeaderMap) -> usize {
    cookies(headers, COOKIE_NAME).len()
}

/// The device token from the cookie, if exactly one was sent.
pub(super) fn device_cookie(headers: &HeaderMap) -> Option<String> {
    named_cookie(headers, DEVICE_COOKIE_NAME)
}

/// The value of the cookie `name`, if exactly one was sent.
pub(super) fn named_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    only(cookies(headers, name))
}

fn only(mut values: Vec<String>) -> Option<String> {
    (values.len() == 1).then(|| values.pop()).flatten()
}

/// The values of every cookie named `wanted`, over all `Cookie` headers (a header that is
/// not UTF-8, and a pair that does not parse, are skipped).
fn cookies(headers: &HeaderMap, wanted: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == wanted)
        .map(|c| c.value().to_string())
        .collect()
}

/// CSRF check for a cookie-mode request: the custom header and an allowed `Origin`.
pub(super) fn check_csrf(
    headers: &HeaderMap,
    allowed_origins: &[crate::config::Origin],
) -> Result<(), ApiError> {
    if !wants_cookie(headers) {
        return Err(ApiError::csrf_rejected(
            "cookie mode needs the X-Token-Transport: cookie header",
        ));
    }
    let Some(origin) = single_origin(headers)? else {
        return Err(ApiError::csrf_rejected(
            "cookie mode needs exactly one Origin header",
        ));
    };
    if !allowed_origins.iter().any(|a| a.as_str() == origin) {
        return Err(ApiError::csrf_rejected(
            "this Origin may not use cookie mode",
        ));
    }
    Ok(())
}

/// The request's `Origin`: `None` without one; refused when sent twice or not text.
fn single_origin(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) => Ok(None),
        (Some(origin), None) => origin
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::csrf_rejected("the Origin header is not a valid origin")),
        (Some(_), Some(_)) => Err(ApiError::csrf_rejected(
            "a request has at most one Origin header",
        )),
    }
}

/// The double-submit CSRF token of the hosted pages' forms (a random value, set by the
/// page that shows the form).
pub(super) const CSRF_COOKIE_NAME: &str = "__Host-csrf";

/// CSRF check for a hosted page's form post: the form's `submitted` token equals the one
/// `__Host-csrf` cookie (compared in constant time; a `__Host-` cookie cannot be planted
/// by a sibling subdomain), and an `Origin`, which browsers send with every form post, is
/// this server's own (the `Host` of the request) or on the allow-list. `"null"` (a sandboxed
/// or privacy-redirected form) is refused.
pub(super) fn check_form_csrf(
    headers: &HeaderMap,
    submitted: &str,
    allowed_origins: &[crate::config::Origin],
) -> Result<(), ApiError> {
    use subtle::ConstantTimeEq as _;
    let Some(expected) = named_cookie(headers, CSRF_COOKIE_NAME) else {
        return Err(ApiError::csrf_rejected("the form needs its CSRF cookie"));
    };
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) {
        return Err(ApiError::csrf_rejected(
            "the form's CSRF token does not match its cookie",
        ));
    }
    if let Some(origin) = single_origin(headers)? {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let own = origin
            .split_once("://")
            .is_some_and(|(_, authority)| Some(authority) == host);
        if !own && !allowed_origins.iter().any(|a| a.as_str() == origin) {
            return Err(ApiError::csrf_rejected("this Origin may not post the form"));
        }
    }
    Ok(())
}

/// `Set-Cookie` carrying a refresh token for `max_age_secs`.
pub(super) fn set_refresh_cookie(token: &str, max_age_secs: u64) -> Option<HeaderValue> {
    set_cookie(COOKIE_NAME, token, max_age_secs)
}

/// `Set-Cookie` carrying a device token for `max_age_secs`.
pub(super) fn set_device_cookie(token: &str, max_age_secs: u64) -> Option<HeaderValue> {
    set_cookie(DEVICE_COOKIE_NAME, token, max_age_secs)
}

/// A `__Host-` cookie as the prefix demands (`Secure`, `Path=/`, no `Domain`), `HttpOnly`,
/// `SameSite=Strict`, for `max_age_secs`. `None` if the value cannot be a header.
pub(super) fn set_cookie(name: &str, value: &str, max_age_secs: u64) -> Option<HeaderValue> {
    let max_age = time::Duration::seconds(i64::try_from(max_age_secs).unwrap_or(i64::MAX));
    let cookie = Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(max_age);
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// `Set-Cookie` that deletes the refresh cookie: empty, with the same attributes and
/// `Max-Age=0`.
pub(super) fn clear_refresh_cookie() -> Option<HeaderValue> {
    set_cookie(COOKIE_NAME, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_refresh_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; __Host-refresh=tok.en; b=2")]);
        assert_eq!(refresh_cookie(&h).as_deref(), Some("tok.en"));
        assert_eq!(refresh_cookie(&headers(&[("cookie", "refresh=x")])), None);
        // Pairs that do not parse are skipped, not fatal.
        let h = headers(&[("cookie", "junk; =x; __Host-refresh=tok.en;")]);
        assert_eq!(refresh_cookie(&h).as_deref(), Some("tok.en"));
    }

    #[test]
    fn a_cookie_sent_twice_counts_twice_even_across_headers() {
        for h in [
            headers(&[("cookie", "__Host-refresh=a; __Host-refresh=b")]),
            headers(&[
                ("cookie", "__Host-refresh=a"),
                ("cookie", "__Host-refresh=b"),
            ]),
            headers(&[
                ("cookie", "__Host-refresh=a; x=1"),
                ("cookie", "__Host-refresh=a"),
            ]),
        ] {
            assert_eq!(refresh_cookies(&h), 2, "{h:?}");
            assert_eq!(refresh_cookie(&h), None, "{h:?}");
        }
        let h = headers(&[("cookie", "__Host-device=d"), ("cookie", "__Host-device=e")]);
        assert_eq!(device_cookie(&h), None);
    }

    #[test]
    fn csrf_needs_the_custom_header_and_an_allowed_origin() {
        let allowed = vec![crate::config::Origin::parse("https://app.example").unwrap()];
        let ok = headers(&[
            ("x-token-transport", "cookie"),
            ("origin", "https://app.example"),
        ]);
        assert!(check_csrf(&ok, &allowed).is_ok());
        let foreign = headers(&[
            ("x-token-transport", "cookie"),
            ("origin", "https://evil.example"),
        ]);
        assert!(check_csrf(&foreign, &allowed).is_err());
        let simple = headers(&[("origin", "https://app.example")]);
        assert!(check_csrf(&simple, &allowed).is_err());
        let no_origin = headers(&[("x-token-transport", "cookie")]);
        assert!(check_csrf(&no_origin, &allowed).is_err());
        assert!(check_csrf(&ok, &[]).is_err());
    }

    #[test]
    fn a_form_post_needs_the_cookie_token_and_its_own_or_an_allowed_origin() {
        let allowed = vec![crate::config::Origin::parse("https://app.example").unwrap()];
        let post = |pairs: &[(&'static str, &str)], token: &str| {
            let mut all = vec![("host", "auth.example"), ("cookie", "__Host-csrf=tok")];
            all.extend_from_slice(pairs);
            check_form_csrf(&headers(&all), token, &allowed)
        };
        assert!(post(&[("origin", "https://auth.example")], "tok").is_ok());
        assert!(post(&[("origin", "https://app.example")], "tok").is_ok());
        // Browsers that send no Origin still need the token.
        assert!(post(&[], "tok").is_ok());
        assert!(post(&[], "other").is_err());
        assert!(post(&[], "").is_err());
        assert!(post(&[("origin", "https://evil.example")], "tok").is_err());
        assert!(post(&[("origin", "null")], "tok").is_err());
        let twice = [
            ("origin", "https://auth.example"),
            ("origin", "https://auth.example"),
        ];
        assert!(post(&twice, "tok").is_err());
        // No cookie, or an empty one: nothing to compare with.
        let bare = headers(&[("host", "auth.example")]);
        assert!(check_form_csrf(&bare, "", &allowed).is_err());
        let empty = headers(&[("host", "auth.example"), ("cookie", "__Host-csrf=")]);
        assert!(check_form_csrf(&empty, "", &allowed).is_err());
    }

    /// The name-value pair and the attributes of a `Set-Cookie`, sorted.
    fn parts(v: &HeaderValue) -> (String, Vec<String>) {
        let mut parts = v.to_str().unwrap().split("; ").map(String::from);
        let pair = parts.next().unwrap();
        let mut attributes: Vec<String> = parts.collect();
        attributes.sort();
        (pair, attributes)
    }

    fn attributes(max_age: &str) -> Vec<String> {
        let mut a: Vec<String> = ["HttpOnly", "Path=/", "SameSite=Strict", "Secure", max_age]
            .map(String::from)
            .into();
        a.sort();
        a
    }

    #[test]
    fn cookies_are_host_only_secure_http_only_and_strict() {
        let refresh = set_refresh_cookie("t", 60).unwrap();
        assert_eq!(
            parts(&refresh),
            ("__Host-refresh=t".into(), attributes("Max-Age=60"))
        );
        let device = set_device_cookie("d", 7_776_000).unwrap();
        assert_eq!(
            parts(&device),
            ("__Host-device=d".into(), attributes("Max-Age=7776000"))
        );
        let cleared = clear_refresh_cookie().unwrap();
        assert_eq!(
            parts(&cleared),
            ("__Host-refresh=".into(), attributes("Max-Age=0"))
        );
        // Nothing else: no Domain (the `__Host-` prefix forbids it), no Expires.
    }
}
