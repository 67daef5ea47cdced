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
use std::sync::Arc;

use axum::routing::{get, post};
use http::{HeaderValue, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use test_support::DpopKey;
use tower::{Layer as _, ServiceExt as _};
use tower_http::cors::CorsLayer;
use verifier::contract::ManualClock;
use verifier::dpop::{DpopChecker, DpopError};
use verifier::{
    Authenticated, Clock as _, KeySet, RevocationMode, SystemClock, Verified, Verifier,
    VerifierLayer, VerifyError, VerifyingKey, require_role, require_scope,
};

const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "api";
const KID: &str = "k1";
const MISSING_LAYER: &str = "is `VerifierLayer` enabled?";

/// A verifier with one static Ed25519 key and revocation off, and a token it accepts (with
/// the `user` role only).
async fn verifier_and_token() -> (Verifier, String) {
    let issuer = Issuer::new();
    let verifier = issuer.verifier().await;
    (verifier, issuer.token(json!({})))
}

/// Signs test tokens with one Ed25519 key.
struct Issuer {
    pkcs8: Vec<u8>,
    public_key: Vec<u8>,
}

impl Issuer {
    fn new() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            pkcs8: pkcs8.as_ref().to_vec(),
            public_key: pair.public_key().as_ref().to_vec(),
        }
    }

    /// A verifier of this issuer's tokens, revocation off.
    async fn verifier(&self) -> Verifier {
        self.verifier_with(|builder| builder).await
    }

    /// [`Issuer::verifier`], its builder changed by `tweak`.
    async fn verifier_with(
        &self,
        tweak: impl FnOnce(verifier::VerifierBuilder) -> verifier::VerifierBuilder,
    ) -> Verifier {
        let builder = Verifier::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .static_keys(KeySet::from_keys([VerifyingKey::ed25519(
                KID,
                &self.public_key,
            )]))
            .revocation(RevocationMode::Off);
        tweak(builder).build().await.unwrap()
    }

    /// A token of `user-1` with the `user` role, its claims extended (or replaced) by
    /// `extra`.
    fn token(&self, extra: Value) -> String {
        let now = SystemClock.now_secs();
        let mut claims = json!({
            "iss": ISSUER, "sub": "user-1", "aud": AUDIENCE, "exp": now + 600, "iat": now,
            "jti": "jti-1", "sid": "sid-1", "roles": ["user"],
        });
        for (name, value) in extra.as_object().into_iter().flatten() {
            claims[name] = value.clone();
        }
        let mut jws_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        jws_header.typ = Some("at+jwt".into());
        jws_header.kid = Some(KID.into());
        jsonwebtoken::encode(
            &jws_header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&self.pkcs8),
        )
        .unwrap()
    }
}

/// What the tests send requests to: a `Router`, or a whole router behind a layer.
trait App:
    tower::Service<
        Request<Body>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
{
}

impl<S> App for S where
    S: tower::Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send,
        > + Clone
{
}

/// Sends `GET path` (with `Authorization: Bearer <token>` when given) and returns the status
/// and the body as JSON (as a JSON string when the body is plain text).
async fn get_json<S: App>(app: &S, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let (status, _, body) = get_with_challenge(app, path, token).await;
    (status, body)
}

/// [`get_json`], and the `WWW-Authenticate` header.
async fn get_with_challenge<S: App>(
    app: &S,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let authorization = token.map(|token| format!("Bearer {token}"));
    send(app, "GET", path, authorization.as_deref(), &[]).await
}

/// Sends `method path` with these `Authorization` and `DPoP` headers; the status, the
/// `WWW-Authenticate` header and the body as JSON.
async fn send<S: App>(
    app: &S,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    dpop: &[&str],
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    for proof in dpop {
        request = request.header("dpop", *proof);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, challenge, body)
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

#[tokio::test]
async fn a_layer_around_the_whole_router_protects_every_route_but_its_exact_public_paths() {
    let (verifier, token) = verifier_and_token().await;
    let app = VerifierLayer::new(verifier)
        .public_paths(["/healthz", "/status/live"])
        .layer(
            Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route("/status/live", get(|| async { "live" }))
                .route("/me", get(me))
                .route("/later", get(me)),
        );
    for token in [None, Some("not-a-token"), Some(token.as_str())] {
        assert_eq!(
            get_json(&app, "/healthz", token).await,
            (StatusCode::OK, json!("ok")),
            "a public path, whatever the token: {token:?}"
        );
        assert_eq!(
            get_json(&app, "/status/live", token).await.0,
            StatusCode::OK
        );
    }
    // Only the exact bytes: no trailing slash, case, percent-decoding or dot segments.
    for near in [
        "/healthz/",
        "/Healthz",
        "/healthz%2F",
        "/health%7A",
        "//healthz",
        "/./healthz",
        "/status/../healthz",
        "/status",
        "/me",
        "/later",
        "/nowhere",
    ] {
        let (status, body) = get_json(&app, near, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{near}: {body}");
        assert_eq!(body["error"], "invalid_token", "{near}: {body}");
    }
    for path in ["/me", "/later"] {
        let answer = get_json(&app, path, Some(&token)).await;
        assert_eq!(answer, (StatusCode::OK, json!("user-1")), "{path}");
    }
    // A query string is not part of the path.
    assert_eq!(get_json(&app, "/healthz?x=1", None).await.0, StatusCode::OK);
    // An unknown path is the router's 404 only for a caller with a valid token.
    assert_eq!(
        get_json(&app, "/nowhere", Some(&token)).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_cors_layer_outside_the_verifier_answers_browser_preflights_and_the_requests_still_need_a_token()
 {
    let (verifier, token) = verifier_and_token().await;
    let origin = "https://app.example";
    let cors = || {
        CorsLayer::new()
            .allow_origin(HeaderValue::from_static(origin))
            .allow_methods([Method::GET])
            .allow_headers([header::AUTHORIZATION])
    };
    let routes = || Router::new().route("/me", get(me));
    let outside = cors().layer(VerifierLayer::new(verifier.clone()).layer(routes()));
    let inside = VerifierLayer::new(verifier).layer(routes().layer(cors()));
    // A browser's preflight: no token, whatever the real request will carry.
    let preflight = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/me")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .body(Body::empty())
            .unwrap()
    };
    let answer = outside.clone().oneshot(preflight()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        origin,
        "the preflight is answered by the CORS layer"
    );
    assert_eq!(
        get_json(&outside, "/me", None).await.0,
        StatusCode::UNAUTHORIZED,
        "the request itself still needs a token"
    );
    assert_eq!(
        get_json(&outside, "/me", Some(&token)).await,
        (StatusCode::OK, json!("user-1"))
    );
    // With the CORS layer inside, the preflight never reaches it: the browser sees a 401
    // without CORS headers and reports the real request as a CORS failure.
    let answer = inside.oneshot(preflight()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(
        !answer
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn a_public_path_that_no_request_path_can_equal_exempts_nothing() {
    let (verifier, _) = verifier_and_token().await;
    let app = VerifierLayer::new(verifier)
        .public_paths(["healthz", "/healthz?probe=1", "/healthz#top", "", "*"])
        .layer(
            Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .fallback(|| async { "fallback" }),
        );
    for path in ["/healthz", "/healthz?probe=1", "/"] {
        assert_eq!(
            get_json(&app, path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    // `OPTIONS *` has the path `*`, an authority-form `CONNECT` the empty path.
    for (method, target) in [("OPTIONS", "*"), ("CONNECT", "example.com:443")] {
        let (status, _, body) = send(&app, method, target, None, &[]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {target}: {body}"
        );
    }
}

#[tokio::test]
async fn a_public_path_is_public_to_get_and_head_only_and_stores_no_caller() {
    let (verifier, token) = verifier_and_token().await;
    let app = VerifierLayer::new(verifier)
        .public_paths(["/items", "/maybe"])
        .layer(
            Router::new()
                // A public listing, and a creation on the same path that needs a token.
                .route("/items", get(|| async { "list" }).post(me).delete(me))
                .route("/maybe", get(maybe)),
        );
    for method in ["GET", "HEAD"] {
        let (status, _, _) = send(&app, method, "/items", None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{method}");
    }
    for method in ["POST", "DELETE"] {
        let (status, _, body) = send(&app, method, "/items", None, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method}: {body}");
        let bearer = format!("Bearer {token}");
        let answer = send(&app, method, "/items", Some(&bearer), &[]).await;
        assert_eq!(
            (answer.0, answer.2),
            (StatusCode::OK, json!("user-1")),
            "{method}"
        );
    }
    // As if the layer were not there: even with a valid token, no caller is stored, so an
    // extractor of the caller on a public path is a set-up mistake.
    assert_missing_layer("/maybe", get_json(&app, "/maybe", Some(&token)).await);
}

/// `/read` (scope `read`), `/both` (`read` and `write`) and `/delete` (`delete`) behind
/// `verifier`.
fn scoped_routes(verifier: Verifier) -> Router {
    Router::new()
        .route("/read", get(me).route_layer(require_scope("read")))
        .route("/both", get(me).route_layer(require_scope("read write")))
        .route("/delete", get(me).route_layer(require_scope("delete")))
        .route_layer(VerifierLayer::new(verifier).allow_anonymous(true))
}

#[tokio::test]
async fn a_scope_guard_lets_through_only_tokens_that_grant_every_scope_it_names() {
    let issuer = Issuer::new();
    let app = scoped_routes(issuer.verifier().await);
    let reader = issuer.token(json!({ "scope": "read write", "client_id": "app" }));
    for path in ["/read", "/both"] {
        let answer = get_json(&app, path, Some(&reader)).await;
        assert_eq!(answer, (StatusCode::OK, json!("user-1")), "{path}");
    }
    // Lacking a scope: 403 with the RFC 6750 challenge naming what is needed.
    let (status, challenge, body) = get_with_challenge(&app, "/delete", Some(&reader)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "insufficient_scope", "{body}");
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="delete""#)
    );
    // A token with only one of two scopes, one with no scope claim at all, one whose scope
    // merely contains the name.
    for scope in [Some("read"), None, Some("readwrite"), Some("")] {
        let token = issuer.token(match scope {
            Some(scope) => json!({ "scope": scope }),
            None => json!({}),
        });
        let (status, challenge, body) = get_with_challenge(&app, "/both", Some(&token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{scope:?}: {body}");
        assert_eq!(body["error"], "insufficient_scope", "{scope:?}: {body}");
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer error="insufficient_scope", scope="read write""#),
            "{scope:?}"
        );
    }
    // An anonymous request the layer let through: 401, as for a missing token.
    let (status, body) = get_json(&app, "/read", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_token", "{body}");
}

#[tokio::test]
async fn a_scope_guard_without_the_verifier_layer_is_a_server_error_that_says_so() {
    let issuer = Issuer::new();
    let token = issuer.token(json!({ "scope": "read" }));
    let app: Router = Router::new().route("/read", get(me).route_layer(require_scope("read")));
    assert_missing_layer("/read", get_json(&app, "/read", Some(&token)).await);
    assert_missing_layer("/read", get_json(&app, "/read", None).await);
}

#[tokio::test]
async fn tokens_from_before_client_id_and_scope_still_verify_and_expose_the_new_claims() {
    let issuer = Issuer::new();
    let verifier = issuer.verifier().await;
    let old = verifier.verify(&issuer.token(json!({}))).await.unwrap();
    assert_eq!((old.client_id, old.scope, old.cnf), (None, None, None));
    let new = verifier
        .verify(&issuer.token(json!({ "client_id": "cli", "scope": "a b" })))
        .await
        .unwrap();
    assert_eq!(new.client_id.as_deref(), Some("cli"));
    assert!(new.has_scope("a") && new.has_scope("b") && !new.has_scope("a b"));
    // A present claim must have its type.
    for bad in [
        json!({ "scope": ["a"] }),
        json!({ "client_id": 5 }),
        json!({ "cnf": "x" }),
    ] {
        assert!(
            verifier.verify(&issuer.token(bad.clone())).await.is_err(),
            "{bad}"
        );
    }
}

// ---- DPoP-bound access tokens (RFC 9449 §7) ----

const PUBLIC_URL: &str = "https://api.example.com";

/// A verifier that accepts DPoP at [`PUBLIC_URL`], on `clock`, behind the layer: `/me` and
/// `/write` (scope `write`).
async fn dpop_app(issuer: &Issuer, clock: &ManualClock) -> (Verifier, Router) {
    let checker = DpopChecker::builder()
        .public_url(PUBLIC_URL)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let verifier = issuer
        .verifier_with(|b| b.dpop(checker).clock(Arc::new(clock.clone())))
        .await;
    let app = Router::new()
        .route("/me", get(me))
        .route("/write", post(me).route_layer(require_scope("write")))
        .route_layer(VerifierLayer::new(verifier.clone()));
    (verifier, app)
}

/// `method path` with `Authorization: DPoP <token>` and these `DPoP` headers.
async fn send_dpop(
    app: &Router,
    method: &str,
    path: &str,
    token: &str,
    proofs: &[&str],
) -> (StatusCode, Option<String>, Value) {
    send(app, method, path, Some(&format!("DPoP {token}")), proofs).await
}

/// A 401 with `code` and a `DPoP` challenge with that error.
fn assert_dpop_401(
    what: &str,
    (status, challenge, body): (StatusCode, Option<String>, Value),
    code: &str,
) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: {body}");
    let challenge = challenge.unwrap_or_default();
    assert!(
        challenge.starts_with(&format!(r#"DPoP error="{code}""#))
            && challenge.contains("algs=\"ES256"),
        "{what}: {challenge}"
    );
}

#[tokio::test]
async fn a_bound_token_works_only_with_a_proof_from_its_key() {
    let issuer = Issuer::new();
    let clock = ManualClock::starting_now();
    let (_, app) = dpop_app(&issuer, &clock).await;
    let key = DpopKey::es256();
    let token = issuer.token(json!({ "cnf": { "jkt": key.thumbprint() }, "scope": "write" }));
    let htu = format!("{PUBLIC_URL}/me");
    let now = clock.now_secs();

    let proof = key.proof_for_token("GET", &htu, now, &token);
    let (status, _, body) = send_dpop(&app, "GET", "/me", &token, &[&proof]).await;
    assert_eq!((status, body), (StatusCode::OK, json!("user-1")));
    let write = key.proof_for_token("POST", &format!("{PUBLIC_URL}/write"), now, &token);
    let (status, _, _) = send_dpop(&app, "POST", "/write", &token, &[&write]).await;
    assert_eq!(status, StatusCode::OK);

    // As a bearer token: refused (RFC 9449 §7.2), with a DPoP challenge.
    let bearer = format!("Bearer {token}");
    let fresh = key.proof_for_token("GET", &htu, now, &token);
    assert_dpop_401(
        "as Bearer",
        send(&app, "GET", "/me", Some(&bearer), &[&fresh]).await,
        "invalid_token",
    );
    assert_dpop_401(
        "as Bearer, no proof",
        send(&app, "GET", "/me", Some(&bearer), &[]).await,
        "invalid_token",
    );
    // A valid proof from another key: the token is not bound to it.
    let thief = DpopKey::es256().proof_for_token("GET", &htu, now, &token);
    assert_dpop_401(
        "other key",
        send_dpop(&app, "GET", "/me", &token, &[&thief]).await,
        "invalid_token",
    );
    // The proof is missing, doubled, replayed, for another request, or without `ath`.
    assert_dpop_401(
        "no proof",
        send_dpop(&app, "GET", "/me", &token, &[]).await,
        "invalid_dpop_proof",
    );
    let (a, b) = (
        key.proof_for_token("GET", &htu, now, &token),
        key.proof_for_token("GET", &htu, now, &token),
    );
    assert_dpop_401(
        "two proofs",
        send_dpop(&app, "GET", "/me", &token, &[&a, &b]).await,
        "invalid_dpop_proof",
    );
    assert_dpop_401(
        "replayed",
        send_dpop(&app, "GET", "/me", &token, &[&proof]).await,
        "invalid_dpop_proof",
    );
    let for_write = key.proof_for_token("POST", &format!("{PUBLIC_URL}/write"), now, &token);
    assert_dpop_401(
        "other route",
        send_dpop(&app, "GET", "/me", &token, &[&for_write]).await,
        "invalid_dpop_proof",
    );
    let no_ath = key.proof("GET", &htu, now);
    assert_dpop_401(
        "no ath",
        send_dpop(&app, "GET", "/me", &token, &[&no_ath]).await,
        "invalid_dpop_proof",
    );
    let other_token = issuer.token(json!({ "cnf": { "jkt": key.thumbprint() }, "jti": "jti-2" }));
    let wrong_ath = key.proof_for_token("GET", &htu, now, &other_token);
    assert_dpop_401(
        "wrong ath",
        send_dpop(&app, "GET", "/me", &token, &[&wrong_ath]).await,
        "invalid_dpop_proof",
    );
    clock.advance(std::time::Duration::from_secs(120));
    let stale = key.proof_for_token("GET", &htu, now, &token);
    assert_dpop_401(
        "stale",
        send_dpop(&app, "GET", "/me", &token, &[&stale]).await,
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn unbound_tokens_stay_bearer_tokens() {
    let issuer = Issuer::new();
    let clock = ManualClock::starting_now();
    let (verifier, app) = dpop_app(&issuer, &clock).await;
    let token = issuer.token(json!({}));
    let (status, _, body) = send(&app, "GET", "/me", Some(&format!("Bearer {token}")), &[]).await;
    assert_eq!((status, body), (StatusCode::OK, json!("user-1")));
    assert!(verifier.verify(&token).await.is_ok());
    // With the DPoP scheme there is no binding to check: refused.
    let key = DpopKey::es256();
    let proof = key.proof_for_token("GET", &format!("{PUBLIC_URL}/me"), clock.now_secs(), &token);
    assert_dpop_401(
        "unbound as DPoP",
        send_dpop(&app, "GET", "/me", &token, &[&proof]).await,
        "invalid_token",
    );
}

#[tokio::test]
async fn the_verify_api_applies_the_same_binding_rules() {
    let issuer = Issuer::new();
    let clock = ManualClock::starting_now();
    let (verifier, _) = dpop_app(&issuer, &clock).await;
    let key = DpopKey::ed25519();
    let token = issuer.token(json!({ "cnf": { "jkt": key.thumbprint() } }));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(VerifyError::DpopBinding(_))
    ));
    let proof = key.proof_for_token(
        "DELETE",
        &format!("{PUBLIC_URL}/orders/7"),
        clock.now_secs(),
        &token,
    );
    let claims = verifier
        .verify_dpop(&token, &proof, "DELETE", "/orders/7")
        .await
        .unwrap();
    assert_eq!(claims.cnf.map(|c| c.jkt), Some(key.thumbprint()));
    assert_eq!(
        verifier
            .verify_dpop(&token, &proof, "DELETE", "/orders/7")
            .await,
        Err(VerifyError::InvalidDpopProof(DpopError::Replayed))
    );

    // A verifier not set up for DPoP refuses bound tokens either way: fail closed.
    let plain = issuer.verifier().await;
    let proof = key.proof_for_token("GET", &format!("{PUBLIC_URL}/me"), clock.now_secs(), &token);
    assert!(matches!(
        plain.verify(&token).await,
        Err(VerifyError::DpopBinding(_))
    ));
    assert!(matches!(
        plain.verify_dpop(&token, &proof, "GET", "/me").await,
        Err(VerifyError::DpopBinding(_))
    ));
    let app = routes_behind(VerifierLayer::new(plain));
    assert_dpop_401(
        "no DPoP set up",
        send_dpop(&app, "GET", "/me", &token, &[&proof]).await,
        "invalid_token",
    );
}

#[tokio::test]
async fn a_scope_refusal_of_a_bound_token_challenges_with_the_dpop_scheme() {
    let issuer = Issuer::new();
    let clock = ManualClock::starting_now();
    let (_, app) = dpop_app(&issuer, &clock).await;
    let key = DpopKey::es256();
    let token = issuer.token(json!({ "cnf": { "jkt": key.thumbprint() }, "scope": "read" }));
    let proof = key.proof_for_token(
        "POST",
        &format!("{PUBLIC_URL}/write"),
        clock.now_secs(),
        &token,
    );
    let (status, challenge, body) = send_dpop(&app, "POST", "/write", &token, &[&proof]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        challenge.as_deref(),
        Some(r#"DPoP error="insufficient_scope", scope="write""#)
    );
}

#[tokio::test]
async fn the_synchronous_check_answers_only_from_the_caches_and_agrees_with_the_async_one() {
    let issuer = Issuer::new();
    let verifier = issuer.verifier().await;
    let token = issuer.token(json!({}));
    assert!(
        verifier.verify_cached(&token).is_none(),
        "a token never seen needs its signature checked"
    );
    let verified = verifier.verify_shared(&token).await.unwrap();
    let cached = verifier.verify_cached(&token).unwrap().unwrap();
    assert!(Arc::ptr_eq(&verified, &cached));
    assert!(verifier.verify_cached("not-a-token").is_none());

    // A DPoP-bound token presented as a bearer token: refused from the caches too.
    let key = DpopKey::ed25519();
    let bound = issuer.token(json!({ "cnf": { "jkt": key.thumbprint() } }));
    assert!(matches!(
        verifier.verify_shared(&bound).await,
        Err(VerifyError::DpopBinding(_))
    ));
    assert!(matches!(
        verifier.verify_cached(&bound),
        Some(Err(VerifyError::DpopBinding(_)))
    ));

    // An expired token leaves the caches' answer to the full check.
    let expired = issuer.token(json!({ "exp": SystemClock.now_secs() - 3600 }));
    assert!(verifier.verify_shared(&expired).await.is_err());
    assert!(verifier.verify_cached(&expired).is_none());
}

async fn verified_me(user: Verified) -> String {
    user.sub.clone()
}

#[tokio::test]
async fn the_verified_extractor_answers_every_request_as_the_layer_does() {
    let issuer = Issuer::new();
    let clock = ManualClock::starting_now();
    let (verifier, layered) = dpop_app(&issuer, &clock).await;
    let extracted: Router = Router::new()
        .route("/me", get(verified_me))
        .with_state(verifier);
    let key = DpopKey::es256();
    let bound = issuer.token(json!({ "cnf": { "jkt": key.thumbprint() } }));
    let plain = issuer.token(json!({}));
    let expired = issuer.token(json!({ "exp": 1_000_000 }));
    let foreign = Issuer::new().token(json!({}));
    let htu = format!("{PUBLIC_URL}/me");
    let now = clock.now_secs();
    let (bearer, dpop) = (
        |t: &str| format!("Bearer {t}"),
        |t: &str| format!("DPoP {t}"),
    );
    // (what, Authorization, with a fresh proof, the status both must answer)
    let cases = [
        (
            "a bearer token",
            Some(bearer(&plain)),
            false,
            StatusCode::OK,
        ),
        (
            "the same again, cached",
            Some(bearer(&plain)),
            false,
            StatusCode::OK,
        ),
        ("no Authorization", None, false, StatusCode::UNAUTHORIZED),
        (
            "Basic",
            Some("Basic dXNlcjpwYXNz".into()),
            false,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "expired",
            Some(bearer(&expired)),
            false,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another key's",
            Some(bearer(&foreign)),
            false,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "not a JWT",
            Some(bearer("abc.def.ghi")),
            false,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a bound token as Bearer",
            Some(bearer(&bound)),
            true,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "DPoP with its proof",
            Some(dpop(&bound)),
            true,
            StatusCode::OK,
        ),
        (
            "DPoP again, cached",
            Some(dpop(&bound)),
            true,
            StatusCode::OK,
        ),
        (
            "DPoP without a proof",
            Some(dpop(&bound)),
            false,
            StatusCode::UNAUTHORIZED,
        ),
        // The cached token again, presented differently: the cache is looked up before the
        // header is checked, so only what the full check accepts may hit.
        (
            "lower-case scheme, spaces around",
            Some(format!("bearer  {plain} ")),
            false,
            StatusCode::OK,
        ),
        (
            "a tab for the space",
            Some(format!("Bearer\t{plain}")),
            false,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a tab and more after it",
            Some(format!("Bearer {plain}\tx")),
            false,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no space",
            Some(format!("Bearer{plain}")),
            false,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "tabs around it",
            Some(format!("Bearer \t{plain}\t")),
            false,
            StatusCode::OK,
        ),
        (
            "another scheme",
            Some(format!("Bearex {plain}")),
            false,
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (what, authorization, with_proof, status) in cases {
        let mut answers = Vec::new();
        for app in [&layered, &extracted] {
            // A proof is single-use (the verifier remembers its `jti`): one for each app.
            let proof = with_proof.then(|| key.proof_for_token("GET", &htu, now, &bound));
            let proofs: Vec<&str> = proof.iter().map(String::as_str).collect();
            answers.push(send(app, "GET", "/me", authorization.as_deref(), &proofs).await);
        }
        assert_eq!(answers[0], answers[1], "{what}: layer, then extractor");
        assert_eq!(answers[1].0, status, "{what}: {:?}", answers[1]);
    }
}

#[tokio::test]
async fn a_cached_token_with_non_ascii_bytes_around_it_is_refused_by_the_layer_and_the_extractor() {
    let (verifier, token) = verifier_and_token().await;
    let layered = routes_behind(VerifierLayer::new(verifier.clone()));
    let extracted: Router = Router::new()
        .route("/me", get(verified_me))
        .with_state(verifier);
    for app in [&layered, &extracted] {
        // Verified and cached first.
        let (status, _) = get_json(app, "/me", Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        for value in [
            format!("Bearer {token}\u{e9}"),
            format!("Bearer \u{e9}{token}"),
            format!("Bearer {token}\u{a0}"),
        ] {
            let request = Request::builder()
                .uri("/me")
                .header(
                    header::AUTHORIZATION,
                    http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                )
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value:?}");
        }
        // Two Authorization headers, both the cached token: a proxy and this service could
        // each read another one, so there is no token.
        let bearer = format!("Bearer {token}");
        let request = Request::builder()
            .uri("/me")
            .header(header::AUTHORIZATION, &bearer)
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "two headers");
    }
}

#[tokio::test]
async fn a_string_that_is_not_a_compact_jws_is_never_cached_whatever_api_it_comes_through() {
    // The request path looks tokens up by their raw bytes: that is only sound while every
    // cached key is a compact JWS (base64url and dots). A verified token with whitespace
    // around it, given to the public API, must not become a key a header could hit.
    let (verifier, token) = verifier_and_token().await;
    for padded in [
        format!(" {token}"),
        format!("{token}\t"),
        format!("{token} "),
    ] {
        assert!(verifier.verify(&padded).await.is_err(), "{padded:?}");
        assert!(verifier.verify_cached(&padded).is_none(), "{padded:?}");
    }
}
