//! The `htu` comparison of RFC 9449 §4.3: an absolute `http(s)` URL without its query and
//! fragment, normalised by syntax (RFC 3986 §6.2.2: case, percent-encoding, dot segments)
//! and by scheme (§6.2.3: default port, empty path), so that equivalent spellings compare
//! equal and nothing else does.

/// The normal form of `url`, or `None` when it is not an absolute `http`/`https` URL this
/// check can read (userinfo, a bad port or percent-escape, non-ASCII or control characters).
pub(crate) fn normalize(url: &str) -> Option<String> {
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    // RFC 9449 §4.3: the query and the fragment are not compared.
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return None;
    }
    let host = percent_normalize(&host.to_ascii_lowercase())?;
    let mut out = format!("{scheme}://{host}");
    match port {
        None | Some("") => {}
        Some(digits) => {
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let port: u32 = digits.trim_start_matches('0').parse().unwrap_or(0);
            if port > 65_535 {
                return None;
            }
            if port != default_port {
                out.push_str(&format!(":{port}"));
            }
        }
    }
    let path = remove_dot_segments(&percent_normalize(path)?);
    out.push_str(if path.is_empty() { "/" } else { &path });
    Some(out)
}

/// `host[:port]`, the host possibly an IP literal in brackets.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// Percent-escapes of unreserved characters decoded, the others in upper-case hex
/// (RFC 3986 §6.2.2.1-2); `None` for a `%` not followed by two hex digits.
fn percent_normalize(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(char::from(bytes[i]));
            i += 1;
            continue;
        }
        let hex = s.get(i + 1..i + 3)?;
        let byte = u8::from_str_radix(hex, 16).ok()?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
        i += 3;
    }
    Some(out)
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut out = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/" } else { &input[3..] };
            out.truncate(out.rfind('/').unwrap_or(0));
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn equivalent_spellings_normalize_to_one_url() {
        let canonical = "https://auth.example.com/v1/refresh";
        for spelling in [
            "https://auth.example.com/v1/refresh",
            "HTTPS://Auth.Example.COM/v1/refresh",
            "https://auth.example.com:443/v1/refresh",
            "https://auth.example.com:0443/v1/refresh",
            "https://auth.example.com/v1/%72efresh",
            "https://auth.example.com/v1/./refresh",
            "https://auth.example.com/v1/x/../refresh",
            "https://auth.example.com/v1/refresh?query=1",
            "https://auth.example.com/v1/refresh#fragment",
            "https://auth.example.com/v1/refresh?q#f",
        ] {
            assert_eq!(
                normalize(spelling).as_deref(),
                Some(canonical),
                "{spelling}"
            );
        }
        assert_eq!(
            normalize("http://a.example").as_deref(),
            Some("http://a.example/")
        );
        assert_eq!(
            normalize("http://a.example:80").as_deref(),
            Some("http://a.example/")
        );
        assert_eq!(
            normalize("http://a.example:8080/p%2fq").as_deref(),
            Some("http://a.example:8080/p%2Fq")
        );
        assert_eq!(
            normalize("http://[::1]:8080/x").as_deref(),
            Some("http://[::1]:8080/x")
        );
    }

    #[test]
    fn different_urls_stay_different() {
        let base = normalize("https://auth.example.com/v1/refresh");
        for other in [
            "http://auth.example.com/v1/refresh",
            "https://auth.example.com:8443/v1/refresh",
            "https://evil.example.com/v1/refresh",
            "https://auth.example.com/v1/Refresh",
            "https://auth.example.com/v1/refresh/",
            "https://auth.example.com/v2/refresh",
        ] {
            assert_ne!(normalize(other), base, "{other}");
        }
    }

    #[test]
    fn unreadable_urls_are_refused() {
        for bad in [
            "",
            "/v1/refresh",
            "auth.example.com/v1/refresh",
            "ftp://auth.example.com/x",
            "https://user:pw@auth.example.com/x",
            "https://auth.example.com:99999/x",
            "https://auth.example.com:8o/x",
            "https:///x",
            "https://auth.example.com/%zz",
            "https://auth.example.com/%4",
            "https://auth.example.com/a b",
            "https://auth.example.com/é",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }
}
