//! Token introspection (RFC 7662) for services that cannot embed the verifier. The caller is
//! a user or service with the `introspect` or `admin` role (a bearer token), or a client
//! registered as allowed to introspect (client authentication).
//!
//! Only access tokens are introspected: a refresh token is a credential of the client it
//! was issued to and of the token endpoint, never of a resource server, so it answers
//! `active: false` like any other token this caller may not introspect (RFC 7662 §2.2).

use verifier::Claims;

use super::admin::ADMIN_ROLE;
use super::clients::AuthenticatedClient;
use super::error::{AuthError, Chain};
use super::service::AuthService;

/// The role that may introspect tokens (admins may too).
pub const INTROSPECT_ROLE: &str = "introspect";

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub enum Introspector<'a> {
    /// A bearer token's claims.
    Bearer(&'a Claims),
    /// An authenticated client.
    Client(&'a AuthenticatedClient),
}

/// An active token as introspection describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// Its claims.
    pub claims: Claims,
    /// The username of the user it was issued for (RFC 7662 `username`); `None` for a
    /// client's own token, and when the database cannot answer now: introspection, like
    /// the verifier, keeps working without SQL, and `username` is optional.
    pub username: Option<String>,
}

impl AuthService {
    /// Token introspection (RFC 7662): the claims of an active access token, `None` for
    /// anything else (invalid, expired, revoked, a refresh token). A session-store outage is
    /// an error, never `active: false`.
    pub async fn introspect(
        &self,
        caller: Introspector<'_>,
        token: &str,
    ) -> Result<Option<Introspection>, AuthError> {
        match caller {
            Introspector::Bearer(claims)
                if !claims.has_role(INTROSPECT_ROLE) && !claims.has_role(ADMIN_ROLE) =>
            {
                return Err(AuthError::Forbidden(INTROSPECT_ROLE));
            }
            Introspector::Client(client) if !client.client.introspect => {
                return Err(AuthError::UnauthorizedClient(
                    "this client may not introspect tokens",
                ));
            }
            _ => {}
        }
        // The introspected token is judged, not presented: its DPoP binding is reported
        // (`cnf`), not checked.
        let claims = match self.active_claims(token).await {
            Ok(claims) => claims,
            Err(AuthError::Token(e)) if !e.is_unavailable() => return Ok(None),
            Err(e) => return Err(e),
        };
        let username = self.username_of(&claims.sub).await;
        Ok(Some(Introspection { claims, username }))
    }

    /// The username of a user id; `None` for a client id (never a UUID) or when the
    /// database does not answer (logged).
    async fn username_of(&self, sub: &str) -> Option<String> {
        uuid::Uuid::try_parse(sub).ok()?;
        match self.db.user_by_id(sub).await {
            Ok(user) => user.map(|u| u.username),
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "introspection without username: the database did not answer");
                None
            }
        }
    }
}
