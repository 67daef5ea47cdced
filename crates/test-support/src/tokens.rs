//! The auth-center's token response, typed, for tests of every crate.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The body of a successful login or refresh.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tokens {
    /// The access JWT.
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// `Bearer`, or `DPoP` for a DPoP-bound access token (RFC 9449 §5).
    pub token_type: String,
    /// Access-token lifetime, seconds.
    pub expires_in: u64,
    /// The session id.
    pub session_id: String,
}

impl Tokens {
    /// The access token's claims (decoded only to read them; the server verified them).
    pub fn claims(&self) -> Value {
        decode_segment(&self.access_token, 1)
    }

    /// The access token's JOSE header.
    pub fn header(&self) -> Value {
        decode_segment(&self.access_token, 0)
    }

    /// The access token's `kid`.
    pub fn kid(&self) -> String {
        self.header()["kid"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The access token's `sub`.
    pub fn user_id(&self) -> String {
        self.claims()["sub"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Segment `index` (0 header, 1 payload) of a compact JWS as JSON; `Null` if malformed.
pub fn decode_segment(jwt: &str, index: usize) -> Value {
    jwt.split('.')
        .nth(index)
        .and_then(|segment| URL_SAFE_NO_PAD.decode(segment).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}
