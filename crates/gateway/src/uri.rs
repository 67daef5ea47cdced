//! The original request's URI as the rules see it: its path, decoded and normalised once, so
//! that no spelling of a path reaches an upstream under a rule other than the one the gateway
//! applied.
//!
//! The upstream reads the raw URI its proxy forwards, and servers read the same bytes
//! differently: one decodes `%2F` to `/`, another keeps it; one resolves `..`, another routes
//! `/admin/../public` to its `/admin` handler; Tomcat drops `;params` from segments. Where a
//! reading could put the request under another rule, the gateway refuses the URI (`400`)
//! rather than guess:
//!
//! * the query and the fragment are dropped; an absolute-form URI (`http://host/path`) is
//!   read for its path;
//! * every byte must be visible ASCII, and `\` is refused (some servers read it as `/`);
//! * percent-escapes are decoded once, so `/adm%69n` is `/admin`; an escape that is not two
//!   hex digits, and the escapes of `/` (`%2F`), `\` (`%5C`), `%` (`%25`: a server that
//!   decodes twice would see another path) and control characters are refused;
//! * a `.` or `..` segment, literal or encoded (`%2e%2e`), also before a `;` (`..;x`), is
//!   refused: clients resolve them before they send a request (RFC 3986 §5.2.4), so only a
//!   crafted request has one;
//! * empty segments are dropped: `//admin//x/` is `/admin/x`;
//! * a segment with a `;` is read both ways, whole and cut at the `;` (as Tomcat and Spring
//!   read it): [`OriginalPath::readings`] gives both, and the rules of both apply.

use std::fmt;

/// Why an original URI was refused (`400`). The message says what was wrong, not the URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The URI does not start with `/` (nor is it an absolute `http(s)` URL).
    #[error("the original URI is not a path")]
    NotAPath,
    /// A byte that is not visible ASCII, or a `\`.
    #[error("the original URI has a character that must be percent-encoded")]
    BadCharacter,
    /// A `%` not followed by two hex digits.
    #[error("the original URI has a malformed percent-escape")]
    BadEscape,
    /// `%2F`, `%5C`, `%25` or an encoded control character: servers disagree on what they
    /// mean.
    #[error("the original URI has an encoded slash, backslash, percent sign or control character")]
    AmbiguousEscape,
    /// A `.` or `..` segment.
    #[error("the original URI has a dot segment")]
    DotSegment,
}

/// The path of an original request, as the rules see it.
///
/// ```
/// use gateway::OriginalPath;
/// let path = OriginalPath::parse("//adm%69n/./x?debug=1").unwrap_err();
/// assert_eq!(path, gateway::UriError::DotSegment);
/// let path = OriginalPath::parse("//adm%69n//x/?debug=1").unwrap();
/// assert_eq!(path.to_string(), "/admin/x");
/// assert_eq!(path.raw(), "//adm%69n//x/");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalPath {
    /// The path as it was sent, without query and fragment (for DPoP's `htu`).
    raw: String,
    /// Decoded segments, without empty ones; `/` + segments joined by `/`.
    decoded: Vec<u8>,
    /// `decoded` with every segment cut at its first `;`, when a segment has one.
    without_params: Option<Vec<u8>>,
}

impl OriginalPath {
    /// Reads the path of `uri`, a request target as a proxy forwards it (origin form, with
    /// any query, or absolute form).
    ///
    /// ```
    /// use gateway::{OriginalPath, UriError};
    /// assert_eq!(OriginalPath::parse("/public/..%2Fadmin"), Err(UriError::AmbiguousEscape));
    /// assert_eq!(OriginalPath::parse("/public/%2e%2e/admin"), Err(UriError::DotSegment));
    /// assert_eq!(OriginalPath::parse("https://api.example/a?b").unwrap().to_string(), "/a");
    /// ```
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let uri = uri.split(['?', '#']).next().unwrap_or_default();
        let raw = strip_scheme_and_authority(uri)?;
        if !raw.starts_with('/') {
            return Err(UriError::NotAPath);
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
            return Err(UriError::BadCharacter);
        }
        let mut decoded = Vec::with_capacity(raw.len());
        let mut without_params: Option<Vec<u8>> = None;
        // Decoding never lengthens a segment: one allocation for all of them.
        let mut segment = Vec::with_capacity(raw.len());
        for raw_segment in raw.split('/').filter(|s| !s.is_empty()) {
            segment.clear();
            percent_decode(raw_segment.as_bytes(), &mut segment)?;
            let before_params = match segment.iter().position(|&b| b == b';') {
                Some(end) => &segment[..end],
                None => &segment[..],
            };
            if matches!(before_params, b"." | b"..") {
                return Err(UriError::DotSegment);
            }
            if before_params.len() != segment.len() && without_params.is_none() {
                without_params = Some(decoded.clone());
            }
            if let Some(path) = &mut without_params
                && !before_params.is_empty()
            {
                path.push(b'/');
                path.extend_from_slice(before_params);
            }
            decoded.push(b'/');
            decoded.extend_from_slice(&segment);
        }
        if decoded.is_empty() {
            decoded.push(b'/');
        }
        if let Some(path) = &mut without_params
            && path.is_empty()
        {
            path.push(b'/');
        }
        Ok(Self {
            raw: raw.to_owned(),
            decoded,
            without_params,
        })
    }

    /// The path as it was sent, without the query and the fragment.
    ///
    /// ```
    /// let path = gateway::OriginalPath::parse("/a%20b?x").unwrap();
    /// assert_eq!(path.raw(), "/a%20b");
    /// ```
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The ways the path may be read: the decoded path, and, when a segment has a `;`, the
    /// decoded path with every segment cut at its `;`.
    ///
    /// ```
    /// let path = gateway::OriginalPath::parse("/admin;jsessionid=1/x").unwrap();
    /// let readings: Vec<&[u8]> = path.readings().collect();
    /// assert_eq!(readings, [&b"/admin;jsessionid=1/x"[..], &b"/admin/x"[..]]);
    /// ```
    pub fn readings(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.decoded[..]).chain(self.without_params.as_deref())
    }
}

/// The decoded path (bytes that are not UTF-8 shown as `�`).
impl fmt::Display for OriginalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.decoded))
    }
}

/// The path of an absolute-form URI (`http://host/path` → `/path`); any other URI as it is.
fn strip_scheme_and_authority(uri: &str) -> Result<&str, UriError> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Ok(uri);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(UriError::NotAPath);
    }
    Ok(rest.find('/').map_or("/", |start| &rest[start..]))
}

/// Appends `segment`, percent-decoded, to `out`, refusing the escapes that servers read
/// differently.
fn percent_decode(segment: &[u8], out: &mut Vec<u8>) -> Result<(), UriError> {
    let mut bytes = segment.iter();
    while let Some(&b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.next().and_then(|&h| hex(h)),
            bytes.next().and_then(|&l| hex(l)),
        ) else {
            return Err(UriError::BadEscape);
        };
        let decoded = hi << 4 | lo;
        if matches!(decoded, b'/' | b'\\' | b'%') || decoded.is_ascii_control() {
            return Err(UriError::AmbiguousEscape);
        }
        out.push(decoded);
    }
    Ok(())
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failure report

    use super::*;

    fn normal(uri: &str) -> String {
        OriginalPath::parse(uri).unwrap().to_string()
    }

    #[test]
    fn a_path_is_decoded_once_and_its_empty_segments_dropped() {
        for (uri, path) in [
            ("/", "/"),
            ("/admin", "/admin"),
            ("/admin/", "/admin"),
            ("//admin//x///", "/admin/x"),
            ("/adm%69n", "/admin"),
            ("/ADM%69N", "/ADMiN"),
            ("/a%20b", "/a b"),
            ("/caf%C3%A9", "/café"),
            ("/a?b=../..%2F#c", "/a"),
            ("/a#frag/../x", "/a"),
            ("/.well-known/x", "/.well-known/x"),
            ("/...", "/..."),
            ("/a..b/.c", "/a..b/.c"),
            ("http://host:80/admin/x?y", "/admin/x"),
            ("HTTPS://host", "/"),
        ] {
            assert_eq!(normal(uri), path, "{uri}");
        }
    }

    #[test]
    fn the_raw_path_keeps_the_spelling_without_the_query() {
        let path = OriginalPath::parse("/a%2e/b;c?d#e").unwrap();
        assert_eq!(path.raw(), "/a%2e/b;c");
        let path = OriginalPath::parse("https://api.example/x?y").unwrap();
        assert_eq!(path.raw(), "/x");
    }

    #[test]
    fn a_spelling_that_servers_read_differently_is_refused() {
        for (uri, error) in [
            ("", UriError::NotAPath),
            ("admin", UriError::NotAPath),
            ("*", UriError::NotAPath),
            ("ftp://host/admin", UriError::NotAPath),
            ("/a b", UriError::BadCharacter),
            ("/a\\..\\admin", UriError::BadCharacter),
            ("/caf\u{e9}", UriError::BadCharacter),
            ("/a\t", UriError::BadCharacter),
            ("/%", UriError::BadEscape),
            ("/%2", UriError::BadEscape),
            ("/%zz", UriError::BadEscape),
            ("/public/..%2Fadmin", UriError::AmbiguousEscape),
            ("/public/..%2fadmin", UriError::AmbiguousEscape),
            ("/public%2F..%2F..%2Fadmin", UriError::AmbiguousEscape),
            ("/public/..%5Cadmin", UriError::AmbiguousEscape),
            ("/%2561dmin", UriError::AmbiguousEscape),
            ("/admin%00", UriError::AmbiguousEscape),
            ("/admin%0a", UriError::AmbiguousEscape),
            ("/admin%7F", UriError::AmbiguousEscape),
            ("/public/../admin", UriError::DotSegment),
            ("/admin/../public", UriError::DotSegment),
            ("/./admin", UriError::DotSegment),
            ("/public/%2e%2e/admin", UriError::DotSegment),
            ("/public/%2E%2E/admin", UriError::DotSegment),
            ("/public/.%2e/admin", UriError::DotSegment),
            ("/public/%2e/admin", UriError::DotSegment),
            ("/public/..;/admin", UriError::DotSegment),
            ("/public/..;x=1/admin", UriError::DotSegment),
            ("/public/.;/admin", UriError::DotSegment),
            ("/..", UriError::DotSegment),
            ("http://host/../admin", UriError::DotSegment),
        ] {
            assert_eq!(OriginalPath::parse(uri), Err(error), "{uri}");
        }
    }

    #[test]
    fn a_path_with_parameters_is_read_whole_and_without_them() {
        let readings = |uri: &str| -> Vec<String> {
            OriginalPath::parse(uri)
                .unwrap()
                .readings()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect()
        };
        assert_eq!(readings("/admin/x"), ["/admin/x"]);
        assert_eq!(readings("/admin;a=1/x"), ["/admin;a=1/x", "/admin/x"]);
        assert_eq!(readings("/a/b;c/d;e"), ["/a/b;c/d;e", "/a/b/d"]);
        assert_eq!(
            readings("/public;/admin"),
            ["/public;/admin", "/public/admin"]
        );
        assert_eq!(readings("/;x/admin"), ["/;x/admin", "/admin"]);
        assert_eq!(readings("/;x"), ["/;x", "/"]);
        assert_eq!(readings("/adm%3Bx/y"), ["/adm;x/y", "/adm/y"]);
    }
}
