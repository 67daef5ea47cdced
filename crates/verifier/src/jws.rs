//! What access tokens and DPoP proofs share as compact JWS: the strict three-segment shape
//! and the `typ` comparison.

/// The header, payload and signature of a compact JWS: exactly three non-empty segments of
/// base64url characters only (no padding, no whitespace); `None` for anything else (JWE,
/// the JSON serialisation, two or four segments).
pub(crate) fn compact_parts(jws: &str) -> Option<(&str, &str, &str)> {
    let mut parts = jws.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    [header, payload, signature]
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(is_base64url_byte))
        .then_some((header, payload, signature))
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether a `typ` header names the media type `application/<expected>`, written with or
/// without the `application/` prefix (RFC 7515 §4.1.9), in any case.
pub(crate) fn typ_is(typ: Option<&str>, expected: &str) -> bool {
    typ.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == expected || t.strip_prefix("application/") == Some(expected)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_base64url_segments_are_a_compact_jws() {
        assert_eq!(compact_parts("a.b-_.c9"), Some(("a", "b-_", "c9")));
        for bad in [
            "", "a.b", "a.b.c.d", "a..c", "a.b.", "a.b.c=", "a.b.c d", "a+b.c.d",
        ] {
            assert_eq!(compact_parts(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn typ_compares_media_types() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(typ_is(Some(typ), "at+jwt"), "{typ}");
        }
        for typ in [None, Some("jwt"), Some("text/at+jwt"), Some("application/")] {
            assert!(!typ_is(typ, "at+jwt"), "{typ:?}");
        }
    }
}
