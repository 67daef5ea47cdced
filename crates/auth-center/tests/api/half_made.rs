//! A request that fails leaves nothing behind. A session store (or database) wrapper injects
//! the fault at the exact point under test: the database stopped right after a login created
//! its session, a login cancelled there, a login whose guard fails, sessions that cannot be
//! ended during an account change, an account change dropped or failing half-way.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use test_support::Postgres;

use crate::faults::{FaultyDatabase, spawn_faulty, spawn_faulty_stores};
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

const SQLITE_REDIS: Backend = Backend {
    db: Db::Sqlite,
    sessions: Sessions::Redis,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_guard_fails_answers_503_and_leaves_no_session_and_no_success_row() {
    let (app, _, db) = spawn_faulty_stores(SQLITE_REDIS, |_| {}).await;
    app.register("gus", PASSWORD).await;
    db.fail_audit_check.store(true, Ordering::SeqCst);

    let response = app.login("gus", PASSWORD).await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    eventually_no_session_keys(&app).await;
    assert!(app.audit_events("login.success").await.is_empty());
}

/// The user's sessions (from the store) and whether the user is disabled (from the
/// database), once both are as expected or after ten seconds.
async fn eventually_disabled_with_no_session(
    app: &TestApp,
    db: &FaultyDatabase,
    uid: &str,
) -> (Vec<String>, bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sessions = app.session_ids(uid).await;
        let user = db.inner().user_by_id(uid).await.unwrap();
        let disabled = user.expect("the user").disabled;
        if (sessions.is_empty() && disabled) || Instant::now() > deadline {
            return (sessions, disabled);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A disable whose request is dropped (a timeout, a client gone) while its write is on the
/// way still writes, and its second sweep still ends the session a login opened meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_dropped_during_its_write_still_disables_and_ends_the_sessions_opened_meanwhile()
{
    let (app, _, db) = spawn_faulty_stores(SQLITE_REDIS, |_| {}).await;
    let admin = app.admin_claims().await;
    let uid = app.register_and_login("ida").await.user_id();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let opened = Arc::new(Mutex::new(None));
    let (auth, record) = (app.auth.clone(), opened.clone());
    *db.before_set_disabled.lock().unwrap() = Some(Box::new(move || {
        started_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        let client = Default::default();
        let login = auth.login("ida", SecretString::from(PASSWORD), None, &client);
        let login = tokio::runtime::Handle::current().block_on(login);
        *record.lock().unwrap() = Some(login.map(drop).map_err(|e| e.to_string()));
    }));
    let (auth, target) = (app.auth.clone(), uid.clone());
    let request = tokio::spawn(async move {
        let client = Default::default();
        auth.admin_set_disabled(&admin, &target, true, &client)
            .await
    });
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();

    request.abort();
    go_tx.send(()).unwrap();
    let _ = request.await;

    let (sessions, disabled) = eventually_disabled_with_no_session(&app, &db, &uid).await;
    assert_eq!(*opened.lock().unwrap(), Some(Ok(())), "the login inside");
    assert!(disabled, "the dropped request's write was lost");
    assert_eq!(sessions, Vec::<String>::new());
}

/// A disable that was written but whose second sweep fails answers with the write's
/// result; the sweep goes on in the background and ends the session a login opened
/// meanwhile once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_whose_second_sweep_fails_is_answered_and_swept_in_the_background() {
    let (app, faulty, db) = spawn_faulty_stores(SQLITE_REDIS, |_| {}).await;
    let admin = app.admin_claims().await;
    let uid = app.register_and_login("una").await.user_id();
    let (auth, sessions) = (app.auth.clone(), faulty.clone());
    *db.before_set_disabled.lock().unwrap() = Some(Box::new(move || {
        let client = Default::default();
        let login = auth.login("una", SecretString::from(PASSWORD), None, &client);
        tokio::runtime::Handle::current().block_on(login).unwrap();
        sessions.fail_deletes.store(true, Ordering::SeqCst);
    }));

    let disabled = app
        .auth
        .admin_set_disabled(&admin, &uid, true, &Default::default())
        .await;
    assert!(disabled.unwrap().disabled);
    assert_eq!(app.session_ids(&uid).await.len(), 1, "the login's, for now");
    faulty.fail_deletes.store(false, Ordering::SeqCst);

    let (sessions, _) = eventually_disabled_with_no_session(&app, &db, &uid).await;
    assert_eq!(sessions, Vec::<String>::new());
    // Every session ended by the disable is counted, the one swept in the background too:
    // the owner's (first sweep) and the login's.
    let ended = r#"auth_sessions_ended_total{cause="admin"}"#;
    assert_eq!(app.scrape().await.value(ended), 2.0);
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
