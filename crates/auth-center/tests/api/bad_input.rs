use reqwest::StatusCode;
use serde_json::json;

use crate::for_every_backend;
use crate::helpers::*;

for_every_backend!(
    malformed_bodies_get_a_clear_error_and_change_nothing,
    bad_usernames_and_passwords_are_refused_before_anything_is_written,
);

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_common_error_shape() {
    let app = spawn_app(Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    })
    .await;
    let (status, code) =
        error_code(app.client.get(app.url("/v1/nope")).send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, code) =
        error_code(app.client.get(app.url("/v1/login")).send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn registration_can_be_disabled() {
    let app = spawn_app_with(
        Backend {
            db: Db::Sqlite,
            sessions: Sessions::Memory,
        },
        |c| c.registration_enabled = false,
    )
    .await;
    let (status, code) = error_code(app.register("quentin", PASSWORD).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "registration_disabled")
    );
}

async fn malformed_bodies_get_a_clear_error_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("uma").await;
    let json_type = "application/json";
    let huge = json!({ "username": "uma", "password": "x".repeat(17 * 1024) }).to_string();
    let cases: Vec<(&str, &str, String, StatusCode, &str)> = vec![
        (
            "/v1/login",
            json_type,
            r#"{"username":"uma","password":"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/v1/login",
            json_type,
            "not json at all".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/v1/login",
            json_type,
            "".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/v1/login",
            "text/plain",
            json!({"username":"uma","password":PASSWORD}).to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/v1/login",
            "application/x-www-form-urlencoded",
            "username=uma&password=x".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/v1/login",
            json_type,
            huge.clone(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "/v1/register",
            json_type,
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "/v1/login",
            json_type,
            json!({"username":"uma"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/v1/login",
            json_type,
            json!({"username":"uma","password":PASSWORD,"sid":"chosen"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/v1/login",
            json_type,
            json!({"username":1,"password":PASSWORD}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/v1/login",
            json_type,
            json!(["uma", PASSWORD]).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/v1/register",
            json_type,
            json!({"username":"new","password":PASSWORD,"roles":["admin"]}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/v1/refresh",
            json_type,
            json!({}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/v1/refresh",
            json_type,
            json!({"refresh_token": tokens.refresh_token, "x": 1}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (path, content_type, body, expected_status, expected_code) in cases {
        let (status, code) = error_code(app.post_raw(path, content_type, body.clone()).await).await;
        assert_eq!(
            (status, code.as_str()),
            (expected_status, expected_code),
            "{path} {content_type} {body:.60}"
        );
    }
    // Nothing changed: one session, the refresh token still current, no user "new".
    assert_eq!(app.session_count(&tokens.user_id()).await, 1);
    assert_eq!(
        app.refresh(&tokens.refresh_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login("new", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn bad_usernames_and_passwords_are_refused_before_anything_is_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let long_name = "n".repeat(65);
    let long_password = "p".repeat(129);
    let cases = [
        ("", PASSWORD),
        ("   ", PASSWORD),
        ("with space", PASSWORD),
        ("ctrl\u{0001}", PASSWORD),
        (long_name.as_str(), PASSWORD),
        ("victoria", ""),
        ("victoria", "short"),
        ("victoria", long_password.as_str()),
    ];
    for (username, password) in cases {
        let (status, code) = error_code(app.register(username, password).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{username:?}/{password:.10}"
        );
    }
    // Over-long credentials at login are refused before any hashing, too.
    let (status, _) = error_code(app.login("victoria", &long_password).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = error_code(app.login(&long_name, PASSWORD).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // No half-written user: the name is still free, and 64 characters / spaces in a
    // password are fine (no trimming, no composition rules).
    let tokens = {
        let r = app
            .register("victoria", &format!("  {}  ", "p".repeat(60)))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        app.login("victoria", &format!("  {}  ", "p".repeat(60)))
            .await
    };
    assert_eq!(tokens.status(), StatusCode::OK);
    assert_eq!(
        app.login("victoria", &"p".repeat(60)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
