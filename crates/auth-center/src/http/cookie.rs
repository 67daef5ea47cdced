//! Cookie mode for browsers: the refresh token in a `__Host-` cookie (HttpOnly, Secure,
//! SameSite=Strict, Path=/), and the CSRF rules for requests it authenticates: the
//! `Origin` must be on the allow-list and the request must carry the custom
//! `X-Token-Transport: cookie` header (so it can never be a "simple" cross-site request).

use axum::http::{HeaderMap, HeaderValue, header};

use crate::domain::AuthError;

/// The refresh-token cookie.
pub(super) const COOKIE_NAME: &str = "__Host-refresh";
/// The device-token cookie (see `domain::device_token`), set by a cookie-mode login.
pub(super) const DEVICE_COOKIE_NAME: &str = "__Host-device";
/// Request header that selects cookie mode (and makes the request non-simple).
pub(super) const TRANSPORT_HEADER: &str = "x-token-transport";

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
    only(cookies(headers, DEVICE_COOKIE_NAME))
}

fn only(mut values: Vec<String>) -> Option<String> {
    (values.len() == 1).then(|| values.pop()).flatten()
}

fn cookies(headers: &HeaderMap, wanted: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_string())
        .collect()
}

/// CSRF check for a cookie-mode request: the custom header and an allowed `Origin`.
pub(super) fn check_csrf(
    headers: &HeaderMap,
    allowed_origins: &[crate::config::Origin],
) -> Result<(), AuthError> {
    if !wants_cookie(headers) {
        return Err(AuthError::CsrfRejected(
            "cookie mode needs the X-Token-Transport: cookie header",
        ));
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let (Some(origin), None) = (origins.next(), origins.next()) else {
        return Err(AuthError::CsrfRejected(
            "cookie mode needs exactly one Origin header",
        ));
    };
    let origin = origin
        .to_str()
        .map_err(|_| AuthError::CsrfRejected("the Origin header is not a valid origin"))?;
    if !allowed_origins.iter().any(|a| a.as_str() == origin) {
        return Err(AuthError::CsrfRejected(
            "this Origin may not use cookie mode",
        ));
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

fn set_cookie(name: &str, value: &str, max_age_secs: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .ok()
}

/// `Set-Cookie` that deletes the refresh cookie.
pub(super) fn clear_refresh_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-refresh=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    )
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
    fn cookies_are_host_only_secure_http_only_and_strict() {
        let v = set_refresh_cookie("t", 60).unwrap();
        let v = v.to_str().unwrap();
        for part in [
            "__Host-refresh=t",
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=60",
        ] {
            assert!(v.contains(part), "{v} lacks {part}");
        }
        assert!(!v.contains("Domain"));
    }
}
