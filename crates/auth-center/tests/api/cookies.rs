//! Cookie mode for browsers: the `__Host-` refresh cookie, CSRF protection (Origin
//! allow-list and the non-simple `X-Token-Transport` header), CORS, no-store.

use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
    cookie_mode_login_sets_a_host_only_secure_http_only_strict_cookie_and_no_refresh_token_in_the_body,
    a_cookie_refresh_rotates_the_cookie,
    a_foreign_or_missing_origin_is_refused_as_csrf_and_the_session_is_untouched,
    a_cookie_refresh_without_the_transport_header_is_refused_and_the_session_is_untouched,
    logout_and_logout_all_clear_the_cookie,
    a_dead_refresh_cookie_is_cleared,
    cors_preflight_allows_only_listed_origins_with_credentials,
    cookie_mode_is_off_without_allowed_origins,
    body_mode_is_unchanged_when_cookie_mode_is_configured,
    a_second_origin_header_is_refused_as_csrf,
    two_refresh_cookies_are_refused_without_clearing_either,
    two_authorization_headers_are_refused,
    ],
}

const ORIGIN: &str = "https://app.example";
const EVIL: &str = "https://evil.example";
const COOKIE_PREFIX: &str = "__Host-refresh=";
/// The attributes of a refresh `Set-Cookie`, exactly, in the order of [`normalised`].
const COOKIE_ATTRIBUTES: &str = "; HttpOnly; Max-Age=2592000; Path=/; SameSite=Strict; Secure";
const CLEARED: &str = "__Host-refresh=; HttpOnly; Max-Age=0; Path=/; SameSite=Strict; Secure";

async fn browser_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| {
        c.browser.allowed_origins = vec![
            Origin::parse(ORIGIN).unwrap(),
            Origin::parse("http://localhost:5173").unwrap(),
        ];
    })
    .await
}

/// The `Set-Cookie`s of the refresh cookie (a login also sets the device cookie, which
/// `device_tokens.rs` checks), [`normalised`].
fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| normalised(v.to_str().unwrap()))
        .filter(|c| !c.starts_with("__Host-device="))
        .collect()
}

/// A `Set-Cookie` with its attributes sorted: RFC 6265 gives their order no meaning, so the
/// assertions compare everything else (pair, attributes, values, nothing more) exactly.
fn normalised(set_cookie: &str) -> String {
    let mut parts: Vec<&str> = set_cookie.split("; ").collect();
    parts[1..].sort_unstable();
    parts.join("; ")
}

/// The refresh token from the one refresh `Set-Cookie`, whose attributes are exactly these.
fn cookie_value(headers: &HeaderMap) -> String {
    let cookies = set_cookies(headers);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    let value = cookie
        .strip_prefix(COOKIE_PREFIX)
        .and_then(|rest| rest.strip_suffix(COOKIE_ATTRIBUTES))
        .unwrap_or_else(|| panic!("unexpected Set-Cookie: {cookie}"));
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert_eq!(value.split('.').count(), 4, "a refresh token: {value}");
    value.to_string()
}

async fn cookie_login(app: &TestApp, username: &str) -> (String, Value) {
    let r = app
        .request(Method::POST, "/v1/login")
        .header("x-token-transport", "cookie")
        .header("origin", ORIGIN)
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookie = cookie_value(r.headers());
    (cookie, r.json().await.unwrap())
}

async fn cookie_refresh(
    app: &TestApp,
    cookie: &str,
    origin: Option<&str>,
    header: bool,
) -> Response {
    let mut req = app
        .request(Method::POST, "/v1/refresh")
        .header("cookie", format!("theme=dark; {COOKIE_PREFIX}{cookie}"))
        .json(&json!({}));
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    if header {
        req = req.header("x-token-transport", "cookie");
    }
    req.send().await.unwrap()
}

async fn cookie_mode_login_sets_a_host_only_secure_http_only_strict_cookie_and_no_refresh_token_in_the_body(
    backend: Backend,
) {
    let app = browser_app(backend).await;
    app.register("anna", PASSWORD).await;
    let (cookie, body) = cookie_login(&app, "anna").await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(!body.to_string().contains(&cookie));
    assert_eq!(body["token_type"], "Bearer");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(app.me(access).await.status(), StatusCode::OK);
    let sid = body["session_id"].as_str().unwrap();
    assert!(cookie.contains(sid));
    // The cookie is a working refresh token of that session.
    let r = cookie_refresh(&app, &cookie, Some(ORIGIN), true).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The allowed origin gets CORS headers with credentials on the real response too.
    let r = app
        .request(Method::POST, "/v1/login")
        .header("x-token-transport", "cookie")
        .header("origin", "http://localhost:5173")
        .json(&json!({ "username": "anna", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
}

async fn a_cookie_refresh_rotates_the_cookie(backend: Backend) {
    let app = browser_app(backend).await;
    app.register("bert", PASSWORD).await;
    let (first, login) = cookie_login(&app, "bert").await;
    let r = cookie_refresh(&app, &first, Some(ORIGIN), true).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let second = cookie_value(r.headers());
    assert_ne!(first, second);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["session_id"], login["session_id"]);
    assert_eq!(
        app.me(body["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    // The rotated cookie works in turn; the first one is now an old token.
    let r = cookie_refresh(&app, &second, Some(ORIGIN), true).await;
    assert_eq!(r.status(), StatusCode::OK);
    let third = cookie_value(r.headers());
    assert_ne!(third, second);
    // A body token wins over the cookie when both are sent (API clients).
    let r = app
        .request(Method::POST, "/v1/refresh")
        .header("cookie", format!("{COOKIE_PREFIX}garbage"))
        .json(&json!({ "refresh_token": third }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(set_cookies(r.headers()).is_empty());
    let body: Value = r.json().await.unwrap();
    assert!(body["refresh_token"].is_string());
}

async fn a_foreign_or_missing_origin_is_refused_as_csrf_and_the_session_is_untouched(
    backend: Backend,
) {
    let app = browser_app(backend).await;
    app.register("cleo", PASSWORD).await;
    let (cookie, login) = cookie_login(&app, "cleo").await;
    let uid = cookie.split('.').next().unwrap().to_string();
    let before = app.auth.sessions_of(&uid).await.unwrap();
    for origin in [
        Some(EVIL),
        Some("null"),
        Some("https://app.example.evil.example"),
        Some("https://APP.example"),
        Some("http://app.example"),
        Some("https://app.example:444"),
        None,
    ] {
        let r = cookie_refresh(&app, &cookie, origin, true).await;
        assert!(set_cookies(r.headers()).is_empty(), "{origin:?}");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{origin:?}"
        );
        let (status, code) = error_code(r).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "csrf_rejected"),
            "{origin:?}"
        );
    }
    // Cookie-mode login from a foreign origin: refused, no session made.
    let r = app
        .request(Method::POST, "/v1/login")
        .header("x-token-transport", "cookie")
        .header("origin", EVIL)
        .json(&json!({ "username": "cleo", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(set_cookies(r.headers()).is_empty());
    assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    // Untouched: not rotated, not revoked, no new session.
    assert_eq!(app.auth.sessions_of(&uid).await.unwrap(), before);
    assert_eq!(
        app.me(login["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    let r = cookie_refresh(&app, &cookie, Some(ORIGIN), true).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());
}

async fn a_cookie_refresh_without_the_transport_header_is_refused_and_the_session_is_untouched(
    backend: Backend,
) {
    let app = browser_app(backend).await;
    app.register("dina", PASSWORD).await;
    let (cookie, _) = cookie_login(&app, "dina").await;
    let uid = cookie.split('.').next().unwrap().to_string();
    let before = app.auth.sessions_of(&uid).await.unwrap();
    // A "simple" cross-site form post: no custom header (and not JSON).
    let r = cookie_refresh(&app, &cookie, Some(ORIGIN), false).await;
    assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    let r = app
        .request(Method::POST, "/v1/refresh")
        .header("cookie", format!("{COOKIE_PREFIX}{cookie}"))
        .header("origin", EVIL)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert!(set_cookies(r.headers()).is_empty());
    // A wrong header value is not cookie mode either.
    let r = app
        .request(Method::POST, "/v1/refresh")
        .header("cookie", format!("{COOKIE_PREFIX}{cookie}"))
        .header("origin", ORIGIN)
        .header("x-token-transport", "body")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    assert_eq!(app.auth.sessions_of(&uid).await.unwrap(), before);
    let r = cookie_refresh(&app, &cookie, Some(ORIGIN), true).await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn logout_and_logout_all_clear_the_cookie(backend: Backend) {
    let app = browser_app(backend).await;
    app.register("emma", PASSWORD).await;
    for path in ["/v1/logout", "/v1/logout-all"] {
        let (cookie, body) = cookie_login(&app, "emma").await;
        let r = app
            .request(Method::POST, path)
            .bearer_auth(body["access_token"].as_str().unwrap())
            .header("cookie", format!("{COOKIE_PREFIX}{cookie}"))
            .header("origin", ORIGIN)
            .header("x-token-transport", "cookie")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(
            set_cookies(r.headers()),
            vec![CLEARED.to_string()],
            "{path}"
        );
        let r = cookie_refresh(&app, &cookie, Some(ORIGIN), true).await;
        assert_eq!(set_cookies(r.headers()), vec![CLEARED.to_string()]);
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    }
}

async fn a_dead_refresh_cookie_is_cleared(backend: Backend) {
    let app = browser_app(backend).await;
    app.register("finn", PASSWORD).await;
    let (cookie, _) = cookie_login(&app, "finn").await;
    let r = cookie_refresh(&app, "not-a-token", Some(ORIGIN), true).await;
    assert_eq!(set_cookies(r.headers()), vec![CLEARED.to_string()]);
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // Theft: the old cookie replayed after the grace window revokes and clears.
    let r = cookie_refresh(&app, &cookie, Some(ORIGIN), true).await;
    let next = cookie_value(r.headers());
    app.clock.advance(std::time::Duration::from_secs(11));
    let r = cookie_refresh(&app, &cookie, Some(ORIGIN), true).await;
    assert_eq!(set_cookies(r.headers()), vec![CLEARED.to_string()]);
    assert_error(r, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let r = cookie_refresh(&app, &next, Some(ORIGIN), true).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn preflight(app: &TestApp, origin: &str) -> Response {
    app.request(Method::OPTIONS, "/v1/refresh")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-token-transport",
        )
        .send()
        .await
        .unwrap()
}

async fn cors_preflight_allows_only_listed_origins_with_credentials(backend: Backend) {
    let app = browser_app(backend).await;
    let r = preflight(&app, ORIGIN).await;
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    assert_eq!(h["access-control-allow-credentials"], "true");
    let methods = h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(methods.contains("post"), "{methods}");
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(headers.contains("x-token-transport") && headers.contains("content-type"));
    assert!(
        h.get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().to_lowercase().contains("origin")),
        "Vary: Origin for caches"
    );
    // Counted and logged under its route, like any request to it.
    let scrape = app.scrape().await;
    assert_eq!(
        scrape.value(
            r#"http_request_duration_seconds_count{method="OPTIONS",route="/v1/refresh",status="200"}"#
        ),
        1.0
    );

    for origin in [
        EVIL,
        "null",
        "https://app.example.evil.example",
        "https://evil.app.example",
        "http://app.example",
    ] {
        let r = preflight(&app, origin).await;
        let h = r.headers();
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "{origin} got {:?}",
            h.get("access-control-allow-origin")
        );
    }
    // Actual requests: the allowed origin is echoed, others get nothing, never `*`.
    for (origin, allowed) in [(ORIGIN, true), (EVIL, false)] {
        let r = app
            .request(Method::GET, "/.well-known/jwks.json")
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let acao = r.headers().get("access-control-allow-origin");
        if allowed {
            assert_eq!(acao.unwrap(), origin);
            // A browser app may read how long to wait after a 429 or 503.
            let exposed = r.headers()["access-control-expose-headers"]
                .to_str()
                .unwrap()
                .to_lowercase();
            assert!(exposed.contains("retry-after"), "{exposed}");
        } else {
            assert!(acao.is_none());
        }
        assert!(acao.is_none_or(|v| v != "*"));
    }
}

async fn cookie_mode_is_off_without_allowed_origins(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("gina", PASSWORD).await;
    let r = app
        .request(Method::POST, "/v1/login")
        .header("x-token-transport", "cookie")
        .header("origin", ORIGIN)
        .json(&json!({ "username": "gina", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(set_cookies(r.headers()).is_empty());
    assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    let r = preflight(&app, ORIGIN).await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

async fn body_mode_is_unchanged_when_cookie_mode_is_configured(backend: Backend) {
    let app = browser_app(backend).await;
    app.register("hugo", PASSWORD).await;
    let r = app
        .request(Method::POST, "/v1/login")
        .header("origin", ORIGIN)
        .json(&json!({ "username": "hugo", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(set_cookies(r.headers()).is_empty());
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Tokens = r.json().await.unwrap();
    let r = app.refresh(&t.refresh_token).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(set_cookies(r.headers()).is_empty());
    assert_eq!(r.headers()["cache-control"], "no-store");
    // Refresh with neither a body token nor a cookie is a bad request.
    let r = app
        .request(Method::POST, "/v1/refresh")
        .header("x-token-transport", "cookie")
        .header("origin", ORIGIN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
}

async fn a_second_origin_header_is_refused_as_csrf(backend: Backend) {
    let app = browser_app(backend).await;
    app.register("ozzy", PASSWORD).await;
    for origins in [[ORIGIN, EVIL], [EVIL, ORIGIN], [ORIGIN, ORIGIN]] {
        let r = app
            .request(Method::POST, "/v1/login")
            .header("x-token-transport", "cookie")
            .header("origin", origins[0])
            .header("origin", origins[1])
            .json(&json!({ "username": "ozzy", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    }
}

async fn two_refresh_cookies_are_refused_without_clearing_either(backend: Backend) {
    let app = browser_app(backend).await;
    app.register("cora", PASSWORD).await;
    let (cookie, _) = cookie_login(&app, "cora").await;
    for header in [
        format!("{COOKIE_PREFIX}junk; {COOKIE_PREFIX}{cookie}"),
        format!("{COOKIE_PREFIX}{cookie}; {COOKIE_PREFIX}junk"),
    ] {
        let r = app
            .request(Method::POST, "/v1/refresh")
            .header("x-token-transport", "cookie")
            .header("origin", ORIGIN)
            .header("cookie", header)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(
            set_cookies(r.headers()).is_empty(),
            "nothing cleared or set"
        );
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    // The real cookie still works.
    let r = app
        .request(Method::POST, "/v1/refresh")
        .header("x-token-transport", "cookie")
        .header("origin", ORIGIN)
        .header("cookie", format!("{COOKIE_PREFIX}{cookie}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn two_authorization_headers_are_refused(backend: Backend) {
    let app = browser_app(backend).await;
    let alice = app.register_and_login("alicia").await;
    let bob = app.register_and_login("bobby").await;
    let r = app
        .request(Method::GET, "/v1/me")
        .header("authorization", format!("Bearer {}", alice.access_token))
        .header("authorization", format!("Bearer {}", bob.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
