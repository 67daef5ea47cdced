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

/// HMAC-SHA-256 of `data` under `key`, truncated to [`TAG_BYTES`] (a tag carried in a token).
pub fn hmac_sha256_128(key: &[u8], data: &[u8]) -> [u8; TAG_BYTES] {
    let full = hmac_sha256(key, data);
    let mut out = [0u8; TAG_BYTES];
    out.copy_from_slice(&full[..TAG_BYTES]);
    out
}

/// HMAC-SHA-256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}
