//! Refresh rotation and the end of the caller's sessions (logout, logout-all). **Refresh
//! rotation** is `refresh` here, with the token format in `refresh_token.rs` and the atomic
//! check-rotate-extend step in the session store's `ROTATE` script.

use verifier::Claims;

use super::error::AuthError;
use super::ports::{RotateOutcome, Rotation};
use super::refresh_token::{Provenance, RefreshToken};
use super::service::{AuthService, ClientInfo, IssuedTokens, secs_to_ms};

impl AuthService {
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
}
