//! The hosted pages in a real browser: Debian's Chromium, headless, driven by Playwright
//! for Python (`browser.py`, in the virtualenv `scripts/test.sh` sets up; Playwright's own
//! browser downloads are never used). A person signs in, ends one of their sessions from
//! the devices page (and the demo-service refuses that session's access token), changes the
//! password (the other sessions end), signs out; an admin forces a user out (the user's
//! token is refused). No console error may occur and every page carries the CSP.
//!
//! With `SCREENSHOTS_DIR` set, the script saves a phone-sized screenshot of each page there:
//! `SCREENSHOTS_DIR=$PWD/docs/screenshots scripts/test.sh -p e2e-tests --test e2e browser`.
//! Without Playwright or Chromium the test is skipped with a warning, except in CI
//! (`CI=true`), where that is a failure.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::Tokens;
use verifier::RevocationMode;

use crate::helpers::*;
use crate::python::{LineProcess, repo_path, skip_or_fail, venv_python};

/// The browser binary: `TEST_CHROMIUM`, else Debian's.
fn chromium() -> Option<String> {
    let path = std::env::var("TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Path::new(&path).exists() {
        Some(path)
    } else {
        skip_or_fail(&format!("no Chromium at {path} (TEST_CHROMIUM)"))
    }
}

/// The virtualenv's Python if it has Playwright.
fn playwright_python() -> Option<String> {
    let python = venv_python()?;
    let has_playwright = std::process::Command::new(&python)
        .args(["-c", "import playwright.sync_api"])
        .status()
        .is_ok_and(|s| s.success());
    if has_playwright {
        Some(python)
    } else {
        skip_or_fail(&format!("{python} has no Playwright"))
    }
}

/// What a phone's browser says; the devices page names the other session by it.
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
     (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

/// A login over the JSON API from "another device": a second session of `username`.
async fn login_from_phone(center: &AuthCenter, username: &str, password: &str) -> Tokens {
    let r = center
        .request(reqwest::Method::POST, "/v1/login")
        .header("user-agent", IPHONE)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Waits until the demo-service refuses `tokens` as revoked (its session cache hears of the
/// deletion by an invalidation push, within [`POLL_BOUND`]).
async fn refused_downstream(demo: &Demo, tokens: &Tokens, what: &str) {
    poll_until(
        &format!("the demo-service refuses {what}"),
        POLL_BOUND,
        || demo.me(tokens),
        |a| a.is_401("session_revoked"),
    )
    .await;
}

/// Asks the browser for a step; it must succeed.
async fn step(browser: &mut LineProcess, request: Value) -> Value {
    let answer = browser.ask(&request.to_string()).await;
    assert_eq!(answer["ok"], true, "{request}: {answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_ends_a_session_changes_the_password_and_signs_out_in_chromium() {
    let (Some(python), Some(chromium)) = (playwright_python(), chromium()) else {
        return;
    };
    let center = AuthCenter::spawn(Store::Standalone).await;
    let demo = center.demo(RevocationMode::Tracked).await;
    center.register_and_login("alice").await;
    center.admin_login("root").await;
    let bob = center.register_and_login("bob").await;
    let phone = login_from_phone(&center, "alice", PASSWORD).await;
    demo.me(&phone).await.assert_ok();

    let script = repo_path("tests/e2e/browser.py");
    let mut browser = LineProcess::spawn(
        &python,
        &script,
        &[
            ("BROWSER_E2E_BASE", center.address.clone()),
            ("BROWSER_E2E_CHROMIUM", chromium),
        ],
    );
    let ready: Value = serde_json::from_str(&browser.read_line().await).unwrap();
    eprintln!("browser: {}", ready["ready"]);

    // A wrong password: one message, the username kept.
    let wrong = step(
        &mut browser,
        json!({ "step": "wrong_password", "username": "alice" }),
    )
    .await;
    assert_eq!(wrong["alert"], "Wrong username or password.");

    step(
        &mut browser,
        json!({ "step": "sign_in", "username": "alice", "password": PASSWORD, "shot": "sign-in" }),
    )
    .await;
    let seen = step(
        &mut browser,
        json!({ "step": "devices", "shot": "devices" }),
    )
    .await;
    let names: Vec<&str> = seen["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names[0].contains("This device"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("Safari on iPhone")),
        "{names:?}"
    );

    // End the phone's session from the devices page: its token is refused downstream.
    step(
        &mut browser,
        json!({ "step": "end_session", "sid": phone.session_id }),
    )
    .await;
    refused_downstream(&demo, &phone, "the ended session's token").await;

    // Changing the password ends the other sessions, not the browser's.
    let other = login_from_phone(&center, "alice", PASSWORD).await;
    demo.me(&other).await.assert_ok();
    let new_password = "a new and much longer passphrase";
    step(
        &mut browser,
        json!({ "step": "change_password", "current": PASSWORD, "new": new_password }),
    )
    .await;
    refused_downstream(&demo, &other, "the other session's token").await;

    step(&mut browser, json!({ "step": "sign_out" })).await;
    let alice_id = other.user_id();
    let left = center.auth.sessions_of(&alice_id).await.unwrap();
    assert!(left.is_empty(), "signed out, yet {left:?}");

    // An admin, with the keyboard alone, forces bob out.
    demo.me(&bob).await.assert_ok();
    step(
        &mut browser,
        json!({ "step": "keyboard_sign_in", "username": "root", "password": PASSWORD }),
    )
    .await;
    step(
        &mut browser,
        json!({ "step": "force_logout", "username": "bob" }),
    )
    .await;
    refused_downstream(&demo, &bob, "the forced-out user's token").await;
    step(
        &mut browser,
        json!({ "step": "visit", "path": "/account/admin/audit", "shot": "admin-audit" }),
    )
    .await;

    let report = browser.ask(&json!({ "step": "finish" }).to_string()).await;
    assert_eq!(report["console_errors"], json!([]), "{report}");
    assert_eq!(report["documents_without_csp"], json!([]), "{report}");
    let csp = report["csp"].as_array().unwrap();
    assert_eq!(csp.len(), 1, "{report}");
    let csp = csp[0].as_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let events: Vec<String> = center
        .auth
        .recent_audit(100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    for event in [
        "session.ended",
        "password.changed",
        "logout",
        "admin.force_logout",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
}
