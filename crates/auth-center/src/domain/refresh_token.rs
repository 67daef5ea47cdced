//! The opaque refresh token: `<user_id>.<sid>.<secret>`, the secret 256 random bits.
//!
//! Only `SHA-256(secret)` is stored. A rotation's successor is derived, not random:
//! `secret' = HMAC(server key, sid || secret)`, so a replay of the just-rotated token
//! within the grace window gets the identical successor without storing any secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::crypto::{hmac_sha256, random_bytes, sha256_b64};
use super::error::AuthError;
use verifier::is_identifier;

/// A parsed refresh token. Its `Debug` never shows the secret.
pub struct RefreshToken {
    /// The session's user.
    pub user_id: String,
    /// The session id.
    pub sid: String,
    secret: SecretSlice<u8>,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("user_id", &self.user_id)
            .field("sid", &self.sid)
            .finish()
    }
}

impl RefreshToken {
    /// A fresh token for a new session.
    pub fn generate(user_id: &str, sid: &str) -> Result<Self, AuthError> {
        Ok(Self {
            user_id: user_id.into(),
            sid: sid.into(),
            secret: SecretSlice::from(random_bytes::<32>()?.to_vec()),
        })
    }

    /// Parses the wire form; anything malformed is `InvalidRefreshToken`.
    pub fn parse(wire: &str) -> Result<Self, AuthError> {
        let mut parts = wire.split('.');
        let (Some(user_id), Some(sid), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::InvalidRefreshToken);
        };
        if !is_identifier(user_id) || !is_identifier(sid) || secret.len() != 43 {
            return Err(AuthError::InvalidRefreshToken);
        }
        let secret = URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|_| AuthError::InvalidRefreshToken)?;
        if secret.len() != 32 {
            return Err(AuthError::InvalidRefreshToken);
        }
        Ok(Self {
            user_id: user_id.into(),
            sid: sid.into(),
            secret: SecretSlice::from(secret),
        })
    }

    /// The token to give to the client.
    pub fn to_wire(&self) -> SecretString {
        SecretString::from(format!(
            "{}.{}.{}",
            self.user_id,
            self.sid,
            URL_SAFE_NO_PAD.encode(self.secret.expose_secret())
        ))
    }

    /// What the session record stores: the hash of the secret.
    pub fn hash(&self) -> String {
        sha256_b64(self.secret.expose_secret())
    }

    /// The deterministic successor of this token under the server's rotation key.
    pub fn successor(&self, rotation_key: &[u8]) -> Self {
        let mut input = Vec::with_capacity(self.sid.len() + 33);
        input.extend_from_slice(self.sid.as_bytes());
        input.push(b'.');
        input.extend_from_slice(self.secret.expose_secret());
        Self {
            user_id: self.user_id.clone(),
            sid: self.sid.clone(),
            secret: SecretSlice::from(hmac_sha256(rotation_key, &input).to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_through_its_wire_form() {
        let t = RefreshToken::generate("user-1", "sid_1").unwrap();
        let parsed = RefreshToken::parse(t.to_wire().expose_secret()).unwrap();
        assert_eq!(parsed.hash(), t.hash());
        assert_eq!(
            (parsed.user_id.as_str(), parsed.sid.as_str()),
            ("user-1", "sid_1")
        );
    }

    #[test]
    fn successors_are_deterministic_and_differ_from_their_parent() {
        let t = RefreshToken::generate("u", "s").unwrap();
        let a = t.successor(b"key");
        let b = t.successor(b"key");
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), t.hash());
        assert_ne!(t.successor(b"other").hash(), a.hash());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "a:b.s.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "u.s.short",
        ] {
            assert!(RefreshToken::parse(bad).is_err(), "{bad:?}");
        }
    }
}
