//! Who is signed in to the pages, and the cookies that say so. The pages are cookie mode:
//! the refresh token in `__Host-refresh` and the device token in `__Host-device` as for a
//! browser app, and the access token in `__Host-access` (the same attributes: `HttpOnly`,
//! `Secure`, `SameSite=Strict`, `Path=/`), living as long as the token. A page request
//! presents the access token to `AuthService::authenticate` like any bearer; once it has
//! expired (or the cookie is gone), the refresh cookie is rotated by `AuthService::refresh`
//! and both cookies are replaced. No session state of the pages' own: ending the session
//! anywhere signs the pages out.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use secrecy::ExposeSecret;
use verifier::Claims;

use super::view::Nav;
use super::{PageError, failure, redirect, with_cookies};
use crate::domain::admin::ADMIN_ROLE;
use crate::domain::crypto::random_id;
use crate::domain::{AuthError, AuthService, ClientInfo, IssuedTokens};
use crate::http::cookie;
use crate::http::error::ApiError;

/// The access-token cookie of the pages.
pub(super) const ACCESS_COOKIE: &str = "__Host-access";

/// The signed-in user of a page request, with the cookies to set on its response (renewed
/// tokens, a new CSRF token).
pub(super) struct SignedIn {
    pub claims: Claims,
    pub csrf: String,
    pub cookies: Vec<HeaderValue>,
}

impl SignedIn {
    /// The navigation of this user's pages.
    pub(super) fn nav(&self) -> Nav<'_> {
        Nav {
            admin: self.claims.has_role(ADMIN_ROLE),
            csrf: &self.csrf,
        }
    }

    /// `response` with the cookies this request renewed (an error page too: a rotated
    /// refresh token must reach the browser, or its next request replays the old one).
    pub(super) fn respond(&self, mut response: Response) -> Response {
        for c in &self.cookies {
            response.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        response
    }

    /// The error page of this user's request.
    pub(super) fn fail(&self, e: impl Into<ApiError>) -> PageError {
        PageError::new(self.respond(failure(e, Some(&self.nav()))))
    }
}

/// The form token of this browser (the `__Host-csrf` cookie), or a new one with the
/// `Set-Cookie` that stores it.
pub(super) fn csrf_token(
    auth: &AuthService,
    headers: &HeaderMap,
) -> Result<(String, Option<HeaderValue>), AuthError> {
    if let Some(token) = cookie::named_cookie(headers, cookie::CSRF_COOKIE_NAME)
        && !token.is_empty()
    {
        return Ok((token, None));
    }
    let token = random_id()?;
    let set = cookie::set_cookie(
        cookie::CSRF_COOKIE_NAME,
        &token,
        auth.config().sessions.absolute_secs,
    );
    Ok((token, set))
}

/// The signed-in user, or the response that sends the browser to the sign-in page (its dead
/// cookies cleared) or tells of an outage.
pub(super) async fn signed_in(
    auth: &AuthService,
    headers: &HeaderMap,
    client: &ClientInfo,
) -> Result<SignedIn, PageError> {
    let (csrf, new_csrf) = csrf_token(auth, headers)?;
    let mut cookies: Vec<HeaderValue> = new_csrf.into_iter().collect();
    if let Some(token) = cookie::named_cookie(headers, ACCESS_COOKIE) {
        match auth.authenticate(&token, None).await {
            Ok(claims) => {
                return Ok(SignedIn {
                    claims,
                    csrf,
                    cookies,
                });
            }
            // Expired, or its session ended: the refresh cookie decides.
            Err(AuthError::Token(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let Some(refresh) = cookie::refresh_cookie(headers) else {
        return Err(PageError::new(to_sign_in(headers, None)));
    };
    let tokens = match auth.refresh(&refresh, None, client).await {
        Ok(tokens) => tokens,
        Err(e) if crate::http::refresh::ends_refresh_cookie(&e) => {
            return Err(PageError::new(to_sign_in(headers, None)));
        }
        Err(e) => return Err(e.into()),
    };
    cookies.extend(session_cookies(auth, &tokens));
    let claims = match auth.authenticate(&tokens.access_token, None).await {
        Ok(claims) => claims,
        // The new cookies still go out with the error page.
        Err(e) => return Err(PageError::new(with_cookies(failure(e, None), cookies))),
    };
    Ok(SignedIn {
        claims,
        csrf,
        cookies,
    })
}

/// The cookies of a new or refreshed session: access and refresh token, and the device
/// token a login hands out.
pub(super) fn session_cookies(auth: &AuthService, tokens: &IssuedTokens) -> Vec<HeaderValue> {
    let config = auth.config();
    [
        cookie::set_cookie(ACCESS_COOKIE, &tokens.access_token, tokens.expires_in),
        cookie::set_refresh_cookie(
            tokens.refresh_token.expose_secret(),
            config.sessions.absolute_secs,
        ),
        tokens.device_token.as_ref().and_then(|t| {
            cookie::set_device_cookie(t.expose_secret(), config.limits.device_token_ttl_secs)
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `Set-Cookie`s that delete the session's cookies (the device token stays: it is this
/// browser's, not the session's).
pub(super) fn cleared_cookies() -> Vec<HeaderValue> {
    [
        cookie::set_cookie(ACCESS_COOKIE, "", 0),
        cookie::clear_refresh_cookie(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A redirect to the sign-in page (with a notice code), clearing the session's cookies if
/// the request carried any.
pub(super) fn to_sign_in(headers: &HeaderMap, notice: Option<&str>) -> Response {
    let had_session = cookie::named_cookie(headers, ACCESS_COOKIE).is_some()
        || cookie::refresh_cookies(headers) > 0;
    let cookies = if had_session {
        cleared_cookies()
    } else {
        Vec::new()
    };
    let to = match notice {
        Some(code) => format!("/account/sign-in?notice={code}"),
        None => "/account/sign-in".to_string(),
    };
    redirect(&to, cookies)
}
