//! `/metrics` counts what the domain decided: logins, refreshes, sessions created and ended
//! by cause, and the stores' latency. Each app records into a registry of its own
//! (`service_kit::metrics::Registry::private`), so the values read here are this test's
//! alone however many apps the test binary runs at once: exact values, not deltas.

use std::time::Duration;

use reqwest::StatusCode;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        logins_are_counted_by_outcome,
        refreshes_and_the_sessions_they_end_are_counted_by_outcome,
        logouts_are_counted_as_ended_sessions,
        sessions_ended_by_the_per_user_limit_are_counted,
        client_tokens_ended_by_the_per_client_limit_are_counted,
        requests_are_timed_by_route_template,
    ],
    sqlite_redis: [
        sessions_ended_by_the_per_user_limit_are_counted,
        client_tokens_ended_by_the_per_client_limit_are_counted,
        redis_and_sql_calls_are_timed_by_operation,
        a_login_makes_two_sql_calls_and_three_redis_calls,
        a_user_whose_stored_roles_are_spelt_otherwise_is_re_read_and_logs_in_audited_once,
    ],
    postgres_redis: [
        a_login_makes_two_sql_calls_and_three_redis_calls,
    ],
}

fn login(outcome: &str) -> String {
    format!("auth_logins_total{{outcome=\"{outcome}\"}}")
}

fn refresh(outcome: &str) -> String {
    format!("auth_refreshes_total{{outcome=\"{outcome}\"}}")
}

fn ended(cause: &str) -> String {
    format!("auth_sessions_ended_total{{cause=\"{cause}\"}}")
}

async fn logins_are_counted_by_outcome(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app.scrape().await;
    for outcome in [
        "success",
        "wrong_password",
        "unknown_user",
        "invalid_request",
    ] {
        assert_eq!(before.value(&login(outcome)), 0.0, "registered from zero");
    }
    app.register_and_login("counted").await;
    assert_eq!(
        app.login("counted", "wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("nobody", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("", PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    let after = app.scrape().await;
    assert_eq!(after.value(&login("success")), 1.0);
    assert_eq!(after.value(&login("wrong_password")), 1.0);
    assert_eq!(after.value(&login("unknown_user")), 1.0);
    assert_eq!(after.value(&login("invalid_request")), 1.0);
    assert_eq!(after.value(&login("disabled")), 0.0);
    assert_eq!(
        after.value("auth_sessions_created_total{kind=\"login\"}"),
        1.0
    );
    assert!(after.value("auth_password_hash_duration_seconds_count") >= 3.0);
    assert!(after.value("auth_password_hash_queue_wait_seconds_count") >= 3.0);
}

async fn refreshes_and_the_sessions_they_end_are_counted_by_outcome(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_and_login("rotating").await;
    let second = app.refresh_ok(&first.refresh_token).await;
    app.refresh_ok(&first.refresh_token).await; // within the grace window
    app.clock.advance(Duration::from_secs(11));
    assert_eq!(
        app.refresh(&first.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&second.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh("garbage").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let scrape = app.scrape().await;
    assert_eq!(scrape.value(&refresh("rotated")), 1.0);
    assert_eq!(scrape.value(&refresh("grace_replay")), 1.0);
    assert_eq!(scrape.value(&refresh("reuse_detected")), 1.0);
    // The successor of a revoked session: its session no longer exists.
    assert_eq!(scrape.value(&refresh("expired")), 1.0);
    assert_eq!(scrape.value(&refresh("invalid")), 1.0);
    assert_eq!(scrape.value(&ended("theft")), 1.0);
}

async fn logouts_are_counted_as_ended_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let one = app.register_and_login("leaving").await;
    let two = app.login_ok("leaving").await;
    app.login_ok("leaving").await;
    assert!(
        app.post_bearer("/v1/logout", &one.access_token)
            .await
            .status()
            .is_success()
    );
    assert!(
        app.post_bearer("/v1/logout-all", &two.access_token)
            .await
            .status()
            .is_success()
    );
    let scrape = app.scrape().await;
    assert_eq!(scrape.value(&ended("logout")), 1.0);
    assert_eq!(scrape.value(&ended("logout_all")), 2.0);
    assert_eq!(scrape.value(&ended("admin")), 0.0);
    assert_eq!(
        scrape.value("auth_sessions_created_total{kind=\"login\"}"),
        3.0
    );
}

async fn sessions_ended_by_the_per_user_limit_are_counted(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.sessions.max_per_user = 2).await;
    app.register_and_login("busy").await;
    app.login_ok("busy").await;
    let before = app.scrape().await;
    assert_eq!(
        before.value(&ended("max_per_user")),
        0.0,
        "registered from zero"
    );
    app.login_ok("busy").await;
    app.login_ok("busy").await;
    let scrape = app.scrape().await;
    assert_eq!(scrape.value(&ended("max_per_user")), 2.0);
    assert_eq!(
        scrape.value("auth_sessions_created_total{kind=\"login\"}"),
        4.0
    );
}

async fn client_tokens_ended_by_the_per_client_limit_are_counted(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.oauth.max_tokens_per_client = 1).await;
    let client = app.secret_client("nightly", &["reports"], &[], false).await;
    app.client_token(&client, None).await;
    let before = app.scrape().await;
    assert_eq!(
        before.value(&ended("max_per_client")),
        0.0,
        "registered from zero"
    );
    app.client_token(&client, None).await;
    let scrape = app.scrape().await;
    assert_eq!(scrape.value(&ended("max_per_client")), 1.0);
    assert_eq!(scrape.value(&ended("max_per_user")), 0.0);
    assert_eq!(app.session_count("nightly").await, 1);
}

async fn requests_are_timed_by_route_template(backend: Backend) {
    let app = spawn_app(backend).await;
    let tokens = app.register_and_login("timed").await;
    let response = app
        .delete_bearer("/v1/sessions/nope", &tokens.access_token)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let scrape = app.scrape().await;
    let count =
        |labels: &str| scrape.value(&format!("http_request_duration_seconds_count{{{labels}}}"));
    assert_eq!(
        count(r#"method="POST",route="/v1/register",status="201""#),
        1.0
    );
    assert_eq!(
        count(r#"method="POST",route="/v1/login",status="200""#),
        1.0
    );
    // The route template, never the raw path.
    assert_eq!(
        count(r#"method="DELETE",route="/v1/sessions/{sid}",status="404""#),
        1.0
    );
    assert!(!scrape.text_contains("nope"));
    assert_eq!(
        scrape.value("http_requests_in_flight"),
        1.0,
        "the scrape itself"
    );
}

async fn redis_and_sql_calls_are_timed_by_operation(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_and_login("stored").await;
    let scrape = app.scrape().await;
    assert!(
        scrape.value(r#"auth_redis_command_duration_seconds_count{op="session_create"}"#) >= 1.0
    );
    assert!(scrape.value(r#"auth_sql_query_duration_seconds_count{op="user_by_username"}"#) >= 1.0);
    assert!(scrape.value(r#"auth_sql_query_duration_seconds_count{op="create_user"}"#) >= 1.0);
}

/// A login's own calls, counted by the stores' meters: the user by name and the audit row
/// that re-checks the user (SQL), the IP limit, the failure limits and the session (Redis).
/// Each is a handoff to another thread or process, so a login adds none it can spare.
async fn a_login_makes_two_sql_calls_and_three_redis_calls(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.register("counted", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let before = app.scrape().await;
    app.login_ok("counted").await;
    let after = app.scrape().await;
    let calls = |metric: &str| after.sum(metric) - before.sum(metric);
    assert_eq!(calls("auth_sql_query_duration_seconds_count"), 2.0);
    assert_eq!(calls("auth_redis_command_duration_seconds_count"), 3.0);
}

/// A row that spells the same roles otherwise (`,`: no roles, as `split` reads it) fails
/// the audit row's condition, which compares the stored text; the login then re-reads the
/// user, finds it unchanged and writes the row unconditionally: two more SQL calls, one
/// audit row all the same.
async fn a_user_whose_stored_roles_are_spelt_otherwise_is_re_read_and_logs_in_audited_once(
    backend: Backend,
) {
    use secrecy::ExposeSecret as _;

    let app = spawn_app(backend).await;
    let r = app.register("spelt", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let db = sqlx::SqlitePool::connect(app.config.database_url.expose_secret())
        .await
        .unwrap();
    sqlx::query("UPDATE users SET roles = ',' WHERE username = 'spelt'")
        .execute(&db)
        .await
        .unwrap();
    let before = app.scrape().await;
    let tokens = app.login_ok("spelt").await;
    let after = app.scrape().await;
    let calls = |metric: &str| after.sum(metric) - before.sum(metric);
    assert_eq!(calls("auth_sql_query_duration_seconds_count"), 4.0);
    assert_eq!(app.audit_events("login.success").await.len(), 1);
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_a_metrics_address_metrics_are_served_there_and_not_on_the_api_listener() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    };
    let mut config = test_config(backend, &dir);
    config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    let app = auth_center::startup::Application::build(config)
        .await
        .unwrap();
    let (api, metrics) = (app.port(), app.metrics_port().expect("a metrics listener"));
    tokio::spawn(app.run_until_stopped());
    let get = |port: u16| async move {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    };
    let (status, _) = get(api).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, text) = get(metrics).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Scrape::parse(&text).value(&login("success")), 0.0);
}
