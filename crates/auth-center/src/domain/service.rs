//! The auth operations: register, login, refresh, logout, who-am-I. No HTTP here.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Header};
use secrecy::{ExposeSecret, SecretString};
use verifier::contract::{ACCESS_TOKEN_TYP, TokenValidator};
use verifier::{Audience, Claims, Clock, VerifyError};

use super::client_ip::{IpRange, client_ip};
use super::confusables::{check_single_script, username_skeleton};
use super::credentials::{canonical_username, check_new_password, check_password_length};
use super::crypto::{random_bytes, random_id};
use super::device_token::{DeviceTokens, binding as device_binding};
use super::error::AuthError;
use super::hasher::{HasherStats, PasswordHasher};
use super::keys::{KeyManager, KeyPolicy};
use super::limits::Limiter;
use super::limits::Rule;
use super::ports::{
    AuditEvent, Database, RateLimitStore, RotateOutcome, Rotation, SessionRecord, SessionStore,
    User,
};
use super::refresh_token::{Provenance, RefreshKeys, RefreshToken};
use crate::config::Config;

/// Longest user agent kept in a session record, in bytes.
pub const MAX_USER_AGENT_BYTES: usize = 200;

/// Who is calling, as far as the transport can tell.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client IP.
    pub ip: String,
    /// User agent (capped when stored).
    pub user_agent: String,
    /// A device token from an earlier login (body field or cookie), if the client sent one.
    pub device_token: Option<SecretString>,
}

/// What login and refresh hand out. Its `Debug` shows neither token.
pub struct IssuedTokens {
    /// The access JWT.
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: SecretString,
    /// Access-token lifetime, seconds.
    pub expires_in: u64,
    /// The session id.
    pub session_id: String,
    /// A fresh device token (login only): proof for later logins that this client has
    /// logged in to this account before.
    pub device_token: Option<SecretString>,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("session_id", &self.session_id)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A user as shown to themselves or an admin (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    /// User id.
    pub id: String,
    /// Canonical username.
    pub username: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Created, ms.
    pub created_ms: i64,
    /// Whether the account is disabled.
    pub disabled: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            roles: u.roles.clone(),
            created_ms: u.created_ms,
            disabled: u.disabled,
        }
    }
}

/// The auth-center's use cases.
pub struct AuthService {
    pub(super) db: Arc<dyn Database>,
    pub(super) sessions: Arc<dyn SessionStore>,
    pub(super) limiter: Limiter,
    hasher: PasswordHasher,
    keys: Arc<KeyManager>,
    validator: TokenValidator,
    pub(super) clock: Arc<dyn Clock>,
    config: Arc<Config>,
    refresh_keys: RefreshKeys,
    devices: DeviceTokens,
    trusted_proxies: Vec<IpRange>,
}

impl AuthService {
    /// Wires the service. The refresh-rotation key is a server secret shared through the
    /// database, so every instance derives the same successors.
    pub async fn new(
        config: Arc<Config>,
        db: Arc<dyn Database>,
        sessions: Arc<dyn SessionStore>,
        rate_limits: Arc<dyn RateLimitStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthError> {
        let hasher = PasswordHasher::new(&config.passwords)?;
        let policy = KeyPolicy::from_config(&config)?;
        let keys = Arc::new(KeyManager::load(db.clone(), clock.clone(), policy).await?);
        let rotation_key = db
            .server_secret("refresh_rotation_key", &random_bytes::<32>()?)
            .await?;
        let device_key = db
            .server_secret("device_token_key", &random_bytes::<32>()?)
            .await?;
        let devices = DeviceTokens::new(&device_key, config.limits.device_token_ttl_secs);
        let validator = TokenValidator::new(
            &config.issuer,
            config.tokens.audience.iter().take(1).cloned(),
            [Algorithm::EdDSA],
        )
        .with_leeway_secs(i64::try_from(config.tokens.leeway_secs).unwrap_or(5));
        let limiter = Limiter::new(rate_limits, config.limits.clone(), clock.clone());
        let trusted_proxies = config.trusted_proxies.clone();
        Ok(Self {
            db,
            sessions,
            limiter,
            hasher,
            keys,
            validator,
            clock,
            config,
            refresh_keys: RefreshKeys::new(&rotation_key),
            devices,
            trusted_proxies,
        })
    }

    /// The client's IP: the TCP peer, or the forwarded client when the peer is a
    /// trusted proxy.
    pub fn client_ip(
        &self,
        peer: std::net::IpAddr,
        forwarded_for: Option<&str>,
    ) -> std::net::IpAddr {
        client_ip(peer, forwarded_for, &self.trusted_proxies)
    }

    pub(super) fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// What the password hasher is doing: running hashes, their high-water mark, refusals.
    pub fn password_hashing(&self) -> HasherStats {
        self.hasher.stats()
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Creates an account.
    pub async fn register(
        &self,
        username: &str,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<UserView, AuthError> {
        if !self.config.registration_enabled {
            return Err(AuthError::RegistrationDisabled);
        }
        let allowed = self.limiter.check_register(&client.ip).await;
        self.audit_refusal(allowed, client, None).await?;
        let user = self.create_user(username, password, Vec::new()).await?;
        self.audit(
            "user.registered",
            Some(&user.id),
            Some(&user.id),
            None,
            client,
            None,
        )
        .await;
        Ok(user)
    }

    /// Creates a user with roles (registration, the CLI, admins).
    pub async fn create_user(
        &self,
        username: &str,
        password: SecretString,
        roles: Vec<String>,
    ) -> Result<UserView, AuthError> {
        let username = canonical_username(username)?;
        check_single_script(&username)?;
        check_new_password(&password, &username)?;
        let roles = checked_roles(roles)?;
        let password_hash = self.hasher.hash(password).await?;
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            username,
            password_hash,
            roles,
            disabled: false,
            created_ms: self.clock.now_millis(),
        };
        // The skeleton's UNIQUE index refuses a look-alike of an existing user, also when
        // both are created at once.
        self.db
            .create_user(&user, &username_skeleton(&user.username))
            .await?;
        Ok(UserView::from(&user))
    }

    /// Checks credentials and opens a new session (a new sid, never one from the client).
    /// Unknown user, wrong password and disabled account cost the same and fail the same.
    pub async fn login(
        &self,
        username: &str,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        let username = canonical_username(username)?;
        check_password_length(&password)?;
        // Rate limits (in the session store) and the user lookup come before any password
        // work: an outage answers the same whatever the password (no oracle), and no
        // session can be half-made.
        let now_secs = self.clock.now_secs();
        let allowed = self.limiter.check_login_ip(&client.ip).await;
        self.audit_refusal(allowed, client, None).await?;
        let user = self.db.user_by_username(&username).await?;
        // A device token counts only for the account it was issued to, under its current
        // password: which failure limits apply depends on it.
        let device = match (&client.device_token, &user) {
            (Some(token), Some(u)) => self.devices.verify(
                token.expose_secret(),
                &username,
                &device_binding(&u.password_hash),
                now_secs,
            ),
            _ => None,
        };
        let device = device.as_deref();
        let allowed = self
            .limiter
            .check_login_failures(&username, &client.ip, device)
            .await;
        self.audit_refusal(allowed, client, Some(&username)).await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let check = self.hasher.verify(password.clone(), stored_hash).await?;
        let mut user = match user {
            Some(u) if check.valid && !u.disabled => u,
            other => {
                let detail = match &other {
                    None => "unknown user",
                    Some(u) if u.disabled => "disabled user",
                    Some(_) => "wrong password",
                };
                let id = other.as_ref().map(|u| u.id.as_str());
                self.audit("login.failure", id, id, None, client, Some(detail))
                    .await;
                self.limiter
                    .login_failed(&username, &client.ip, device)
                    .await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.limiter
            .login_succeeded(&username, &client.ip, device)
            .await?;
        if check.needs_rehash
            && let Some(hash) = self.upgrade_hash(&user.id, password.clone()).await
        {
            user.password_hash = hash;
        }
        // A disable, role change or password change racing this login either is seen by
        // the re-read below, or ends the session just created: a session never survives
        // with stale roles, for a disabled user, or for a password that was just replaced.
        for _ in 0..3 {
            let (pending, refresh) = self.open_session(&user, client).await?;
            let reread = match self.db.user_by_id(&user.id).await {
                Ok(reread) => reread,
                Err(e) => {
                    pending.discard().await;
                    return Err(e.into());
                }
            };
            match reread {
                Some(now)
                    if !now.disabled
                        && now.roles == user.roles
                        && now.password_hash == user.password_hash =>
                {
                    let issued = self
                        .issue(&user.id, &pending.sid, &user.roles, refresh)
                        .and_then(|tokens| {
                            Ok(IssuedTokens {
                                device_token: Some(self.devices.issue(
                                    &user.username,
                                    &device_binding(&user.password_hash),
                                    now_secs,
                                )?),
                                ..tokens
                            })
                        });
                    let tokens = match issued {
                        Ok(tokens) => tokens,
                        Err(e) => {
                            pending.discard().await;
                            return Err(e);
                        }
                    };
                    // Still pending during the audit write: a login cancelled there
                    // leaves no session either.
                    self.audit(
                        "login.success",
                        Some(&user.id),
                        Some(&user.id),
                        Some(&pending.sid),
                        client,
                        None,
                    )
                    .await;
                    pending.keep();
                    return Ok(tokens);
                }
                fresh => {
                    pending.discard().await;
                    match fresh {
                        // Only the roles changed: open the session again with the new ones.
                        Some(fresh)
                            if !fresh.disabled && fresh.password_hash == user.password_hash =>
                        {
                            user = fresh
                        }
                        // Another hash: a password change, or a concurrent login's rehash
                        // of the same password (new salt or parameters). Only this rare
                        // race pays a second hash, to tell the two apart.
                        Some(fresh)
                            if !fresh.disabled
                                && self
                                    .hasher
                                    .verify(password.clone(), Some(fresh.password_hash.clone()))
                                    .await?
                                    .valid =>
                        {
                            user = fresh
                        }
                        _ => return Err(AuthError::InvalidCredentials),
                    }
                }
            }
        }
        Err(AuthError::Unavailable(
            "the account changed during login; retry".into(),
        ))
    }

    /// Re-hashes with the current parameters; the stored hash, if it was replaced.
    async fn upgrade_hash(&self, user_id: &str, password: SecretString) -> Option<String> {
        match self.hasher.hash(password).await {
            Ok(hash) => match self.db.set_password_hash(user_id, &hash).await {
                Ok(()) => Some(hash),
                Err(e) => {
                    tracing::warn!(error = %e, "could not store the upgraded password hash");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not rehash a password");
                None
            }
        }
    }

    /// Creates a session record with a fresh sid and refresh token. The session is
    /// pending: it ends again unless the caller keeps it (see [`PendingSession`]).
    async fn open_session(
        &self,
        user: &User,
        client: &ClientInfo,
    ) -> Result<(PendingSession, RefreshToken), AuthError> {
        let now = self.clock.now_millis();
        let sid = random_id()?;
        let refresh = RefreshToken::generate(&user.id, &sid)?;
        let record = SessionRecord {
            user_id: user.id.clone(),
            sid: sid.clone(),
            created_ms: now,
            last_seen_ms: now,
            idle_expiry_ms: now + secs_to_ms(self.config.sessions.idle_secs),
            absolute_expiry_ms: now + secs_to_ms(self.config.sessions.absolute_secs),
            generation: 0,
            user_agent: truncate(&client.user_agent, MAX_USER_AGENT_BYTES),
            ip: truncate(&client.ip, 64),
            roles: user.roles.clone(),
        };
        let max = self.config.sessions.max_per_user;
        // Pending before the create: a create whose reply is lost (a timeout, or the
        // request cancelled while waiting) may still have written the session.
        let pending = PendingSession::new(self.sessions.clone(), &user.id, &sid);
        let next = refresh.successor(&self.refresh_keys).hash();
        self.sessions
            .create(&record, &refresh.hash(), &next, now, max)
            .await?;
        Ok((pending, refresh))
    }

    /// Applies `change` (an SQL write that must end sessions: a password, roles, a
    /// disable) with the user's sessions but `keep` ended before and after it. Ending them
    /// first means a session store that fails answers `503` before anything changed; ending
    /// them again catches a login that opened a session while the change was being written
    /// (the login's re-read catches the ones after). Returns the change's result and how
    /// many sessions ended.
    pub(super) async fn change_ending_sessions<T, E>(
        &self,
        user_id: &str,
        keep: Option<&str>,
        change: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<(T, u64), AuthError>
    where
        AuthError: From<E>,
    {
        let before = self.sessions.delete_all(user_id, keep).await?;
        let value = change.await?;
        let after = self.sessions.delete_all(user_id, keep).await?;
        Ok((value, before + after))
    }

    /// Rotates a refresh token (see `SessionStore::rotate`).
    pub async fn refresh(
        &self,
        wire: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        let allowed = self.limiter.check_refresh(&client.ip).await;
        self.audit_refusal(allowed, client, None).await?;
        let presented = RefreshToken::parse(wire, &self.refresh_keys)?;
        let successor = presented.successor(&self.refresh_keys);
        let (presented_hash, successor_hash) = (presented.hash(), successor.hash());
        let next_successor_hash = successor.successor(&self.refresh_keys).hash();
        let rotation = Rotation {
            user_id: &presented.user_id,
            sid: &presented.sid,
            presented_hash: &presented_hash,
            successor_hash: &successor_hash,
            next_successor_hash: &next_successor_hash,
            now_ms: self.clock.now_millis(),
            idle_ms: secs_to_ms(self.config.sessions.idle_secs),
            grace_ms: i64::try_from(self.config.sessions.grace_ms).unwrap_or(0),
            reuse_revokes: presented.provenance == Provenance::Issued,
        };
        match self.sessions.rotate(&rotation).await? {
            RotateOutcome::Rotated { roles } | RotateOutcome::Replayed { roles } => {
                self.issue(&presented.user_id, &presented.sid, &roles, successor)
            }
            RotateOutcome::Reused => {
                let (uid, sid) = (
                    Some(presented.user_id.as_str()),
                    Some(presented.sid.as_str()),
                );
                tracing::warn!(user = %presented.user_id, "refresh token reuse detected; session revoked");
                self.audit(
                    "refresh.reuse_detected",
                    uid,
                    uid,
                    sid,
                    client,
                    Some("session revoked"),
                )
                .await;
                Err(AuthError::RefreshTokenReused)
            }
            RotateOutcome::NotFound => Err(AuthError::InvalidRefreshToken),
        }
    }

    /// Checks an access token: signature and claims, then that its session still exists.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, AuthError> {
        let now = self.clock.now_secs();
        let claims = match self
            .validator
            .validate(token, &self.keys.verifying_keys(), now)
        {
            Err(VerifyError::Invalid("unknown key id")) if self.keys.reload_if_stale().await? => {
                self.validator
                    .validate(token, &self.keys.verifying_keys(), now)?
            }
            other => other?,
        };
        if !self
            .sessions
            .is_active(&claims.sub, &claims.sid, self.clock.now_millis())
            .await?
        {
            return Err(VerifyError::Revoked.into());
        }
        Ok(claims)
    }

    /// Ends the caller's session.
    pub async fn logout(&self, claims: &Claims, client: &ClientInfo) -> Result<(), AuthError> {
        self.sessions.delete(&claims.sub, &claims.sid).await?;
        self.audit(
            "logout",
            Some(&claims.sub),
            Some(&claims.sub),
            Some(&claims.sid),
            client,
            None,
        )
        .await;
        Ok(())
    }

    /// Ends every session of the caller.
    pub async fn logout_all(&self, claims: &Claims, client: &ClientInfo) -> Result<u64, AuthError> {
        let n = self.sessions.delete_all(&claims.sub, None).await?;
        let detail = format!("{n} sessions ended");
        self.audit(
            "logout_all",
            Some(&claims.sub),
            Some(&claims.sub),
            Some(&claims.sid),
            client,
            Some(&detail),
        )
        .await;
        Ok(n)
    }

    /// The caller's account.
    pub async fn me(&self, claims: &Claims) -> Result<UserView, AuthError> {
        let user = self
            .db
            .user_by_id(&claims.sub)
            .await?
            .ok_or(AuthError::Token(VerifyError::Revoked))?;
        Ok(UserView::from(&user))
    }

    /// The user's live sessions, most recently used first.
    pub async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionRecord>, AuthError> {
        Ok(self.sessions.list(user_id, self.clock.now_millis()).await?)
    }

    /// Whether the database and the session store answer.
    pub async fn ready(&self) -> Result<(), AuthError> {
        self.db.ping().await?;
        self.sessions.ping().await?;
        Ok(())
    }

    fn issue(
        &self,
        user_id: &str,
        sid: &str,
        roles: &[String],
        refresh: RefreshToken,
    ) -> Result<IssuedTokens, AuthError> {
        let now = self.clock.now_secs();
        let ttl = self.config.tokens.access_ttl_secs;
        let claims = Claims {
            iss: self.config.issuer.clone(),
            sub: user_id.into(),
            aud: match self.config.tokens.audience.as_slice() {
                [one] => Audience::One(one.clone()),
                many => Audience::Many(many.to_vec()),
            },
            exp: now + i64::try_from(ttl).unwrap_or(900),
            iat: now,
            nbf: Some(now),
            jti: random_id()?,
            sid: sid.into(),
            roles: roles.to_vec(),
        };
        let (kid, key) = self.keys.signing_key();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(kid);
        let access_token = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| AuthError::Internal(format!("signing failed: {e}")))?;
        if access_token.len() > verifier::contract::MAX_TOKEN_BYTES {
            return Err(AuthError::Internal(format!(
                "an access token of {} bytes would be refused by every verifier",
                access_token.len()
            )));
        }
        Ok(IssuedTokens {
            access_token,
            refresh_token: refresh.to_wire(&self.refresh_keys),
            expires_in: ttl,
            session_id: sid.into(),
            device_token: None,
        })
    }

    /// Writes the `rate_limited` audit event for a refusal worth one (see
    /// `AuthError::RateLimited::audit`), then passes the limiter's answer on. `account` is
    /// the username an account or device rule protects.
    pub(super) async fn audit_refusal(
        &self,
        allowed: Result<(), AuthError>,
        client: &ClientInfo,
        account: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Err(AuthError::RateLimited {
            retry_after_secs,
            rule,
            audit: true,
        }) = &allowed
        {
            let mut detail = format!("rule {}; retry after {retry_after_secs} s", rule.name());
            if let (Some(account), Rule::LoginAccountIp | Rule::LoginAccount | Rule::LoginDevice) =
                (account, rule)
            {
                detail.push_str(&format!("; account {account}"));
            }
            self.audit("rate_limited", None, None, None, client, Some(&detail))
                .await;
        }
        allowed
    }

    /// Rate-limit refusals so far, per rule name (for `/metrics`).
    pub fn rate_limit_refusals(&self) -> Vec<(&'static str, u64)> {
        self.limiter
            .refusals()
            .map(|(rule, n)| (rule.name(), n))
            .collect()
    }

    /// Writes an audit event; an audit failure is logged, not fatal.
    pub(super) async fn audit(
        &self,
        event: &str,
        actor: Option<&str>,
        target: Option<&str>,
        sid: Option<&str>,
        client: &ClientInfo,
        detail: Option<&str>,
    ) {
        let entry = AuditEvent {
            at_ms: self.clock.now_millis(),
            event: event.into(),
            actor: actor.map(String::from),
            target: target.map(String::from),
            sid: sid.map(String::from),
            ip: (!client.ip.is_empty()).then(|| client.ip.clone()),
            detail: detail.map(String::from),
        };
        tracing::info!(target: "audit", event, actor, target, "audit event");
        if let Err(e) = self.db.audit(&entry).await {
            tracing::error!(error = %e, event, "could not write an audit event");
        }
    }

    /// Recent audit events, newest first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, AuthError> {
        Ok(self.db.recent_audit(limit).await?)
    }
}

/// A session that a login created but has not handed out yet. Unless [`keep`] is called,
/// it is deleted again: inline by [`discard`], or, when the login fails some other way or
/// its future is dropped (the request timed out, the client went away), by a background
/// task that retries for a while. A failed login therefore leaves no session behind to show
/// in the devices list, count toward the per-user cap, or live for the idle lifetime.
///
/// [`keep`]: PendingSession::keep
/// [`discard`]: PendingSession::discard
struct PendingSession {
    sessions: Arc<dyn SessionStore>,
    user_id: String,
    sid: String,
    armed: bool,
}

/// Background clean-up of a pending session: attempts and the pause after the first.
const PENDING_CLEANUP_ATTEMPTS: u32 = 6;
const PENDING_CLEANUP_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

impl PendingSession {
    fn new(sessions: Arc<dyn SessionStore>, user_id: &str, sid: &str) -> Self {
        Self {
            sessions,
            user_id: user_id.into(),
            sid: sid.into(),
            armed: true,
        }
    }

    /// The login succeeded: the session stays.
    fn keep(mut self) {
        self.armed = false;
    }

    /// The login failed: deletes the session now; if that fails, the background clean-up
    /// of `Drop` keeps trying.
    async fn discard(mut self) {
        if self.sessions.delete(&self.user_id, &self.sid).await.is_ok() {
            self.armed = false;
        }
    }
}

impl Drop for PendingSession {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (sessions, user_id, sid) = (
            self.sessions.clone(),
            std::mem::take(&mut self.user_id),
            std::mem::take(&mut self.sid),
        );
        runtime.spawn(async move {
            let mut pause = PENDING_CLEANUP_FIRST_PAUSE;
            for attempt in 1..=PENDING_CLEANUP_ATTEMPTS {
                match sessions.delete(&user_id, &sid).await {
                    Ok(_) => return,
                    Err(e) if attempt == PENDING_CLEANUP_ATTEMPTS => {
                        tracing::warn!(error = %e, user = %user_id,
                            "could not delete the session of a failed login; it expires by its TTL");
                    }
                    Err(_) => {
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                    }
                }
            }
        });
    }
}

/// Most roles a user may hold. With role names of at most 64 characters, an access token
/// stays well under the verifiers' [`verifier::contract::MAX_TOKEN_BYTES`].
pub const MAX_ROLES: usize = 32;

/// Roles as stored: valid names, sorted, without duplicates, at most [`MAX_ROLES`].
pub(super) fn checked_roles(mut roles: Vec<String>) -> Result<Vec<String>, AuthError> {
    if let Some(role) = roles.iter().find(|r| !verifier::contract::is_identifier(r)) {
        return Err(AuthError::InvalidInput(format!(
            "invalid role name {role:?}: 1 to 64 of A-Z a-z 0-9 _ -"
        )));
    }
    roles.sort();
    roles.dedup();
    if roles.len() > MAX_ROLES {
        return Err(AuthError::InvalidInput(format!(
            "at most {MAX_ROLES} roles per user"
        )));
    }
    Ok(roles)
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
