//! Tokens the gateway refuses: `401` with the RFC 6750 challenge and the common body.

use serde_json::json;
use test_support::DpopKey;
use verifier::{Clock as _, SystemClock};

use crate::support::*;

#[tokio::test]
async fn a_request_without_a_token_is_a_401_with_a_bare_bearer_challenge() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    for dialect in DIALECTS {
        let answer = gateway.ask(dialect, "GET", "/orders").answer().await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.code(), Some("invalid_token"));
        // RFC 6750 §3.1: no error code when the request has no credentials at all.
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        answer.assert_no_identity();
    }
}

#[tokio::test]
async fn an_invalid_token_is_a_401_whose_challenge_says_why() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let session = env.session("user-1").await;
    let stranger = Issuer::new();
    let cases = [
        ("garbage", "not.a.token".to_string()),
        ("another issuer's key", stranger.token(&session, json!({}))),
        (
            "another audience",
            env.issuer.token(&session, json!({ "aud": "billing" })),
        ),
        (
            "another issuer",
            env.issuer.token(&session, json!({ "iss": "http://evil" })),
        ),
    ];
    for dialect in DIALECTS {
        for (what, token) in &cases {
            let answer = gateway.with_token(dialect, "/", token).await;
            answer.assert_401("invalid_token").assert_no_identity();
            assert_eq!(
                answer.header("www-authenticate"),
                Some(
                    r#"Bearer error="invalid_token", error_description="the access token is invalid""#
                ),
                "{what}"
            );
        }
    }
}

#[tokio::test]
async fn an_expired_token_is_a_401_that_says_it_expired() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let now = SystemClock.now_secs();
    let token = env
        .token("user-1", json!({ "iat": now - 3600, "exp": now - 600 }))
        .await;
    for dialect in DIALECTS {
        let answer = gateway.with_token(dialect, "/", &token).await;
        answer.assert_401("token_expired");
        let challenge = answer.header("www-authenticate").unwrap();
        assert!(challenge.contains("has expired"), "{challenge}");
    }
}

#[tokio::test]
async fn an_authorization_header_that_is_not_one_bearer_token_is_a_401() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let token = env.token("user-1", json!({})).await;
    for dialect in DIALECTS {
        for authorization in [
            "Basic dXNlcjpwYXNz".to_string(),
            "Bearer".to_string(),
            format!("Token {token}"),
        ] {
            let answer = gateway
                .ask(dialect, "GET", "/")
                .header("Authorization", &authorization)
                .answer()
                .await;
            answer.assert_401("invalid_token");
        }
        let answer = gateway
            .ask(dialect, "GET", "/")
            .header("Authorization", format!("Bearer {token}"))
            .header("Authorization", format!("Bearer {token}"))
            .answer()
            .await;
        answer.assert_401("invalid_token");
    }
}

#[tokio::test]
async fn a_claim_that_cannot_be_a_header_value_is_a_401_not_a_broken_header() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    for claims in [
        json!({ "roles": ["admin,user"] }),
        json!({ "roles": ["two words"] }),
        json!({ "roles": [""] }),
        json!({ "client_id": "a client" }),
        json!({ "client_id": "caf\u{e9}" }),
        json!({ "scope": "caf\u{e9}" }),
    ] {
        let token = env.token("user-1", claims.clone()).await;
        let answer = gateway.with_token(Dialect::AuthRequest, "/", &token).await;
        assert_eq!(answer.status, 401, "{claims}: {answer:?}");
        answer.assert_401("invalid_token").assert_no_identity();
    }
}

#[tokio::test]
async fn a_dpop_bound_token_passes_with_a_proof_for_the_original_request_when_a_public_url_is_set()
{
    const PUBLIC_URL: &str = "https://api.example";
    let env = Env::new().await;
    let gateway = env
        .gateway(|settings| settings.verifier.public_url = Some(PUBLIC_URL.into()))
        .await;
    let key = DpopKey::es256();
    let token = env
        .token("user-1", json!({ "cnf": { "jkt": key.thumbprint() } }))
        .await;
    let now = SystemClock.now_secs();
    for dialect in DIALECTS {
        let proof = key.proof_for_token("POST", &format!("{PUBLIC_URL}/orders/7"), now, &token);
        let answer = gateway
            .ask(dialect, "POST", "/orders/7?x=1")
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .answer()
            .await;
        answer.assert_allowed();
        assert_eq!(answer.header("x-auth-subject"), Some("user-1"));

        // A proof for another request, or none: 401 with the DPoP challenge.
        let elsewhere = key.proof_for_token("POST", &format!("{PUBLIC_URL}/admin"), now, &token);
        for proof in [Some(elsewhere), None] {
            let mut request = gateway
                .ask(dialect, "POST", "/orders/7")
                .header("Authorization", format!("DPoP {token}"));
            if let Some(proof) = proof {
                request = request.header("DPoP", proof);
            }
            let answer = request.answer().await;
            assert_eq!(answer.status, 401, "{answer:?}");
            let challenge = answer.header("www-authenticate").unwrap();
            assert!(
                challenge.starts_with(r#"DPoP error="invalid_dpop_proof", error_description=""#)
                    && challenge.contains("algs="),
                "{challenge}"
            );
        }
        // The bound token as a bearer token: refused, and the challenge names DPoP.
        let answer = gateway.with_token(dialect, "/", &token).await;
        assert_eq!(answer.status, 401);
        let challenge = answer.header("www-authenticate").unwrap();
        assert!(
            challenge.starts_with(r#"DPoP error="invalid_token""#),
            "{challenge}"
        );
        // Without a token, both schemes are offered.
        let answer = gateway.ask(dialect, "GET", "/").answer().await;
        let challenge = answer.header("www-authenticate").unwrap();
        assert!(challenge.starts_with("Bearer, DPoP algs=\""), "{challenge}");
    }
}

#[tokio::test]
async fn without_a_public_url_the_dpop_scheme_is_refused_with_a_bearer_challenge() {
    let env = Env::new().await;
    let gateway = env.gateway(|_| {}).await;
    let key = DpopKey::es256();
    let token = env
        .token("user-1", json!({ "cnf": { "jkt": key.thumbprint() } }))
        .await;
    let proof = key.proof_for_token(
        "GET",
        "https://api.example/",
        SystemClock.now_secs(),
        &token,
    );
    let answer = gateway
        .ask(Dialect::ForwardAuth, "GET", "/")
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", proof)
        .answer()
        .await;
    answer.assert_401("invalid_token");
}
