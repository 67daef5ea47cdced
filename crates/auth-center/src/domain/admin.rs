//! The admin use cases: users (list, create, roles, disable), a user's sessions, force
//! logout, the audit log, and their CLI entry points. Every admin action is audited with
//! actor and target; role changes and disabling end the user's sessions.

use secrecy::SecretString;
use verifier::Claims;
use verifier::contract::is_identifier;

use super::credentials::canonical_username;
use super::error::AuthError;
use super::metrics::EndCause;
use super::ports::{AuditEvent, SessionRecord, User};
use super::service::{AuthService, ClientInfo, UserView};

/// The role that opens the admin API.
pub const ADMIN_ROLE: &str = "admin";

/// Largest page of users an admin can list at once.
pub const MAX_PAGE: i64 = 500;

impl AuthService {
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
        self.admin_search_users(admin, "", limit, offset).await
    }

    /// Admin: a page of the users whose username contains `query` (compared as usernames
    /// are stored: case-mapped to lower case; surrounding spaces dropped). An empty query
    /// lists every user.
    pub async fn admin_search_users(
        &self,
        admin: &Claims,
        query: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<UserView>, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        check_page(limit, offset)?;
        let query = query.trim();
        if query.chars().count() > MAX_SEARCH_CHARS {
            return Err(AuthError::InvalidInput(format!(
                "a search is at most {MAX_SEARCH_CHARS} characters"
            )));
        }
        Ok(self
            .db
            .list_users(&query.to_lowercase(), limit, offset)
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
            .change_ending_sessions(&user.id, None, EndCause::Admin, {
                let (id, roles) = (user.id.clone(), roles.clone());
                move |db| async move { db.set_roles(&id, &roles).await }
            })
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
                .change_ending_sessions(&user.id, None, EndCause::Admin, {
                    let id = user.id.clone();
                    move |db| async move { db.set_disabled(&id, true).await }
                })
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
        self.metrics.sessions_ended(EndCause::Admin, ended);
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
        self.admin_audit_page(admin, limit, 0).await
    }

    /// Admin: a page of the audit log, newest first, `offset` events after the newest.
    pub async fn admin_audit_page(
        &self,
        admin: &Claims,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<AuditEvent>, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        check_page(limit, offset)?;
        Ok(self.db.recent_audit(limit, offset).await?)
    }

    /// Recent audit events, newest first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, AuthError> {
        Ok(self.db.recent_audit(limit, 0).await?)
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
        self.metrics.sessions_ended(EndCause::Admin, ended);
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
        let cli = cli_actor();
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

/// The admin the CLI acts as (`actor` `cli` in the audit log): the CLI runs the admin use
/// cases with no caller token.
pub fn cli_actor() -> Claims {
    Claims {
        iss: String::new(),
        sub: "cli".into(),
        aud: verifier::Audience::Many(vec![]),
        exp: 0,
        iat: 0,
        nbf: None,
        jti: String::new(),
        sid: String::new(),
        roles: vec![ADMIN_ROLE.into()],
        client_id: None,
        scope: None,
        cnf: None,
    }
}

/// Longest user search, in characters (usernames are at most 64).
pub const MAX_SEARCH_CHARS: usize = 64;

/// The paging rule of every admin list: 1 to [`MAX_PAGE`] entries, from offset 0 on.
fn check_page(limit: i64, offset: i64) -> Result<(), AuthError> {
    if !(1..=MAX_PAGE).contains(&limit) || offset < 0 {
        return Err(AuthError::InvalidInput(format!(
            "limit must be 1..={MAX_PAGE} and offset >= 0"
        )));
    }
    Ok(())
}

/// Most roles a user may hold. With role names of at most 64 characters, an access token
/// stays well under the verifiers' [`verifier::contract::MAX_TOKEN_BYTES`].
pub const MAX_ROLES: usize = 32;

/// Roles as stored: valid names, sorted, without duplicates, at most [`MAX_ROLES`].
pub(super) fn checked_roles(mut roles: Vec<String>) -> Result<Vec<String>, AuthError> {
    if let Some(role) = roles.iter().find(|r| !is_identifier(r)) {
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
