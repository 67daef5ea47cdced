//! The opaque refresh token: `<user_id>.<sid>.<secret>.<mac>`.
//!
//! - `secret`: 256 bits, random for a new session. Only `SHA-256(secret)` is stored.
//! - A rotation's successor is derived, not random:
//!   `secret' = HMAC(rotation key, sid || "." || secret)`, so a replay of the just-rotated
//!   token within the grace window gets the identical successor without storing a secret.
//! - `mac`: the first 128 bits of `HMAC(MAC key, "<user_id>.<sid>." || secret)`, the MAC key
//!   derived from the rotation key. It proves that the server issued the token. `sub` and
//!   `sid` are in every access token, so without it anyone who has seen one could present a
//!   made-up secret for that session and have it taken for a stolen old token. A token whose
//!   MAC does not verify is refused before the session store is asked.
//!
//! Tokens issued before the MAC existed (`<user_id>.<sid>.<secret>`, [`Provenance::Legacy`])
//! still rotate while they are the session's current token, and get a successor with a MAC.
//! Nothing proves that such a token was issued, so it never counts as reuse.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::crypto::{MacKey, TAG_BYTES, random_bytes, sha256_b64};
use super::error::AuthError;
use verifier::contract::is_identifier;

/// Derivation label of the MAC key; a new label would invalidate every token's MAC.
const MAC_KEY_LABEL: &[u8] = b"auth-center refresh-token MAC v1";

/// The server keys behind refresh tokens, derived from the one shared rotation secret.
pub struct RefreshKeys {
    rotation: MacKey,
    mac: MacKey,
}

impl std::fmt::Debug for RefreshKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshKeys { .. }")
    }
}

impl RefreshKeys {
    /// Both keys from the server's refresh rotation secret.
    pub fn new(rotation_secret: &[u8]) -> Self {
        let rotation = MacKey::new(rotation_secret);
        // HMAC(rotation secret, label), as before: the MACs of issued tokens stay valid.
        let mac = MacKey::new(&rotation.sign(MAC_KEY_LABEL));
        Self { rotation, mac }
    }

    fn mac(&self, user_id: &str, sid: &str, secret: &[u8]) -> [u8; TAG_BYTES] {
        let mut input = Vec::with_capacity(user_id.len() + sid.len() + 2 + secret.len());
        input.extend_from_slice(user_id.as_bytes());
        input.push(b'.');
        input.extend_from_slice(sid.as_bytes());
        input.push(b'.');
        input.extend_from_slice(secret);
        self.mac.sign_128(&input)
    }
}

/// Where a presented token comes from, as far as its form can prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Its MAC verified: the server issued it.
    Issued,
    /// The pre-MAC form: it may rotate, but never counts as proof of theft.
    Legacy,
}

/// A parsed refresh token. Its `Debug` never shows the secret.
pub struct RefreshToken {
    /// The session's user.
    pub user_id: String,
    /// The session id.
    pub sid: String,
    secret: SecretSlice<u8>,
    /// Whether the server provably issued it.
    pub provenance: Provenance,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("user_id", &self.user_id)
            .field("sid", &self.sid)
            .field("provenance", &self.provenance)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// A fresh token for a new session.
    pub fn generate(user_id: &str, sid: &str) -> Result<Self, AuthError> {
        Ok(Self {
            user_id: user_id.into(),
            sid: sid.into(),
            secret: SecretSlice::from(random_bytes::<32>()?.to_vec()),
            provenance: Provenance::Issued,
        })
    }

    /// Parses the wire form and checks its MAC. Anything malformed, and any token whose
    /// MAC does not verify, is `InvalidRefreshToken`, the same for every cause.
    pub fn parse(wire: &str, keys: &RefreshKeys) -> Result<Self, AuthError> {
        let mut parts = wire.split('.');
        let (Some(user_id), Some(sid), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::InvalidRefreshToken);
        };
        let mac = parts.next();
        if parts.next().is_some() || !is_identifier(user_id) || !is_identifier(sid) {
            return Err(AuthError::InvalidRefreshToken);
        }
        let secret = decode_exact(secret, 32)?;
        let provenance = match mac {
            None => Provenance::Legacy,
            Some(mac) => {
                let presented = decode_exact(mac, TAG_BYTES)?;
                let expected = keys.mac(user_id, sid, &secret);
                aws_lc_rs::constant_time::verify_slices_are_equal(&presented, &expected)
                    .map_err(|_| AuthError::InvalidRefreshToken)?;
                Provenance::Issued
            }
        };
        Ok(Self {
            user_id: user_id.into(),
            sid: sid.into(),
            secret: SecretSlice::from(secret),
            provenance,
        })
    }

    /// The token to give to the client, with its MAC.
    pub fn to_wire(&self, keys: &RefreshKeys) -> SecretString {
        let secret = self.secret.expose_secret();
        SecretString::from(format!(
            "{}.{}.{}.{}",
            self.user_id,
            self.sid,
            URL_SAFE_NO_PAD.encode(secret),
            URL_SAFE_NO_PAD.encode(keys.mac(&self.user_id, &self.sid, secret))
        ))
    }

    /// What the session record stores: the hash of the secret.
    pub fn hash(&self) -> String {
        sha256_b64(self.secret.expose_secret())
    }

    /// The deterministic successor of this token under the server's rotation key.
    pub fn successor(&self, keys: &RefreshKeys) -> Self {
        let mut input = Vec::with_capacity(self.sid.len() + 33);
        input.extend_from_slice(self.sid.as_bytes());
        input.push(b'.');
        input.extend_from_slice(self.secret.expose_secret());
        Self {
            user_id: self.user_id.clone(),
            sid: self.sid.clone(),
            secret: SecretSlice::from(keys.rotation.sign(&input).to_vec()),
            provenance: Provenance::Issued,
        }
    }
}

/// base64url of exactly `len` bytes (canonical: no padding, no trailing bits).
fn decode_exact(text: &str, len: usize) -> Result<Vec<u8>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| AuthError::InvalidRefreshToken)?;
    if bytes.len() != len {
        return Err(AuthError::InvalidRefreshToken);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_through_its_wire_form() {
        let keys = RefreshKeys::new(b"server secret");
        let t = RefreshToken::generate("user-1", "sid_1").unwrap();
        let parsed = RefreshToken::parse(t.to_wire(&keys).expose_secret(), &keys).unwrap();
        assert_eq!(parsed.provenance, Provenance::Issued);
        assert_eq!(parsed.hash(), t.hash());
        assert_eq!(
            (parsed.user_id.as_str(), parsed.sid.as_str()),
            ("user-1", "sid_1")
        );
    }

    #[test]
    fn successors_are_deterministic_and_differ_from_their_parent() {
        let (keys, other) = (RefreshKeys::new(b"key"), RefreshKeys::new(b"other"));
        let t = RefreshToken::generate("u", "s").unwrap();
        let a = t.successor(&keys);
        let b = t.successor(&keys);
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), t.hash());
        assert_ne!(t.successor(&other).hash(), a.hash());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "a:b.s.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "u.s.short",
            "u.s.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.x",
        ] {
            assert!(
                RefreshToken::parse(bad, &RefreshKeys::new(b"k")).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_token_verifies_only_under_the_key_that_issued_it() {
        let (keys, other) = (RefreshKeys::new(b"key"), RefreshKeys::new(b"other"));
        let wire = RefreshToken::generate("u", "s").unwrap().to_wire(&keys);
        assert!(RefreshToken::parse(wire.expose_secret(), &keys).is_ok());
        assert!(RefreshToken::parse(wire.expose_secret(), &other).is_err());
    }

    #[test]
    fn a_token_without_a_mac_parses_as_legacy() {
        let keys = RefreshKeys::new(b"key");
        let wire = RefreshToken::generate("u", "s").unwrap().to_wire(&keys);
        let legacy = wire.expose_secret().rsplit_once('.').unwrap().0;
        let parsed = RefreshToken::parse(legacy, &keys).unwrap();
        assert_eq!(parsed.provenance, Provenance::Legacy);
        assert_eq!(parsed.successor(&keys).provenance, Provenance::Issued);
    }

    #[test]
    fn the_mac_binds_the_user_and_the_session() {
        let keys = RefreshKeys::new(b"key");
        let wire = RefreshToken::generate("u", "s").unwrap().to_wire(&keys);
        let parts: Vec<&str> = wire.expose_secret().split('.').collect();
        for (user, sid) in [("v", "s"), ("u", "t")] {
            let moved = format!("{user}.{sid}.{}.{}", parts[2], parts[3]);
            assert!(RefreshToken::parse(&moved, &keys).is_err());
        }
    }
}
