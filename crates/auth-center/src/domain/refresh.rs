//! Refresh rotation and the end of the caller's sessions (logout, logout-all). **Refresh
//! rotation** is `refresh` here, with the token format in `refresh_token.rs` and the atomic
//! check-rotate-extend step in the session store's `ROTATE` script.

use verifier::Claims;
use verifier::dpop::{DpopError, VerifiedProof};

use super::error::AuthError;
use super::ports::{RotateOutcome, Rotation};
use super::refresh_token::{Provenance, RefreshToken};
use super::service::{AuthService, ClientInfo, IssuedTokens, secs_to_ms};

impl AuthService {
    /// Rotates a refresh token (see `SessionStore::rotate`). `dpop` is the request's DPoP
    /// proof, verified by the caller for this request (`self.dpop()`), or `None` without a
    /// `DPoP` header. A session bound to a DPoP key at login refreshes only with a proof from
    /// that key: without one the answer is `InvalidDpopProof` and nothing changes; a genuine
    /// token with another key's proof was stolen, and the session is revoked
    /// (`DpopKeyMismatch`, audited as `refresh.dpop_key_mismatch`). On a session that is not
    /// bound the proof changes nothing: binding happens at login only.
    pub async fn refresh(
        &self,
        wire: &str,
        dpop: Option<&VerifiedProof>,
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
            dpop_jkt: dpop.map(VerifiedProof::thumbprint),
        };
        match self.sessions.rotate(&rotation).await? {
            RotateOutcome::Rotated { roles, dpop_jkt }
            | RotateOutcome::Replayed { roles, dpop_jkt } => self.issue(
                &presented.user_id,
                &presented.sid,
                &roles,
                successor,
                dpop_jkt.as_deref(),
            ),
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
            RotateOutcome::DpopRequired => Err(AuthError::InvalidDpopProof(DpopError::Missing)),
            RotateOutcome::DpopKeyMismatch => {
                // The audit's event name stays at the call, where `grep 'self.audit('` finds it.
                let (uid, sid) = (
                    Some(presented.user_id.as_str()),
                    Some(presented.sid.as_str()),
                );
                tracing::warn!(user = %presented.user_id,
                    "a bound refresh token came with another key's DPoP proof; session revoked");
                self.audit(
                    "refresh.dpop_key_mismatch",
                    uid,
                    uid,
                    sid,
                    client,
                    Some("session revoked"),
                )
                .await;
                Err(AuthError::DpopKeyMismatch)
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
