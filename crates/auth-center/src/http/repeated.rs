//! Refuses a JSON member, form parameter or query parameter that appears more than once,
//! at any depth, before anything is deserialised.
//!
//! Read through a map, the last occurrence silently wins: `{"username":"a","username":"b"}`
//! would log in as `b`, and `{"roles":["x"],"roles":["admin"]}` would grant `admin` to a
//! reviewer who read the first member. Two parsers that pick different occurrences disagree
//! about what was sent (RFC 8259 §4 leaves duplicate names undefined; RFC 6749 §3.2 says
//! request parameters MUST NOT be included more than once). So a repeat is refused.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The top-level value of a JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JsonKind {
    /// `{...}`
    Object,
    /// An array, string, number, boolean or null.
    Other,
}

/// Walks a JSON text and fails on the first object that repeats a member name (compared
/// after unescaping, so `"a"` and `"\u0061"` are the same member). A repeat is a data error
/// (`serde_json::Error::is_data`) naming the member and its position; a syntax error is
/// returned as it is.
pub(super) fn check_json(body: &[u8]) -> Result<JsonKind, serde_json::Error> {
    serde_json::from_slice::<Walk>(body).map(|Walk(kind)| kind)
}

/// Fails on the first `application/x-www-form-urlencoded` parameter (of a form body or a
/// query string) whose name, after percent-decoding, appears more than once.
pub(super) fn check_params(encoded: &[u8]) -> Result<(), String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(encoded).map_err(|e| e.to_string())?;
    let mut seen = HashSet::with_capacity(pairs.len());
    for (name, _) in pairs {
        if seen.contains(&name) {
            return Err(format!("parameter {name:?} appears more than once"));
        }
        seen.insert(name);
    }
    Ok(())
}

/// Any JSON value, walked only to find repeated members.
struct Walk(JsonKind);

impl<'de> Deserialize<'de> for Walk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WalkVisitor)
    }
}

struct WalkVisitor;

impl<'de> Visitor<'de> for WalkVisitor {
    type Value = Walk;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Walk, E> {
        Ok(Walk(JsonKind::Other))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Walk, E> {
        Ok(Walk(JsonKind::Other))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Walk, E> {
        Ok(Walk(JsonKind::Other))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Walk, E> {
        Ok(Walk(JsonKind::Other))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Walk, E> {
        Ok(Walk(JsonKind::Other))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Walk, E> {
        Ok(Walk(JsonKind::Other))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walk, A::Error> {
        while seq.next_element::<Walk>()?.is_some() {}
        Ok(Walk(JsonKind::Other))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walk, A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if seen.contains(&name) {
                return Err(de::Error::custom(format_args!(
                    "member {name:?} appears more than once"
                )));
            }
            map.next_value::<Walk>()?;
            seen.insert(name);
        }
        Ok(Walk(JsonKind::Object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_repeated_at_any_depth_is_found_and_named() {
        for (body, name) in [
            (r#"{"a":1,"a":2}"#, "a"),
            (r#"{"a":1,"\u0061":2}"#, "a"),
            (r#"{"x":{"b":[1,{"c":true,"c":false}]}}"#, "c"),
            (r#"[{"k":null},{"k":1,"k":2}]"#, "k"),
            (r#"{"outer":{"a":1},"outer":{"a":1}}"#, "outer"),
        ] {
            let e = check_json(body.as_bytes()).unwrap_err();
            assert!(e.is_data(), "{body}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("member {name:?} appears more than once")),
                "{body}: {e}"
            );
        }
    }

    #[test]
    fn the_same_name_in_different_objects_is_no_repeat() {
        for (body, kind) in [
            (
                r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#,
                JsonKind::Object,
            ),
            (r#"{}"#, JsonKind::Object),
            (r#"[1,"x",null,true,1.5,-3]"#, JsonKind::Other),
            (r#""text""#, JsonKind::Other),
        ] {
            assert_eq!(check_json(body.as_bytes()).unwrap(), kind, "{body}");
        }
    }

    #[test]
    fn malformed_json_is_a_syntax_error_not_a_repeat() {
        // (A repeat before the point where the syntax breaks is reported as the repeat.)
        for body in [r#"{"a":1,"b""#, "", "not json", r#"{"a":1}}"#, "{'a':1}"] {
            let e = check_json(body.as_bytes()).unwrap_err();
            assert!(!e.is_data(), "{body}: {e}");
        }
    }

    #[test]
    fn a_repeated_form_or_query_parameter_is_found_after_percent_decoding() {
        assert!(check_params(b"token=a&token_type_hint=b&scope=c").is_ok());
        assert!(check_params(b"").is_ok());
        for (encoded, name) in [
            ("token=a&token=b", "token"),
            ("token=a&t%6Fken=b", "token"),
            ("a=1&b&b=2", "b"),
        ] {
            assert_eq!(
                check_params(encoded.as_bytes()),
                Err(format!("parameter {name:?} appears more than once")),
                "{encoded}"
            );
        }
    }
}
