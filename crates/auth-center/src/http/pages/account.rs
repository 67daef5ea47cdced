//! The user's pages: sign-in, sign-out, "your devices" and the password change.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::device_name::device_name;
use super::session::{SignedIn, cleared_cookies, csrf_token, session_cookies, signed_in};
use super::{Page, PageForm, PageQuery, Refusal, check_csrf, html, redirect, view, with_cookies};
use crate::domain::{AuthError, AuthService};
use crate::http::AppState;
use crate::http::cookie::check_form_csrf;
use crate::http::extract::Client;

/// `GET /account`: the devices page (or sign-in).
pub(super) async fn home() -> Response {
    redirect("/account/devices", [])
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    password: SecretString,
}

/// The sign-in page, keeping the username (never the password), with a refusal.
async fn sign_in_form(
    auth: &AuthService,
    headers: &HeaderMap,
    username: &str,
    refusal: Option<&Refusal>,
    notice: Option<&str>,
) -> Page {
    let (csrf, new_cookie) = csrf_token(auth, headers)?;
    let form = view::SignIn {
        csrf: &csrf,
        username,
        error: refusal.map(|r| r.message.as_str()),
        notice,
    };
    let status = refusal.map_or(StatusCode::OK, |r| r.status);
    let response = with_cookies(html(status, view::sign_in(&form)), new_cookie);
    Ok(match refusal {
        Some(r) => r.apply(response),
        None => response,
    })
}

/// `GET /account/sign-in`
pub(super) async fn sign_in_page(State(auth): AppState, headers: HeaderMap, uri: Uri) -> Page {
    let query = PageQuery::of(&uri);
    sign_in_form(&auth, &headers, "", None, query.notice()).await
}

/// `POST /account/sign-in`: a login in cookie mode, then the devices page. A refusal shows
/// the form again, with one message for an unknown user, a wrong password and a disabled
/// account, and the wait of a rate limit.
pub(super) async fn sign_in(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<SignInForm>,
) -> Page {
    let SignInForm {
        csrf,
        username,
        password,
    } = form;
    let refusal =
        if check_form_csrf(&headers, &csrf, &auth.config().browser.allowed_origins).is_err() {
            Refusal::new(
                StatusCode::FORBIDDEN,
                "This form had expired. Please sign in again.",
            )
        } else {
            match auth.login(&username, password, None, &client).await {
                Ok(tokens) => {
                    return Ok(redirect(
                        "/account/devices",
                        session_cookies(&auth, &tokens),
                    ));
                }
                Err(e) => Refusal::of(e, "Wrong username or password.")?,
            }
        };
    sign_in_form(&auth, &headers, &username, Some(&refusal), None).await
}

/// A form whose only field is its CSRF token.
#[derive(Deserialize)]
pub(super) struct TokenOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /account/sign-out`: ends this session, clears its cookies.
pub(super) async fn sign_out(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<TokenOnly>,
) -> Page {
    check_csrf(&auth, &headers, &form.csrf)?;
    let user = signed_in(&auth, &headers, &client).await?;
    auth.logout(&user.claims, &client)
        .await
        .map_err(|e| user.fail(e))?;
    Ok(redirect(
        "/account/sign-in?notice=signed-out",
        cleared_cookies(),
    ))
}

/// `GET /account/devices`: every session of the user, this one first and marked.
pub(super) async fn devices(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let user = signed_in(&auth, &headers, &client).await?;
    let sessions = auth
        .my_sessions(&user.claims)
        .await
        .map_err(|e| user.fail(e))?;
    let mut devices: Vec<view::Device> = sessions
        .into_iter()
        .map(|s| view::Device {
            current: s.sid == user.claims.sid,
            name: device_name(&s.user_agent),
            sid: s.sid,
            user_agent: s.user_agent,
            ip: s.ip,
            created_ms: s.created_ms,
            last_seen_ms: s.last_seen_ms,
        })
        .collect();
    devices.sort_by_key(|d| !d.current);
    let query = PageQuery::of(&uri);
    let page = view::devices(&user.nav(), &devices, query.notice());
    Ok(user.respond(html(StatusCode::OK, page)))
}

/// The form that ends one session.
#[derive(Deserialize)]
pub(super) struct EndSession {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    sid: String,
}

/// `POST /account/devices/end`
pub(super) async fn end_session(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<EndSession>,
) -> Page {
    check_csrf(&auth, &headers, &form.csrf)?;
    let user = signed_in(&auth, &headers, &client).await?;
    let to = match auth.end_my_session(&user.claims, &form.sid, &client).await {
        Ok(()) => "/account/devices?notice=ended",
        Err(AuthError::SessionNotFound) => "/account/devices?notice=already-ended",
        Err(e) => return Err(user.fail(e)),
    };
    Ok(user.respond(redirect(to, [])))
}

/// `POST /account/devices/end-others`
pub(super) async fn end_others(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<TokenOnly>,
) -> Page {
    check_csrf(&auth, &headers, &form.csrf)?;
    let user = signed_in(&auth, &headers, &client).await?;
    auth.end_my_other_sessions(&user.claims, &client)
        .await
        .map_err(|e| user.fail(e))?;
    Ok(user.respond(redirect("/account/devices?notice=others-ended", [])))
}

/// `GET /account/password`
pub(super) async fn password_page(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
) -> Page {
    let user = signed_in(&auth, &headers, &client).await?;
    Ok(password_form(&user, None))
}

fn password_form(user: &SignedIn, refusal: Option<&Refusal>) -> Response {
    let page = view::password(&user.nav(), refusal.map(|r| r.message.as_str()));
    let response = user.respond(html(StatusCode::OK, page));
    match refusal {
        Some(r) => r.apply(response),
        None => response,
    }
}

/// The password form's fields.
#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    current_password: SecretString,
    new_password: SecretString,
    confirm_password: SecretString,
}

/// `POST /account/password`: the change (the server's policy decides), then the devices
/// page, where the other sessions are gone.
pub(super) async fn change_password(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<PasswordForm>,
) -> Page {
    check_csrf(&auth, &headers, &form.csrf)?;
    let user = signed_in(&auth, &headers, &client).await?;
    if form.new_password.expose_secret() != form.confirm_password.expose_secret() {
        let refusal = Refusal::new(
            StatusCode::BAD_REQUEST,
            "The new password and its confirmation differ.",
        );
        return Ok(password_form(&user, Some(&refusal)));
    }
    let changed = auth
        .change_password(
            &user.claims,
            form.current_password,
            form.new_password,
            &client,
        )
        .await;
    match changed {
        Ok(_) => Ok(user.respond(redirect("/account/devices?notice=password-changed", []))),
        Err(e) => {
            let refusal =
                Refusal::of(e, "The current password is wrong.").map_err(|e| user.fail(e))?;
            Ok(password_form(&user, Some(&refusal)))
        }
    }
}
