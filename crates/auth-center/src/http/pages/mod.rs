//! The hosted pages: sign-in and sign-out, "your devices", the password change and, for
//! admins, the users and the audit log. Server-rendered HTML (`view.rs`, maud) over the
//! same `AuthService` use cases as the JSON API; plain forms that work without JavaScript
//! (POST, then a redirect: Post/Redirect/Get), one static script that adds the password
//! policy's feedback. Signed in by cookies (`session.rs`), forms protected by a
//! double-submit CSRF token (`http/cookie.rs`), every response with a strict
//! Content-Security-Policy (no inline script or style) and `frame-ancestors 'none'`.
//!
//! Outside the OpenAPI contract: these are pages for people, under `/account`.

mod account;
mod admin;
mod assets;
mod device_name;
mod session;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_http::set_header::SetResponseHeaderLayer;

use super::MAX_BODY_BYTES;
use super::cookie::check_form_csrf;
use super::error::ApiError;
use super::extract::{form, read_body};
use crate::domain::{AuthError, AuthService};

/// The policy of every page: nothing but this origin's own script, style, images and form
/// targets; no framing, no `<base>`, no plugins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The pages' routes, under `/account`.
pub(super) fn router() -> Router<Arc<AuthService>> {
    let overriding = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    Router::new()
        .route("/account", get(account::home))
        .route(
            "/account/sign-in",
            get(account::sign_in_page).post(account::sign_in),
        )
        .route("/account/sign-out", post(account::sign_out))
        .route("/account/devices", get(account::devices))
        .route("/account/devices/end", post(account::end_session))
        .route("/account/devices/end-others", post(account::end_others))
        .route(
            "/account/password",
            get(account::password_page).post(account::change_password),
        )
        .route("/account/admin/users", get(admin::users))
        .route(
            "/account/admin/users/{id}/{action}",
            post(admin::user_action),
        )
        .route("/account/admin/audit", get(admin::audit))
        .route("/account/static/{file}", get(assets::serve))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(overriding(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(overriding(header::X_FRAME_OPTIONS, "DENY"))
        // Not `no-referrer`: under it, browsers send `Origin: null` with a form post, which the
        // CSRF check refuses. `same-origin` sends nothing to other sites.
        .layer(overriding(header::REFERRER_POLICY, "same-origin"))
        .layer(overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ))
        // Pages show sessions, users and audit entries: never stored, but the static files
        // (which set their own long caching).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// An HTML response.
fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        markup.into_string(),
    )
        .into_response()
}

/// `response` with these `Set-Cookie`s.
fn with_cookies(
    mut response: Response,
    cookies: impl IntoIterator<Item = HeaderValue>,
) -> Response {
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// `303 See Other` to `to` (a path of ours), with these `Set-Cookie`s.
fn redirect(to: &str, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    let response = match HeaderValue::from_str(to) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    with_cookies(response, cookies)
}

/// What a page handler answers: the page, or an error page ([`PageError`]).
type Page = Result<Response, PageError>;

/// An answer that ends a page request early: an error page, or the redirect to sign-in.
/// (Boxed: a `Response` is large, and it travels in every `Err`.)
pub(super) struct PageError(Box<Response>);

impl PageError {
    fn new(response: Response) -> Self {
        PageError(Box::new(response))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<AuthError> for PageError {
    fn from(e: AuthError) -> Self {
        PageError::new(failure(e, None))
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::new(failure(e, None))
    }
}

/// An error as a page: the status, headers (`Retry-After`) and message of the JSON API's
/// answer to the same error (one mapping, `http/error.rs`, which also logs the causes of an
/// outage), in HTML.
fn failure(e: impl Into<ApiError>, nav: Option<&view::Nav<'_>>) -> Response {
    let (parts, body) = e.into().into_response().into_parts();
    // The error body is one JSON buffer, there at once.
    let body: serde_json::Value = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .now_or_never()
        .and_then(Result::ok)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let message = match body["error"].as_str() {
        Some("csrf_rejected") => {
            "This form has expired or was not sent from this site. Go back, reload the page \
             and try again."
                .to_string()
        }
        _ => sentence(body["message"].as_str().unwrap_or_default()),
    };
    let title = parts.status.canonical_reason().unwrap_or("Error");
    let mut response = html(parts.status, view::failure(nav, title, &message));
    if let Some(retry) = parts.headers.get(header::RETRY_AFTER) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry.clone());
    }
    response
}

/// The CSRF check of a form post ([`check_form_csrf`]), or a `403` page.
fn check_csrf(auth: &AuthService, headers: &HeaderMap, token: &str) -> Result<(), PageError> {
    Ok(check_form_csrf(
        headers,
        token,
        &auth.config().browser.allowed_origins,
    )?)
}

/// A refusal that a form shows above its fields, the fields kept (but passwords).
pub(super) struct Refusal {
    status: StatusCode,
    message: String,
    retry_after_secs: Option<u64>,
}

impl Refusal {
    fn new(status: StatusCode, message: &str) -> Self {
        Refusal {
            status,
            message: message.to_string(),
            retry_after_secs: None,
        }
    }

    /// The refusals of a form that checks a password: `wrong_password` for invalid
    /// credentials (one message, whether or not the user exists), the wait of a rate
    /// limit, an input the policy refuses. Any other error is a page of its own.
    fn of(e: AuthError, wrong_password: &str) -> Result<Self, AuthError> {
        match e {
            AuthError::InvalidCredentials => {
                Ok(Refusal::new(StatusCode::UNAUTHORIZED, wrong_password))
            }
            AuthError::RateLimited {
                retry_after_secs, ..
            } => Ok(Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: format!(
                    "Too many attempts. Try again in {}.",
                    wait_text(retry_after_secs)
                ),
                retry_after_secs: Some(retry_after_secs),
            }),
            AuthError::InvalidInput(message) => {
                Ok(Refusal::new(StatusCode::BAD_REQUEST, &sentence(&message)))
            }
            e => Err(e),
        }
    }

    /// The form's page answered with this refusal's status and `Retry-After`.
    fn apply(&self, mut response: Response) -> Response {
        *response.status_mut() = self.status;
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A domain message as a sentence: capitalised, with a full stop.
fn sentence(message: &str) -> String {
    if message.trim().is_empty() {
        return "Something went wrong.".into();
    }
    let mut chars = message.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A wait for a person: "42 seconds", "3 minutes".
fn wait_text(secs: u64) -> String {
    match secs {
        0..=1 => "1 second".into(),
        2..=90 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// A page form: an `application/x-www-form-urlencoded` body as `T`, no field repeated; a
/// body that is not such a form gets an error page.
struct PageForm<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        let value = form(&bytes).map_err(|e| e.into_api_error("invalid_request"))?;
        Ok(PageForm(value))
    }
}

/// The query parameters the pages read; anything unreadable counts as absent.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PageQuery {
    notice: Option<String>,
    q: Option<String>,
    page: Option<u32>,
}

impl PageQuery {
    fn of(uri: &Uri) -> Self {
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default()
    }

    /// The page number, from 1.
    fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }

    /// The text of the notice named in the query, if it is one of ours (no text from the
    /// address is ever shown).
    fn notice(&self) -> Option<&'static str> {
        Some(match self.notice.as_deref()? {
            "signed-out" => "You have signed out.",
            "ended" => "The session was ended. Its tokens no longer work anywhere.",
            "already-ended" => "That session had already ended.",
            "others-ended" => "All your other sessions were ended.",
            "password-changed" => "Your password was changed. Your other sessions were ended.",
            "disabled" => "The user was disabled and signed out everywhere.",
            "enabled" => "The user was enabled.",
            "logged-out" => "The user's sessions were ended.",
            "roles-set" => "The roles were set. The user's sessions were ended.",
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_seconds_then_minutes() {
        assert_eq!(wait_text(0), "1 second");
        assert_eq!(wait_text(1), "1 second");
        assert_eq!(wait_text(42), "42 seconds");
        assert_eq!(wait_text(90), "90 seconds");
        assert_eq!(wait_text(91), "2 minutes");
        assert_eq!(wait_text(900), "15 minutes");
    }

    #[test]
    fn messages_become_sentences() {
        assert_eq!(
            sentence("password is too common; choose another"),
            "Password is too common; choose another."
        );
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "Something went wrong.");
    }

    #[test]
    fn only_known_notices_are_shown() {
        let query = |q: &str| PageQuery::of(&format!("/account/devices?{q}").parse().unwrap());
        assert_eq!(
            query("notice=ended").notice(),
            Some("The session was ended. Its tokens no longer work anywhere.")
        );
        assert_eq!(query("notice=%3Cscript%3E").notice(), None);
        assert_eq!(query("page=0").page(), 1);
        assert_eq!(query("page=x").page(), 1);
        assert_eq!(query("page=3").page(), 3);
    }
}
