//! Users, keys, secrets and audit in SQL: PostgreSQL for production, SQLite as the
//! embedded default. Both implement [`Database`] from one body of code (the SQL is the
//! same; `$n` placeholders work in both), so they cannot drift apart.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::domain::error::{StoreError, Unique};
use crate::domain::ports::{
    AuditEvent, ClientKind, Database, RegisteredClient, StoredKey, User, UsernameRow,
};

/// Users in PostgreSQL.
pub struct PostgresDatabase {
    pool: PgPool,
    /// Where a login's audit row is written: `pool`, or with [`LoginAudit::Unsynced`] up to
    /// four more connections that commit without waiting for the disk
    /// (`synchronous_commit = off`).
    login_audit: PgPool,
}

/// Users in a SQLite file.
pub struct SqliteDatabase {
    pool: SqlitePool,
    /// Where a login's audit row is written: `pool`, or with [`LoginAudit::Unsynced`]
    /// connections that commit without syncing the write-ahead log (`synchronous = NORMAL`).
    login_audit: SqlitePool,
}

/// Whether a successful login's audit row waits for the disk
/// ([`Database::audit_if_user_unchanged`]; `login_audit_sync` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAudit {
    /// Committed like every other write: on disk before the login answers.
    Synced,
    /// Committed without waiting for the disk (the default). The row survives a crash of
    /// the auth-center, and is visible to every reader once the login answers. What can
    /// lose it: on SQLite a power loss or an operating-system crash before the next synced
    /// commit, checkpoint or the kernel's writeback of the log (no fixed time bound); on
    /// PostgreSQL also a crash of the server itself, within three times `wal_writer_delay`,
    /// and a failover to a standby it had not reached (synchronous replication is not
    /// awaited either). Nothing else is at risk: every other write waits as before, and the
    /// log is replayed in order, so no later change survives an earlier row lost.
    Unsynced,
}

/// Connects to `url` (`postgres://...` or `sqlite:...`) and applies the embedded
/// migrations.
pub async fn connect(
    url: &SecretString,
    acquire_timeout: Duration,
    login_audit: LoginAudit,
) -> Result<Arc<dyn Database>, StoreError> {
    let url = url.expose_secret();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            PostgresDatabase::connect(url, acquire_timeout, login_audit).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteDatabase::connect(url, acquire_timeout, login_audit).await?,
        ))
    } else {
        Err(StoreError::other(
            "DATABASE_URL must start with postgres:// or sqlite:",
        ))
    }
}

impl PostgresDatabase {
    async fn connect(
        url: &str,
        acquire_timeout: Duration,
        login_audit: LoginAudit,
    ) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(sql_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(sql_error)?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::other_because("applying the migrations", e))?;
        let login_audit = match login_audit {
            LoginAudit::Synced => pool.clone(),
            // Connected now, so that a server or pooler refusing the setting (PgBouncer
            // does, unless told to ignore `options`) stops the start, not every login.
            LoginAudit::Unsynced => PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(acquire_timeout)
                .connect_with(options.options([("synchronous_commit", "off")]))
                .await
                .map_err(sql_error)?,
        };
        Ok(Self { pool, login_audit })
    }
}

impl SqliteDatabase {
    async fn connect(
        url: &str,
        acquire_timeout: Duration,
        login_audit: LoginAudit,
    ) -> Result<Self, StoreError> {
        // `synchronous = FULL` (sqlx's default, stated here): a commit is on disk before it
        // returns.
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::other_because("reading the SQLite URL", e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(sql_error)?;
        sqlx::migrate!("../../migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::other_because("applying the migrations", e))?;
        let login_audit = match login_audit {
            LoginAudit::Synced => pool.clone(),
            // Two connections: the rows of concurrent logins queue for SQLite's one writer
            // anyway.
            LoginAudit::Unsynced => SqlitePoolOptions::new()
                .max_connections(2)
                .acquire_timeout(acquire_timeout)
                .connect_with(options.synchronous(SqliteSynchronous::Normal))
                .await
                .map_err(sql_error)?,
        };
        Ok(Self { pool, login_audit })
    }
}

/// A failed SQL call as a store error: a unique violation the domain tells apart is a
/// `Conflict` (see [`UNIQUE_CONSTRAINTS`]); an unreachable, shutting-down or overloaded server is
/// `Unavailable` (503 with `Retry-After`); anything else is `Other` (500). The sqlx error is kept
/// as the source.
fn sql_error(e: sqlx::Error) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::Database(db) => {
            if let Some(unique) = unique_violation(db.as_ref()) {
                return StoreError::Conflict(unique);
            }
            // Postgres shutting down / starting up / out of connections.
            db.code()
                .is_some_and(|c| c.starts_with("57P") || c.starts_with("08") || c == "53300")
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Other(Box::new(e))
    }
}

/// Every unique rule of the schema that the domain tells apart: the name PostgreSQL reports
/// for it, and the `table.column` SQLite reports. Keep it in step with the migrations; a
/// unique violation not listed here is a fault (`Other`), not a `Conflict`.
///
/// PostgreSQL names the violated constraint (`DatabaseError::constraint()`: the
/// constraint's name, or the index's for a unique index). SQLite names none (sqlx's
/// `constraint()` is `None` for it, as is `table()`): its extended result code
/// (`SQLITE_CONSTRAINT_UNIQUE`, or `_PRIMARYKEY`), which sqlx reports as
/// `ErrorKind::UniqueViolation`, says what happened, and only its message,
/// `UNIQUE constraint failed: <table>.<column>`, says where. That message is read here and
/// nowhere else.
const UNIQUE_CONSTRAINTS: [(&str, &str, Unique); 4] = [
    ("users_username_key", "users.username", Unique::Username),
    (
        "users_username_skeleton",
        "users.username_skeleton",
        Unique::UsernameSkeleton,
    ),
    (
        "signing_keys_scheduled_after",
        "signing_keys.scheduled_after",
        Unique::KeySuccessor,
    ),
    ("clients_pkey", "clients.id", Unique::ClientId),
];

/// Which of [`UNIQUE_CONSTRAINTS`] a database error violated, if it is one of them.
fn unique_violation(db: &dyn sqlx::error::DatabaseError) -> Option<Unique> {
    if db.kind() != sqlx::error::ErrorKind::UniqueViolation {
        return None;
    }
    let sqlite_columns = db.message().strip_prefix("UNIQUE constraint failed: ");
    UNIQUE_CONSTRAINTS
        .iter()
        .find(|(postgres, sqlite, _)| {
            db.constraint() == Some(*postgres) || sqlite_columns == Some(*sqlite)
        })
        .map(|&(_, _, unique)| unique)
}

// Rows as the queries below return them, one field per selected column and named after
// it (sqlx decodes by name, so a reordered SELECT cannot shift values), and their one
// conversion into the domain records.

/// A row of `users` as `SELECT id, username, password_hash, roles, disabled, created_ms`.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    password_hash: String,
    /// Comma-separated role names.
    roles: String,
    disabled: bool,
    created_ms: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            username: row.username,
            password_hash: row.password_hash,
            roles: split_list(&row.roles, ','),
            disabled: row.disabled,
            created_ms: row.created_ms,
        }
    }
}

/// The items of a list stored as one column, `sep`-separated.
fn split_list(stored: &str, sep: char) -> Vec<String> {
    stored
        .split(sep)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect()
}

/// A row of `clients`, every column.
#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    /// `confidential` or `public` (a CHECK constraint).
    kind: String,
    secret_hash: Option<String>,
    jwks: Option<String>,
    /// Comma-separated role names.
    roles: String,
    /// Space-separated scopes.
    scopes: String,
    introspect: bool,
    /// Space-separated URIs.
    redirect_uris: String,
    /// Space-separated origins.
    allowed_origins: String,
    disabled: bool,
    created_ms: i64,
    secret_rotated_ms: Option<i64>,
}

/// Every column of `clients`, in [`ClientRow`]'s order (a macro, so that `concat!` builds
/// each statement as one static string).
macro_rules! client_columns {
    () => {
        "id, name, kind, secret_hash, jwks, roles, scopes, introspect, redirect_uris, \
         allowed_origins, disabled, created_ms, secret_rotated_ms"
    };
}

/// The start of an `INSERT` of an audit row, whose values are `$1`..`$8` in this order;
/// [`bind_audit!`] binds them.
macro_rules! audit_insert {
    () => {
        "INSERT INTO audit_log (at_ms, event, actor, target, sid, ip, detail, request_id) "
    };
}

/// Binds an [`AuditEvent`] as `$1`..`$8` of an [`audit_insert!`] statement.
macro_rules! bind_audit {
    ($query:expr, $e:expr) => {
        $query
            .bind($e.at_ms)
            .bind(&$e.event)
            .bind(&$e.actor)
            .bind(&$e.target)
            .bind(&$e.sid)
            .bind(&$e.ip)
            .bind(&$e.detail)
            .bind(&$e.request_id)
    };
}

impl From<ClientRow> for RegisteredClient {
    fn from(row: ClientRow) -> Self {
        RegisteredClient {
            id: row.id,
            name: row.name,
            // Anything but `public` must authenticate.
            kind: if row.kind == ClientKind::Public.as_str() {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            },
            secret_hash: row.secret_hash,
            jwks: row.jwks,
            roles: split_list(&row.roles, ','),
            scopes: split_list(&row.scopes, ' '),
            introspect: row.introspect,
            redirect_uris: split_list(&row.redirect_uris, ' '),
            allowed_origins: split_list(&row.allowed_origins, ' '),
            disabled: row.disabled,
            created_ms: row.created_ms,
            secret_rotated_ms: row.secret_rotated_ms,
        }
    }
}

/// A row of `users` as `SELECT id, username, created_ms` (the skeleton backfill).
#[derive(sqlx::FromRow)]
struct BackfillRow {
    id: String,
    username: String,
    created_ms: i64,
}

impl From<BackfillRow> for UsernameRow {
    fn from(row: BackfillRow) -> Self {
        UsernameRow {
            id: row.id,
            username: row.username,
            created_ms: row.created_ms,
        }
    }
}

/// A row of `signing_keys`.
#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    alg: String,
    private_der: Vec<u8>,
    public_key: Vec<u8>,
    created_ms: i64,
    activates_at_ms: i64,
    revoked_ms: Option<i64>,
    scheduled_after: Option<String>,
}

impl From<KeyRow> for StoredKey {
    fn from(row: KeyRow) -> Self {
        StoredKey {
            kid: row.kid,
            alg: row.alg,
            private_der: row.private_der,
            public_key: row.public_key,
            created_ms: row.created_ms,
            activates_ms: row.activates_at_ms,
            revoked_ms: row.revoked_ms,
            scheduled_after: row.scheduled_after,
        }
    }
}

/// A row of `audit_log` (without its `id`).
#[derive(sqlx::FromRow)]
struct AuditRow {
    at_ms: i64,
    event: String,
    actor: Option<String>,
    target: Option<String>,
    sid: Option<String>,
    ip: Option<String>,
    request_id: Option<String>,
    detail: Option<String>,
}

impl From<AuditRow> for AuditEvent {
    fn from(row: AuditRow) -> Self {
        AuditEvent {
            at_ms: row.at_ms,
            event: row.event,
            actor: row.actor,
            target: row.target,
            sid: row.sid,
            ip: row.ip,
            request_id: row.request_id,
            detail: row.detail,
        }
    }
}

/// One implementation for both pools: the SQL is portable.
macro_rules! impl_database {
    ($ty:ty) => {
        #[async_trait]
        impl Database for $ty {
            async fn create_user(&self, u: &User, username_skeleton: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO users (id, username, username_skeleton, password_hash, roles, disabled, created_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&u.id)
                .bind(&u.username)
                .bind(username_skeleton)
                .bind(&u.password_hash)
                .bind(u.roles.join(","))
                .bind(u.disabled)
                .bind(u.created_ms)
                .execute(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(())
            }

            async fn users_without_skeleton(
                &self,
                after_created_ms: i64,
                after_id: &str,
                limit: i64,
            ) -> Result<Vec<UsernameRow>, StoreError> {
                let rows: Vec<BackfillRow> = sqlx::query_as(
                    "SELECT id, username, created_ms FROM users WHERE username_skeleton IS NULL \
                     AND (created_ms > $1 OR (created_ms = $1 AND id > $2)) \
                     ORDER BY created_ms, id LIMIT $3",
                )
                .bind(after_created_ms)
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(rows.into_iter().map(UsernameRow::from).collect())
            }

            async fn set_username_skeleton(&self, id: &str, skeleton: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE users SET username_skeleton = $1 WHERE id = $2 AND username_skeleton IS NULL",
                )
                .bind(skeleton)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(())
            }

            async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
                let row: Option<UserRow> = sqlx::query_as(
                    "SELECT id, username, password_hash, roles, disabled, created_ms FROM users WHERE username = $1",
                )
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(row.map(User::from))
            }

            async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
                let row: Option<UserRow> = sqlx::query_as(
                    "SELECT id, username, password_hash, roles, disabled, created_ms FROM users WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(row.map(User::from))
            }

            async fn set_password_hash(&self, id: &str, hash: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(hash)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(sql_error)?;
                Ok(())
            }

            async fn upgrade_password_hash(
                &self,
                id: &str,
                old: &str,
                new: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
                )
                .bind(new)
                .bind(id)
                .bind(old)
                .execute(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_users(
                &self,
                contains: &str,
                limit: i64,
                offset: i64,
            ) -> Result<Vec<User>, StoreError> {
                // LIKE is the portable substring test; the pattern's own wildcards are
                // escaped, so the text is matched as written.
                let rows: Vec<UserRow> = sqlx::query_as(
                    "SELECT id, username, password_hash, roles, disabled, created_ms FROM users \
                     WHERE username LIKE $1 ESCAPE '\\' ORDER BY username LIMIT $2 OFFSET $3",
                )
                .bind(like_pattern(contains))
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(rows.into_iter().map(User::from).collect())
            }

            async fn set_roles(&self, id: &str, roles: &[String]) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
                    .bind(roles.join(","))
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(sql_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                    .bind(disabled)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(sql_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
                let rows: Vec<KeyRow> = sqlx::query_as(
                    "SELECT kid, alg, private_der, public_key, created_ms, activates_at_ms, revoked_ms, \
                     scheduled_after FROM signing_keys ORDER BY created_ms DESC, kid DESC",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(rows.into_iter().map(StoredKey::from).collect())
            }

            async fn insert_signing_key(&self, k: &StoredKey) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, private_der, public_key, created_ms, \
                     activates_at_ms, revoked_ms, scheduled_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&k.kid)
                .bind(&k.alg)
                .bind(&k.private_der)
                .bind(&k.public_key)
                .bind(k.created_ms)
                .bind(k.activates_ms)
                .bind(k.revoked_ms)
                .bind(&k.scheduled_after)
                .execute(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(())
            }

            async fn revoke_signing_keys(
                &self,
                except: &str,
                at_ms: i64,
                pending_only: bool,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE signing_keys SET revoked_ms = $1 \
                     WHERE revoked_ms IS NULL AND kid <> $2 AND (activates_at_ms > $1 OR NOT $3)",
                )
                    .bind(at_ms)
                    .bind(except)
                    .bind(pending_only)
                    .execute(&self.pool)
                    .await
                    .map_err(sql_error)?;
                Ok(())
            }

            async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
                sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(candidate)
                    .execute(&self.pool)
                    .await
                    .map_err(sql_error)?;
                let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(sql_error)?;
                Ok(value)
            }

            async fn create_client(&self, c: &RegisteredClient) -> Result<(), StoreError> {
                sqlx::query(concat!(
                    "INSERT INTO clients (",
                    client_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ))
                .bind(&c.id)
                .bind(&c.name)
                .bind(c.kind.as_str())
                .bind(&c.secret_hash)
                .bind(&c.jwks)
                .bind(c.roles.join(","))
                .bind(c.scopes.join(" "))
                .bind(c.introspect)
                .bind(c.redirect_uris.join(" "))
                .bind(c.allowed_origins.join(" "))
                .bind(c.disabled)
                .bind(c.created_ms)
                .bind(c.secret_rotated_ms)
                .execute(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(())
            }

            async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError> {
                let row: Option<ClientRow> =
                    sqlx::query_as(concat!("SELECT ", client_columns!(), " FROM clients WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(sql_error)?;
                Ok(row.map(RegisteredClient::from))
            }

            async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
                let rows: Vec<ClientRow> =
                    sqlx::query_as(concat!("SELECT ", client_columns!(), " FROM clients ORDER BY id"))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(sql_error)?;
                Ok(rows.into_iter().map(RegisteredClient::from).collect())
            }

            async fn set_client_credentials(
                &self,
                id: &str,
                secret_hash: Option<&str>,
                jwks: Option<&str>,
                at_ms: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE clients SET secret_hash = $1, jwks = $2, secret_rotated_ms = $3 WHERE id = $4",
                )
                .bind(secret_hash)
                .bind(jwks)
                .bind(at_ms)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_client_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE clients SET disabled = $1 WHERE id = $2")
                    .bind(disabled)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(sql_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn audit(&self, e: &AuditEvent) -> Result<(), StoreError> {
                bind_audit!(
                    sqlx::query(concat!(audit_insert!(), "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")),
                    e
                )
                .execute(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(())
            }

            async fn audit_if_user_unchanged(
                &self,
                e: &AuditEvent,
                u: &User,
            ) -> Result<bool, StoreError> {
                let done = bind_audit!(
                    sqlx::query(concat!(
                        audit_insert!(),
                        "SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM users \
                         WHERE id = $9 AND NOT disabled AND roles = $10 AND password_hash = $11)"
                    )),
                    e
                )
                .bind(&u.id)
                .bind(u.roles.join(","))
                .bind(&u.password_hash)
                .execute(&self.login_audit)
                .await
                .map_err(sql_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn recent_audit(
                &self,
                limit: i64,
                offset: i64,
            ) -> Result<Vec<AuditEvent>, StoreError> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT at_ms, event, actor, target, sid, ip, detail, request_id FROM audit_log \
                     ORDER BY id DESC LIMIT $1 OFFSET $2",
                )
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await
                .map_err(sql_error)?;
                Ok(rows.into_iter().map(AuditEvent::from).collect())
            }

            /// Both pools: a login needs the login-audit pool too.
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(sql_error)?;
                sqlx::query("SELECT 1")
                    .execute(&self.login_audit)
                    .await
                    .map_err(sql_error)?;
                Ok(())
            }
        }
    };
}

/// A `LIKE … ESCAPE '\'` pattern matching every text that contains `text`.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl_database!(PostgresDatabase);
impl_database!(SqliteDatabase);

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn user() -> User {
        User {
            id: "u1".into(),
            username: "anna".into(),
            password_hash: "a hash".into(),
            roles: vec!["admin".into()],
            disabled: false,
            created_ms: 0,
        }
    }

    fn login_success(at_ms: i64) -> AuditEvent {
        AuditEvent {
            at_ms,
            event: "login.success".into(),
            actor: Some("u1".into()),
            target: Some("u1".into()),
            sid: Some("s1".into()),
            ip: None,
            detail: None,
            request_id: None,
        }
    }

    /// The SQLite database `a.db` in `dir`.
    async fn sqlite_in(dir: &tempfile::TempDir, login_audit: LoginAudit) -> SqliteDatabase {
        let url = format!("sqlite:{}", dir.path().join("a.db").display());
        SqliteDatabase::connect(&url, WAIT, login_audit)
            .await
            .unwrap()
    }

    /// `PRAGMA synchronous` on a connection of `pool`: 1 is NORMAL, 2 FULL.
    async fn sqlite_synchronous(pool: &SqlitePool) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    async fn postgres_synchronous_commit(pool: &PgPool) -> String {
        sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn on_sqlite_only_a_logins_audit_row_commits_without_a_sync_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_in(&dir, LoginAudit::Unsynced).await;
        assert_eq!(
            sqlite_synchronous(&db.pool).await,
            2,
            "FULL for every other write"
        );
        assert_eq!(sqlite_synchronous(&db.login_audit).await, 1, "NORMAL");
        drop(db);
        let synced = sqlite_in(&dir, LoginAudit::Synced).await;
        assert_eq!(sqlite_synchronous(&synced.login_audit).await, 2);
    }

    #[tokio::test]
    async fn on_postgres_only_a_logins_audit_row_commits_without_a_sync_by_default() {
        let url =
            test_support::create_postgres_database(&test_support::shared_postgres_url()).unwrap();
        // The operator's own setting for the database (the test server's is `off`), which
        // every other write keeps.
        let admin = PgPool::connect(&url).await.unwrap();
        sqlx::query(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = remote_apply', \
             current_database()); END $$",
        )
        .execute(&admin)
        .await
        .unwrap();
        let db = PostgresDatabase::connect(&url, WAIT, LoginAudit::Unsynced)
            .await
            .unwrap();
        assert_eq!(postgres_synchronous_commit(&db.pool).await, "remote_apply");
        assert_eq!(postgres_synchronous_commit(&db.login_audit).await, "off");
        let synced = PostgresDatabase::connect(&url, WAIT, LoginAudit::Synced)
            .await
            .unwrap();
        assert_eq!(
            postgres_synchronous_commit(&synced.login_audit).await,
            "remote_apply"
        );
    }

    /// The row goes through its own connections, and is there for every reader as soon as
    /// the call returns; the guard still reads the user as it is then.
    #[tokio::test]
    async fn an_unsynced_login_row_is_read_back_at_once_and_still_guarded_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_in(&dir, LoginAudit::Unsynced).await;
        let anna = user();
        db.create_user(&anna, "anna").await.unwrap();
        assert!(
            db.audit_if_user_unchanged(&login_success(1), &anna)
                .await
                .unwrap()
        );
        let rows = db.recent_audit(10, 0).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].at_ms, rows[0].event.as_str()),
            (1, "login.success")
        );

        assert!(db.set_disabled("u1", true).await.unwrap());
        assert!(
            !db.audit_if_user_unchanged(&login_success(2), &anna)
                .await
                .unwrap(),
            "the disable, written through the other pool, is seen"
        );
        assert_eq!(db.recent_audit(10, 0).await.unwrap().len(), 1);
    }
}
