//! Registration and login: creating accounts, checking credentials and opening a session,
//! and who-am-I. A login's session stays pending (see [`PendingSession`]) until the login
//! has re-read the user after creating it (the **re-read guard**, which is the condition of
//! its audit row), so a racing account change is never outlived by the session.

use std::sync::Arc;

use secrecy::SecretString;
use verifier::dpop::VerifiedProof;
use verifier::{Claims, VerifyError};

use super::admin::checked_roles;
use super::confusables::{check_single_script, username_skeleton};
use super::credentials::{canonical_username, check_new_password, check_password_length};
use super::crypto::random_id;
use super::error::{AuthError, Chain, StoreError};
use super::metrics::{AuthMetrics, EndCause, LoginOutcome, SessionKind};
use super::ports::{AuditEvent, SessionRecord, SessionStore, User};
use super::refresh_token::RefreshToken;
use super::service::{AuthService, ClientInfo, IssuedTokens, UserView, log_audit, secs_to_ms};

/// Longest user agent kept in a session record, in bytes.
pub const MAX_USER_AGENT_BYTES: usize = 200;
impl AuthService {
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
    /// With `dpop`, the request's verified DPoP proof, the session is bound to the proof's
    /// key for its whole life: every refresh needs a proof from that key (RFC 9449 §5).
    pub async fn login(
        &self,
        username: &str,
        password: SecretString,
        dpop: Option<&VerifiedProof>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        let result = self.check_and_open(username, password, dpop, client).await;
        // The refusals decided before the password is looked at; the other outcomes are
        // counted where they are decided, below.
        match &result {
            Err(AuthError::RateLimited { .. }) => self.metrics.login(LoginOutcome::RateLimited),
            Err(AuthError::InvalidInput(_)) => self.metrics.login(LoginOutcome::InvalidRequest),
            _ => {}
        }
        result
    }

    /// [`login`](Self::login) itself.
    async fn check_and_open(
        &self,
        username: &str,
        password: SecretString,
        dpop: Option<&VerifiedProof>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        let dpop_jkt = dpop.map(VerifiedProof::thumbprint);
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
        let device = self.trusted_device(
            client.device_token.as_ref(),
            &username,
            user.as_ref(),
            now_secs,
        );
        let device = device.as_deref();
        let allowed = self
            .limiter
            .check_login_failures(&username, &client.ip, device)
            .await;
        let seen = self.audit_refusal(allowed, client, Some(&username)).await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let check = self.hasher.verify(password.clone(), stored_hash).await?;
        let mut user = match user {
            Some(u) if check.valid && !u.disabled => u,
            other => {
                let (detail, outcome) = match &other {
                    None => ("unknown user", LoginOutcome::UnknownUser),
                    Some(u) if u.disabled => ("disabled user", LoginOutcome::Disabled),
                    Some(_) => ("wrong password", LoginOutcome::WrongPassword),
                };
                self.metrics.login(outcome);
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
            .login_succeeded(&username, &client.ip, device, seen)
            .await?;
        if check.needs_rehash
            && let Some(hash) = self.upgrade_hash(&user, password.clone()).await
        {
            user.password_hash = hash;
        }
        // A disable, role change or password change racing this login either is seen by
        // the re-read below (the audit row's condition), or ends the session just created:
        // a session never survives with stale roles, for a disabled user, or for a
        // password that was just replaced.
        for _ in 0..3 {
            let (pending, refresh) = self.open_session(&user, dpop_jkt, client).await?;
            // The tokens first (no I/O), so that the re-read can be the last call.
            let issued = self
                .issue(&user.id, &pending.sid, &user.roles, refresh, dpop_jkt)
                .and_then(|tokens| {
                    Ok(IssuedTokens {
                        device_token: Some(self.device_token(&user, now_secs)?),
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
            let success = self.audit_event(
                "login.success",
                Some(&user.id),
                Some(&user.id),
                Some(&pending.sid),
                client,
                None,
            );
            // The session is still pending during the guard, so a login cancelled there
            // leaves no session either. A failed call fails the login: the user's state is
            // unknown.
            match self.guard_and_audit(&success, &user).await {
                Ok(Guard::Passed) => {}
                Ok(Guard::Changed(fresh)) => {
                    pending.discard().await;
                    user = self.changed_user(&user, fresh, &password).await?;
                    continue;
                }
                Err(e) => {
                    pending.discard().await;
                    return Err(e.into());
                }
            }
            self.metrics.login(LoginOutcome::Success);
            self.metrics.session_created(SessionKind::Login);
            pending.keep();
            return Ok(tokens);
        }
        Err(AuthError::unavailable(
            "the account kept changing during login; retry",
        ))
    }

    /// The re-read guard and the audit row of a successful login: the row is written only
    /// while the user is as the login found it (`user`), in one statement
    /// ([`Database::audit_if_user_unchanged`]). When it was not written, a re-read tells a
    /// change from roles stored in another spelling (then the row is written
    /// unconditionally, and the guard passed).
    ///
    /// [`Database::audit_if_user_unchanged`]: super::ports::Database::audit_if_user_unchanged
    async fn guard_and_audit(
        &self,
        success: &AuditEvent,
        user: &User,
    ) -> Result<Guard, StoreError> {
        if self.db.audit_if_user_unchanged(success, user).await? {
            log_audit(success);
            return Ok(Guard::Passed);
        }
        match self.db.user_by_id(&user.id).await? {
            Some(now) if is_unchanged(&now, user) => {
                self.write_audit(success).await;
                Ok(Guard::Passed)
            }
            fresh => Ok(Guard::Changed(fresh)),
        }
    }

    /// The user to open the session for after a re-read found `user` changed (`fresh`:
    /// the user now, `None` if gone), or the refusal.
    async fn changed_user(
        &self,
        user: &User,
        fresh: Option<User>,
        password: &SecretString,
    ) -> Result<User, AuthError> {
        match fresh {
            // Only the roles changed: open the session again with the new ones.
            Some(fresh) if !fresh.disabled && fresh.password_hash == user.password_hash => {
                Ok(fresh)
            }
            // Another hash: a password change, or a concurrent login's rehash of the same
            // password (new salt or parameters). Only this rare race pays a second hash,
            // to tell the two apart.
            Some(fresh)
                if !fresh.disabled
                    && self
                        .hasher
                        .verify(password.clone(), Some(fresh.password_hash.clone()))
                        .await?
                        .valid =>
            {
                Ok(fresh)
            }
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// Creates a session record with a fresh sid and refresh token. The session is
    /// pending: it ends again unless the caller keeps it (see [`PendingSession`]).
    async fn open_session(
        &self,
        user: &User,
        dpop_jkt: Option<&str>,
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
            user_agent: client.stored_user_agent(),
            ip: client.stored_ip(),
            roles: user.roles.clone(),
            dpop_jkt: dpop_jkt.map(String::from),
        };
        let max = self.config.sessions.max_per_user;
        // Pending before the create: a create whose reply is lost (a timeout, or the
        // request cancelled while waiting) may still have written the session.
        let pending = PendingSession::new(self.sessions.clone(), &user.id, &sid);
        let next = refresh.successor(&self.refresh_keys).hash();
        let ended = self
            .sessions
            .create(&record, &refresh.hash(), &next, now, max)
            .await?;
        self.metrics.sessions_ended(EndCause::MaxPerUser, ended);
        Ok((pending, refresh))
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
}

/// What a login's re-read guard found.
enum Guard {
    /// The user is as the login found it; the audit row is written.
    Passed,
    /// The user changed: the user now, `None` if gone.
    Changed(Option<User>),
}

/// Whether the user `now` is still as a login found it (`then`): enabled, with the same
/// roles and password hash.
fn is_unchanged(now: &User, then: &User) -> bool {
    !now.disabled && now.roles == then.roles && now.password_hash == then.password_hash
}

/// A session that a login created but has not handed out yet. Unless [`keep`] is called,
/// it is deleted again: inline by [`discard`], or, when the login fails some other way or
/// its future is dropped (the request timed out, the client went away), by a background
/// task that retries for a while ([`EndOnDrop`]). A failed login therefore leaves no session
/// behind to show in the devices list, count toward the per-user cap, or live for the idle
/// lifetime.
///
/// The client-credentials grant holds its session the same way.
///
/// [`keep`]: PendingSession::keep
/// [`discard`]: PendingSession::discard
pub(super) struct PendingSession {
    end: EndOnDrop,
    sid: String,
}

impl PendingSession {
    pub(super) fn new(sessions: Arc<dyn SessionStore>, user_id: &str, sid: &str) -> Self {
        Self {
            end: EndOnDrop::new(sessions, user_id, Ending::One(sid.into())),
            sid: sid.into(),
        }
    }

    /// The login succeeded: the session stays.
    pub(super) fn keep(self) {
        self.end.disarm();
    }

    /// The login failed: deletes the session now; if that fails, the background clean-up
    /// of `Drop` keeps trying.
    pub(super) async fn discard(self) {
        self.end.now().await.ok();
    }
}

/// Which sessions of a user an [`EndOnDrop`] ends.
pub(super) enum Ending {
    /// This one.
    One(String),
    /// All of them but this one, if any.
    AllBut(Option<String>),
}

/// Ends sessions of a user when dropped armed, in a background task that retries for a
/// while: the clean-up of a step whose future may be dropped half-way (a request timed
/// out, a client went away), or whose store failed.
pub(super) struct EndOnDrop {
    sessions: Arc<dyn SessionStore>,
    user_id: String,
    /// `Some` while armed.
    ending: Option<Ending>,
    /// Where the sessions it ends are counted, now or in the background; `None`: nowhere.
    counted: Option<(AuthMetrics, EndCause)>,
}

/// Background clean-up: attempts and the pause after the first.
const CLEANUP_ATTEMPTS: u32 = 6;
const CLEANUP_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

impl EndOnDrop {
    /// Armed: dropping it ends `ending`'s sessions of `user_id`.
    pub(super) fn new(sessions: Arc<dyn SessionStore>, user_id: &str, ending: Ending) -> Self {
        Self {
            sessions,
            user_id: user_id.into(),
            ending: Some(ending),
            counted: None,
        }
    }

    /// Counts the sessions it ends in `metrics` under `cause`, when they end (here or in
    /// the background).
    pub(super) fn counted(mut self, metrics: AuthMetrics, cause: EndCause) -> Self {
        self.counted = Some((metrics, cause));
        self
    }

    /// Nothing to end after all.
    pub(super) fn disarm(mut self) {
        self.ending = None;
    }

    /// Ends the sessions now: how many ended. If that fails, the background clean-up of
    /// `Drop` keeps trying, and the error is returned.
    pub(super) async fn now(mut self) -> Result<u64, StoreError> {
        let Some(ending) = &self.ending else {
            return Ok(0);
        };
        let ended = end(self.sessions.as_ref(), &self.user_id, ending).await;
        if let Ok(n) = ended {
            self.ending = None;
            count(self.counted.as_ref(), n);
        }
        ended
    }
}

/// Counts `n` ended sessions where `counted` says.
fn count(counted: Option<&(AuthMetrics, EndCause)>, n: u64) {
    if let Some((metrics, cause)) = counted {
        metrics.sessions_ended(*cause, n);
    }
}

/// Ends `ending`'s sessions of `user_id`: how many ended.
async fn end(
    sessions: &dyn SessionStore,
    user_id: &str,
    ending: &Ending,
) -> Result<u64, StoreError> {
    match ending {
        Ending::One(sid) => sessions.delete(user_id, sid).await.map(u64::from),
        Ending::AllBut(keep) => sessions.delete_all(user_id, keep.as_deref()).await,
    }
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let Some(ending) = self.ending.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(user = %self.user_id,
                "no runtime to end sessions in the background; they expire by their TTL");
            return;
        };
        let (sessions, user_id) = (self.sessions.clone(), std::mem::take(&mut self.user_id));
        let counted = self.counted.take();
        runtime.spawn(async move {
            let mut pause = CLEANUP_FIRST_PAUSE;
            for attempt in 1..=CLEANUP_ATTEMPTS {
                match end(sessions.as_ref(), &user_id, &ending).await {
                    Ok(n) => return count(counted.as_ref(), n),
                    Err(e) if attempt == CLEANUP_ATTEMPTS => {
                        tracing::warn!(error = %Chain(&e), user = %user_id,
                            "could not end sessions in the background; they expire by their TTL");
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
