//! A session store wrapper that injects a fault, or runs a test's action, at an exact point
//! of a request: right before or right after a session is created, or when sessions are
//! ended. Used by the half-made-request and the lifecycle-race tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use auth_center::Config;
use auth_center::domain::AuthService;
use auth_center::domain::error::StoreError;
use auth_center::domain::metrics::AuthMetrics;
use auth_center::domain::ports::{RotateOutcome, Rotation, SessionRecord, SessionStore};
use auth_center::startup::{connect_database, connect_redis_stores};
use secrecy::SecretString;
use verifier::contract::ManualClock;

use crate::helpers::*;

/// A test's action, run once from inside the store (blocking the request there).
pub type Hook = Box<dyn FnOnce() + Send>;

/// The real store, with faults switched on by the test.
pub struct FaultySessions {
    inner: Arc<dyn SessionStore>,
    /// Runs once, right before a create reaches the real store.
    pub before_create: Mutex<Option<Hook>>,
    /// Runs once, right after a create succeeded.
    pub after_create: Mutex<Option<Hook>>,
    /// A create that succeeded then never returns (the request is cancelled there).
    pub hang_after_create: AtomicBool,
    /// Ending sessions fails as if Redis were unreachable.
    pub fail_deletes: AtomicBool,
}

impl FaultySessions {
    fn new(inner: Arc<dyn SessionStore>) -> Self {
        Self {
            inner,
            before_create: Mutex::new(None),
            after_create: Mutex::new(None),
            hang_after_create: AtomicBool::new(false),
            fail_deletes: AtomicBool::new(false),
        }
    }

    fn delete_fault(&self) -> Result<(), StoreError> {
        if self.fail_deletes.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected fault".into()));
        }
        Ok(())
    }

    fn run(hook: &Mutex<Option<Hook>>) {
        let hook = hook.lock().unwrap().take();
        if let Some(hook) = hook {
            tokio::task::block_in_place(hook);
        }
    }
}

#[async_trait]
impl SessionStore for FaultySessions {
    async fn create(
        &self,
        session: &SessionRecord,
        refresh_hash: &str,
        next_refresh_hash: &str,
        now_ms: i64,
        max_sessions: u64,
    ) -> Result<(), StoreError> {
        Self::run(&self.before_create);
        self.inner
            .create(
                session,
                refresh_hash,
                next_refresh_hash,
                now_ms,
                max_sessions,
            )
            .await?;
        Self::run(&self.after_create);
        if self.hang_after_create.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
    async fn rotate(&self, rotation: &Rotation<'_>) -> Result<RotateOutcome, StoreError> {
        self.inner.rotate(rotation).await
    }
    async fn is_active(&self, user_id: &str, sid: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.inner.is_active(user_id, sid, now_ms).await
    }
    async fn list(&self, user_id: &str, now_ms: i64) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list(user_id, now_ms).await
    }
    async fn delete(&self, user_id: &str, sid: &str) -> Result<bool, StoreError> {
        self.delete_fault()?;
        self.inner.delete(user_id, sid).await
    }
    async fn delete_all(&self, user_id: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        self.delete_fault()?;
        self.inner.delete_all(user_id, keep).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

/// An app on SQLite and Redis whose session store is wrapped; `database_url` overrides the
/// database.
pub async fn spawn_faulty(database_url: Option<String>) -> (TestApp, Arc<FaultySessions>) {
    let backend = Backend {
        db: Db::Sqlite,
        sessions: Sessions::Redis,
    };
    spawn_faulty_on(backend, |config| {
        if let Some(url) = database_url {
            config.database_url = SecretString::from(url);
        }
    })
    .await
}

/// An app on `backend` whose session store is wrapped.
pub async fn spawn_faulty_on(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, Arc<FaultySessions>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(backend, &dir);
    tweak(&mut config);
    let db = connect_database(&config).await.unwrap();
    let stores = connect_redis_stores(&config).await.unwrap();
    let faulty = Arc::new(FaultySessions::new(stores.sessions));
    let clock = ManualClock::starting_now();
    let auth = AuthService::new(
        Arc::new(config),
        db,
        faulty.clone(),
        stores.rate_limits,
        Arc::new(clock.clone()),
        AuthMetrics::default(),
    )
    .await
    .unwrap();
    let app = spawn_with_service(backend, Arc::new(dir), clock, Arc::new(auth)).await;
    (app, faulty)
}
