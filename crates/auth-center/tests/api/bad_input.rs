use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

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

/// The status, code and message of an error in the common shape.
async fn error_message(response: Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON error body");
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_string();
    (status, field("error"), field("message"))
}

/// A request with a raw body (and a bearer token when given).
async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    content_type: &str,
    body: String,
) -> Response {
    let mut request = app
        .request(method, path)
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn duplicated_json_members_form_and_query_parameters_are_refused_and_change_nothing() {
    let app = spawn_app(Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    })
    .await;
    let user = app.register_and_login("uma").await;
    let admin = app.admin_login("root").await;
    let gateway_id = app.create_user_with_roles("gateway", &["introspect"]).await;
    let gateway = app.login_ok("gateway").await;
    let roles_path = format!("/v1/admin/users/{gateway_id}/roles");
    let json_type = "application/json";
    let form_type = "application/x-www-form-urlencoded";
    let (u, a, g) = (
        user.access_token.as_str(),
        admin.access_token.as_str(),
        gateway.access_token.as_str(),
    );
    let rt = user.refresh_token.as_str();
    let at = user.access_token.as_str();
    let cases: Vec<(Method, String, Option<&str>, &str, String)> = vec![
        // The last member would win: "uma" logged in as "mallory" and vice versa.
        (
            Method::POST,
            "/v1/login".into(),
            None,
            json_type,
            format!(r#"{{"username":"mallory","username":"uma","password":"{PASSWORD}"}}"#),
        ),
        (
            Method::POST,
            "/v1/login".into(),
            None,
            json_type,
            format!(r#"{{"username":"uma","password":"wrong","password":"{PASSWORD}"}}"#),
        ),
        // An escaped key is the same member.
        (
            Method::POST,
            "/v1/login".into(),
            None,
            json_type,
            format!(r#"{{"username":"x","user\u006eame":"uma","password":"{PASSWORD}"}}"#),
        ),
        (
            Method::POST,
            "/v1/register".into(),
            None,
            json_type,
            format!(r#"{{"username":"dup-a","username":"dup-b","password":"{PASSWORD}"}}"#),
        ),
        // A duplicate deep inside is found before anything else is looked at.
        (
            Method::POST,
            "/v1/register".into(),
            None,
            json_type,
            format!(
                r#"{{"username":"dup-c","password":"{PASSWORD}","x":[{{"y":{{"k":1,"k":2}}}}]}}"#
            ),
        ),
        (
            Method::POST,
            "/v1/refresh".into(),
            None,
            json_type,
            format!(r#"{{"refresh_token":"{rt}","refresh_token":"{rt}"}}"#),
        ),
        (
            Method::POST,
            "/v1/password".into(),
            Some(u),
            json_type,
            format!(
                r#"{{"current_password":"{PASSWORD}","new_password":"a fresh new passphrase","new_password":"another passphrase here"}}"#
            ),
        ),
        (
            Method::POST,
            "/v1/admin/users".into(),
            Some(a),
            json_type,
            format!(
                r#"{{"username":"dup-d","password":"{PASSWORD}","roles":[],"roles":["admin"]}}"#
            ),
        ),
        (
            Method::POST,
            "/v1/introspect".into(),
            Some(g),
            json_type,
            format!(r#"{{"token":"garbage","token":"{at}"}}"#),
        ),
        // RFC 6749 section 3.2: parameters must not be included more than once.
        (
            Method::POST,
            "/v1/introspect".into(),
            Some(g),
            form_type,
            format!("token=garbage&token={at}"),
        ),
        (
            Method::POST,
            "/v1/introspect".into(),
            Some(g),
            form_type,
            format!("token={at}&token_type_hint=access_token&token_type_hint=refresh_token"),
        ),
        (
            Method::GET,
            "/v1/admin/audit?limit=1&limit=500".into(),
            Some(a),
            json_type,
            String::new(),
        ),
        (
            Method::GET,
            "/v1/admin/users?offset=0&limit=5&offset=1".into(),
            Some(a),
            json_type,
            String::new(),
        ),
        // Parameters the server does not use count as well.
        (
            Method::POST,
            "/v1/introspect".into(),
            Some(g),
            json_type,
            format!(r#"{{"token":"{at}","resource":"a","resource":"b"}}"#),
        ),
        (
            Method::POST,
            "/v1/introspect".into(),
            Some(g),
            form_type,
            format!("token={at}&resource=a&resource=b"),
        ),
        (
            Method::PUT,
            roles_path.clone(),
            Some(a),
            json_type,
            r#"{"roles":["introspect"],"roles":["admin"]}"#.into(),
        ),
    ];
    for (method, path, bearer, content_type, body) in cases {
        let response = send_raw(
            &app,
            method.clone(),
            &path,
            bearer,
            content_type,
            body.clone(),
        )
        .await;
        let (status, code, message) = error_message(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{method} {path} {body:.80}: {message}"
        );
        assert!(
            message.contains("more than once"),
            "{method} {path} {body:.80}: {message}"
        );
    }
    // Nothing changed: no new session, no new user, the same password, roles and token.
    assert_eq!(app.session_count(&user.user_id()).await, 1);
    for name in ["dup-a", "dup-b", "dup-c", "dup-d"] {
        assert_eq!(
            app.login(name, PASSWORD).await.status(),
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
    assert_eq!(app.session_count(&user.user_id()).await, 1);
    assert_eq!(app.refresh(rt).await.status(), StatusCode::OK);
    app.login_ok("uma").await;
    let gateway_now = app
        .get_json_ok(&format!("/v1/admin/users/{gateway_id}"), a)
        .await;
    assert_eq!(gateway_now["roles"], json!(["introspect"]));
}

#[tokio::test]
async fn a_path_id_that_is_not_utf8_is_a_bad_request_in_the_common_shape() {
    let app = spawn_app(Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    })
    .await;
    let admin = app.admin_login("pathadmin").await;
    for path in [
        "/v1/admin/users/%ff",
        "/v1/sessions/%ff",
        "/v1/admin/users/%ff/sessions/x",
    ] {
        let method = if path.starts_with("/v1/sessions") {
            reqwest::Method::DELETE
        } else {
            reqwest::Method::GET
        };
        let r = app
            .request(method, path)
            .bearer_auth(&admin.access_token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status == StatusCode::BAD_REQUEST
                || status == StatusCode::NOT_FOUND
                || status == StatusCode::METHOD_NOT_ALLOWED,
            "{path}: {status}"
        );
        let body: serde_json::Value = r.json().await.expect("a JSON error body");
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{path}: {body}"
        );
    }
}
