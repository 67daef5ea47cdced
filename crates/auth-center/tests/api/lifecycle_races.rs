//! Atomicity: logout-all, admin disable and admin force-logout racing many concurrent
//! refreshes. A refresh can never bring a session back, and the per-user index agrees
//! with the session records afterwards.
//!
//! Logins racing an account change: the session store runs the change inside the login,
//! after the password check and right before (or right after) the session is created, so
//! the race happens every time and only the login's re-read of the user can catch it. And
//! the other way round: the database runs a login inside a change (a disable whose reply is
//! lost after its write), or a change inside a login (right before the login's upgrade of an
//! old hash).

use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use auth_center::domain::AuthService;
use auth_center::domain::ClientInfo;
use auth_center::domain::error::AuthError;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::faults::{FaultyDatabase, FaultySessions, spawn_faulty_stores};
use crate::helpers::*;
use crate::{for_backends, for_every_backend};

for_every_backend!(
    twenty_concurrent_refreshes_racing_logout_all_never_bring_a_session_back,
    twenty_concurrent_refreshes_racing_an_admin_disable_never_bring_a_session_back,
    twenty_concurrent_refreshes_racing_an_admin_force_logout_never_bring_a_session_back,
);

for_backends! {
    sqlite_memory: [
        a_user_disabled_while_a_login_opens_its_session_is_refused_and_keeps_no_session,
        a_password_changed_while_a_login_with_the_old_one_opens_its_session_refuses_it,
        roles_changed_while_a_login_opens_its_session_are_the_roles_it_hands_out,
    ],
    sqlite_redis: [
        a_user_disabled_while_a_login_opens_its_session_is_refused_and_keeps_no_session,
        a_password_changed_while_a_login_with_the_old_one_opens_its_session_refuses_it,
        roles_changed_while_a_login_opens_its_session_are_the_roles_it_hands_out,
        a_disable_whose_reply_is_lost_still_ends_the_session_a_login_opened_during_it,
        a_password_changed_while_a_login_upgrades_the_old_hash_stays_changed,
    ],
    postgres_redis: [
        a_user_disabled_while_a_login_opens_its_session_is_refused_and_keeps_no_session,
        a_password_changed_while_a_login_with_the_old_one_opens_its_session_refuses_it,
        roles_changed_while_a_login_opens_its_session_are_the_roles_it_hands_out,
        a_disable_whose_reply_is_lost_still_ends_the_session_a_login_opened_during_it,
        a_password_changed_while_a_login_upgrades_the_old_hash_stays_changed,
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

/// Where, inside a login, the account changes: after the password check either way.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// Right before the session is created: the change's own sweep cannot see it.
    BeforeCreate,
    /// Right after the session is created, before the login re-reads the user.
    AfterCreate,
}

const MOMENTS: [Moment; 2] = [Moment::BeforeCreate, Moment::AfterCreate];

/// What the change did when it ran inside the login; `None` while it has not run.
type Ran = Arc<StdMutex<Option<Result<(), String>>>>;

/// An app whose session store runs a change inside the next login, and a user of it
/// with one session.
struct Race {
    app: TestApp,
    faulty: Arc<FaultySessions>,
    db: Arc<FaultyDatabase>,
    /// The user's first session.
    owner: Tokens,
    uid: String,
    /// An admin's claims, for admin changes.
    admin: verifier::Claims,
}

impl Race {
    async fn new(backend: Backend, username: &str) -> Self {
        let (app, faulty, db) = spawn_faulty_stores(backend, |_| {}).await;
        let admin = app.admin_claims().await;
        let owner = app.register_and_login(username).await;
        let uid = owner.user_id();
        Self {
            app,
            faulty,
            db,
            owner,
            uid,
            admin,
        }
    }

    /// Arranges for `change` to run once, inside the next login, at `moment`.
    fn during_next_login<F, Fut>(&self, moment: Moment, change: F) -> Ran
    where
        F: FnOnce(Arc<AuthService>, verifier::Claims, String) -> Fut,
        Fut: std::future::Future<Output = Result<(), AuthError>> + Send + 'static,
    {
        let change = change(self.app.auth.clone(), self.admin.clone(), self.uid.clone());
        let ran: Ran = Arc::default();
        let record = ran.clone();
        let hook = Box::new(move || {
            let outcome = tokio::runtime::Handle::current().block_on(change);
            *record.lock().unwrap() = Some(outcome.map_err(|e| e.to_string()));
        });
        let slot = match moment {
            Moment::BeforeCreate => &self.faulty.before_create,
            Moment::AfterCreate => &self.faulty.after_create,
        };
        *slot.lock().unwrap() = Some(hook);
        ran
    }
}

fn assert_the_change_ran_inside_the_login(ran: &Ran, moment: Moment) {
    assert_eq!(
        *ran.lock().unwrap(),
        Some(Ok(())),
        "{moment:?}: the account change did not run inside the login"
    );
}

/// A disable written to the database whose reply is lost (the connection broke after the
/// commit) answers an error, and still ends the session that a login opened while the
/// disable was on its way: that login checked the user before the write, so only the
/// disable's second sweep can end its session.
async fn a_disable_whose_reply_is_lost_still_ends_the_session_a_login_opened_during_it(
    backend: Backend,
) {
    let race = Race::new(backend, "luz").await;
    let auth = race.app.auth.clone();
    let opened: Arc<StdMutex<Option<Result<String, String>>>> = Arc::default();
    let record = opened.clone();
    *race.db.before_set_disabled.lock().unwrap() = Some(Box::new(move || {
        let client = ClientInfo::default();
        let login = auth.login("luz", SecretString::from(PASSWORD), None, &client);
        let login = tokio::runtime::Handle::current().block_on(login);
        *record.lock().unwrap() = Some(login.map(|t| t.session_id).map_err(|e| e.to_string()));
    }));
    race.db
        .lose_set_disabled_reply
        .store(true, std::sync::atomic::Ordering::SeqCst);

    let disabled = race
        .app
        .auth
        .admin_set_disabled(&race.admin, &race.uid, true, &ClientInfo::default())
        .await;

    assert!(disabled.is_err(), "a lost reply is an error");
    assert!(
        matches!(*opened.lock().unwrap(), Some(Ok(_))),
        "the login did not open a session inside the disable: {:?}",
        opened.lock().unwrap()
    );
    assert_eq!(race.app.session_ids(&race.uid).await, Vec::<String>::new());
    if backend.sessions != Sessions::Memory {
        assert_eq!(race.app.redis_index_len(&race.uid).await, 0);
    }
}

/// A login whose stored hash has older parameters writes an upgraded hash of the password
/// it checked. A password change committed between that check and that write wins: the
/// login is refused, and the new password stays the only one that works (an unconditional
/// upgrade would put the old password back).
async fn a_password_changed_while_a_login_upgrades_the_old_hash_stays_changed(backend: Backend) {
    const NEW_PASSWORD: &str = "the owner's new passphrase";
    let race = Race::new(backend, "rosa").await;
    let config = &race.app.config;
    let old = argon2_hash_with(config.passwords.iterations + 1, config, PASSWORD.as_bytes());
    race.db
        .inner()
        .set_password_hash(&race.uid, &old)
        .await
        .unwrap();
    let owner = race
        .app
        .auth
        .authenticate(&race.owner.access_token, None)
        .await
        .unwrap();
    let auth = race.app.auth.clone();
    let changed: Ran = Arc::default();
    let record = changed.clone();
    *race.db.before_password_write.lock().unwrap() = Some(Box::new(move || {
        let client = ClientInfo::default();
        let (current, new) = (
            SecretString::from(PASSWORD),
            SecretString::from(NEW_PASSWORD),
        );
        let change = auth.change_password(&owner, current, new, &client);
        let change = tokio::runtime::Handle::current().block_on(change);
        *record.lock().unwrap() = Some(change.map(drop).map_err(|e| e.to_string()));
    }));

    let r = race.app.login("rosa", PASSWORD).await;

    assert_eq!(
        *changed.lock().unwrap(),
        Some(Ok(())),
        "the password change did not run inside the login"
    );
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the old password won");
    assert_eq!(
        race.app.login("rosa", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        race.app.login("rosa", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn a_user_disabled_while_a_login_opens_its_session_is_refused_and_keeps_no_session(
    backend: Backend,
) {
    for moment in MOMENTS {
        let race = Race::new(backend, "lena").await;
        let ran = race.during_next_login(moment, |auth, admin, uid| async move {
            auth.admin_set_disabled(&admin, &uid, true, &ClientInfo::default())
                .await
                .map(drop)
        });

        let r = race.app.login("lena", PASSWORD).await;

        assert_the_change_ran_inside_the_login(&ran, moment);
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{moment:?}: a disabled user logged in"
        );
        assert_eq!(race.app.session_ids(&race.uid).await, Vec::<String>::new());
        if backend.sessions != Sessions::Memory {
            assert_eq!(race.app.redis_index_len(&race.uid).await, 0);
        }
    }
}

async fn a_password_changed_while_a_login_with_the_old_one_opens_its_session_refuses_it(
    backend: Backend,
) {
    const NEW_PASSWORD: &str = "the owner's new passphrase";
    for moment in MOMENTS {
        let race = Race::new(backend, "mira").await;
        let app = &race.app;
        let owner = app
            .auth
            .authenticate(&race.owner.access_token, None)
            .await
            .unwrap();
        let ran = race.during_next_login(moment, |auth, _, _| async move {
            let current = SecretString::from(PASSWORD.to_string());
            let new = SecretString::from(NEW_PASSWORD.to_string());
            auth.change_password(&owner, current, new, &ClientInfo::default())
                .await
                .map(drop)
        });

        let r = app.login("mira", PASSWORD).await;

        assert_the_change_ran_inside_the_login(&ran, moment);
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{moment:?}: a login with the replaced password succeeded"
        );
        // Only the owner's session, which the change kept, is left.
        assert_eq!(
            app.session_ids(&race.uid).await,
            vec![race.owner.session_id.clone()]
        );
        if backend.sessions != Sessions::Memory {
            assert_eq!(app.redis_index_len(&race.uid).await, 1);
        }
        assert_eq!(
            app.me(&race.owner.access_token).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            app.login("mira", NEW_PASSWORD).await.status(),
            StatusCode::OK
        );
    }
}

async fn roles_changed_while_a_login_opens_its_session_are_the_roles_it_hands_out(
    backend: Backend,
) {
    for moment in MOMENTS {
        let race = Race::new(backend, "rolf").await;
        let app = &race.app;
        let ran = race.during_next_login(moment, |auth, admin, uid| async move {
            let roles = vec!["auditor".to_string()];
            auth.admin_set_roles(&admin, &uid, roles, &ClientInfo::default())
                .await
                .map(drop)
        });

        let r = app.login("rolf", PASSWORD).await;

        assert_the_change_ran_inside_the_login(&ran, moment);
        assert_eq!(r.status(), StatusCode::OK, "{moment:?}");
        let tokens: Tokens = r.json().await.unwrap();
        assert_eq!(
            tokens.claims()["roles"],
            serde_json::json!(["auditor"]),
            "{moment:?}: the login handed out the roles from before the change"
        );
        // Exactly the login's session is left, and it carries the new roles.
        let sessions = app.auth.sessions_of(&race.uid).await.unwrap();
        let left: Vec<(&str, &[String])> = sessions
            .iter()
            .map(|s| (s.sid.as_str(), s.roles.as_slice()))
            .collect();
        assert_eq!(
            left,
            vec![(tokens.session_id.as_str(), &["auditor".to_string()][..])],
            "{moment:?}"
        );
        assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
    }
}
