//! The stores with their latency and errors measured: decorators of the domain's ports that
//! time every call into a histogram labelled by operation (the port's method name) and
//! count its failures. Composed in `startup`: [`MeteredDatabase`] around the SQL database
//! (`auth_sql_query_duration_seconds{op}`, `auth_sql_errors_total{op}`), [`MeteredSessions`]
//! and [`MeteredRateLimits`] around the Redis stores (`auth_redis_command_duration_seconds{op}`,
//! `auth_redis_errors_total{op}`). A unique-constraint conflict is an answer, not an error.

use std::sync::Arc;

use async_trait::async_trait;
use service_kit::metrics::Registry;

use crate::domain::error::StoreError;
use crate::domain::ports::{
    AuditEvent, Database, RateCounter, RateDecision, RateLimitStore, RegisteredClient,
    RotateOutcome, Rotation, SessionRecord, SessionStore, StoredKey, User, UsernameRow,
};

/// Where one backend's calls are recorded.
#[derive(Clone)]
struct Meter {
    registry: Registry,
    duration: &'static str,
    errors: &'static str,
}

impl Meter {
    fn sql(registry: &Registry) -> Self {
        registry.register(|| {
            metrics::describe_histogram!(
                "auth_sql_query_duration_seconds",
                metrics::Unit::Seconds,
                "Time of one database call, by operation."
            );
            metrics::describe_counter!(
                "auth_sql_errors_total",
                "Failed database calls, by operation."
            );
        });
        Self {
            registry: registry.clone(),
            duration: "auth_sql_query_duration_seconds",
            errors: "auth_sql_errors_total",
        }
    }

    fn redis(registry: &Registry) -> Self {
        registry.register(|| {
            metrics::describe_histogram!(
                "auth_redis_command_duration_seconds",
                metrics::Unit::Seconds,
                "Time of one Redis call (a command or a script), by operation."
            );
            metrics::describe_counter!(
                "auth_redis_errors_total",
                "Failed Redis calls, by operation."
            );
        });
        Self {
            registry: registry.clone(),
            duration: "auth_redis_command_duration_seconds",
            errors: "auth_redis_errors_total",
        }
    }

    /// Runs `call`, recording its time and whether it failed under `op`.
    #[allow(clippy::disallowed_methods)] // real time: a latency metric
    async fn time<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let result = call.await;
        let elapsed = started.elapsed().as_secs_f64();
        let failed = matches!(
            result,
            Err(StoreError::Unavailable(_) | StoreError::Other(_))
        );
        self.registry.register(|| {
            metrics::histogram!(self.duration, "op" => op).record(elapsed);
            if failed {
                metrics::counter!(self.errors, "op" => op).increment(1);
            }
        });
        result
    }
}

/// The SQL database, measured.
pub struct MeteredDatabase {
    inner: Arc<dyn Database>,
    meter: Meter,
}

impl MeteredDatabase {
    /// `inner`, its calls recorded in `registry`.
    pub fn new(inner: Arc<dyn Database>, registry: &Registry) -> Self {
        Self {
            inner,
            meter: Meter::sql(registry),
        }
    }
}

#[async_trait]
impl Database for MeteredDatabase {
    async fn create_user(&self, user: &User, username_skeleton: &str) -> Result<(), StoreError> {
        let call = self.inner.create_user(user, username_skeleton);
        self.meter.time("create_user", call).await
    }
    async fn users_without_skeleton(
        &self,
        after_created_ms: i64,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<UsernameRow>, StoreError> {
        let call = self
            .inner
            .users_without_skeleton(after_created_ms, after_id, limit);
        self.meter.time("users_without_skeleton", call).await
    }
    async fn set_username_skeleton(&self, id: &str, skeleton: &str) -> Result<(), StoreError> {
        let call = self.inner.set_username_skeleton(id, skeleton);
        self.meter.time("set_username_skeleton", call).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let call = self.inner.user_by_username(username);
        self.meter.time("user_by_username", call).await
    }
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.meter
            .time("user_by_id", self.inner.user_by_id(id))
            .await
    }
    async fn set_password_hash(&self, id: &str, hash: &str) -> Result<(), StoreError> {
        let call = self.inner.set_password_hash(id, hash);
        self.meter.time("set_password_hash", call).await
    }
    async fn upgrade_password_hash(
        &self,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let call = self.inner.upgrade_password_hash(id, old, new);
        self.meter.time("upgrade_password_hash", call).await
    }
    async fn list_users(
        &self,
        contains: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<User>, StoreError> {
        let call = self.inner.list_users(contains, limit, offset);
        self.meter.time("list_users", call).await
    }
    async fn set_roles(&self, id: &str, roles: &[String]) -> Result<bool, StoreError> {
        self.meter
            .time("set_roles", self.inner.set_roles(id, roles))
            .await
    }
    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError> {
        let call = self.inner.set_disabled(id, disabled);
        self.meter.time("set_disabled", call).await
    }
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.meter
            .time("signing_keys", self.inner.signing_keys())
            .await
    }
    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let call = self.inner.insert_signing_key(key);
        self.meter.time("insert_signing_key", call).await
    }
    async fn revoke_signing_keys(
        &self,
        except: &str,
        at_ms: i64,
        pending_only: bool,
    ) -> Result<(), StoreError> {
        let call = self.inner.revoke_signing_keys(except, at_ms, pending_only);
        self.meter.time("revoke_signing_keys", call).await
    }
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let call = self.inner.server_secret(name, candidate);
        self.meter.time("server_secret", call).await
    }
    async fn create_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        let call = self.inner.create_client(client);
        self.meter.time("create_client", call).await
    }
    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let call = self.inner.client_by_id(id);
        self.meter.time("client_by_id", call).await
    }
    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        self.meter
            .time("list_clients", self.inner.list_clients())
            .await
    }
    async fn set_client_credentials(
        &self,
        id: &str,
        secret_hash: Option<&str>,
        jwks: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let call = self
            .inner
            .set_client_credentials(id, secret_hash, jwks, at_ms);
        self.meter.time("set_client_credentials", call).await
    }
    async fn set_client_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError> {
        let call = self.inner.set_client_disabled(id, disabled);
        self.meter.time("set_client_disabled", call).await
    }
    async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.meter.time("audit", self.inner.audit(event)).await
    }
    async fn audit_if_user_unchanged(
        &self,
        event: &AuditEvent,
        user: &User,
    ) -> Result<bool, StoreError> {
        let call = self.inner.audit_if_user_unchanged(event, user);
        self.meter.time("audit_if_user_unchanged", call).await
    }
    async fn recent_audit(&self, limit: i64, offset: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let call = self.inner.recent_audit(limit, offset);
        self.meter.time("recent_audit", call).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.meter.time("ping", self.inner.ping()).await
    }
}

/// The Redis session store, measured.
pub struct MeteredSessions {
    inner: Arc<dyn SessionStore>,
    meter: Meter,
}

impl MeteredSessions {
    /// `inner`, its calls recorded in `registry`.
    pub fn new(inner: Arc<dyn SessionStore>, registry: &Registry) -> Self {
        Self {
            inner,
            meter: Meter::redis(registry),
        }
    }
}

#[async_trait]
impl SessionStore for MeteredSessions {
    async fn create(
        &self,
        session: &SessionRecord,
        refresh_hash: &str,
        next_refresh_hash: &str,
        now_ms: i64,
        max_sessions: u64,
    ) -> Result<u64, StoreError> {
        let call = self.inner.create(
            session,
            refresh_hash,
            next_refresh_hash,
            now_ms,
            max_sessions,
        );
        self.meter.time("session_create", call).await
    }
    async fn rotate(&self, rotation: &Rotation<'_>) -> Result<RotateOutcome, StoreError> {
        self.meter
            .time("session_rotate", self.inner.rotate(rotation))
            .await
    }
    async fn is_active(&self, user_id: &str, sid: &str, now_ms: i64) -> Result<bool, StoreError> {
        let call = self.inner.is_active(user_id, sid, now_ms);
        self.meter.time("session_is_active", call).await
    }
    async fn list(&self, user_id: &str, now_ms: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let call = self.inner.list(user_id, now_ms);
        self.meter.time("session_list", call).await
    }
    async fn delete(&self, user_id: &str, sid: &str) -> Result<bool, StoreError> {
        let call = self.inner.delete(user_id, sid);
        self.meter.time("session_delete", call).await
    }
    async fn delete_all(&self, user_id: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        let call = self.inner.delete_all(user_id, keep);
        self.meter.time("session_delete_all", call).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.meter.time("ping", self.inner.ping()).await
    }
}

/// The Redis rate-limit store, measured.
pub struct MeteredRateLimits {
    inner: Arc<dyn RateLimitStore>,
    meter: Meter,
}

impl MeteredRateLimits {
    /// `inner`, its calls recorded in `registry`.
    pub fn new(inner: Arc<dyn RateLimitStore>, registry: &Registry) -> Self {
        Self {
            inner,
            meter: Meter::redis(registry),
        }
    }
}

#[async_trait]
impl RateLimitStore for MeteredRateLimits {
    async fn hit(
        &self,
        counters: &[RateCounter<'_>],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        let call = self.inner.hit(counters, now_ms);
        self.meter.time("rate_limit_hit", call).await
    }
    async fn peek(
        &self,
        counters: &[RateCounter<'_>],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        let call = self.inner.peek(counters, now_ms);
        self.meter.time("rate_limit_peek", call).await
    }
    async fn reset(&self, key: &str, window_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        let call = self.inner.reset(key, window_ms, now_ms);
        self.meter.time("rate_limit_reset", call).await
    }
    async fn first_use(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        let call = self.inner.first_use(key, ttl_ms, now_ms);
        self.meter.time("first_use", call).await
    }
}
