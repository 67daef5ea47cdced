//! Small cryptographic helpers on aws-lc-rs: random ids, SHA-256, HMAC.

use aws_lc_rs::{digest, hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::AuthError;

/// `n` random bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes)
        .map_err(|e| AuthError::internal_because("the random number generator failed", e))?;
    Ok(bytes)
}

/// A 128-bit random identifier, base64url (22 characters).
pub fn random_id() -> Result<String, AuthError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<16>()?))
}

/// SHA-256 of `data`, base64url.
pub fn sha256_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, data))
}

/// Bytes of a truncated HMAC tag carried in a token (128 bits).
pub const TAG_BYTES: usize = 16;

/// An HMAC-SHA-256 key made ready once (its inner and outer pads hashed), for keys used on
/// every request: making it costs about as much as a short MAC itself. aws-lc wipes the
/// state when it is dropped.
///
/// ```
/// use auth_center::domain::crypto::{MacKey, TAG_BYTES};
/// let key = MacKey::new(b"key");
/// assert_eq!(key.sign_128(b"data"), key.sign(b"data")[..TAG_BYTES]);
/// ```
#[derive(Clone)]
pub struct MacKey(hmac::Key);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// The key `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// HMAC-SHA-256 of `data`.
    pub fn sign(&self, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.0, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// HMAC-SHA-256 of `data`, truncated to [`TAG_BYTES`].
    pub fn sign_128(&self, data: &[u8]) -> [u8; TAG_BYTES] {
        let mut out = [0u8; TAG_BYTES];
        out.copy_from_slice(&self.sign(data)[..TAG_BYTES]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2: the tokens already issued keep their MACs.
    #[test]
    fn a_ready_key_gives_the_rfc_4231_tags() {
        let key = MacKey::new(b"Jefe");
        let tag = key.sign(b"what do ya want for nothing?");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(key.sign_128(b"what do ya want for nothing?"), tag[..16]);
    }
}
