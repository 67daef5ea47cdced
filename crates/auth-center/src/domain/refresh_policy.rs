//! The refresh policy beyond rotation (`refresh` in the configuration): a cap on the
//! rotations of one session, and what a refresh from another network or user agent than
//! the session's last-seen one does. The session store decides both inside its atomic
//! rotation step (the `ROTATE` script, the memory store's lock), so no refresh can slip
//! between the check and the rotation. The rules that step applies are written here once;
//! the memory store calls them and the script mirrors them in Lua.

use std::net::IpAddr;

use super::client_ip::network;
use super::ports::{Caller, ContextChange, RotationPolicy};

/// What a refresh from another network, or with another user agent, than the session's
/// last-seen one does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangePolicy {
    /// Nothing: the refresh goes through (the default).
    #[default]
    Allow,
    /// The refresh goes through, and the audit event `refresh.context_changed` is written.
    Audit,
    /// The session ends (audit event `refresh.context_revoked`) and the refresh is refused
    /// with `401 refresh_context_changed`.
    Revoke,
}

impl ChangePolicy {
    /// Its name in the configuration, also passed to the rotation script.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangePolicy::Allow => "allow",
            ChangePolicy::Audit => "audit",
            ChangePolicy::Revoke => "revoke",
        }
    }
}

/// The network that `ip` counts as (`client_ip::network`), or `""` when `ip` is not an IP
/// address.
pub fn network_of(ip: &str, ipv4_prefix: u8, ipv6_prefix: u8) -> String {
    ip.parse::<IpAddr>()
        .map(|ip| network(ip, ipv4_prefix, ipv6_prefix))
        .unwrap_or_default()
}

/// Whether a session last seen at the IP `previous` is now on another network at
/// `current`, a network being the first `ipv4_prefix` or `ipv6_prefix` bits. A change
/// between IPv4 and IPv6 is a change; an IP that is unknown (empty) on either side is none.
/// Both networks are computed under the current settings, so new prefixes take effect at
/// once and are never taken for a move.
pub fn network_changed(previous: &str, current: &str, ipv4_prefix: u8, ipv6_prefix: u8) -> bool {
    let previous = network_of(previous, ipv4_prefix, ipv6_prefix);
    let current = network_of(current, ipv4_prefix, ipv6_prefix);
    !previous.is_empty() && !current.is_empty() && previous != current
}

/// Whether two user agents differ once every run of ASCII digits counts as the same: a
/// browser update (`Firefox/124.0` to `Firefox/125.0`) is no change, another browser, an
/// operating system or a tool is one.
pub fn user_agent_changed(previous: &str, current: &str) -> bool {
    shape(previous) != shape(current)
}

/// `user_agent` with every run of ASCII digits replaced by one `0` (Lua's
/// `string.gsub(ua, '%d+', '0')`).
fn shape(user_agent: &str) -> String {
    let mut out = String::with_capacity(user_agent.len());
    let mut in_digits = false;
    for c in user_agent.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('0');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// The caller against the session's last-seen client, under `policy`: what changed (only
/// the attributes whose policy is not `allow` are compared), and whether that ends the
/// session. The `ROTATE` script's `judge` is the same rule.
pub fn judge(
    policy: &RotationPolicy,
    last_ip: &str,
    last_user_agent: &str,
    caller: &Caller<'_>,
) -> (ContextChange, bool) {
    let network = policy.on_network_change != ChangePolicy::Allow
        && network_changed(last_ip, caller.ip, policy.ipv4_prefix, policy.ipv6_prefix);
    let user_agent = policy.on_user_agent_change != ChangePolicy::Allow
        && user_agent_changed(last_user_agent, caller.user_agent);
    let revoke = (network && policy.on_network_change == ChangePolicy::Revoke)
        || (user_agent && policy.on_user_agent_change == ChangePolicy::Revoke);
    let change = ContextChange {
        network,
        user_agent,
        previous_ip: last_ip.into(),
        previous_user_agent: last_user_agent.into(),
    };
    (change, revoke)
}

/// The audit detail of a change: the old and new network (with the addresses) and user
/// agent. User agents are quoted with escapes, so the text stays one line; no token or
/// hash is ever part of it.
pub fn describe(change: &ContextChange, caller: &Caller<'_>, policy: &RotationPolicy) -> String {
    let network = |ip: &str| network_of(ip, policy.ipv4_prefix, policy.ipv6_prefix);
    let mut parts = Vec::new();
    if change.network {
        parts.push(format!(
            "network {} ({}) -> {} ({})",
            network(&change.previous_ip),
            change.previous_ip,
            network(caller.ip),
            caller.ip
        ));
    }
    if change.user_agent {
        parts.push(format!(
            "user agent {:?} -> {:?}",
            change.previous_user_agent, caller.user_agent
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_compared_under_the_current_prefixes() {
        let changed = |a: &str, b: &str| network_changed(a, b, 24, 64);
        assert!(!changed("198.51.100.7", "198.51.100.200"));
        assert!(changed("198.51.100.7", "198.51.101.7"));
        assert!(!changed("2001:db8:1:2::1", "2001:db8:1:2:ff::1"));
        assert!(changed("2001:db8:1:2::1", "2001:db8:1:3::1"));
        // A change of family is a change; a mapped IPv4 address is the IPv4 address.
        assert!(changed("198.51.100.7", "2001:db8::1"));
        assert!(changed("2001:db8::1", "198.51.100.7"));
        assert!(!changed("198.51.100.7", "::ffff:198.51.100.9"));
        // Unknown addresses are never compared.
        assert_eq!(network_of("not an ip", 24, 64), "");
        assert!(!changed("", "198.51.100.7"));
        assert!(!changed("198.51.100.7", ""));
        // Other prefixes, other networks.
        assert!(!network_changed("198.51.100.7", "198.51.7.7", 16, 64));
        assert!(network_changed("198.51.100.7", "198.51.100.8", 32, 64));
        assert!(!network_changed("198.51.100.7", "203.0.113.9", 0, 64));
        assert!(!network_changed(
            "2001:db8:1:2::1",
            "2001:db8:1:3::1",
            24,
            48
        ));
    }

    #[test]
    fn user_agents_are_compared_without_their_numbers() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0";
        let updated = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
        assert!(!user_agent_changed(firefox, updated));
        assert!(!user_agent_changed(
            "Chrome/99.0.1.2",
            "Chrome/124.0.6367.91"
        ));
        assert!(user_agent_changed(firefox, "curl/8.5.0"));
        assert!(user_agent_changed("", "curl/8.5.0"));
        assert!(user_agent_changed("Chrome/124", "Chrome/124 Edg/124"));
        assert!(!user_agent_changed("", ""));
        assert_eq!(shape("a1b22c333é4"), "a0b0c0é0");
    }

    #[test]
    fn only_attributes_under_a_policy_are_judged_and_revoke_wins() {
        let caller = Caller {
            ip: "203.0.113.9",
            user_agent: "curl/8.5.0",
        };
        let policy = |net, ua| RotationPolicy {
            max_rotations: 0,
            on_network_change: net,
            on_user_agent_change: ua,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
        };
        let judged = |p: RotationPolicy| judge(&p, "198.51.100.7", "Firefox/124", &caller);
        let (change, revoke) = judged(policy(ChangePolicy::Allow, ChangePolicy::Allow));
        assert!(!change.any() && !revoke);
        let (change, revoke) = judged(policy(ChangePolicy::Audit, ChangePolicy::Allow));
        assert!(change.network && !change.user_agent && !revoke);
        let strict = policy(ChangePolicy::Audit, ChangePolicy::Revoke);
        let (change, revoke) = judged(strict);
        assert!(change.network && change.user_agent && revoke);
        assert_eq!(
            describe(&change, &caller, &strict),
            "network 198.51.100.0/24 (198.51.100.7) -> 203.0.113.0/24 (203.0.113.9); \
             user agent \"Firefox/124\" -> \"curl/8.5.0\""
        );
    }
}
