//! Store wrappers that inject a fault, or run a test's action, at an exact point of a
//! request: the session store right before or right after a session is created, or when
//! sessions are ended; the database right before a password hash or a disable is written,
//! or losing the reply of a disable it wrote. Used by the half-made-request and the
//! lifecycle-race tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use auth_center::Config;
use auth_center::domain::AuthService;
use auth_center::domain::error::StoreError;
use auth_center::domain::metrics::AuthMetrics;
use auth_center::domain::ports::{
    AuditEvent, Database, RegisteredClient, RotateOutcome, Rotation, SessionRecord, SessionStore,
    StoredKey, User, UsernameRow,
};
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
    ) -> Result<u64, StoreError> {
        Self::run(&self.before_create);
        let ended = self
            .inner
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
        Ok(ended)
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

/// The real database, with a test's actions run at exact points.
pub struct FaultyDatabase {
    inner: Arc<dyn Database>,
    /// Runs once, right before the next write of a password hash reaches the database.
    pub before_password_write: Mutex<Option<Hook>>,
    /// Runs once, right before the next disable (or enable) reaches the database.
    pub before_set_disabled: Mutex<Option<Hook>>,
    /// The next disable is written, then answers as if the connection had broken.
    pub lose_set_disabled_reply: AtomicBool,
    /// A login's guard (its conditional audit row) fails as if the database were down.
    pub fail_audit_check: AtomicBool,
}

impl FaultyDatabase {
    /// The real database, without the faults (to set a scene).
    pub fn inner(&self) -> &Arc<dyn Database> {
        &self.inner
    }

    fn new(inner: Arc<dyn Database>) -> Self {
        Self {
            inner,
            before_password_write: Mutex::new(None),
            before_set_disabled: Mutex::new(None),
            lose_set_disabled_reply: AtomicBool::new(false),
            fail_audit_check: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl Database for FaultyDatabase {
    async fn create_user(&self, user: &User, username_skeleton: &str) -> Result<(), StoreError> {
        self.inner.create_user(user, username_skeleton).await
    }
    async fn users_without_skeleton(
        &self,
        after_created_ms: i64,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<UsernameRow>, StoreError> {
        let rows = self
            .inner
            .users_without_skeleton(after_created_ms, after_id, limit);
        rows.await
    }
    async fn set_username_skeleton(&self, id: &str, skeleton: &str) -> Result<(), StoreError> {
        self.inner.set_username_skeleton(id, skeleton).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.inner.user_by_username(username).await
    }
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.inner.user_by_id(id).await
    }
    async fn set_password_hash(&self, id: &str, hash: &str) -> Result<(), StoreError> {
        FaultySessions::run(&self.before_password_write);
        self.inner.set_password_hash(id, hash).await
    }
    async fn upgrade_password_hash(
        &self,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        FaultySessions::run(&self.before_password_write);
        self.inner.upgrade_password_hash(id, old, new).await
    }
    async fn list_users(
        &self,
        contains: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<User>, StoreError> {
        self.inner.list_users(contains, limit, offset).await
    }
    async fn set_roles(&self, id: &str, roles: &[String]) -> Result<bool, StoreError> {
        self.inner.set_roles(id, roles).await
    }
    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError> {
        FaultySessions::run(&self.before_set_disabled);
        let written = self.inner.set_disabled(id, disabled).await?;
        if self.lose_set_disabled_reply.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected fault: reply lost".into()));
        }
        Ok(written)
    }
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.inner.signing_keys().await
    }
    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        self.inner.insert_signing_key(key).await
    }
    async fn revoke_signing_keys(
        &self,
        except: &str,
        at_ms: i64,
        pending_only: bool,
    ) -> Result<(), StoreError> {
        let revoked = self.inner.revoke_signing_keys(except, at_ms, pending_only);
        revoked.await
    }
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.inner.server_secret(name, candidate).await
    }
    async fn create_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        self.inner.create_client(client).await
    }
    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        self.inner.client_by_id(id).await
    }
    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        self.inner.list_clients().await
    }
    async fn set_client_credentials(
        &self,
        id: &str,
        secret_hash: Option<&str>,
        jwks: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let set = self
            .inner
            .set_client_credentials(id, secret_hash, jwks, at_ms);
        set.await
    }
    async fn set_client_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError> {
        self.inner.set_client_disabled(id, disabled).await
    }
    async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.inner.audit(event).await
    }
    async fn audit_if_user_unchanged(
        &self,
        event: &AuditEvent,
        user: &User,
    ) -> Result<bool, StoreError> {
        if self.fail_audit_check.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected fault".into()));
        }
        self.inner.audit_if_user_unchanged(event, user).await
    }
    async fn recent_audit(&self, limit: i64, offset: i64) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.recent_audit(limit, offset).await
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
    let (app, sessions, _) = spawn_faulty_stores(backend, tweak).await;
    (app, sessions)
}

/// An app on `backend` whose session store and database are wrapped.
pub async fn spawn_faulty_stores(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, Arc<FaultySessions>, Arc<FaultyDatabase>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(backend, &dir);
    tweak(&mut config);
    let db = Arc::new(FaultyDatabase::new(
        connect_database(&config).await.unwrap(),
    ));
    let stores = connect_redis_stores(&config).await.unwrap();
    let faulty = Arc::new(FaultySessions::new(stores.sessions));
    let clock = ManualClock::starting_now();
    let registry = service_kit::metrics::Registry::private();
    let auth = AuthService::new(
        Arc::new(config),
        db.clone(),
        faulty.clone(),
        stores.rate_limits,
        Arc::new(clock.clone()),
        registry.register(AuthMetrics::register),
    )
    .await
    .unwrap();
    let auth = Arc::new(auth);
    let app = spawn_with_service(backend, Arc::new(dir), clock, auth, registry).await;
    (app, faulty, db)
}
