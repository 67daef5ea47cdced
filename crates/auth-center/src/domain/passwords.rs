//! Passwords: the caller's password change (checked like a login, then the other sessions
//! end) and the upgrade of a stored hash whose parameters are out of date. The policy
//! itself is in `credentials.rs`, the hashing in `hasher.rs`.

use secrecy::SecretString;
use verifier::{Claims, VerifyError};

use super::credentials::{check_new_password, check_password_length};
use super::error::{AuthError, Chain};
use super::metrics::EndCause;
use super::ports::User;
use super::service::{AuthService, ClientInfo};

impl AuthService {
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
        let seen = self
            .audit_refusal(allowed, client, Some(&user.username))
            .await?;
        let check = self
            .hasher
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
            .login_succeeded(&user.username, &client.ip, None, seen)
            .await?;
        let hash = self.hasher.hash(new).await?;
        let ((), ended) = self
            .change_ending_sessions(&user.id, Some(&claims.sid), EndCause::PasswordChange, {
                let id = user.id.clone();
                move |db| async move { db.set_password_hash(&id, &hash).await }
            })
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

    /// Re-hashes with the current parameters; the stored hash, if it was replaced. It is
    /// replaced only if it is still `user`'s (the one the login checked), so an upgrade
    /// never writes the old password over a password change that came in between.
    pub(super) async fn upgrade_hash(&self, user: &User, password: SecretString) -> Option<String> {
        let hash = match self.hasher.hash(password).await {
            Ok(hash) => hash,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "could not rehash a password");
                return None;
            }
        };
        let upgrade = self
            .db
            .upgrade_password_hash(&user.id, &user.password_hash, &hash);
        match upgrade.await {
            Ok(true) => Some(hash),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "could not store the upgraded password hash");
                None
            }
        }
    }
}
