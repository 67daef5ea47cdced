//! "Your devices": the caller's live sessions and ending one of them; and device tokens,
//! the proof a client gives at login that it has logged in to this account before (the
//! format is in `device_token.rs`; the limits it relaxes in `limits.rs`).

use secrecy::{ExposeSecret, SecretString};
use verifier::Claims;
use verifier::contract::is_identifier;

use super::device_token::binding;
use super::error::AuthError;
use super::metrics::EndCause;
use super::ports::{SessionRecord, User};
use super::service::{AuthService, ClientInfo};

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
        self.metrics.sessions_ended(EndCause::Device, 1);
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

    /// Ends every session of the caller but the one making the request ("end all
    /// others"); how many ended.
    pub async fn end_my_other_sessions(
        &self,
        claims: &Claims,
        client: &ClientInfo,
    ) -> Result<u64, AuthError> {
        self.end_own_sessions(
            claims,
            client,
            Some(&claims.sid),
            EndCause::Device,
            "sessions.others_ended",
        )
        .await
    }

    /// The user's live sessions, most recently used first.
    pub async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionRecord>, AuthError> {
        Ok(self.sessions.list(user_id, self.clock.now_millis()).await?)
    }

    /// The device id of `token` if it is a device token this server issued to `user` under
    /// the user's current password and it has not expired; `None` otherwise (no token, an
    /// unknown user, another account, a changed password).
    pub(super) fn trusted_device(
        &self,
        token: Option<&SecretString>,
        username: &str,
        user: Option<&User>,
        now_secs: i64,
    ) -> Option<String> {
        let (token, user) = (token?, user?);
        self.devices.verify(
            token.expose_secret(),
            username,
            &binding(&user.password_hash),
            now_secs,
        )
    }

    /// A fresh device token for `user`, bound to the user's current password.
    pub(super) fn device_token(
        &self,
        user: &User,
        now_secs: i64,
    ) -> Result<SecretString, AuthError> {
        self.devices
            .issue(&user.username, &binding(&user.password_hash), now_secs)
    }
}
