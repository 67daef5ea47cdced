//! Atomicity: logout-all, admin disable and admin force-logout racing many concurrent
//! refreshes. A refresh can never bring a session back, and the per-user index agrees
//! with the session records afterwards.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::helpers::*;
use crate::{for_backends, for_every_backend};

for_every_backend!(
    twenty_concurrent_refreshes_racing_logout_all_never_bring_a_session_back,
    twenty_concurrent_refreshes_racing_an_admin_disable_never_bring_a_session_back,
    twenty_concurrent_refreshes_racing_an_admin_force_logout_never_bring_a_session_back,
);

for_backends! {
    sqlite_memory: [
        logins_racing_an_admin_disable_never_leave_a_session_behind,
    ],
    sqlite_redis: [
        logins_racing_an_admin_disable_never_leave_a_session_behind,
    ],
}

/// How the race is ended.
enum Ender {
    LogoutAll,
    Disable,
    ForceLogout,
}

const SESSIONS: usize = 20;
const REFRESHERS: usize = 20;

/// What one refresher saw.
#[derive(Default)]
struct Seen {
    /// Every refresh token ever handed out (and the initial ones).
    refresh_tokens: Vec<String>,
    /// Every access token ever handed out.
    access_tokens: Vec<String>,
    /// Refreshes that *started* after the ending call had returned and still succeeded.
    late_successes: Vec<String>,
}

async fn race(backend: Backend, ender: Ender) {
    let app = Arc::new(
        spawn_app_with(backend, |c| {
            // Many logins and refreshes from one IP: keep the limiter out of this test.
            c.limits.refresh_ip_max = 1_000_000;
            c.limits.login_ip_max = 1_000;
        })
        .await,
    );
    let root = app.admin_login("root").await;
    let first = app.register_and_login("racer").await;
    let uid = first.user_id();
    let mut sessions = vec![first];
    for _ in 1..SESSIONS {
        sessions.push(app.login_ok("racer").await);
    }
    // The session whose access token ends everything (for logout-all) is not refreshed.
    let caller = app.login_ok("racer").await;
    assert_eq!(app.session_count(&uid).await, SESSIONS + 1);

    let seen = Arc::new(Mutex::new(Seen::default()));
    {
        let mut s = seen.lock().await;
        for t in sessions.iter().chain([&caller]) {
            s.refresh_tokens.push(t.refresh_token.clone());
            s.access_tokens.push(t.access_token.clone());
        }
    }
    let ended_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let start = Arc::new(tokio::sync::Barrier::new(REFRESHERS + 1));

    let mut tasks = Vec::new();
    for i in 0..REFRESHERS {
        let app = app.clone();
        let seen = seen.clone();
        let ended_at = ended_at.clone();
        let start = start.clone();
        // One chain per refresher: refresher i starts from session i % SESSIONS (its own
        // session) and keeps rotating its own successor until the session is gone.
        let mut token = sessions[i % SESSIONS].refresh_token.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            for _ in 0..40 {
                let started = Instant::now();
                let r = app.refresh(&token).await;
                let status = r.status();
                if status != StatusCode::OK {
                    assert_eq!(
                        status,
                        StatusCode::UNAUTHORIZED,
                        "{}",
                        r.text().await.unwrap()
                    );
                    break;
                }
                let t: Tokens = r.json().await.unwrap();
                let mut s = seen.lock().await;
                s.refresh_tokens.push(t.refresh_token.clone());
                s.access_tokens.push(t.access_token.clone());
                if let Some(end) = *ended_at.lock().await
                    && started > end
                {
                    s.late_successes.push(t.session_id.clone());
                }
                token = t.refresh_token;
            }
        }));
    }

    start.wait().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let response = match ender {
        Ender::LogoutAll => {
            app.post_bearer("/v1/logout-all", &caller.access_token)
                .await
        }
        Ender::Disable => app
            .request(Method::POST, &format!("/v1/admin/users/{uid}/disable"))
            .bearer_auth(&root.access_token)
            .send()
            .await
            .unwrap(),
        Ender::ForceLogout => {
            app.delete_bearer(
                &format!("/v1/admin/users/{uid}/sessions"),
                &root.access_token,
            )
            .await
        }
    };
    *ended_at.lock().await = Some(Instant::now());
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
    for task in tasks {
        task.await.unwrap();
    }

    let seen = seen.lock().await;
    assert!(
        seen.late_successes.is_empty(),
        "refreshes that started after the sessions were ended succeeded: {:?}",
        seen.late_successes
    );
    // Afterwards no session exists, in the list and in the index.
    assert!(app.auth.sessions_of(&uid).await.unwrap().is_empty());
    if backend.sessions != Sessions::Memory {
        assert_eq!(app.redis_index_len(&uid).await, 0);
        for t in sessions.iter().chain([&caller]) {
            assert!(!app.redis_session_exists(&uid, &t.session_id).await);
        }
    }
    // Every refresh token ever handed out fails, and so does every access token.
    for token in &seen.refresh_tokens {
        assert_eq!(app.refresh(token).await.status(), StatusCode::UNAUTHORIZED);
    }
    for token in &seen.access_tokens {
        assert_error(
            app.me(token).await,
            StatusCode::UNAUTHORIZED,
            "session_revoked",
        )
        .await;
    }
    // And still nothing came back.
    assert!(app.auth.sessions_of(&uid).await.unwrap().is_empty());
    if backend.sessions != Sessions::Memory {
        assert_eq!(app.redis_index_len(&uid).await, 0);
    }
    // The admin was not touched.
    assert_eq!(app.me(&root.access_token).await.status(), StatusCode::OK);
}

async fn twenty_concurrent_refreshes_racing_logout_all_never_bring_a_session_back(
    backend: Backend,
) {
    race(backend, Ender::LogoutAll).await;
}

async fn twenty_concurrent_refreshes_racing_an_admin_disable_never_bring_a_session_back(
    backend: Backend,
) {
    race(backend, Ender::Disable).await;
}

async fn twenty_concurrent_refreshes_racing_an_admin_force_logout_never_bring_a_session_back(
    backend: Backend,
) {
    race(backend, Ender::ForceLogout).await;
}

/// At most this many racing logins.
const LOGINS: usize = 60;

/// Fires logins with `password`, one every 4 ms, until `end` has completed; returns the
/// successful ones and how many were fired.
async fn logins_during<F>(
    app: &Arc<TestApp>,
    username: &str,
    password: &str,
    end: F,
) -> (Vec<Tokens>, usize)
where
    F: std::future::Future<Output = ()>,
{
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let firing = {
        let (app, stop) = (app.clone(), stop.clone());
        let (username, password) = (username.to_string(), password.to_string());
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && tasks.len() < LOGINS {
                let app = app.clone();
                let (username, password) = (username.clone(), password.clone());
                tasks.push(tokio::spawn(async move {
                    let r = app.login(&username, &password).await;
                    match r.status() {
                        StatusCode::OK => Some(r.json::<Tokens>().await.unwrap()),
                        status => {
                            assert_eq!(status, StatusCode::UNAUTHORIZED);
                            None
                        }
                    }
                }));
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            tasks
        })
    };
    end.await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let tasks = firing.await.unwrap();
    let fired = tasks.len();
    let mut ok = Vec::new();
    for task in tasks {
        if let Some(t) = task.await.unwrap() {
            ok.push(t);
        }
    }
    (ok, fired)
}

async fn logins_racing_an_admin_disable_never_leave_a_session_behind(backend: Backend) {
    let app = Arc::new(spawn_app_with(backend, |c| c.limits.login_ip_max = 1_000).await);
    let root = app.admin_login("root").await;
    let first = app.register_and_login("lena").await;
    let uid = first.user_id();
    let (ok, fired) = logins_during(&app, "lena", PASSWORD, async {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let r = app
            .request(Method::POST, &format!("/v1/admin/users/{uid}/disable"))
            .bearer_auth(&root.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    })
    .await;
    let survivors = app.session_ids(&uid).await;
    assert!(
        survivors.is_empty(),
        "{} of {fired} logins raced the disable; sessions left: {survivors:?}",
        ok.len()
    );
    for t in ok.iter().chain([&first]) {
        assert_eq!(
            app.me(&t.access_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&t.refresh_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    if backend.sessions != Sessions::Memory {
        assert_eq!(app.redis_index_len(&uid).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_with_the_old_password_racing_a_password_change_never_leave_a_session_behind_in_memory()
 {
    logins_with_the_old_password_racing_a_password_change_never_leave_a_session_behind(Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_with_the_old_password_racing_a_password_change_never_leave_a_session_behind_in_redis()
 {
    logins_with_the_old_password_racing_a_password_change_never_leave_a_session_behind(Backend {
        db: Db::Sqlite,
        sessions: Sessions::Redis,
    })
    .await
}

/// A login that checked the old password before the change committed must not keep a
/// session once the change has ended "every other session".
async fn logins_with_the_old_password_racing_a_password_change_never_leave_a_session_behind(
    backend: Backend,
) {
    let app = Arc::new(
        spawn_app_with(backend, |c| {
            c.limits.login_ip_max = 1_000;
            c.limits.login_account_ip_failures_max = 1_000;
        })
        .await,
    );
    let owner = app.register_and_login("mira").await;
    let uid = owner.user_id();
    let (ok, fired) = logins_during(&app, "mira", PASSWORD, async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let r = app
            .post_json_bearer(
                "/v1/password",
                &owner.access_token,
                &serde_json::json!({
                    "current_password": PASSWORD,
                    "new_password": "the owner's new passphrase",
                }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    })
    .await;
    let survivors: Vec<String> = app
        .session_ids(&uid)
        .await
        .into_iter()
        .filter(|sid| *sid != owner.session_id)
        .collect();
    assert!(
        survivors.is_empty(),
        "{} of {fired} old-password logins succeeded; sessions opened with the old password \
         survived the change: {survivors:?}",
        ok.len()
    );
    assert_eq!(app.me(&owner.access_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.login("mira", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
