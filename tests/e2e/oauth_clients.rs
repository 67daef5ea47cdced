//! The OAuth 2 surface through an independent, well-known client library: Python's Authlib
//! (with requests, and PyJWT for the RFC 9068 check and the DPoP proofs of a bound session
//! refreshed at `/oauth2/token`) runs `oauth_client.py` against the real auth-center and
//! demo-service, as a new integrator would. `scripts/test.sh` installs
//! them in a virtualenv and names its interpreter in `TEST_OAUTH_PYTHON`. Without it the
//! test is skipped, except in CI (`CI=true`), where that is a failure.
//!
//! Also: a service account's token is revoked at the demo-service by `DEL` of its session
//! key, like a user's.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use verifier::RevocationMode;

use crate::helpers::*;
use crate::on_standalone_and_cluster;
use crate::python::{run_bounded, venv_python};

on_standalone_and_cluster!(a_service_accounts_token_is_revoked_by_del_of_its_session_key);

/// Longest the Python step may take.
const PYTHON_BOUND: Duration = Duration::from_secs(120);

/// A loopback port that was free a moment ago: the issuer must name the address the
/// client library reaches, so the port is chosen before the server binds it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_discovers_gets_client_tokens_refreshes_introspects_and_revokes() {
    let Some(python) = venv_python() else {
        return;
    };
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let center = AuthCenter::spawn_with(Store::Standalone.shared_target(), |c| {
        c.listen_addr = ([127, 0, 0, 1], port).into();
        c.issuer = issuer.clone();
    })
    .await;
    assert_eq!(center.address, issuer);
    let mut settings = center.demo_settings();
    settings.verifier.issuer = issuer.clone();
    let demo = Demo::spawn(settings).await;
    let admin = center.admin_login("root").await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/oauth_client.py");
    let output = run_bounded(
        tokio::process::Command::new(&python)
            .arg(script)
            .env("OAUTH_E2E_BASE", &issuer)
            .env("OAUTH_E2E_ADMIN_TOKEN", &admin.access_token)
            .env("OAUTH_E2E_DEMO", &demo.address)
            .env("PYTHONUNBUFFERED", "1"),
        PYTHON_BOUND,
    )
    .await
    .expect("the Authlib client finishes within PYTHON_BOUND");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success() && stdout.contains("all OAuth client checks passed"),
        "the Authlib client failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    print!("{stdout}");

    // What the script did shows in the audit log.
    let events: Vec<String> = center
        .auth
        .recent_audit(100)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.event)
        .collect();
    for event in [
        "admin.client_created",
        "client.token_issued",
        "oauth.token_revoked",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
}

async fn a_service_accounts_token_is_revoked_by_del_of_its_session_key(store: Store) {
    let center = AuthCenter::spawn(store).await;
    let demo = center.demo(RevocationMode::Tracked).await;
    let made = center
        .auth
        .admin_create_client(
            &auth_center::domain::admin::cli_actor(),
            auth_center::domain::clients::NewClient {
                id: "nightly".into(),
                scopes: vec!["reports".into()],
                ..Default::default()
            },
            &auth_center::domain::ClientInfo::default(),
        )
        .await
        .expect("register a client");
    let secret =
        secrecy::ExposeSecret::expose_secret(made.secret.as_ref().expect("a secret")).to_string();
    let response = reqwest::Client::new()
        .post(format!("{}/oauth2/token", center.address))
        .basic_auth("nightly", Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token JSON");
    let tokens = Tokens {
        access_token: body["access_token"].as_str().expect("a token").into(),
        refresh_token: String::new(),
        token_type: "Bearer".into(),
        expires_in: 900,
        session_id: String::new(),
    };
    let claims = tokens.claims();
    assert_eq!(claims["sub"], "nightly");
    assert_eq!(claims["scope"], "reports");
    let me = demo.me(&tokens).await;
    me.assert_ok();
    assert_eq!(me.body["sub"], "nightly");
    let key = verifier::contract::SessionKeys::new(center.prefix.clone())
        .session("nightly", claims["sid"].as_str().expect("sid"))
        .expect("a session key");
    assert_eq!(center.redis_on_key("DEL", &key, &[]).await, 1);
    poll_until(
        "the revoked service-account token is refused",
        POLL_BOUND,
        || demo.me(&tokens),
        |a| a.is_401("session_revoked"),
    )
    .await;
}
