//! DPoP-bound access tokens (RFC 9449) from the auth-center through the demo-service: with
//! `dpop.bind_access_tokens`, a login with a proof gets an access token bound to the key
//! (`cnf.jkt`), which the demo-service accepts only with the DPoP scheme and a proof for its
//! own public URL from that key; revocation works for it as for any token.

use reqwest::{Method, StatusCode};
use serde_json::json;
use verifier::{Clock as _, RevocationMode, SystemClock};

use crate::helpers::*;
use crate::on_standalone_and_cluster;

on_standalone_and_cluster!(
    a_bound_access_token_reaches_the_demo_service_only_with_a_proof_from_its_key,
);

/// Where the demo-service tells clients it lives: the `htu` of their proofs.
const DEMO_URL: &str = "https://demo.example";

async fn a_bound_access_token_reaches_the_demo_service_only_with_a_proof_from_its_key(
    store: Store,
) {
    let center =
        AuthCenter::spawn_with(store.shared_target(), |c| c.dpop.bind_access_tokens = true).await;
    let mut settings = center.demo_settings();
    settings.verifier.public_url = Some(DEMO_URL.into());
    settings.verifier.revocation = RevocationMode::EveryRequest;
    let demo = Demo::spawn(settings).await;
    let plain_demo = center.demo(RevocationMode::EveryRequest).await; // not set up for DPoP

    center.register_and_login("alice").await;
    let key = DpopKey::es256();
    let now = SystemClock.now_secs();
    let login = center
        .request(Method::POST, "/v1/login")
        .header(
            "dpop",
            key.proof("POST", &format!("{ISSUER}/v1/login"), now),
        )
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let tokens: Tokens = login.json().await.unwrap();
    assert_eq!(tokens.token_type, "DPoP");
    assert_eq!(tokens.claims()["cnf"]["jkt"], key.thumbprint().as_str());

    let with_proof = |key: &DpopKey, demo: &Demo, scheme: &str| {
        let proof = key.proof_for_token(
            "GET",
            &format!("{DEMO_URL}/me"),
            SystemClock.now_secs(),
            &tokens.access_token,
        );
        demo.request(Method::GET, "/me")
            .header("authorization", format!("{scheme} {}", tokens.access_token))
            .header("dpop", proof)
            .send()
    };
    let me = Answer::of(with_proof(&key, &demo, "DPoP").await.unwrap()).await;
    me.assert_ok();
    assert_eq!(me.body["sub"], tokens.user_id().as_str());

    // As a bearer token, with another key's proof, or at a verifier without DPoP: 401 with a
    // DPoP challenge.
    let refusals = [
        (
            "bearer",
            Answer::of(demo.get("/me", Some(&tokens.access_token)).await).await,
        ),
        (
            "other key",
            Answer::of(with_proof(&DpopKey::es256(), &demo, "DPoP").await.unwrap()).await,
        ),
        (
            "no DPoP set up",
            Answer::of(with_proof(&key, &plain_demo, "DPoP").await.unwrap()).await,
        ),
        (
            "no DPoP set up, bearer",
            Answer::of(plain_demo.get("/me", Some(&tokens.access_token)).await).await,
        ),
    ];
    for (what, answer) in refusals {
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {answer:?}"
        );
        assert_eq!(answer.code(), Some("invalid_token"), "{what}: {answer:?}");
        assert!(
            answer
                .www_authenticate
                .as_deref()
                .is_some_and(|c| c.starts_with(r#"DPoP error="invalid_token""#)),
            "{what}: {answer:?}"
        );
    }

    // A login without a proof still gets a bearer token that both demo-services accept.
    let plain = center.login_ok("alice").await;
    assert_eq!(plain.token_type, "Bearer");
    demo.me(&plain).await.assert_ok();
    plain_demo.me(&plain).await.assert_ok();

    // Logout with the DPoP scheme at the auth-center; the demo-service sees the revocation.
    let proof = key.proof_for_token(
        "POST",
        &format!("{ISSUER}/v1/logout"),
        SystemClock.now_secs(),
        &tokens.access_token,
    );
    let logout = center
        .request(Method::POST, "/v1/logout")
        .header("authorization", format!("DPoP {}", tokens.access_token))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = Answer::of(with_proof(&key, &demo, "DPoP").await.unwrap()).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{after:?}");
    assert_eq!(after.code(), Some("session_revoked"), "{after:?}");
}
