//! The hosted pages (`/account`) as a browser without JavaScript uses them: plain form
//! posts with the cookies the server set, redirects not followed, so every step's status,
//! headers and cookies are checked. The real browser's run is `tests/e2e/browser.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, Response, StatusCode};

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        every_page_carries_the_security_headers_and_no_inline_script_or_style,
        the_static_files_are_versioned_and_cached_for_a_year,
        signing_in_with_a_plain_form_sets_the_session_cookies_and_shows_the_devices,
        a_wrong_password_and_an_unknown_user_get_the_same_answer,
        a_refused_sign_in_keeps_the_username_but_never_the_password,
        a_form_without_its_csrf_token_or_from_another_origin_changes_nothing,
        the_rate_limit_message_tells_the_wait,
        a_page_without_a_session_sends_the_browser_to_sign_in,
        an_expired_access_cookie_is_renewed_from_the_refresh_cookie,
        changing_the_password_keeps_this_session_and_ends_the_others,
        signing_out_ends_the_session_and_clears_its_cookies,
        admin_pages_answer_a_non_admin_with_a_forbidden_page,
        an_admin_searches_disables_enables_sets_roles_and_forces_logout,
        the_audit_log_is_paginated,
        a_malformed_form_gets_an_error_page,
    ],
    sqlite_redis: [
        ending_a_session_from_the_devices_page_refuses_its_access_token,
        ending_all_other_sessions_keeps_only_this_one,
    ],
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
     (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

/// A browser without JavaScript: a cookie jar, no redirects followed.
struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    user_agent: &'static str,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self::with_agent(
            app,
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        )
    }

    fn with_agent(app: &'a TestApp, user_agent: &'static str) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser {
            app,
            http,
            cookies: BTreeMap::new(),
            user_agent,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Keeps the response's cookies as a browser does (`Max-Age=0` deletes); checks that
    /// every one is a `__Host-` cookie with the attributes that prefix and this site need.
    fn store(&mut self, response: &Response) {
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
                assert!(set.contains(attribute), "{set}");
            }
            assert!(
                set.starts_with("__Host-") && !set.contains("Domain"),
                "{set}"
            );
            let (pair, _) = set.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Response {
        let response = request
            .header("user-agent", self.user_agent)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.store(&response);
        response
    }

    async fn get(&mut self, path: &str) -> Response {
        let request = self.http.get(self.app.url(path));
        self.send(request).await
    }

    /// The page's HTML, which must be `200`.
    async fn page(&mut self, path: &str) -> String {
        let response = self.get(path).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        text
    }

    /// A form post as a browser sends it: the page's own Origin and the CSRF token of the
    /// cookie (`csrf: None`), or the given one.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)], csrf: Option<&str>) -> Response {
        let token = csrf
            .map(str::to_string)
            .or_else(|| self.cookies.get("__Host-csrf").cloned())
            .unwrap_or_default();
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        let request = form(self.http.post(self.app.url(path)), &all)
            .header("origin", self.app.address.clone());
        self.send(request).await
    }

    async fn sign_in(&mut self, username: &str, password: &str) -> Response {
        self.page("/account/sign-in").await;
        self.post(
            "/account/sign-in",
            &[("username", username), ("password", password)],
            None,
        )
        .await
    }

    async fn sign_in_ok(&mut self, username: &str) {
        let r = self.sign_in(username, PASSWORD).await;
        assert_see_other(&r, "/account/devices");
    }
}

/// `request` with `fields` as an `application/x-www-form-urlencoded` body.
fn form(request: reqwest::RequestBuilder, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap())
}

fn assert_see_other(response: &Response, to: &str) {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{response:?}");
    assert_eq!(location(response), to);
}

fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

fn header<'r>(response: &'r Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

/// The HTML of a response with `status`.
async fn body(response: Response, status: StatusCode) -> String {
    let got = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    text
}

async fn every_page_carries_the_security_headers_and_no_inline_script_or_style(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user_with_roles("root", &["admin"]).await;
    let mut browser = Browser::new(&app);
    let sign_in = browser.get("/account/sign-in").await;
    assert!(browser.cookies.contains_key("__Host-csrf"));
    let mut pages = vec![sign_in];
    browser.sign_in_ok("root").await;
    for path in [
        "/account/devices",
        "/account/password",
        "/account/admin/users",
        "/account/admin/audit",
    ] {
        pages.push(browser.get(path).await);
    }
    for page in pages {
        let url = page.url().to_string();
        assert_eq!(header(&page, "content-security-policy"), CSP, "{url}");
        assert_eq!(header(&page, "x-frame-options"), "DENY", "{url}");
        assert_eq!(header(&page, "x-content-type-options"), "nosniff", "{url}");
        assert_eq!(header(&page, "referrer-policy"), "same-origin", "{url}");
        assert_eq!(header(&page, "cache-control"), "no-store", "{url}");
        assert_eq!(
            header(&page, "content-type"),
            "text/html; charset=utf-8",
            "{url}"
        );
        let html = body(page, StatusCode::OK).await;
        assert!(html.starts_with("<!DOCTYPE html>"), "{url}");
        // Every script is a file of ours; no inline style, script or event handler.
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=\"/account/static/pages.").count(),
            "{url}"
        );
        for inline in [
            "<style",
            " style=",
            " onclick=",
            " onsubmit=",
            " onload=",
            "javascript:",
        ] {
            assert!(!html.contains(inline), "{url}: {inline}");
        }
        // Every input has its label (hidden fields need none).
        for id in html
            .split(" id=\"")
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
        {
            let is_field = html.contains(&format!("<input id=\"{id}\""))
                && !html.contains(&format!("<input id=\"{id}\" type=\"hidden\""));
            if is_field {
                assert!(
                    html.contains(&format!("for=\"{id}\"")),
                    "{url}: no label for {id}"
                );
            }
        }
    }
}

async fn the_static_files_are_versioned_and_cached_for_a_year(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    let html = browser.page("/account/sign-in").await;
    for (prefix, content_type) in [
        ("/account/static/pages.", "text/css; charset=utf-8"),
        ("/account/static/pages.", "text/javascript; charset=utf-8"),
        ("/account/static/icon.", "image/svg+xml"),
    ] {
        let ext = content_type
            .split([';', '/', '+'])
            .nth(1)
            .map(|t| match t {
                "javascript" => "js",
                other => other,
            })
            .unwrap();
        let path = html
            .split('"')
            .find(|s| s.starts_with(prefix) && s.ends_with(&format!(".{ext}")))
            .unwrap_or_else(|| panic!("no {prefix}*.{ext} in {html}"));
        let r = browser.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "content-type"), content_type);
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&r, "content-security-policy"), CSP);
    }
    let r = browser.get("/account/static/pages.0000.css").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn signing_in_with_a_plain_form_sets_the_session_cookies_and_shows_the_devices(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.register_and_login("alice").await;
    let mut browser = Browser::with_agent(&app, IPHONE);
    let r = browser.sign_in("alice", PASSWORD).await;
    assert_see_other(&r, "/account/devices");
    for cookie in [
        "__Host-access",
        "__Host-refresh",
        "__Host-device",
        "__Host-csrf",
    ] {
        assert!(browser.cookies.contains_key(cookie), "{cookie}");
    }
    // `/account` is the devices page.
    assert_see_other(&browser.get("/account").await, "/account/devices");
    let html = browser.page("/account/devices").await;
    // Both sessions, this one first and marked, each with a readable device name.
    assert_eq!(html.matches("<li class=\"device").count(), 2, "{html}");
    let current = html.find("This device").unwrap();
    assert!(current < html.find("End this session").unwrap(), "{html}");
    assert!(html.contains("Safari on iPhone"), "{html}");
    assert!(html.contains("127.0.0.1"), "{html}");
    assert!(html.contains("<time datetime=\""), "{html}");
    assert!(html.contains("End all other sessions (1)"), "{html}");
}

async fn a_wrong_password_and_an_unknown_user_get_the_same_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_and_login("alice").await;
    let mut answers = Vec::new();
    for username in ["alice", "nobodyx"] {
        let mut browser = Browser::new(&app);
        let r = browser.sign_in(username, "wrong password here").await;
        let html = body(r, StatusCode::UNAUTHORIZED).await;
        assert!(html.contains("Wrong username or password."), "{html}");
        assert!(!browser.cookies.contains_key("__Host-access"));
        answers.push(
            html.replace(username, "USER")
                .replace(&browser.cookies["__Host-csrf"], "TOKEN"),
        );
    }
    assert_eq!(answers[0], answers[1]);
}

async fn a_refused_sign_in_keeps_the_username_but_never_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_and_login("alice").await;
    let mut browser = Browser::new(&app);
    let r = browser.sign_in("alice", "not-the-password-42").await;
    let html = body(r, StatusCode::UNAUTHORIZED).await;
    assert!(html.contains("value=\"alice\""), "{html}");
    assert!(!html.contains("not-the-password-42"), "{html}");
    // The error is announced and the fields point at it.
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(html.contains("aria-describedby=\"form-error\""), "{html}");
}

async fn a_form_without_its_csrf_token_or_from_another_origin_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.register_and_login("alice").await;
    let sessions_before = app.session_count(&other.user_id()).await;

    // Sign-in: no cookie yet, or a token that is not the cookie's: the form comes back.
    let mut stranger = Browser::new(&app);
    let r = stranger
        .post(
            "/account/sign-in",
            &[("username", "alice"), ("password", PASSWORD)],
            Some("forged"),
        )
        .await;
    let html = body(r, StatusCode::FORBIDDEN).await;
    assert!(html.contains("This form had expired"), "{html}");
    assert!(!stranger.cookies.contains_key("__Host-access"));
    assert_eq!(app.session_count(&other.user_id()).await, sessions_before);

    let mut browser = Browser::new(&app);
    browser.sign_in_ok("alice").await;
    let sessions = app.session_count(&other.user_id()).await;
    let fields = [("sid", other.session_id.as_str())];
    // A token that is not the cookie's.
    let r = browser
        .post("/account/devices/end", &fields, Some("forged"))
        .await;
    body(r, StatusCode::FORBIDDEN).await;
    // The right token from another site.
    let token = browser.cookies["__Host-csrf"].clone();
    let fields = [("csrf", token.as_str()), ("sid", other.session_id.as_str())];
    let request = form(browser.http.post(app.url("/account/devices/end")), &fields)
        .header("origin", "https://evil.example");
    let r = browser.send(request).await;
    let html = body(r, StatusCode::FORBIDDEN).await;
    assert!(html.contains("not sent from this site"), "{html}");
    let password = [
        ("current_password", PASSWORD),
        ("new_password", "a new long passphrase"),
        ("confirm_password", "a new long passphrase"),
    ];
    let forms: [(&str, &[(&str, &str)]); 3] = [
        ("/account/sign-out", &[]),
        ("/account/devices/end-others", &[]),
        ("/account/password", &password),
    ];
    for (path, fields) in forms {
        let r = browser.post(path, fields, Some("forged")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(app.session_count(&other.user_id()).await, sessions);
    assert!(app.accepts(&other.access_token).await);
    // The password is unchanged.
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

async fn the_rate_limit_message_tells_the_wait(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_and_login("alice").await;
    let mut browser = Browser::new(&app);
    let mut refused = None;
    for _ in 0..50 {
        let r = browser.sign_in("alice", "wrong password here").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = refused.expect("the limiter refuses within 50 attempts");
    let wait = retry_after_secs(&r);
    let html = body(r, StatusCode::TOO_MANY_REQUESTS).await;
    let expected = if wait > 90 {
        format!("Try again in {} minutes.", wait.div_ceil(60))
    } else {
        format!("Try again in {wait} seconds.")
    };
    assert!(html.contains(&expected), "{expected} in {html}");
}

async fn a_page_without_a_session_sends_the_browser_to_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    for path in [
        "/account/devices",
        "/account/password",
        "/account/admin/users",
        "/account/admin/audit",
    ] {
        assert_see_other(&browser.get(path).await, "/account/sign-in");
    }
    // A forged access cookie is no session either, and is cleared.
    browser
        .cookies
        .insert("__Host-access".into(), "x.y.z".into());
    assert_see_other(&browser.get("/account/devices").await, "/account/sign-in");
    assert!(!browser.cookies.contains_key("__Host-access"));
}

async fn an_expired_access_cookie_is_renewed_from_the_refresh_cookie(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_and_login("alice").await;
    let mut browser = Browser::new(&app);
    browser.sign_in_ok("alice").await;
    let (access, refresh) = (
        browser.cookies["__Host-access"].clone(),
        browser.cookies["__Host-refresh"].clone(),
    );
    app.clock
        .advance(Duration::from_secs(app.config.tokens.access_ttl_secs + 120));
    browser.page("/account/devices").await;
    assert_ne!(browser.cookies["__Host-access"], access);
    assert_ne!(browser.cookies["__Host-refresh"], refresh);
    // The renewed cookies work; the session is the same one.
    let html = browser.page("/account/devices").await;
    assert_eq!(html.matches("This device").count(), 1, "{html}");
    assert!(!app.accepts(&access).await);
}

async fn ending_a_session_from_the_devices_page_refuses_its_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let phone = app.register_and_login("alice").await;
    assert!(app.accepts(&phone.access_token).await);
    let mut browser = Browser::new(&app);
    browser.sign_in_ok("alice").await;
    let html = browser.page("/account/devices").await;
    assert!(html.contains(&phone.session_id), "{html}");
    let r = browser
        .post("/account/devices/end", &[("sid", &phone.session_id)], None)
        .await;
    assert_see_other(&r, "/account/devices?notice=ended");
    let html = browser.page("/account/devices?notice=ended").await;
    assert!(html.contains("The session was ended."), "{html}");
    assert!(!html.contains(&phone.session_id), "{html}");
    assert!(!app.accepts(&phone.access_token).await);
    // Again: it is gone, which the page says.
    let r = browser
        .post("/account/devices/end", &[("sid", &phone.session_id)], None)
        .await;
    assert_see_other(&r, "/account/devices?notice=already-ended");
    assert_eq!(app.audit_events("session.ended").await.len(), 1);
}

async fn ending_all_other_sessions_keeps_only_this_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("alice").await;
    let second = app.login_ok("alice").await;
    let mut browser = Browser::new(&app);
    browser.sign_in_ok("alice").await;
    let r = browser.post("/account/devices/end-others", &[], None).await;
    assert_see_other(&r, "/account/devices?notice=others-ended");
    assert!(!app.accepts(&first.access_token).await);
    assert!(!app.accepts(&second.access_token).await);
    assert_eq!(app.session_count(&first.user_id()).await, 1);
    let html = browser.page("/account/devices").await;
    assert!(html.contains("This device"), "{html}");
    assert!(!html.contains("End all other sessions"), "{html}");
    let events = app.audit_events("sessions.others_ended").await;
    assert_eq!(events[0].detail.as_deref(), Some("2 sessions ended"));
}

async fn changing_the_password_keeps_this_session_and_ends_the_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.register_and_login("alice").await;
    let mut browser = Browser::new(&app);
    browser.sign_in_ok("alice").await;
    let html = browser.page("/account/password").await;
    assert!(html.contains("data-min=\"8\""), "{html}");
    let new = "a much longer passphrase now";
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        [
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", again),
        ]
    };
    let cases = [
        (
            change(PASSWORD, new, "something else"),
            StatusCode::BAD_REQUEST,
            "confirmation differ",
        ),
        (
            change("wrong password x", new, new),
            StatusCode::UNAUTHORIZED,
            "current password is wrong",
        ),
        (
            change(PASSWORD, "short", "short"),
            StatusCode::BAD_REQUEST,
            "at least 8 characters",
        ),
        (
            change(PASSWORD, "password123", "password123"),
            StatusCode::BAD_REQUEST,
            "too common",
        ),
    ];
    for (fields, status, message) in cases {
        let r = browser.post("/account/password", &fields, None).await;
        let html = body(r, status).await;
        assert!(html.contains(message), "{message} in {html}");
        for (_, value) in fields {
            assert!(!html.contains(value), "{value} echoed in {html}");
        }
        assert!(app.accepts(&other.access_token).await);
    }
    let r = browser
        .post("/account/password", &change(PASSWORD, new, new), None)
        .await;
    assert_see_other(&r, "/account/devices?notice=password-changed");
    let html = browser
        .page("/account/devices?notice=password-changed")
        .await;
    assert!(html.contains("Your password was changed."), "{html}");
    assert!(!app.accepts(&other.access_token).await);
    assert_eq!(app.login("alice", new).await.status(), StatusCode::OK);
}

async fn signing_out_ends_the_session_and_clears_its_cookies(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_and_login("alice").await;
    let mut browser = Browser::new(&app);
    browser.sign_in_ok("alice").await;
    let access = browser.cookies["__Host-access"].clone();
    let r = browser.post("/account/sign-out", &[], None).await;
    assert_see_other(&r, "/account/sign-in?notice=signed-out");
    assert!(!browser.cookies.contains_key("__Host-access"));
    assert!(!browser.cookies.contains_key("__Host-refresh"));
    // The device token is the browser's, not the session's: it stays.
    assert!(browser.cookies.contains_key("__Host-device"));
    assert!(!app.accepts(&access).await);
    assert!(app.accepts(&user.access_token).await);
    let html = browser.page("/account/sign-in?notice=signed-out").await;
    assert!(html.contains("You have signed out."), "{html}");
    assert_see_other(&browser.get("/account/devices").await, "/account/sign-in");
}

async fn admin_pages_answer_a_non_admin_with_a_forbidden_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app.register_and_login("alice").await;
    app.register_and_login("eve").await;
    let mut browser = Browser::new(&app);
    browser.sign_in_ok("eve").await;
    let html = browser.page("/account/devices").await;
    assert!(!html.contains("/account/admin/users"), "{html}");
    for path in ["/account/admin/users", "/account/admin/audit"] {
        let r = browser.get(path).await;
        assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
        let html = body(r, StatusCode::FORBIDDEN).await;
        assert!(
            html.contains("This operation needs the admin role."),
            "{html}"
        );
    }
    for action in ["disable", "logout", "roles"] {
        let path = format!("/account/admin/users/{}/{action}", victim.user_id());
        let r = browser.post(&path, &[("roles", "admin")], None).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action}");
    }
    assert!(app.accepts(&victim.access_token).await);
}

async fn an_admin_searches_disables_enables_sets_roles_and_forces_logout(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user_with_roles("root", &["admin"]).await;
    let alice = app.register_and_login("alice").await;
    app.register_and_login("bob").await;
    let mut browser = Browser::new(&app);
    browser.sign_in_ok("root").await;
    let html = browser.page("/account/admin/users?q=ALI").await;
    assert!(html.contains(">alice"), "{html}");
    assert!(!html.contains(">bob"), "{html}");
    assert!(html.contains("value=\"ALI\""), "{html}");
    // LIKE's wildcards are text.
    let html = browser.page("/account/admin/users?q=%25").await;
    assert!(html.contains("No users found."), "{html}");

    let id = alice.user_id();
    let act = |action: &str| format!("/account/admin/users/{id}/{action}");
    let back = [("q", "ali"), ("page", "1")];
    let r = browser.post(&act("disable"), &back, None).await;
    assert_see_other(&r, "/account/admin/users?q=ali&page=1&notice=disabled");
    assert!(!app.accepts(&alice.access_token).await);
    let html = browser.page(&location(&r)).await;
    assert!(html.contains("Disabled"), "{html}");
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let r = browser.post(&act("enable"), &back, None).await;
    assert_see_other(&r, "/account/admin/users?q=ali&page=1&notice=enabled");
    let again = app.login_ok("alice").await;

    let r = browser
        .post(&act("roles"), &[("roles", "editor, viewer")], None)
        .await;
    assert_see_other(&r, "/account/admin/users?q=&page=1&notice=roles-set");
    assert!(!app.accepts(&again.access_token).await);
    let html = browser.page("/account/admin/users?q=alice").await;
    assert!(html.contains("editor, viewer"), "{html}");
    let r = browser
        .post(&act("roles"), &[("roles", "bad role!")], None)
        .await;
    let html = body(r, StatusCode::BAD_REQUEST).await;
    assert!(html.contains("Invalid role name"), "{html}");

    let third = app.login_ok("alice").await;
    let r = browser.post(&act("logout"), &[], None).await;
    assert_see_other(&r, "/account/admin/users?q=&page=1&notice=logged-out");
    assert!(!app.accepts(&third.access_token).await);

    let r = browser.post(&act("explode"), &[], None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = browser
        .post("/account/admin/users/not-a-uuid/disable", &[], None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    for event in [
        "admin.user_disabled",
        "admin.user_enabled",
        "admin.roles_set",
        "admin.force_logout",
    ] {
        assert_eq!(app.audit_events(event).await.len(), 1, "{event}");
    }
}

async fn the_audit_log_is_paginated(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user_with_roles("root", &["admin"]).await;
    for _ in 0..60 {
        app.auth.cli_force_logout("root").await.unwrap();
    }
    let mut browser = Browser::new(&app);
    browser.sign_in_ok("root").await;
    let first = browser.page("/account/admin/audit").await;
    assert_eq!(first.matches("<tr>").count(), 1 + 50, "{first}");
    assert!(
        first.contains("href=\"/account/admin/audit?page=2\""),
        "{first}"
    );
    assert!(!first.contains("rel=\"prev\""), "{first}");
    // Newest first: the sign-in is on top.
    assert!(first.find("login.success").unwrap() < first.find("admin.force_logout").unwrap());
    let second = browser.page("/account/admin/audit?page=2").await;
    // 60 force logouts and the sign-in: 11 on page 2.
    assert_eq!(second.matches("<tr>").count(), 1 + 11, "{second}");
    assert!(
        second.contains("href=\"/account/admin/audit?page=1\""),
        "{second}"
    );
    assert!(!second.contains("rel=\"next\""), "{second}");
}

async fn a_malformed_form_gets_an_error_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    browser.page("/account/sign-in").await;
    // A field twice, and a missing one.
    let request = browser
        .http
        .request(Method::POST, app.url("/account/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=a&username=b&password=x");
    let r = browser.send(request).await;
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    body(r, StatusCode::BAD_REQUEST).await;
    let r = browser
        .post("/account/sign-in", &[("username", "a")], None)
        .await;
    body(r, StatusCode::BAD_REQUEST).await;
}
