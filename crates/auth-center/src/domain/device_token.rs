//! Device tokens (OWASP "device cookies"): proof that this client logged in to this account
//! before, so that failures spread over many IPs (an attacker aiming the account-wide limit
//! at the owner) do not lock the owner out.
//!
//! Wire form: `<device id>.<expiry, unix seconds>.<mac>`, where the MAC is
//! `HMAC-SHA-256(device key, "device.v2." || canonical username || "." || binding || "." || id
//! || "." || expiry)` truncated to 128 bits. The binding is derived from the user's stored
//! password hash, so a password change ends the trust of every device token issued before it.
//! The username is bound but not written, so the token reveals nothing. The device key is a
//! server secret shared through the database.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;

use super::crypto::{MacKey, TAG_BYTES, random_id, sha256_b64};
use super::error::AuthError;

/// Longest device token considered; anything longer is ignored unparsed.
const MAX_WIRE_LEN: usize = 128;

/// Issues and checks device tokens.
pub struct DeviceTokens {
    key: MacKey,
    ttl_secs: i64,
}

impl std::fmt::Debug for DeviceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTokens")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl DeviceTokens {
    /// Tokens under `key`, valid for `ttl_secs` after issue.
    pub fn new(key: &[u8], ttl_secs: u64) -> Self {
        Self {
            key: MacKey::new(key),
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
        }
    }

    fn mac(&self, username: &str, binding: &str, id: &str, expiry: i64) -> [u8; TAG_BYTES] {
        let input = format!("device.v2.{username}.{binding}.{id}.{expiry}");
        self.key.sign_128(input.as_bytes())
    }

    /// A new token for `username` (canonical) whose stored password hash gives `binding`
    /// (see [`binding`]), issued at `now_secs`.
    pub fn issue(
        &self,
        username: &str,
        binding: &str,
        now_secs: i64,
    ) -> Result<SecretString, AuthError> {
        let id = random_id()?;
        let expiry = now_secs.saturating_add(self.ttl_secs);
        let mac = URL_SAFE_NO_PAD.encode(self.mac(username, binding, &id, expiry));
        Ok(SecretString::from(format!("{id}.{expiry}.{mac}")))
    }

    /// The device id of a genuine, unexpired token for `username` with this `binding`;
    /// `None` for anything else (malformed, tampered, expired, another user's, issued
    /// before a password change), which is then simply an unknown client.
    pub fn verify(
        &self,
        wire: &str,
        username: &str,
        binding: &str,
        now_secs: i64,
    ) -> Option<String> {
        if wire.len() > MAX_WIRE_LEN {
            return None;
        }
        let mut parts = wire.split('.');
        let (Some(id), Some(expiry), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expiry: i64 = expiry.parse().ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if !verifier::contract::is_identifier(id) || now_secs >= expiry {
            return None;
        }
        aws_lc_rs::constant_time::verify_slices_are_equal(
            &mac,
            &self.mac(username, binding, id, expiry),
        )
        .ok()?;
        Some(id.to_string())
    }
}

/// What a device token is bound to: a digest of the user's stored password hash, which
/// changes with every password change.
pub fn binding(password_hash: &str) -> String {
    sha256_b64(password_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_token_verifies_for_its_user_until_it_expires() {
        let tokens = DeviceTokens::new(b"key", 100);
        let wire = tokens.issue("alice", "b1", 1_000).unwrap();
        let wire = wire.expose_secret();
        let id = tokens.verify(wire, "alice", "b1", 1_099).unwrap();
        assert!(wire.starts_with(&id));
        assert_eq!(tokens.verify(wire, "alice", "b1", 1_100), None, "expired");
        assert_eq!(
            tokens.verify(wire, "bob", "b1", 1_000),
            None,
            "another user"
        );
        assert_eq!(
            tokens.verify(wire, "alice", "b2", 1_000),
            None,
            "password changed"
        );
        let other = DeviceTokens::new(b"other", 100);
        assert_eq!(other.verify(wire, "alice", "b1", 1_000), None);
    }

    #[test]
    fn a_changed_expiry_or_id_breaks_the_mac() {
        let tokens = DeviceTokens::new(b"key", 100);
        let wire = tokens.issue("alice", "b1", 1_000).unwrap();
        let parts: Vec<&str> = wire.expose_secret().split('.').collect();
        let later = format!("{}.{}.{}", parts[0], 9_999_999, parts[2]);
        let other_id = format!("AAAAAAAAAAAAAAAAAAAAAA.{}.{}", parts[1], parts[2]);
        for bad in [later.as_str(), other_id.as_str(), "", "a.b", "a.1.c.d"] {
            assert_eq!(tokens.verify(bad, "alice", "b1", 1_000), None, "{bad}");
        }
    }
}
