use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;

use crate::for_every_backend;
use crate::helpers::*;

for_every_backend!(
    logout_ends_the_session_for_access_and_refresh_tokens,
    logout_all_ends_every_session_of_the_user_only,
    an_expired_access_token_is_refused_as_expired,
    forged_and_garbage_access_tokens_are_refused_with_www_authenticate,
);

#[tokio::test]
async fn deleting_the_session_key_in_redis_revokes_the_session() {
    deleting_the_session_key_revokes(Backend {
        db: Db::Sqlite,
        sessions: Sessions::Redis,
    })
    .await
}

#[tokio::test]
async fn deleting_the_session_key_in_a_redis_cluster_revokes_the_session() {
    deleting_the_session_key_revokes(Backend {
        db: Db::Postgres,
        sessions: Sessions::Cluster,
    })
    .await
}

async fn deleting_the_session_key_revokes(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("victor").await;
    let other = app.login_ok("victor").await;
    assert_eq!(
        app.redis_del_session(&tokens.user_id(), &tokens.session_id)
            .await,
        1
    );
    let (status, code) = error_code(app.me(&tokens.access_token).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
    assert_eq!(
        app.refresh(&tokens.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Only that session: the user's other session is untouched, and the index is pruned.
    assert_eq!(app.me(&other.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.session_count(&tokens.user_id()).await, 1);
}

async fn logout_ends_the_session_for_access_and_refresh_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("walter").await;
    let other = app.login_ok("walter").await;
    assert_eq!(
        app.post_bearer("/v1/logout", &tokens.access_token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.me(&tokens.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&tokens.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&other.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.audit_events("logout").await.len(), 1);
}

async fn logout_all_ends_every_session_of_the_user_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.register_and_login("xavier").await;
    let b = app.login_ok("xavier").await;
    let someone_else = app.register_and_login("yvonne").await;
    let response = app.post_bearer("/v1/logout-all", &a.access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 2);
    for t in [&a, &b] {
        assert_eq!(
            app.me(&t.access_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&t.refresh_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.me(&someone_else.access_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.session_count(&a.user_id()).await, 0);
}

async fn an_expired_access_token_is_refused_as_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("zoe").await;
    app.clock.advance(Duration::from_secs(900 + 6));
    let response = app.me(&tokens.access_token).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let (status, code) = error_code(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );
    // The session itself is alive: a refresh gets a fresh access token.
    let fresh = app.refresh_ok(&tokens.refresh_token).await;
    assert_eq!(app.me(&fresh.access_token).await.status(), StatusCode::OK);
}

/// A token with the right claims and kid, signed by a key the server never had.
fn forge(claims: &serde_json::Value, kid: &str) -> String {
    verifier::contract::install_crypto_provider();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(pkcs8.as_ref())).unwrap()
}

async fn forged_and_garbage_access_tokens_are_refused_with_www_authenticate(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("oscar").await;
    let kid = tokens.header()["kid"].as_str().unwrap().to_string();
    let claims = tokens.claims();
    let [header, payload, signature]: [&str; 3] = tokens
        .access_token
        .split('.')
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let alg_none = format!(
        "{}.{payload}.",
        base64_json(&serde_json::json!({"alg":"none","typ":"at+jwt","kid":kid}))
    );
    let tampered_payload = {
        let mut c = claims.clone();
        c["roles"] = serde_json::json!(["admin"]);
        format!("{header}.{}.{signature}", base64_json(&c))
    };
    let cases = [
        "garbage".to_string(),
        tokens.access_token[..tokens.access_token.len() - 3].to_string(),
        forge(&claims, &kid),
        alg_none,
        tampered_payload,
        format!("{}.{}", tokens.access_token, "x"),
        "a".repeat(9000),
    ];
    for token in &cases {
        let response = app.me(token).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        let (status, code) = error_code(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
            "{token:.40}"
        );
    }
    // Missing or non-bearer Authorization.
    let response = app.client.get(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .get(app.url("/v1/me"))
        .basic_auth("a", Some("b"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The genuine token still works: nothing was revoked by the attempts.
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

fn base64_json(v: &serde_json::Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}
