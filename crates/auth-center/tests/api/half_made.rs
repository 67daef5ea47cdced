//! A request that fails leaves nothing behind. A session store wrapper injects the fault at
//! the exact point under test: the database stopped right after a login created its
//! session, a login cancelled there, sessions that cannot be ended during an account change.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use test_support::Postgres;

use crate::faults::spawn_faulty;
use crate::helpers::*;

/// Every session key and index entry under the app's prefix.
async fn session_keys(app: &TestApp) -> Vec<String> {
    let mut conn = app.redis.clone().unwrap();
    let pattern = format!("{}:*", app.config.redis_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.into_iter().filter(|k| !k.contains(":rl:")).collect()
}

async fn eventually_no_session_keys(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys = session_keys(app).await;
        if keys.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {keys:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_database_stops_right_after_the_session_was_created_leaves_no_session() {
    let pg = Arc::new(Mutex::new(Postgres::start().unwrap()));
    let db_url = test_support::create_postgres_database(&pg.lock().unwrap().admin_url()).unwrap();
    let (app, faulty) = spawn_faulty(Some(db_url)).await;
    app.register("dora", PASSWORD).await;
    let stopper = pg.clone();
    *faulty.after_create.lock().unwrap() =
        Some(Box::new(move || stopper.lock().unwrap().stop().unwrap()));

    let response = app.login("dora", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(session_keys(&app).await, Vec::<String>::new());

    pg.lock().unwrap().restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let tokens = loop {
        let r = app.login("dora", PASSWORD).await;
        if r.status() == StatusCode::OK {
            break r.json::<Tokens>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "login never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(app.session_ids(&tokens.user_id()).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_cancelled_right_after_the_session_was_created_leaves_no_session() {
    let (app, faulty) = spawn_faulty(None).await;
    app.register("carl", PASSWORD).await;
    faulty.hang_after_create.store(true, Ordering::SeqCst);
    let client = Default::default();
    let login = app.auth.login(
        "carl",
        SecretString::from(PASSWORD.to_string()),
        None,
        &client,
    );
    // The request timeout, or a client that goes away, drops the login future here.
    let outcome = tokio::time::timeout(Duration::from_millis(500), login).await;
    assert!(outcome.is_err(), "the login hung inside the store");
    eventually_no_session_keys(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_that_cannot_end_the_other_sessions_changes_nothing() {
    let (app, faulty) = spawn_faulty(None).await;
    let mine = app.register_and_login("pat").await;
    let other = app.login_ok("pat").await;
    faulty.fail_deletes.store(true, Ordering::SeqCst);
    let body = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
    let r = app
        .post_json_bearer("/v1/password", &mine.access_token, &body)
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    faulty.fail_deletes.store(false, Ordering::SeqCst);
    // The old password still works, the new one does not, and the other session lives.
    assert_eq!(
        app.login("pat", "a brand new passphrase").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.login_ok("pat").await;
    assert_eq!(app.me(&other.access_token).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_whose_sessions_cannot_be_ended_changes_nothing() {
    let (app, faulty) = spawn_faulty(None).await;
    let admin = app.admin_login("root").await;
    let victim = app.register_and_login("vic").await;
    faulty.fail_deletes.store(true, Ordering::SeqCst);
    let path = format!("/v1/admin/users/{}/disable", victim.user_id());
    let r = app
        .request(Method::POST, &path)
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let roles_path = format!("/v1/admin/users/{}/roles", victim.user_id());
    let r = app
        .put_json_bearer(
            &roles_path,
            &admin.access_token,
            &json!({"roles": ["auditor"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    faulty.fail_deletes.store(false, Ordering::SeqCst);
    let user = app
        .get_json_ok(
            &format!("/v1/admin/users/{}", victim.user_id()),
            &admin.access_token,
        )
        .await;
    assert_eq!(
        (user["disabled"].clone(), user["roles"].clone()),
        (json!(false), json!([]))
    );
    assert_eq!(app.me(&victim.access_token).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_password_was_rehashed_by_a_concurrent_login_still_succeeds() {
    use secrecy::ExposeSecret as _;

    let (app, faulty) = spawn_faulty(None).await;
    app.register("rhea", PASSWORD).await;
    // Another login of the same user rehashes the password (new salt, same password) while
    // this one is between creating its session and re-reading the user.
    let rehashed = argon2_hash(&app.config, PASSWORD.as_bytes());
    let url = app.config.database_url.expose_secret().to_string();
    *faulty.after_create.lock().unwrap() = Some(Box::new(move || {
        tokio::runtime::Handle::current().block_on(async {
            let db = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query("UPDATE users SET password_hash = ?1 WHERE username = 'rhea'")
                .bind(&rehashed)
                .execute(&db)
                .await
                .unwrap();
        })
    }));
    let r = app.login("rhea", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the right password must not get 401"
    );
    let tokens: Tokens = r.json().await.unwrap();
    assert_eq!(app.session_ids(&tokens.user_id()).await.len(), 1);
}
