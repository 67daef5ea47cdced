//! `AuthService`, the auth-center's use cases, and what every area shares: the wiring, what
//! a bearer token means to the auth-center (`authenticate`), token issuance, role checks,
//! audit writes and the one path for account changes that must end sessions. The use
//! cases themselves live in one file per area: `login`, `refresh`, `devices`, `passwords`,
//! `admin`, `keys`, `introspection`, `clients`, `oauth`.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Header};
use secrecy::SecretString;
use service_kit::ready::Check;
use verifier::contract::{ACCESS_TOKEN_TYP, TokenValidator};
use verifier::dpop::{DpopChecker, VerifiedProof, check_binding};
use verifier::{Audience, Claims, Clock, Confirmation, VerifyError};

use super::client_ip::{IpRange, client_ip, is_trusted};
use super::clients::{ClientSecrets, FIRST_PARTY_CLIENT_ID};
use super::crypto::{random_bytes, random_id};
use super::device_token::DeviceTokens;
use super::error::{AuthError, Chain, StoreError};
use super::hasher::{HasherStats, PasswordHasher};
use super::keys::{KeyManager, KeyPolicy};
use super::limits::{Limiter, Rule};
use super::login::{EndOnDrop, Ending, MAX_USER_AGENT_BYTES};
use super::metrics::{AuthMetrics, EndCause};
use super::ports::{AuditEvent, Database, RateLimitStore, SelftestStore, SessionStore, User};
use super::refresh_token::{RefreshKeys, RefreshToken};
use crate::config::Config;

/// Who is calling, as far as the transport can tell.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client IP.
    pub ip: String,
    /// User agent (capped when stored).
    pub user_agent: String,
    /// A device token from an earlier login (body field or cookie), if the client sent one.
    pub device_token: Option<SecretString>,
    /// The id of the HTTP request (`X-Request-Id`), written with its audit events; `None`
    /// outside a request (the CLI, scheduled tasks).
    pub request_id: Option<String>,
}

impl ClientInfo {
    /// The user agent as a session record keeps it: at most [`MAX_USER_AGENT_BYTES`].
    pub(super) fn stored_user_agent(&self) -> String {
        truncate(&self.user_agent, MAX_USER_AGENT_BYTES)
    }

    /// The IP as a session record keeps it: at most 64 bytes.
    pub(super) fn stored_ip(&self) -> String {
        truncate(&self.ip, 64)
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
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
    /// A fresh device token (login only): proof for later logins that this client has
    /// logged in to this account before.
    pub device_token: Option<SecretString>,
    /// Whether the access token is DPoP-bound (`cnf.jkt`): `token_type` `DPoP` instead of
    /// `Bearer` (RFC 9449 §5).
    pub dpop_bound: bool,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("session_id", &self.session_id)
            .field("expires_in", &self.expires_in)
            .field("dpop_bound", &self.dpop_bound)
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
    pub(super) hasher: PasswordHasher,
    keys: Arc<KeyManager>,
    validator: TokenValidator,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: Arc<Config>,
    pub(super) refresh_keys: RefreshKeys,
    pub(super) devices: DeviceTokens,
    pub(super) client_secrets: ClientSecrets,
    trusted_proxies: Vec<IpRange>,
    dpop: DpopChecker,
    pub(super) metrics: AuthMetrics,
    /// The revocation self-test's store: with Redis only.
    pub(super) selftest: Option<Arc<dyn SelftestStore>>,
}

/// What an access token says: whose it is, its session, and what it grants.
pub(super) struct AccessGrant<'a> {
    /// `sub`: a user id, or a client id for a client's own token.
    pub(super) sub: &'a str,
    /// The session.
    pub(super) sid: &'a str,
    /// `roles`.
    pub(super) roles: &'a [String],
    /// `client_id`: the client the token is issued to.
    pub(super) client_id: &'a str,
    /// `scope`, space-separated, if the token has scopes.
    pub(super) scope: Option<&'a str>,
    /// `cnf.jkt`: the DPoP key the access token is bound to, if it is (see
    /// [`AuthService::access_token_binding`]).
    pub(super) cnf_jkt: Option<&'a str>,
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
        metrics: AuthMetrics,
    ) -> Result<Self, AuthError> {
        let hasher = PasswordHasher::new(&config.passwords, metrics.hashing.clone())?;
        let policy = KeyPolicy::from_config(&config)?;
        let keys = Arc::new(KeyManager::load(db.clone(), clock.clone(), policy).await?);
        let rotation_key = db
            .server_secret("refresh_rotation_key", &random_bytes::<32>()?)
            .await?;
        let device_key = db
            .server_secret("device_token_key", &random_bytes::<32>()?)
            .await?;
        let client_secret_key = db
            .server_secret("client_secret_key", &random_bytes::<32>()?)
            .await?;
        let devices = DeviceTokens::new(&device_key, config.limits.device_token_ttl_secs);
        let validator = TokenValidator::new(
            &config.issuer,
            config.tokens.audience.iter().take(1).cloned(),
            [Algorithm::EdDSA],
        )
        .with_leeway_secs(i64::try_from(config.tokens.leeway_secs).unwrap_or(5));
        let limiter = Limiter::new(
            rate_limits,
            config.limits.clone(),
            clock.clone(),
            metrics.clone(),
        );
        let trusted_proxies = config.trusted_proxies.clone();
        let dpop = config
            .dpop_checker(clock.clone())
            .map_err(|e| AuthError::internal_because("building the DPoP proof checker", e))?;
        Ok(Self {
            db,
            sessions,
            limiter,
            hasher,
            keys,
            validator,
            clock,
            config,
            refresh_keys: RefreshKeys::new(&rotation_key),
            devices,
            client_secrets: ClientSecrets::new(&client_secret_key),
            trusted_proxies,
            dpop,
            metrics,
            selftest: None,
        })
    }

    /// Enables the revocation self-test (`revocation_selftest`) on `store`: sessions are in
    /// Redis, where verifiers share them.
    pub fn with_selftest(mut self, store: Arc<dyn SelftestStore>) -> Self {
        self.selftest = Some(store);
        self
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

    /// Whether `peer` is a trusted proxy (whose `X-Forwarded-For` and `X-Request-Id` are
    /// believed).
    pub fn is_trusted_proxy(&self, peer: std::net::IpAddr) -> bool {
        is_trusted(peer, &self.trusted_proxies)
    }

    /// What the password hasher is doing: running hashes, their high-water mark, refusals.
    pub fn password_hashing(&self) -> HasherStats {
        self.hasher.stats()
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The DPoP proof checker (RFC 9449) of this instance: its public URL, algorithms, `iat`
    /// window and replay cache. The HTTP layer checks a request's proof with it and passes
    /// the [`VerifiedProof`] to `login`, `refresh` and `authenticate`.
    pub fn dpop(&self) -> &DpopChecker {
        &self.dpop
    }

    /// The algorithms DPoP proofs may be signed with: `dpop_signing_alg_values_supported`
    /// of the authorization-server metadata (RFC 9449 §5.1).
    pub fn dpop_signing_alg_values(&self) -> Vec<&'static str> {
        self.dpop.signing_alg_values()
    }

    /// What a presented access token means to the auth-center: signature and claims, the
    /// DPoP binding (`proof` is the request's verified proof when the token came with the
    /// DPoP scheme, `None` for a bearer token; see `verifier::dpop::check_binding`), then
    /// that its session still exists.
    pub async fn authenticate(
        &self,
        token: &str,
        proof: Option<&VerifiedProof>,
    ) -> Result<Claims, AuthError> {
        let claims = self.validate_access_token(token).await?;
        check_binding(&claims, proof)?;
        self.check_session(claims).await
    }

    /// A token's claims if it is valid and its session exists, however it is bound: for
    /// introspection, which judges another party's token.
    pub(super) async fn active_claims(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.validate_access_token(token).await?;
        self.check_session(claims).await
    }

    /// Checks an access token's signature and claims, without asking whether its session
    /// still exists or how it is bound (revocation judges a token, it does not use it).
    pub(super) async fn validate_access_token(&self, token: &str) -> Result<Claims, AuthError> {
        let now = self.clock.now_secs();
        let mut keys = self.keys.verifying_keys();
        // A `kid` this instance has not loaded may be a key another instance just created:
        // the keys are re-read (at most once per cooldown) before the token is judged.
        let unknown_kid = self
            .validator
            .check_header(token)
            .is_ok_and(|header| keys.get(&header.kid).is_none());
        if unknown_kid && self.keys.reload_if_stale().await? {
            keys = self.keys.verifying_keys();
        }
        Ok(self.validator.validate(token, &keys, now)?)
    }

    /// `claims` if their session still exists.
    async fn check_session(&self, claims: Claims) -> Result<Claims, AuthError> {
        if !self
            .sessions
            .is_active(&claims.sub, &claims.sid, self.clock.now_millis())
            .await?
        {
            return Err(VerifyError::Revoked.into());
        }
        Ok(claims)
    }

    /// Fails unless the caller has `role`.
    pub fn require_role(&self, claims: &Claims, role: &'static str) -> Result<(), AuthError> {
        if claims.has_role(role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(role))
        }
    }

    /// Whether the database and the session store answer, each asked at once: the
    /// `database` check, and `redis` (or `memory` for in-process sessions). A failure is
    /// logged with its causes; the check says only the outcome's fixed message.
    pub async fn readiness(&self) -> Vec<Check> {
        let sessions = match self.config.redis {
            crate::config::RedisConfig::Memory => "memory",
            _ => "redis",
        };
        let (database, store) = tokio::join!(self.db.ping(), self.sessions.ping());
        [("database", database), (sessions, store)]
            .into_iter()
            .map(|(name, outcome)| Check {
                name,
                failure: outcome.err().map(|e| {
                    tracing::warn!(check = name, error = %Chain(&e), "a readiness check failed");
                    e.to_string()
                }),
            })
            .collect()
    }

    /// The tokens of a first-party session (login, refresh): an access token issued to the
    /// first-party client, and the refresh token. `dpop_jkt` is the key the session is bound
    /// to: with `dpop.bind_access_tokens`, the access token is bound to it too (`cnf.jkt`).
    pub(super) fn issue(
        &self,
        user_id: &str,
        sid: &str,
        roles: &[String],
        refresh: RefreshToken,
        dpop_jkt: Option<&str>,
    ) -> Result<IssuedTokens, AuthError> {
        let cnf_jkt = self.access_token_binding(dpop_jkt);
        let access_token = self.sign_access_token(&AccessGrant {
            sub: user_id,
            sid,
            roles,
            client_id: FIRST_PARTY_CLIENT_ID,
            scope: None,
            cnf_jkt,
        })?;
        Ok(IssuedTokens {
            access_token,
            refresh_token: refresh.to_wire(&self.refresh_keys),
            expires_in: self.config.tokens.access_ttl_secs,
            session_id: sid.into(),
            device_token: None,
            dpop_bound: cnf_jkt.is_some(),
        })
    }

    /// The key an access token of a session bound to `session_jkt` is bound to (its
    /// `cnf.jkt`): the session's, when `dpop.bind_access_tokens` is on; `None` otherwise.
    pub(super) fn access_token_binding<'a>(&self, session_jkt: Option<&'a str>) -> Option<&'a str> {
        session_jkt.filter(|_| self.config.dpop.bind_access_tokens)
    }

    /// Signs an access token (RFC 9068) for a session that exists: its callers are `issue`
    /// (after a login created the session or a refresh rotated it) and the client-credentials
    /// grant (after it created the client's session).
    pub(super) fn sign_access_token(&self, grant: &AccessGrant<'_>) -> Result<String, AuthError> {
        let now = self.clock.now_secs();
        let ttl = self.config.tokens.access_ttl_secs;
        let claims = Claims {
            iss: self.config.issuer.clone(),
            sub: grant.sub.into(),
            aud: match self.config.tokens.audience.as_slice() {
                [one] => Audience::One(one.clone()),
                many => Audience::Many(many.to_vec()),
            },
            exp: now + i64::try_from(ttl).unwrap_or(900),
            iat: now,
            nbf: Some(now),
            jti: random_id()?,
            sid: grant.sid.into(),
            roles: grant.roles.to_vec(),
            client_id: Some(grant.client_id.into()),
            scope: grant.scope.map(String::from),
            cnf: grant.cnf_jkt.map(|jkt| Confirmation { jkt: jkt.into() }),
        };
        let key = self.keys.signing_key();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(key.kid().to_owned());
        let access_token = key.sign(&header, &claims)?;
        if access_token.len() > verifier::contract::MAX_TOKEN_BYTES {
            // A leaf cause: nothing failed below, the size itself is the fault.
            return Err(AuthError::Internal(
                format!(
                    "an access token of {} bytes would be refused by every verifier",
                    access_token.len()
                )
                .into(),
            ));
        }
        Ok(access_token)
    }

    /// Applies `change` (an SQL write that must end sessions: a password, roles, a
    /// disable; made from the database) with the user's sessions but `keep` ended before
    /// and after it. Ending them first means a session store that fails answers `503`
    /// before anything changed; ending them again catches a login that opened a session
    /// while the change was being written (the login's re-read catches the ones after).
    ///
    /// The change and the second sweep run in a task of their own, so a request dropped
    /// half-way (a timeout, a client gone) stops neither, and the sweep always follows the
    /// change's end. It runs whatever the change answered, since a change whose reply was
    /// lost may have been written. A sweep that fails goes on in the background
    /// ([`EndOnDrop`]) and is logged; the change's result is the answer. Returns the
    /// change's result and how many sessions ended.
    pub(super) async fn change_ending_sessions<T, F, Fut>(
        &self,
        user_id: &str,
        keep: Option<&str>,
        cause: EndCause,
        change: F,
    ) -> Result<(T, u64), AuthError>
    where
        F: FnOnce(Arc<dyn Database>) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let before = self.sessions.delete_all(user_id, keep).await?;
        self.metrics.sessions_ended(cause, before);
        let change = change(self.db.clone());
        let ending = Ending::AllBut(keep.map(String::from));
        let second_sweep = EndOnDrop::new(self.sessions.clone(), user_id, ending)
            .counted(self.metrics.clone(), cause);
        let (changed, after) = tokio::spawn(async move {
            let changed = change.await;
            let after = second_sweep.now().await;
            if let Err(e) = &after {
                tracing::warn!(error = %Chain(e),
                    "could not end sessions after an account change; retrying in the background");
            }
            (changed, after.unwrap_or(0))
        })
        .await
        .map_err(|e| AuthError::internal_because("the account change stopped", e))?;
        Ok((changed?, before + after))
    }

    /// Writes the `rate_limited` audit event for a refusal worth one (see
    /// `AuthError::RateLimited::audit`), then passes the limiter's answer on. `account` is
    /// the username an account or device rule protects.
    pub(super) async fn audit_refusal<T>(
        &self,
        allowed: Result<T, AuthError>,
        client: &ClientInfo,
        account: Option<&str>,
    ) -> Result<T, AuthError> {
        if let Err(refused) = &allowed {
            self.audit_limit(refused, client, account).await;
        }
        allowed
    }

    /// The audit half of [`Self::audit_refusal`], for a refusal already decided.
    pub(super) async fn audit_limit(
        &self,
        refused: &AuthError,
        client: &ClientInfo,
        account: Option<&str>,
    ) {
        if let AuthError::RateLimited {
            retry_after_secs,
            rule,
            audit: true,
        } = refused
        {
            let mut detail = format!("rule {}; retry after {retry_after_secs} s", rule.name());
            if let (Some(account), Rule::LoginAccountIp | Rule::LoginAccount | Rule::LoginDevice) =
                (account, rule)
            {
                detail.push_str(&format!("; account {account}"));
            }
            self.audit("rate_limited", None, None, None, client, Some(&detail))
                .await;
        }
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
        let entry = self.audit_event(event, actor, target, sid, client, detail);
        self.write_audit(&entry).await;
    }

    /// An audit event of this request, as of now, for [`Self::write_audit`] (or a write
    /// that is part of another check, as a login's).
    pub(super) fn audit_event(
        &self,
        event: &str,
        actor: Option<&str>,
        target: Option<&str>,
        sid: Option<&str>,
        client: &ClientInfo,
        detail: Option<&str>,
    ) -> AuditEvent {
        AuditEvent {
            at_ms: self.clock.now_millis(),
            event: event.into(),
            actor: actor.map(String::from),
            target: target.map(String::from),
            sid: sid.map(String::from),
            ip: (!client.ip.is_empty()).then(|| client.ip.clone()),
            request_id: client.request_id.clone(),
            detail: detail.map(String::from),
        }
    }

    /// Writes `entry`; a failure is logged, not fatal.
    pub(super) async fn write_audit(&self, entry: &AuditEvent) {
        log_audit(entry);
        if let Err(e) = self.db.audit(entry).await {
            let event = entry.event.as_str();
            tracing::error!(error = %Chain(&e), event, "could not write an audit event");
        }
    }
}

/// The log line of an audit event (target `audit`), beside its row in the database.
pub(super) fn log_audit(entry: &AuditEvent) {
    let (event, actor, target) = (
        entry.event.as_str(),
        entry.actor.as_deref(),
        entry.target.as_deref(),
    );
    tracing::info!(target: "audit", event, actor, target, "audit event");
}

/// Seconds as milliseconds, saturating.
pub(super) fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}
