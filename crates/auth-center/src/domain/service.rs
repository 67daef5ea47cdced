//! The auth operations: register, login, refresh, logout, who-am-I. No HTTP here.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Header};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use verifier::{ACCESS_TOKEN_TYP, Audience, Claims, Clock, TokenValidator, VerifyError};

use super::client_ip::{IpRange, client_ip};
use super::confusables::{check_single_script, username_skeleton};
use super::credentials::{
    PasswordHasher, canonical_username, check_new_password, check_password_length,
};
use super::crypto::{random_bytes, random_id};
use super::error::AuthError;
use super::keys::{KEY_RELOAD_SECS, KeyManager};
use super::limits::Limiter;
use super::ports::{
    AuditEvent, Database, RateLimitStore, RotateOutcome, Rotation, SessionRecord, SessionStore,
    User,
};
use super::refresh_token::RefreshToken;
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
    rotation_key: SecretSlice<u8>,
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
        let publish_ms = i64::try_from(
            (config.tokens.access_ttl_secs + config.tokens.leeway_secs + KEY_RELOAD_SECS) * 1000,
        )
        .map_err(|_| AuthError::Internal("access_ttl_secs too large".into()))?;
        let keys = Arc::new(KeyManager::load(db.clone(), clock.clone(), publish_ms).await?);
        let rotation_key = db
            .server_secret("refresh_rotation_key", &random_bytes::<32>()?)
            .await?;
        let validator = TokenValidator::new(
            &config.issuer,
            config.tokens.audience.iter().take(1).cloned(),
            [Algorithm::EdDSA],
        )
        .with_leeway_secs(i64::try_from(config.tokens.leeway_secs).unwrap_or(5));
        let limiter = Limiter::new(rate_limits, config.limits.clone(), clock.clone());
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .filter_map(|p| IpRange::parse(p))
            .collect();
        Ok(Self {
            db,
            sessions,
            limiter,
            hasher,
            keys,
            validator,
            clock,
            config,
            rotation_key: SecretSlice::from(rotation_key),
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
        self.limiter.check_register(&client.ip).await?;
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
        for role in &roles {
            if !verifier::is_identifier(role) {
                return Err(AuthError::InvalidInput(format!(
                    "invalid role name {role:?}"
                )));
            }
        }
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
        self.limiter.check_login(&username, &client.ip).await?;
        let user = self.db.user_by_username(&username).await?;
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
                self.limiter.login_failed(&username, &client.ip).await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.limiter.login_succeeded(&username, &client.ip).await?;
        if check.needs_rehash
            && let Some(hash) = self.upgrade_hash(&user.id, password).await
        {
            user.password_hash = hash;
        }
        // A disable, role change or password change racing this login either is seen by
        // the re-read below, or ends the session just created: a session never survives
        // with stale roles, for a disabled user, or for a password that was just replaced.
        for _ in 0..3 {
            let (sid, refresh) = self.open_session(&user, client).await?;
            match self.db.user_by_id(&user.id).await? {
                Some(now)
                    if !now.disabled
                        && now.roles == user.roles
                        && now.password_hash == user.password_hash =>
                {
                    let tokens = self.issue(&user.id, &sid, &user.roles, refresh)?;
                    self.audit(
                        "login.success",
                        Some(&user.id),
                        Some(&user.id),
                        Some(&sid),
                        client,
                        None,
                    )
                    .await;
                    return Ok(tokens);
                }
                fresh => {
                    self.sessions.delete(&user.id, &sid).await?;
                    match fresh {
                        // Only the roles changed: open the session again with the new ones.
                        Some(fresh)
                            if !fresh.disabled && fresh.password_hash == user.password_hash =>
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

    /// Creates a session record with a fresh sid and refresh token.
    async fn open_session(
        &self,
        user: &User,
        client: &ClientInfo,
    ) -> Result<(String, RefreshToken), AuthError> {
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
        self.sessions
            .create(&record, &refresh.hash(), now, max)
            .await?;
        Ok((sid, refresh))
    }

    /// Rotates a refresh token (see `SessionStore::rotate`).
    pub async fn refresh(
        &self,
        wire: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        self.limiter.check_refresh(&client.ip).await?;
        let presented = RefreshToken::parse(wire)?;
        let successor = presented.successor(self.rotation_key.expose_secret());
        let (presented_hash, successor_hash) = (presented.hash(), successor.hash());
        let rotation = Rotation {
            user_id: &presented.user_id,
            sid: &presented.sid,
            presented_hash: &presented_hash,
            successor_hash: &successor_hash,
            now_ms: self.clock.now_millis(),
            idle_ms: secs_to_ms(self.config.sessions.idle_secs),
            grace_ms: i64::try_from(self.config.sessions.grace_ms).unwrap_or(0),
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
        Ok(IssuedTokens {
            access_token,
            refresh_token: refresh.to_wire(),
            expires_in: ttl,
            session_id: sid.into(),
        })
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
