//! The session lifecycle beyond login: your devices, password change, admin actions,
//! introspection. Every admin action is audited with actor and target.

use secrecy::SecretString;
use verifier::contract::is_identifier;
use verifier::{Claims, VerifyError};

use super::credentials::{canonical_username, check_new_password, check_password_length};
use super::error::AuthError;
use super::ports::{AuditEvent, SessionRecord, User};
use super::service::{AuthService, ClientInfo, UserView, checked_roles};

/// The role that opens the admin API.
pub const ADMIN_ROLE: &str = "admin";
/// The role that may introspect tokens (admins may too).
pub const INTROSPECT_ROLE: &str = "introspect";

/// Largest page of users an admin can list at once.
pub const MAX_PAGE: i64 = 500;

impl AuthService {
    /// The caller's live sessions ("your devices").
    pub async fn my_sessions(&self, claims: &Claims) -> Result<Vec<SessionRecord>, AuthError> {
        self.sessions_of(&claims.sub).await
    }

    /// Ends one of the caller's sessions. Another user's sid simply does not exist under
    /// the caller's key, so it is `SessionNotFound` and nothing changes.
    pub async fn end_my_session(
        &self,
        claims: &Claims,
        sid: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        if !is_identifier(sid) || !self.sessions.delete(&claims.sub, sid).await? {
            return Err(AuthError::SessionNotFound);
        }
        self.audit(
            "session.ended",
            Some(&claims.sub),
            Some(&claims.sub),
            Some(sid),
            client,
            None,
        )
        .await;
        Ok(())
    }

    /// Changes the caller's password after checking the current one, then ends every
    /// other session of the user (the caller's own session stays).
    pub async fn change_password(
        &self,
        claims: &Claims,
        current: SecretString,
        new: SecretString,
        client: &ClientInfo,
    ) -> Result<u64, AuthError> {
        check_password_length(&current)?;
        let user = self
            .db
            .user_by_id(&claims.sub)
            .await?
            .ok_or(AuthError::Token(VerifyError::Revoked))?;
        check_new_password(&new, &user.username)?;
        // The current-password check is a password guess like a login: same limits.
        let allowed = self
            .limiter
            .check_login(&user.username, &client.ip, None)
            .await;
        self.audit_refusal(allowed, client, Some(&user.username))
            .await?;
        let check = self
            .hasher()
            .verify(current, Some(user.password_hash.clone()))
            .await?;
        if !check.valid {
            self.audit(
                "password.change_failed",
                Some(&user.id),
                Some(&user.id),
                Some(&claims.sid),
                client,
                None,
            )
            .await;
            self.limiter
                .login_failed(&user.username, &client.ip, None)
                .await?;
            return Err(AuthError::InvalidCredentials);
        }
        self.limiter
            .login_succeeded(&user.username, &client.ip, None)
            .await?;
        let hash = self.hasher().hash(new).await?;
        let ((), ended) = self
            .change_ending_sessions(
                &user.id,
                Some(&claims.sid),
                self.db.set_password_hash(&user.id, &hash),
            )
            .await?;
        let detail = format!("{ended} other sessions ended");
        self.audit(
            "password.changed",
            Some(&user.id),
            Some(&user.id),
            Some(&claims.sid),
            client,
            Some(&detail),
        )
        .await;
        Ok(ended)
    }

    /// Audits an admin action: the admin is always the actor.
    pub(super) async fn audit_admin_action(
        &self,
        admin: &Claims,
        event: &str,
        target: Option<&str>,
        sid: Option<&str>,
        client: &ClientInfo,
        detail: Option<&str>,
    ) {
        self.audit(event, Some(&admin.sub), target, sid, client, detail)
            .await;
    }

    /// Fails unless the caller has `role`.
    pub fn require_role(&self, claims: &Claims, role: &'static str) -> Result<(), AuthError> {
        if claims.has_role(role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(role))
        }
    }

    async fn target_user(&self, id: &str) -> Result<User, AuthError> {
        if uuid::Uuid::try_parse(id).is_err() {
            return Err(AuthError::UserNotFound);
        }
        self.db.user_by_id(id).await?.ok_or(AuthError::UserNotFound)
    }

    /// Admin: a page of users.
    pub async fn admin_list_users(
        &self,
        admin: &Claims,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<UserView>, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        if !(1..=MAX_PAGE).contains(&limit) || offset < 0 {
            return Err(AuthError::InvalidInput(format!(
                "limit must be 1..={MAX_PAGE} and offset >= 0"
            )));
        }
        Ok(self
            .db
            .list_users(limit, offset)
            .await?
            .iter()
            .map(UserView::from)
            .collect())
    }

    /// Admin: one user.
    pub async fn admin_get_user(&self, admin: &Claims, id: &str) -> Result<UserView, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        Ok(UserView::from(&self.target_user(id).await?))
    }

    /// Admin: creates a user with roles.
    pub async fn admin_create_user(
        &self,
        admin: &Claims,
        username: &str,
        password: SecretString,
        roles: Vec<String>,
        client: &ClientInfo,
    ) -> Result<UserView, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        let user = self.create_user(username, password, roles).await?;
        let detail = format!("roles [{}]", user.roles.join(","));
        self.audit_admin_action(
            admin,
            "admin.user_created",
            Some(&user.id),
            None,
            client,
            Some(&detail),
        )
        .await;
        Ok(user)
    }

    /// Admin: replaces a user's roles and ends the user's sessions, so no token carrying
    /// the old roles stays usable (roles take effect at once).
    pub async fn admin_set_roles(
        &self,
        admin: &Claims,
        id: &str,
        roles: Vec<String>,
        client: &ClientInfo,
    ) -> Result<UserView, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        let roles = checked_roles(roles)?;
        let user = self.target_user(id).await?;
        let (_, ended) = self
            .change_ending_sessions(&user.id, None, self.db.set_roles(&user.id, &roles))
            .await?;
        let detail = format!(
            "roles [{}] -> [{}]; {ended} sessions ended",
            user.roles.join(","),
            roles.join(",")
        );
        self.audit_admin_action(
            admin,
            "admin.roles_set",
            Some(&user.id),
            None,
            client,
            Some(&detail),
        )
        .await;
        Ok(UserView {
            roles,
            ..UserView::from(&user)
        })
    }

    /// Admin: disables (or re-enables) a user. Disabling ends every session at once.
    pub async fn admin_set_disabled(
        &self,
        admin: &Claims,
        id: &str,
        disabled: bool,
        client: &ClientInfo,
    ) -> Result<UserView, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        let user = self.target_user(id).await?;
        let (event, detail) = if disabled {
            let (_, ended) = self
                .change_ending_sessions(&user.id, None, self.db.set_disabled(&user.id, true))
                .await?;
            ("admin.user_disabled", format!("{ended} sessions ended"))
        } else {
            self.db.set_disabled(&user.id, false).await?;
            ("admin.user_enabled", String::new())
        };
        self.audit_admin_action(admin, event, Some(&user.id), None, client, Some(&detail))
            .await;
        Ok(UserView {
            disabled,
            ..UserView::from(&user)
        })
    }

    /// Admin: a user's live sessions.
    pub async fn admin_user_sessions(
        &self,
        admin: &Claims,
        id: &str,
    ) -> Result<Vec<SessionRecord>, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        let user = self.target_user(id).await?;
        self.sessions_of(&user.id).await
    }

    /// Admin: ends one session (`Some(sid)`) or every session of a user.
    pub async fn admin_force_logout(
        &self,
        admin: &Claims,
        id: &str,
        sid: Option<&str>,
        client: &ClientInfo,
    ) -> Result<u64, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        let user = self.target_user(id).await?;
        let ended = match sid {
            Some(sid) if !is_identifier(sid) || !self.sessions.delete(&user.id, sid).await? => {
                return Err(AuthError::SessionNotFound);
            }
            Some(_) => 1,
            None => self.sessions.delete_all(&user.id, None).await?,
        };
        let detail = format!("{ended} sessions ended");
        self.audit_admin_action(
            admin,
            "admin.force_logout",
            Some(&user.id),
            sid,
            client,
            Some(&detail),
        )
        .await;
        Ok(ended)
    }

    /// Admin: the audit log, newest first.
    pub async fn admin_audit(
        &self,
        admin: &Claims,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AuthError::InvalidInput(format!(
                "limit must be 1..={MAX_PAGE}"
            )));
        }
        self.recent_audit(limit).await
    }

    /// Token introspection (RFC 7662) for a caller with the `introspect` or `admin`
    /// role: the claims of an active access token, `None` for anything else (invalid,
    /// expired, revoked). A backend outage is an error, never `active: false`.
    pub async fn introspect(
        &self,
        caller: &Claims,
        token: &str,
    ) -> Result<Option<Claims>, AuthError> {
        if !caller.has_role(INTROSPECT_ROLE) && !caller.has_role(ADMIN_ROLE) {
            return Err(AuthError::Forbidden(INTROSPECT_ROLE));
        }
        match self.authenticate(token).await {
            Ok(claims) => Ok(Some(claims)),
            Err(AuthError::Token(e)) if !e.is_unavailable() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Admin via the CLI (no caller token): ends every session of a user by username.
    pub async fn cli_force_logout(&self, username: &str) -> Result<u64, AuthError> {
        let username = canonical_username(username)?;
        let user = self
            .db
            .user_by_username(&username)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        let ended = self.sessions.delete_all(&user.id, None).await?;
        let detail = format!("{ended} sessions ended");
        self.audit(
            "admin.force_logout",
            Some("cli"),
            Some(&user.id),
            None,
            &ClientInfo::default(),
            Some(&detail),
        )
        .await;
        Ok(ended)
    }

    /// Admin via the CLI: sets roles / disabled by username (sessions end as above).
    pub async fn cli_update_user(
        &self,
        username: &str,
        roles: Option<Vec<String>>,
        disabled: Option<bool>,
    ) -> Result<UserView, AuthError> {
        let username = canonical_username(username)?;
        let user = self
            .db
            .user_by_username(&username)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        let cli = Claims {
            iss: String::new(),
            sub: "cli".into(),
            aud: verifier::Audience::Many(vec![]),
            exp: 0,
            iat: 0,
            nbf: None,
            jti: String::new(),
            sid: String::new(),
            roles: vec![ADMIN_ROLE.into()],
        };
        let mut view = UserView::from(&user);
        if let Some(roles) = roles {
            view = self
                .admin_set_roles(&cli, &user.id, roles, &ClientInfo::default())
                .await?;
        }
        if let Some(disabled) = disabled {
            view = self
                .admin_set_disabled(&cli, &user.id, disabled, &ClientInfo::default())
                .await?;
        }
        Ok(view)
    }
}
