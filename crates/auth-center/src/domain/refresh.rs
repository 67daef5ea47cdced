//! Refresh rotation and the end of the caller's sessions (logout, logout-all). **Refresh
//! rotation** is `refresh` here, with the token format in `refresh_token.rs` and the atomic
//! check-rotate-extend step in the session store's `ROTATE` script.

use verifier::Claims;
use verifier::dpop::{DpopError, VerifiedProof};

use super::error::AuthError;
use super::metrics::{EndCause, RefreshOutcome};
use super::ports::{Caller, ContextChange, RotateOutcome, Rotation, RotationPolicy};
use super::refresh_policy;
use super::refresh_token::{Provenance, RefreshToken};
use super::service::{AuthService, ClientInfo, IssuedTokens, secs_to_ms};

impl AuthService {
    /// Rotates a refresh token (see `SessionStore::rotate`), under the refresh policy
    /// (`refresh` in the configuration): the rotation cap and the policy on a changed
    /// network or user agent, which the store enforces atomically with the rotation.
    ///
    /// `dpop` is the request's DPoP proof, verified by the caller for this request
    /// (`self.dpop()`), or `None` without a `DPoP` header. A session bound to a DPoP key at
    /// login refreshes only with a proof from that key: without one the answer is
    /// `InvalidDpopProof` and nothing changes; a genuine token with another key's proof was
    /// stolen, and the session is revoked (`DpopKeyMismatch`, audited as
    /// `refresh.dpop_key_mismatch`). On a session that is not bound the proof changes
    /// nothing: binding happens at login only. The key is checked before the refresh policy
    /// (see `SessionStore::rotate` for the order).
    pub async fn refresh(
        &self,
        wire: &str,
        dpop: Option<&VerifiedProof>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        // A token whose MAC fails is refused here, before Redis; the per-IP refresh limit is
        // counted inside the rotation (one round trip), except for the MAC-less legacy form.
        let presented = RefreshToken::parse(wire, &self.refresh_keys).inspect_err(|_| {
            self.metrics.refresh(RefreshOutcome::Invalid);
        })?;
        if presented.provenance == Provenance::Legacy {
            let allowed = self.limiter.check_unproven_refresh(&client.ip).await;
            if let Err(AuthError::RateLimited { .. }) = allowed {
                self.metrics.refresh(RefreshOutcome::RateLimited);
            }
            self.audit_refusal(allowed, client, None).await?;
        }
        let successor = presented.successor(&self.refresh_keys);
        let (presented_hash, successor_hash) = (presented.hash(), successor.hash());
        let next_successor_hash = successor.successor(&self.refresh_keys).hash();
        let (ip, user_agent) = (client.stored_ip(), client.stored_user_agent());
        let policy = &self.config.refresh;
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
            caller: Caller {
                ip: &ip,
                user_agent: &user_agent,
            },
            policy: RotationPolicy {
                max_rotations: policy.max_rotations,
                on_network_change: policy.on_network_change,
                on_user_agent_change: policy.on_user_agent_change,
                ipv4_prefix: policy.ipv4_prefix,
                ipv6_prefix: policy.ipv6_prefix,
            },
            limit: self.limiter.refresh_limit(&client.ip),
        };
        let (uid, sid) = (
            Some(presented.user_id.as_str()),
            Some(presented.sid.as_str()),
        );
        // Every audit entry of a refresh is about the caller's own session.
        let audit = |event: &'static str, detail: String| async move {
            self.audit(event, uid, uid, sid, client, Some(&detail))
                .await
        };
        let describe = |change: &ContextChange, outcome: &str| {
            let what = refresh_policy::describe(change, &rotation.caller, &rotation.policy);
            format!("{what}; {outcome}")
        };
        let outcome = self.sessions.rotate(&rotation).await?;
        self.count_rotation(&outcome);
        // A change under an `audit` policy; under `revoke` it ended the session instead.
        if let RotateOutcome::Rotated { change, .. }
        | RotateOutcome::Replayed { change, .. }
        | RotateOutcome::LimitReached { change } = &outcome
            && change.any()
        {
            let detail = describe(change, "allowed");
            audit("refresh.context_changed", detail).await;
        }
        match outcome {
            RotateOutcome::Rotated {
                roles, dpop_jkt, ..
            }
            | RotateOutcome::Replayed {
                roles, dpop_jkt, ..
            } => self.issue(
                &presented.user_id,
                &presented.sid,
                &roles,
                successor,
                dpop_jkt.as_deref(),
            ),
            RotateOutcome::Reused => {
                tracing::warn!(user = %presented.user_id, "refresh token reuse detected; session revoked");
                audit("refresh.reuse_detected", "session revoked".into()).await;
                Err(AuthError::RefreshTokenReused)
            }
            RotateOutcome::DpopRequired => Err(AuthError::InvalidDpopProof(DpopError::Missing)),
            RotateOutcome::DpopKeyMismatch => {
                tracing::warn!(user = %presented.user_id,
                    "a bound refresh token came with another key's DPoP proof; session revoked");
                audit("refresh.dpop_key_mismatch", "session revoked".into()).await;
                Err(AuthError::DpopKeyMismatch)
            }
            RotateOutcome::NotFound => Err(AuthError::InvalidRefreshToken),
            RotateOutcome::RateLimited(decision) => {
                let refused = self.limiter.refresh_refused(decision);
                self.audit_limit(&refused, client, None).await;
                Err(refused)
            }
            RotateOutcome::LimitReached { .. } => {
                let detail = format!(
                    "session ended after {} rotations (refresh.max_rotations)",
                    policy.max_rotations
                );
                audit("refresh.limit_reached", detail).await;
                Err(AuthError::RefreshLimitReached)
            }
            RotateOutcome::ContextRevoked { change } => {
                tracing::warn!(user = %presented.user_id, "refresh from another network or user agent; session revoked");
                let detail = describe(&change, "session revoked");
                audit("refresh.context_revoked", detail).await;
                Err(AuthError::RefreshContextChanged)
            }
        }
    }

    /// Counts what the store decided: the refresh's outcome, and the session it ended.
    fn count_rotation(&self, outcome: &RotateOutcome) {
        let (refresh, ended) = match outcome {
            RotateOutcome::Rotated { .. } => (RefreshOutcome::Rotated, None),
            RotateOutcome::Replayed { .. } => (RefreshOutcome::GraceReplay, None),
            RotateOutcome::Reused => (RefreshOutcome::ReuseDetected, Some(EndCause::Theft)),
            RotateOutcome::NotFound => (RefreshOutcome::Expired, None),
            RotateOutcome::DpopRequired => (RefreshOutcome::PolicyRefused, None),
            RotateOutcome::DpopKeyMismatch | RotateOutcome::ContextRevoked { .. } => {
                (RefreshOutcome::PolicyRefused, Some(EndCause::Theft))
            }
            RotateOutcome::LimitReached { .. } => {
                (RefreshOutcome::PolicyRefused, Some(EndCause::Cap))
            }
            RotateOutcome::RateLimited(_) => (RefreshOutcome::RateLimited, None),
        };
        self.metrics.refresh(refresh);
        if let Some(cause) = ended {
            self.metrics.sessions_ended(cause, 1);
        }
    }

    /// Ends the caller's session.
    pub async fn logout(&self, claims: &Claims, client: &ClientInfo) -> Result<(), AuthError> {
        if self.sessions.delete(&claims.sub, &claims.sid).await? {
            self.metrics.sessions_ended(EndCause::Logout, 1);
        }
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
        self.end_own_sessions(claims, client, None, EndCause::LogoutAll, "logout_all")
            .await
    }

    /// Ends the caller's sessions, all of them or all but `keep`: counted under `cause`,
    /// audited as `event` with how many ended; how many ended.
    pub(super) async fn end_own_sessions(
        &self,
        claims: &Claims,
        client: &ClientInfo,
        keep: Option<&str>,
        cause: EndCause,
        event: &str,
    ) -> Result<u64, AuthError> {
        let n = self.sessions.delete_all(&claims.sub, keep).await?;
        self.metrics.sessions_ended(cause, n);
        let detail = format!("{n} sessions ended");
        self.audit(
            event,
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
