//! A readable device name from a user agent ("Chrome on Linux", "Safari on iPhone"), for
//! the devices page. The parsing is woothee's (Project Woothee's dataset); what is ours is
//! the wording and the fallback for clients it does not know.

/// What woothee answers for a field it could not tell.
const UNKNOWN: &str = "UNKNOWN";

/// The name to show for a session's user agent.
pub(super) fn device_name(user_agent: &str) -> String {
    let user_agent = user_agent.trim();
    if user_agent.is_empty() {
        return "Unknown device".into();
    }
    let parsed = woothee::parser::Parser::new().parse(user_agent);
    let (browser, os) = match &parsed {
        // woothee's "crawler" and "misc" categories hold bots, feed readers and HTTP
        // libraries ("HTTP Library" for curl): their own product name says more.
        Some(p) if !matches!(p.category, "crawler" | "misc") => {
            (known(p.name), known(p.os).map(os_name))
        }
        _ => (None, None),
    };
    match (browser, os) {
        (Some(browser), Some(os)) => format!("{browser} on {os}"),
        (Some(browser), None) => browser.to_string(),
        (None, Some(os)) => format!("Browser on {os}"),
        // A program rather than a browser ("curl/8.5.0", "python-requests/2.32"): its
        // first product token.
        (None, None) => product(user_agent),
    }
}

fn known(field: &str) -> Option<&str> {
    (!field.is_empty() && field != UNKNOWN).then_some(field)
}

/// woothee's OS names, as people say them.
fn os_name(os: &str) -> &str {
    match os {
        "Mac OSX" => "macOS",
        other => other,
    }
}

/// The first product token of a user agent, without its version, at most 40 characters.
fn product(user_agent: &str) -> String {
    let token = user_agent.split_whitespace().next().unwrap_or(user_agent);
    let name = token.split('/').next().unwrap_or(token);
    name.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::device_name;

    #[test]
    fn common_browsers_get_a_browser_and_system_name() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
                "Firefox on Windows 10",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
                "Safari on macOS",
            ),
        ];
        for (user_agent, name) in cases {
            assert_eq!(device_name(user_agent), name, "{user_agent}");
        }
    }

    #[test]
    fn programs_and_empty_agents_get_a_plain_name() {
        assert_eq!(device_name("curl/8.5.0"), "curl");
        assert_eq!(device_name("python-requests/2.32.3"), "python-requests");
        assert_eq!(device_name(""), "Unknown device");
        assert_eq!(device_name("   "), "Unknown device");
        let long = "x".repeat(100);
        assert_eq!(device_name(&long).chars().count(), 40);
    }
}
