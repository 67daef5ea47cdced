//! Token introspection (RFC 7662 style) for services that cannot embed the verifier.

use verifier::Claims;

use super::admin::ADMIN_ROLE;
use super::error::AuthError;
use super::service::AuthService;

/// The role that may introspect tokens (admins may too).
pub const INTROSPECT_ROLE: &str = "introspect";

impl AuthService {
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
        // The introspected token is judged, not presented: its DPoP binding is reported
        // (`cnf`), not checked.
        match self.active_claims(token).await {
            Ok(claims) => Ok(Some(claims)),
            Err(AuthError::Token(e)) if !e.is_unavailable() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
