//! The OAuth 2 use cases behind `/oauth2/token` and `/oauth2/revoke`, for a client that
//! `clients.rs` authenticated:
//!
//! - **client credentials** (RFC 6749 §4.4): a confidential client's own access token. Each
//!   token has its own session record (`sub` = client id), created before the token is
//!   signed, so `DEL` of its session key, the client's disabling or a revocation ends it
//!   for every verifier, as for a user's token. With a DPoP proof (RFC 9449) the session is
//!   bound to its key, as at login, and so is the access token under
//!   `dpop.bind_access_tokens`;
//! - **refresh token** (RFC 6749 §6): the one refresh rotation of `refresh.rs`, for the client
//!   the refresh token was issued to, DPoP binding included. Every refresh token today comes
//!   from `/v1/login`, so it belongs to the first-party client;
//! - **revocation** (RFC 7009): an access or refresh token of the calling client ends its
//!   session; anything else is answered the same and changes nothing.

use verifier::dpop::VerifiedProof;

use super::clients::{AuthenticatedClient, FIRST_PARTY_CLIENT_ID, granted_scope};
use super::crypto::{random_bytes, random_id, sha256_b64};
use super::error::AuthError;
use super::login::PendingSession;
use super::metrics::{EndCause, SessionKind};
use super::ports::{ClientKind, SessionRecord};
use super::refresh_token::{Provenance, RefreshToken};
use super::service::{AccessGrant, AuthService, ClientInfo, IssuedTokens, secs_to_ms};

/// A client's own access token (client-credentials grant). No refresh token (RFC 6749
/// §4.4.3): the client asks again.
#[derive(Clone)]
pub struct ClientToken {
    /// The access JWT.
    pub access_token: String,
    /// Its lifetime, seconds.
    pub expires_in: u64,
    /// The scopes it grants, space-separated.
    pub scope: Option<String>,
    /// Whether it is DPoP-bound (`cnf.jkt`): `token_type` `DPoP` instead of `Bearer`.
    pub dpop_bound: bool,
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientToken")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("dpop_bound", &self.dpop_bound)
            .finish_non_exhaustive()
    }
}

/// The session a revoked token belongs to.
struct RevocationTarget {
    sub: String,
    sid: String,
    /// The client the token was issued to.
    client_id: String,
    /// `access_token` or `refresh_token`, for the audit log.
    kind: &'static str,
}

impl AuthService {
    /// The client-credentials grant: a new session for the client (roles: the client's),
    /// and an access token for it with the granted scope (`scope`: what the client asked
    /// for, all it may receive when it asked for nothing). Like a login, the client is read
    /// again after its session was created, so a disable or a credential change racing this
    /// grant never leaves a token behind.
    ///
    /// With `dpop`, the request's verified DPoP proof, the session records the proof's key
    /// as a login's does, and under `dpop.bind_access_tokens` the access token is bound to
    /// it (`cnf.jkt`). Otherwise the token is a bearer token: the session has no refresh
    /// token, so its binding changes nothing else.
    pub async fn client_credentials(
        &self,
        client: &AuthenticatedClient,
        scope: Option<&str>,
        dpop: Option<&VerifiedProof>,
        info: &ClientInfo,
    ) -> Result<ClientToken, AuthError> {
        let registered = &client.client;
        if registered.kind != ClientKind::Confidential {
            return Err(AuthError::UnauthorizedClient(
                "only confidential clients may use the client_credentials grant",
            ));
        }
        let scope = granted_scope(scope, &registered.scopes)?;
        let now = self.clock.now_millis();
        let ttl = self.config.tokens.access_ttl_secs;
        let sid = random_id()?;
        let dpop_jkt = dpop.map(VerifiedProof::thumbprint);
        let record = SessionRecord {
            user_id: registered.id.clone(),
            sid: sid.clone(),
            created_ms: now,
            last_seen_ms: now,
            idle_expiry_ms: now + secs_to_ms(ttl),
            absolute_expiry_ms: now + secs_to_ms(ttl),
            generation: 0,
            user_agent: info.stored_user_agent(),
            ip: info.stored_ip(),
            roles: registered.roles.clone(),
            dpop_jkt: dpop_jkt.map(String::from),
        };
        // The session has no refresh token: its refresh hashes are of secrets nobody holds.
        let (unheld, unheld_next) = (
            sha256_b64(&random_bytes::<32>()?),
            sha256_b64(&random_bytes::<32>()?),
        );
        let pending = PendingSession::new(self.sessions.clone(), &registered.id, &sid);
        let ended = self
            .sessions
            .create(
                &record,
                &unheld,
                &unheld_next,
                now,
                self.config.oauth.max_tokens_per_client,
            )
            .await?;
        self.metrics.sessions_ended(EndCause::MaxPerClient, ended);
        let reread = match self.db.client_by_id(&registered.id).await {
            Ok(reread) => reread,
            Err(e) => {
                pending.discard().await;
                return Err(e.into());
            }
        };
        let unchanged = reread.as_ref().is_some_and(|now| {
            !now.disabled
                && now.secret_hash == registered.secret_hash
                && now.jwks == registered.jwks
        });
        if !unchanged {
            pending.discard().await;
            return Err(AuthError::InvalidClient);
        }
        let cnf_jkt = self.access_token_binding(dpop_jkt);
        let signed = self.sign_access_token(&AccessGrant {
            sub: &registered.id,
            sid: &sid,
            roles: &registered.roles,
            client_id: &registered.id,
            scope: scope.as_deref(),
            cnf_jkt,
        });
        let access_token = match signed {
            Ok(token) => token,
            Err(e) => {
                pending.discard().await;
                return Err(e);
            }
        };
        let mut detail = format!("scope [{}]", scope.as_deref().unwrap_or_default());
        if dpop_jkt.is_some() {
            detail.push_str("; DPoP key bound");
        }
        self.audit(
            "client.token_issued",
            Some(&registered.id),
            Some(&registered.id),
            Some(&sid),
            info,
            Some(&detail),
        )
        .await;
        self.metrics.session_created(SessionKind::ClientCredentials);
        pending.keep();
        Ok(ClientToken {
            access_token,
            expires_in: ttl,
            scope,
            dpop_bound: cnf_jkt.is_some(),
        })
    }

    /// The refresh-token grant: the rotation of [`AuthService::refresh`], the one
    /// implementation behind `/v1/refresh` too, for the client the token was issued to.
    /// Refresh tokens come from `/v1/login`, so that is the first-party client; a token
    /// presented by another client is `invalid_grant` and is left as it was (not rotated,
    /// not counted as reuse). The session grants no scope, so asking for one is
    /// `invalid_scope`. `dpop` is the request's verified DPoP proof: a session bound at
    /// login needs one from its key, exactly as at `/v1/refresh`.
    pub async fn refresh_for_client(
        &self,
        client: &AuthenticatedClient,
        refresh_token: &str,
        scope: Option<&str>,
        dpop: Option<&VerifiedProof>,
        info: &ClientInfo,
    ) -> Result<IssuedTokens, AuthError> {
        if client.id() != FIRST_PARTY_CLIENT_ID {
            return Err(AuthError::InvalidRefreshToken);
        }
        if scope.is_some_and(|s| !s.trim_matches(' ').is_empty()) {
            return Err(AuthError::InvalidScope(
                "this refresh token grants no scope".into(),
            ));
        }
        self.refresh(refresh_token, dpop, info).await
    }

    /// RFC 7009 revocation by `client`: an access token (valid, unexpired) or a refresh token
    /// (whose MAC verifies) that was issued to this client ends its session, and with it
    /// every token of that session. A token issued to another client, an unknown, malformed
    /// or expired token, and one whose session has already ended change nothing and answer
    /// the same (RFC 7009 §2.1, §2.2: no oracle). `token_type_hint` is not needed: the two
    /// formats cannot be mistaken for each other.
    pub async fn revoke(
        &self,
        client: &AuthenticatedClient,
        token: &str,
        info: &ClientInfo,
    ) -> Result<(), AuthError> {
        let Some(target) = self.revocation_target(token).await? else {
            return Ok(());
        };
        if target.client_id != client.id() {
            let detail = format!("{} of client {}", target.kind, target.client_id);
            self.audit(
                "oauth.revocation_ignored",
                Some(client.id()),
                Some(&target.sub),
                Some(&target.sid),
                info,
                Some(&detail),
            )
            .await;
            return Ok(());
        }
        if self.sessions.delete(&target.sub, &target.sid).await? {
            self.metrics.sessions_ended(EndCause::ClientRevoked, 1);
            self.audit(
                "oauth.token_revoked",
                Some(client.id()),
                Some(&target.sub),
                Some(&target.sid),
                info,
                Some(target.kind),
            )
            .await;
        }
        Ok(())
    }

    /// The session of a token this server issued, or `None` for anything else. A backend
    /// outage is an error, never `None`.
    async fn revocation_target(&self, token: &str) -> Result<Option<RevocationTarget>, AuthError> {
        match self.validate_access_token(token).await {
            Ok(claims) => {
                return Ok(Some(RevocationTarget {
                    client_id: claims
                        .client_id
                        .unwrap_or_else(|| FIRST_PARTY_CLIENT_ID.into()),
                    sub: claims.sub,
                    sid: claims.sid,
                    kind: "access_token",
                }));
            }
            Err(AuthError::Token(e)) if !e.is_unavailable() => {}
            Err(e) => return Err(e),
        }
        // Only a token with a MAC proves the server issued it; a MAC-less token (from
        // before MACs, on sessions at most one idle lifetime old) is not revoked here.
        Ok(match RefreshToken::parse(token, &self.refresh_keys) {
            Ok(refresh) if refresh.provenance == Provenance::Issued => Some(RevocationTarget {
                sub: refresh.user_id,
                sid: refresh.sid,
                client_id: FIRST_PARTY_CLIENT_ID.into(),
                kind: "refresh_token",
            }),
            _ => None,
        })
    }
}
