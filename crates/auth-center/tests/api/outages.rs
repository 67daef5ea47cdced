//! Redis or the database stopped under the app: 503 with Retry-After, whatever the
//! password, the process keeps running, and it recovers by itself.

use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use test_support::{Postgres, RedisCluster, RedisServer};

use crate::helpers::*;

/// Polls `check` until it returns true, for at most 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The OAuth endpoints' 503: `temporarily_unavailable` with `Retry-After`.
async fn assert_oauth_unavailable(response: Response) -> bytes::Bytes {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body = response.bytes().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "temporarily_unavailable");
    body
}

/// Client-credentials requests with the right and a wrong secret.
async fn client_token_requests(app: &TestApp, client: &TestClient) -> [Response; 2] {
    let grant = [("grant_type", "client_credentials")];
    [
        app.post_form("/oauth2/token", &grant, Some((&client.id, &client.secret)))
            .await,
        app.post_form("/oauth2/token", &grant, Some((&client.id, "wrong")))
            .await,
    ]
}

async fn assert_unavailable(response: Response) -> bytes::Bytes {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response.headers().contains_key("retry-after"),
        "503 without Retry-After"
    );
    let body = response.bytes().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "unavailable");
    body
}

/// The shared script for a session-store outage.
async fn survives_a_session_store_outage(
    app: &TestApp,
    stop: impl FnOnce(),
    restart: impl FnOnce(),
) {
    let tokens = app.register_and_login("outage").await;
    let client = app.secret_client("svc", &[], &[], true).await;
    stop();
    let right = assert_unavailable(app.login("outage", PASSWORD).await).await;
    let wrong = assert_unavailable(app.login("outage", "wrong password").await).await;
    assert_eq!(right, wrong, "an outage must not become a password oracle");
    // Nor a client-secret oracle, at any OAuth endpoint.
    let [right, wrong] = client_token_requests(app, &client).await;
    let right = assert_oauth_unavailable(right).await;
    assert_eq!(right, assert_oauth_unavailable(wrong).await);
    for path in ["/oauth2/revoke", "/v1/introspect"] {
        let r = app
            .post_form(path, &[("token", "x")], Some((&client.id, &client.secret)))
            .await;
        assert_oauth_unavailable(r).await;
    }
    assert_unavailable(app.me(&tokens.access_token).await).await;
    assert_unavailable(app.refresh(&tokens.refresh_token).await).await;
    assert_unavailable(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    restart();
    eventually("login works again", || async {
        app.login("outage", PASSWORD).await.status() == StatusCode::OK
    })
    .await;
    let fresh = app.login_ok("outage").await;
    assert_eq!(app.me(&fresh.access_token).await.status(), StatusCode::OK);
    app.client_token(&client, None).await;
    assert_eq!(
        app.refresh(&fresh.refresh_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_gives_503_and_the_app_recovers_when_redis_returns() {
    let mut redis = RedisServer::start().unwrap();
    let url = redis.url();
    let backend = Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    };
    let app = spawn_app_with(backend, |c| {
        c.redis = RedisConfig::standalone(&url).unwrap();
    })
    .await;
    let redis = std::sync::Mutex::new(&mut redis);
    survives_a_session_store_outage(
        &app,
        || redis.lock().unwrap().stop().unwrap(),
        || redis.lock().unwrap().restart().unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_outage_gives_503_and_the_app_recovers_when_it_returns() {
    let mut cluster = RedisCluster::start().unwrap();
    let urls = cluster.urls();
    let backend = Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    };
    let app = spawn_app_with(backend, |c| {
        c.redis = RedisConfig::cluster(urls).unwrap();
    })
    .await;
    let cluster = std::sync::Mutex::new(&mut cluster);
    survives_a_session_store_outage(
        &app,
        || cluster.lock().unwrap().stop().unwrap(),
        || cluster.lock().unwrap().restart().unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gives_503_and_the_app_recovers_when_postgres_returns() {
    let mut pg = Postgres::start().unwrap();
    let db_url = test_support::create_postgres_database(&pg.admin_url()).unwrap();
    let backend = Backend {
        db: Db::Postgres,
        sessions: Sessions::Redis,
    };
    let app = spawn_app_with(backend, |c| c.database_url = SecretString::from(db_url)).await;
    let tokens = app.register_and_login("dbdown").await;
    let client = app.secret_client("svc", &[], &[], true).await;
    let gateway = app.admin_login("gateway").await;

    pg.stop().unwrap();
    let right = assert_unavailable(app.login("dbdown", PASSWORD).await).await;
    let wrong = assert_unavailable(app.login("dbdown", "wrong password").await).await;
    assert_eq!(right, wrong);
    // Clients are in SQL: no client authentication now, whatever the secret.
    let [right, wrong] = client_token_requests(&app, &client).await;
    let right = assert_oauth_unavailable(right).await;
    assert_eq!(right, assert_oauth_unavailable(wrong).await);
    // Introspection by a bearer caller needs no SQL: it goes on, without the username.
    let r = app
        .post_json_bearer(
            "/v1/introspect",
            &gateway.access_token,
            &serde_json::json!({ "token": tokens.access_token }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert!(body.get("username").is_none(), "{body}");
    assert_unavailable(app.register("newcomer", PASSWORD).await).await;
    let ready = assert_unavailable(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    let ready: serde_json::Value = serde_json::from_slice(&ready).unwrap();
    assert_eq!(ready["checks"]["redis"], "ok", "{ready}");
    let database = ready["checks"]["database"].as_str().unwrap();
    assert!(database.starts_with("error: "), "{ready}");
    // Refresh needs no SQL: sessions live in Redis. Nor does the refresh grant of the
    // built-in first-party client.
    let refreshed = app.refresh_ok(&tokens.refresh_token).await;
    let r = app
        .post_form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refreshed.refresh_token),
                ("client_id", "first-party"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed: Tokens = r.json().await.unwrap();

    pg.restart().unwrap();
    eventually("login works again", || async {
        app.login("dbdown", PASSWORD).await.status() == StatusCode::OK
    })
    .await;
    assert_eq!(
        app.register("newcomer", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.me(&refreshed.access_token).await.status(),
        StatusCode::OK
    );
    app.client_token(&client, None).await;
}
