//! Account lockout that an attacker cannot aim (OWASP "device cookies"): failures from many
//! IPs lock the account for unknown clients, but a client that logged in before presents
//! its signed device token and keeps trying within its own small limit.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        a_login_hands_out_a_device_token_and_cookie_mode_sets_it_as_a_host_cookie,
        an_account_locked_by_failures_from_many_ips_still_admits_a_device_that_logged_in_before,
        a_trusted_device_gets_only_its_own_few_tries_while_the_account_is_locked,
        a_device_token_that_is_tampered_expired_or_for_another_user_earns_no_trust,
        rate_limit_refusals_leave_one_audit_event_per_window_and_a_metric,
        a_device_token_earns_no_trust_once_the_password_has_changed,
        trusted_devices_together_get_at_most_twice_the_account_limit,
        a_locked_account_leaves_one_audit_event_per_window_however_often_it_is_tried,
    ],
    sqlite_redis: [
        an_account_locked_by_failures_from_many_ips_still_admits_a_device_that_logged_in_before,
        a_trusted_device_gets_only_its_own_few_tries_while_the_account_is_locked,
    ],
    sqlite_cluster: [
        an_account_locked_by_failures_from_many_ips_still_admits_a_device_that_logged_in_before,
    ],
}

const WRONG: &str = "definitely not the password";
const OWNER_IP: &str = "198.51.100.7";

async fn spawn(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| {
        c.limits.login_account_failures_max = 4;
        c.limits.login_device_failures_max = 3;
        c.trusted_proxies =
            vec![auth_center::domain::client_ip::IpRange::parse("127.0.0.1").unwrap()];
        c.browser.allowed_origins = vec![Origin::parse("https://app.example").unwrap()];
    })
    .await
}

async fn login_with_device(
    app: &TestApp,
    username: &str,
    password: &str,
    ip: &str,
    device_token: Option<&str>,
) -> Response {
    let mut body = json!({ "username": username, "password": password });
    if let Some(token) = device_token {
        body["device_token"] = json!(token);
    }
    app.request(Method::POST, "/v1/login")
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The owner logs in once from their usual IP and keeps the device token.
async fn owner_device_token(app: &TestApp, username: &str) -> String {
    app.register(username, PASSWORD).await;
    let r = login_with_device(app, username, PASSWORD, OWNER_IP, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["device_token"]
        .as_str()
        .expect("device_token")
        .to_string()
}

/// An attacker spreads failures over many IPs until the account is locked.
async fn lock_the_account(app: &TestApp, username: &str) {
    for i in 0..4 {
        let r = login_with_device(app, username, WRONG, &format!("203.0.113.{i}"), None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_error(
        login_with_device(app, username, PASSWORD, "192.0.2.99", None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

async fn a_login_hands_out_a_device_token_and_cookie_mode_sets_it_as_a_host_cookie(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let token = owner_device_token(&app, "dina").await;
    assert!(!token.contains("dina"), "no username in the device token");
    let r = app
        .request(Method::POST, "/v1/login")
        .header("x-token-transport", "cookie")
        .header("origin", "https://app.example")
        .json(&json!({ "username": "dina", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let device = cookies
        .iter()
        .find(|c| c.starts_with("__Host-device="))
        .unwrap_or_else(|| panic!("no device cookie in {cookies:?}"));
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(device.contains(attribute), "{device}");
    }
    let body: Value = r.json().await.unwrap();
    assert!(
        body.get("device_token").is_none(),
        "cookie mode: not in the body"
    );
}

async fn an_account_locked_by_failures_from_many_ips_still_admits_a_device_that_logged_in_before(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let device = owner_device_token(&app, "olga").await;
    lock_the_account(&app, "olga").await;
    let r = login_with_device(&app, "olga", PASSWORD, OWNER_IP, Some(&device)).await;
    assert_eq!(r.status(), StatusCode::OK, "the owner's device gets in");
    // A browser sends the device cookie instead of the body field.
    let r = app
        .request(Method::POST, "/v1/login")
        .header("x-forwarded-for", OWNER_IP)
        .header("cookie", format!("__Host-device={device}"))
        .json(&json!({ "username": "olga", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "also from the cookie");
    // Unknown clients stay locked out.
    assert_error(
        login_with_device(&app, "olga", PASSWORD, "192.0.2.100", None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

async fn a_trusted_device_gets_only_its_own_few_tries_while_the_account_is_locked(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let device = owner_device_token(&app, "pia").await;
    lock_the_account(&app, "pia").await;
    for _ in 0..3 {
        let r = login_with_device(&app, "pia", WRONG, OWNER_IP, Some(&device)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The device is now locked out too, even with the right password...
    let r = login_with_device(&app, "pia", PASSWORD, OWNER_IP, Some(&device)).await;
    let secs = retry_after_secs(&r);
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // ...until its window passes (the account-wide window is the same hour here).
    app.clock.advance(Duration::from_secs(secs));
    let r = login_with_device(&app, "pia", PASSWORD, OWNER_IP, Some(&device)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn a_device_token_that_is_tampered_expired_or_for_another_user_earns_no_trust(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let device = owner_device_token(&app, "quin").await;
    let other = owner_device_token(&app, "rex").await;
    lock_the_account(&app, "quin").await;
    let mut tampered = device.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [tampered.as_str(), other.as_str(), "garbage", ""] {
        assert_error(
            login_with_device(&app, "quin", PASSWORD, OWNER_IP, Some(bad)).await,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        )
        .await;
    }
    // Past its lifetime a device token earns nothing either (the lock is re-armed first,
    // since its hour has passed by then).
    app.clock.advance(Duration::from_secs(
        app.config.limits.device_token_ttl_secs + 1,
    ));
    lock_the_account(&app, "quin").await;
    assert_error(
        login_with_device(&app, "quin", PASSWORD, OWNER_IP, Some(&device)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

async fn rate_limit_refusals_leave_one_audit_event_per_window_and_a_metric(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.login_ip_max = 2).await;
    app.register("sam", PASSWORD).await;
    for _ in 0..2 {
        app.login("sam", WRONG).await;
    }
    for _ in 0..3 {
        assert_error(
            app.login("sam", WRONG).await,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        )
        .await;
    }
    let events = app.audit_events("rate_limited").await;
    assert_eq!(
        events.len(),
        1,
        "one event per rule, key and window: {events:?}"
    );
    assert!(
        events[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("login_ip"),
        "{events:?}"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("auth_rate_limit_refusals_total{rule=\"login_ip\"} 3"),
        "{metrics}"
    );
}

async fn a_device_token_earns_no_trust_once_the_password_has_changed(backend: Backend) {
    let app = spawn(backend).await;
    let device = owner_device_token(&app, "rita").await;
    let r = login_with_device(&app, "rita", PASSWORD, OWNER_IP, None).await;
    let access = r.json::<Tokens>().await.unwrap().access_token;
    let new_password = "an entirely new passphrase";
    let r = app
        .post_json_bearer(
            "/v1/password",
            &access,
            &json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    for i in 0..4 {
        let ip = format!("203.0.113.{i}");
        let r = login_with_device(&app, "rita", WRONG, &ip, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // A device token from before the change (perhaps in a thief's hands) is an unknown client.
    assert_error(
        login_with_device(&app, "rita", new_password, OWNER_IP, Some(&device)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

async fn trusted_devices_together_get_at_most_twice_the_account_limit(backend: Backend) {
    let app = spawn(backend).await;
    app.register("sven", PASSWORD).await;
    // Someone who knew the password collected several device tokens.
    let mut devices = Vec::new();
    for _ in 0..4 {
        let r = login_with_device(&app, "sven", PASSWORD, OWNER_IP, None).await;
        let body: Value = r.json().await.unwrap();
        devices.push(body["device_token"].as_str().unwrap().to_string());
    }
    lock_the_account(&app, "sven").await; // 4 failures: the account limit
    let mut refused = 0;
    for device in &devices {
        for _ in 0..3 {
            let r = login_with_device(&app, "sven", WRONG, OWNER_IP, Some(device)).await;
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
            }
        }
    }
    // 4 + 4 more failures reach twice the limit of 4; the remaining tries are refused.
    assert_eq!(
        refused,
        12 - 4,
        "trusted devices failed beyond twice the account limit"
    );
}

async fn a_locked_account_leaves_one_audit_event_per_window_however_often_it_is_tried(
    backend: Backend,
) {
    let app = spawn(backend).await;
    app.register("tess", PASSWORD).await;
    lock_the_account(&app, "tess").await; // one refusal already
    for i in 0..5 {
        let ip = format!("192.0.2.{}", 100 + i);
        let r = login_with_device(&app, "tess", PASSWORD, &ip, None).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let events = app.audit_events("rate_limited").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("login_account")
    );
}

#[test]
fn device_and_hashing_settings_that_cannot_work_are_refused() {
    let check = |tweak: &dyn Fn(&mut auth_center::Config)| {
        let mut config = auth_center::Config::default();
        tweak(&mut config);
        config.validate()
    };
    assert!(check(&|c| c.limits.device_token_ttl_secs = 59).is_err());
    assert!(check(&|c| c.limits.device_token_ttl_secs = 401 * 24 * 3600).is_err());
    assert!(check(&|c| c.passwords.queue_wait_ms = 10_001).is_err());
    assert!(check(&|c| c.limits.device_token_ttl_secs = 60).is_ok());
    assert!(check(&|c| c.passwords.queue_wait_ms = 0).is_ok());
}
