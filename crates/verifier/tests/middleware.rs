//! The axum/tower middleware and extractors as a downstream service uses them: a set-up mistake
//! (a guard or extractor on a route the verifier layer does not cover) is a `500` that says
//! what is wrong, never a `401` that blames the client; and the extractor works from the layer
//! alone, with no verifier in the router state.
//!
//! Revocation is off here (static keys, no Redis), so every request is answered in-process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use verifier::{
    Authenticated, Clock as _, KeySet, RevocationMode, SystemClock, Verifier, VerifierLayer,
    VerifyingKey, require_role,
};

const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "api";
const KID: &str = "k1";
const MISSING_LAYER: &str = "is `VerifierLayer` enabled?";

/// A verifier with one static Ed25519 key and revocation off, and a token it accepts (with
/// the `user` role only).
async fn verifier_and_token() -> (Verifier, String) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .static_keys(KeySet::from_keys([VerifyingKey::ed25519(
            KID,
            pair.public_key().as_ref(),
        )]))
        .revocation(RevocationMode::Off)
        .build()
        .await
        .unwrap();
    let now = SystemClock.now_secs();
    let claims = json!({
        "iss": ISSUER, "sub": "user-1", "aud": AUDIENCE, "exp": now + 600, "iat": now,
        "jti": "jti-1", "sid": "sid-1", "roles": ["user"],
    });
    let mut jws_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    jws_header.typ = Some("at+jwt".into());
    jws_header.kid = Some(KID.into());
    let token = jsonwebtoken::encode(
        &jws_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
    )
    .unwrap();
    (verifier, token)
}

/// Sends `GET path` (with `Authorization: Bearer <token>` when given) and returns the status
/// and the body as JSON (as a JSON string when the body is plain text).
async fn get_json(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

/// A `500` in the common `{"error","message"}` body whose message says the layer is missing.
fn assert_missing_layer(path: &str, (status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
    assert_eq!(body["error"], "internal_error", "{path}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(MISSING_LAYER), "{path}: {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{path}: {body}");
}

async fn me(user: Authenticated) -> String {
    user.sub.clone()
}

async fn maybe(user: Option<Authenticated>) -> String {
    user.map_or_else(|| "anonymous".into(), |u| u.sub.clone())
}

/// `/me`, `/maybe` and `/admin` (role `admin`) behind `layer`, with no router state.
fn routes_behind(layer: VerifierLayer) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route(
            "/admin",
            get(|| async { "secret" }).route_layer(require_role("admin")),
        )
        .route_layer(layer)
}

#[tokio::test]
async fn a_role_guard_without_the_verifier_layer_is_a_server_error_that_says_so() {
    let (_verifier, token) = verifier_and_token().await;
    let app: Router = Router::new().route(
        "/admin",
        get(|| async { "secret" }).route_layer(require_role("admin")),
    );
    // With a good token or none at all: the server is wrong, not the client.
    assert_missing_layer("/admin", get_json(&app, "/admin", Some(&token)).await);
    assert_missing_layer("/admin", get_json(&app, "/admin", None).await);
}

#[tokio::test]
async fn the_extractors_without_the_verifier_layer_are_a_server_error_that_says_so() {
    let (_verifier, token) = verifier_and_token().await;
    let app: Router = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe));
    for path in ["/me", "/maybe"] {
        assert_missing_layer(path, get_json(&app, path, Some(&token)).await);
        assert_missing_layer(path, get_json(&app, path, None).await);
    }
}

#[tokio::test]
async fn the_extractor_works_from_the_layer_alone_with_no_verifier_in_the_state() {
    let (verifier, token) = verifier_and_token().await;
    // `Router<()>`: no state at all, so nothing but the layer can provide the caller.
    let app = routes_behind(VerifierLayer::new(verifier));
    for path in ["/me", "/maybe"] {
        let answer = get_json(&app, path, Some(&token)).await;
        assert_eq!(answer, (StatusCode::OK, json!("user-1")), "{path}");
        // No token or a bad one: the client's fault, 401 from the layer.
        for token in [None, Some("not-a-token")] {
            let (status, body) = get_json(&app, path, token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {token:?}: {body}");
            assert_eq!(body["error"], "invalid_token", "{path} {token:?}: {body}");
        }
    }
    let (status, body) = get_json(&app, "/admin", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "insufficient_role", "{body}");
}

#[tokio::test]
async fn a_layer_that_allows_anonymous_callers_leaves_the_choice_to_the_extractor() {
    let (verifier, token) = verifier_and_token().await;
    let app = routes_behind(VerifierLayer::new(verifier).allow_anonymous(true));

    let anonymous = |path| get_json(&app, path, None);
    assert_eq!(
        anonymous("/maybe").await,
        (StatusCode::OK, json!("anonymous")),
        "no Authorization header: None"
    );
    for path in ["/me", "/admin"] {
        let (status, body) = anonymous(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["error"], "invalid_token", "{path}: {body}");
    }
    // A caller with a token is verified as usual; a bad token is still refused.
    for path in ["/me", "/maybe"] {
        let answer = get_json(&app, path, Some(&token)).await;
        assert_eq!(answer, (StatusCode::OK, json!("user-1")), "{path}");
        let (status, body) = get_json(&app, path, Some("not-a-token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    let (status, _) = get_json(&app, "/admin", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
