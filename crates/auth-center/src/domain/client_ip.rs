//! Which IP is the client's: the TCP peer, unless the peer is a trusted proxy, in which
//! case the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address or a CIDR range. In configuration it is written as a string
/// (`"10.0.0.0/8"`, `"::1"`); anything else is refused when the configuration loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl TryFrom<String> for IpRange {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).ok_or_else(|| format!("{s:?} is not an IP address or CIDR range"))
    }
}

impl IpRange {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `::1` or `fd00::/8`.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.trim().parse::<IpAddr>().ok()?,
                p.trim().parse::<u8>().ok()?,
            ),
            None => {
                let a = s.trim().parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self {
            network: addr,
            prefix,
        })
    }

    /// Whether `ip` is inside the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.network), ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                masked(u128::from(u32::from(n)) << 96, self.prefix)
                    == masked(u128::from(u32::from(i)) << 96, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                masked(u128::from(n), self.prefix) == masked(u128::from(i), self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix.min(128))))
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The network of `ip`, written `address/prefix`: its first `ipv4_prefix` bits for IPv4
/// (an IPv4-mapped IPv6 address counts as IPv4), its first `ipv6_prefix` bits for IPv6.
/// `network(203.0.113.9, 24, 64)` is `203.0.113.0/24`.
pub fn network(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let prefix = ipv4_prefix.min(32);
            let bits = masked(u128::from(u32::from(v4)) << 96, prefix) >> 96;
            let address = Ipv4Addr::from(u32::try_from(bits).unwrap_or(0));
            format!("{address}/{prefix}")
        }
        IpAddr::V6(v6) => {
            let prefix = ipv6_prefix.min(128);
            let address = Ipv6Addr::from(masked(u128::from(v6), prefix));
            format!("{address}/{prefix}")
        }
    }
}

/// Whether `ip` is one of the `trusted` proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[IpRange]) -> bool {
    trusted.iter().any(|r| r.contains(ip))
}

/// The client IP for a request from `peer` carrying `forwarded_for` (the raw
/// `X-Forwarded-For` values, comma-separated, possibly several headers joined).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| is_trusted(ip, trusted);
    if !is_trusted(peer) {
        return canonical(peer);
    }
    let Some(header) = forwarded_for else {
        return canonical(peer);
    };
    // Walk from the right: each hop was appended by the proxy in front of it.
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return canonical(ip),
            Err(_) => break, // garbage: do not believe anything left of it
        }
    }
    canonical(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_addresses_inside_them_only() {
        let r = IpRange::parse("10.1.0.0/16").unwrap();
        assert!(r.contains(ip("10.1.200.3")));
        assert!(!r.contains(ip("10.2.0.1")));
        assert!(r.contains(ip("::ffff:10.1.0.9")));
        assert!(IpRange::parse("::1").unwrap().contains(ip("::1")));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(IpRange::parse("10.0.0.0/33").is_none());
        assert!(IpRange::parse("nonsense").is_none());
    }

    #[test]
    fn a_network_is_the_address_cut_to_its_family_s_prefix() {
        assert_eq!(network(ip("203.0.113.9"), 24, 64), "203.0.113.0/24");
        assert_eq!(network(ip("203.0.113.9"), 16, 64), "203.0.0.0/16");
        assert_eq!(network(ip("203.0.113.9"), 32, 64), "203.0.113.9/32");
        assert_eq!(network(ip("203.0.113.9"), 0, 64), "0.0.0.0/0");
        assert_eq!(network(ip("::ffff:203.0.113.9"), 24, 64), "203.0.113.0/24");
        assert_eq!(
            network(ip("2001:db8:1:2:3:4:5:6"), 24, 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            network(ip("2001:db8:1:2:3:4:5:6"), 24, 48),
            "2001:db8:1::/48"
        );
        assert_eq!(
            network(ip("2001:db8:1:2:3:4:5:6"), 24, 128),
            "2001:db8:1:2:3:4:5:6/128"
        );
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let trusted = [IpRange::parse("10.0.0.1").unwrap()];
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = [IpRange::parse("10.0.0.0/8").unwrap()];
        // The client forged "1.1.1.1"; the proxy appended the real client address.
        let header = "1.1.1.1, 198.51.100.7, 10.0.0.2";
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some(header), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("garbage"), &trusted),
            ip("10.0.0.1")
        );
    }
}
