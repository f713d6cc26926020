//! Which addresses may be published, and the record types they go in.
//!
//! A discovered address (EC2, echo URL, metadata) must be globally routable: a private,
//! shared (CGNAT), loopback, link-local, documentation or reserved address means discovery went
//! wrong (an echo service behind a proxy, a task without a public IP), and publishing it would
//! send users nowhere. An explicit `DNS_IP` is the operator's choice (a private hosted zone may
//! want a private address) and only has to be a unicast address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::{Error, Result};

/// A Route 53 record type we publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    A,
    Aaaa,
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
        }
    }

    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => RecordType::A,
            IpAddr::V6(_) => RecordType::Aaaa,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `DNS_RECORD_TYPES`: `A`, `AAAA` or `A,AAAA` (order and case free, no repeats).
pub fn parse_record_types(value: &str) -> Result<Vec<RecordType>> {
    let mut types = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let t = match item.to_ascii_uppercase().as_str() {
            "A" => RecordType::A,
            "AAAA" => RecordType::Aaaa,
            _ => {
                return Err(Error::config(format!(
                    "DNS_RECORD_TYPES: \"{item}\" is not a record type; use A, AAAA or A,AAAA"
                )))
            }
        };
        if types.contains(&t) {
            return Err(Error::config(format!(
                "DNS_RECORD_TYPES: {t} is listed twice in \"{value}\""
            )));
        }
        types.push(t);
    }
    if types.is_empty() {
        return Err(Error::config(
            "DNS_RECORD_TYPES: empty; use A, AAAA or A,AAAA",
        ));
    }
    types.sort();
    Ok(types)
}

/// Why an address may not be published, or `None` when it is globally routable.
pub fn not_global(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => not_global_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => not_global_v4(v4).or(Some("an IPv4-mapped IPv6 address")),
            None => not_global_v6(v6),
        },
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn not_global_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: [([u8; 4], u32, &str); 15] = [
        ([0, 0, 0, 0], 8, "in 0.0.0.0/8 (this network)"),
        ([10, 0, 0, 0], 8, "private (10.0.0.0/8)"),
        (
            [100, 64, 0, 0],
            10,
            "shared address space (100.64.0.0/10, carrier-grade NAT)",
        ),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local (169.254.0.0/16)"),
        ([172, 16, 0, 0], 12, "private (172.16.0.0/12)"),
        (
            [192, 0, 0, 0],
            24,
            "IETF protocol assignments (192.0.0.0/24)",
        ),
        ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
        (
            [192, 88, 99, 0],
            24,
            "deprecated 6to4 relay anycast (192.88.99.0/24)",
        ),
        ([192, 168, 0, 0], 16, "private (192.168.0.0/16)"),
        ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
        ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
        ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4) or broadcast"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn not_global_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        Some("unspecified (::)")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if s[0] & 0xe000 != 0x2000 {
        // Global unicast is 2000::/3; everything else (ULA fc00::/7, link-local fe80::/10,
        // multicast ff00::/8, NAT64 64:ff9b::/96, ...) cannot be a task's public address.
        Some("outside global unicast 2000::/3 (unique-local, link-local, multicast, ...)")
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some("documentation (2001:db8::/32)")
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        Some("IETF protocol assignments (2001::/23)")
    } else if s[0] == 0x2002 {
        Some("6to4 (2002::/16)")
    } else {
        None
    }
}

/// Parse and check an address found by discovery (`source` says where it came from).
pub fn global_from(source: &str, text: &str) -> Result<IpAddr> {
    let ip = IpAddr::from_str(text.trim()).map_err(|_| {
        Error::runtime(format!(
            "{source} returned \"{}\", which is not an IP address",
            printable(text)
        ))
    })?;
    if let Some(why) = not_global(ip) {
        return Err(Error::runtime(format!(
            "{source} returned {ip}, which is {why}, not a public address; it cannot be the \
             task's public IP"
        )));
    }
    Ok(ip)
}

/// `DNS_IP`: up to one IPv4 and one IPv6 address, comma-separated; unicast only.
pub fn parse_explicit(value: &str) -> Result<Vec<IpAddr>> {
    let mut out: Vec<IpAddr> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ip = IpAddr::from_str(item).map_err(|_| {
            Error::config(format!(
                "DNS_IP: \"{}\" is not an IP address; use e.g. 203.0.113.10 or \
                 203.0.113.10,2600:1f18::10",
                printable(item)
            ))
        })?;
        let bad = match ip {
            IpAddr::V4(v4) => {
                v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.is_loopback()
            }
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast() || v6.is_loopback(),
        };
        if bad {
            return Err(Error::config(format!(
                "DNS_IP: {ip} is not a unicast address anyone could connect to"
            )));
        }
        if out.iter().any(|o| RecordType::of(*o) == RecordType::of(ip)) {
            return Err(Error::config(format!(
                "DNS_IP: more than one {} address in \"{value}\"; give at most one IPv4 and one \
                 IPv6 address",
                RecordType::of(ip)
            )));
        }
        out.push(ip);
    }
    if out.is_empty() {
        return Err(Error::config(
            "DNS_IP: empty; unset it to discover the address",
        ));
    }
    Ok(out)
}

/// At most 60 printable characters of untrusted text, for error messages.
pub fn printable(text: &str) -> String {
    let cleaned: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(60)
        .collect();
    if text.trim().chars().count() > 60 {
        format!("{cleaned}…")
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_pass_and_the_rest_say_why() {
        for ok in [
            "52.95.110.1",
            "3.5.140.2",
            "8.8.8.8",
            "2600:1f18:4a3:6901::1",
        ] {
            assert_eq!(not_global(ok.parse().unwrap()), None, "{ok}");
        }
        for (bad, why) in [
            ("10.1.2.3", "private"),
            ("172.31.42.189", "private"),
            ("192.168.1.1", "private"),
            ("100.64.1.1", "shared"),
            ("127.0.0.1", "loopback"),
            ("169.254.170.2", "link-local"),
            ("203.0.113.7", "documentation"),
            ("0.1.2.3", "this network"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("::1", "loopback"),
            ("fd00:ec2::254", "unique-local"),
            ("fe80::1", "link-local"),
            ("2001:db8::1", "documentation"),
            ("::ffff:10.0.0.1", "private"),
        ] {
            let got = not_global(bad.parse().unwrap());
            assert!(got.is_some_and(|w| w.contains(why)), "{bad}: {got:?}");
        }
    }

    #[test]
    fn discovered_text_must_be_one_public_address() {
        assert_eq!(
            global_from("echo", " 52.95.110.1\n").unwrap(),
            "52.95.110.1".parse::<IpAddr>().unwrap()
        );
        let e = global_from("echo", "10.0.0.5").unwrap_err();
        assert!(e.message.contains("private"), "{e}");
        let e = global_from("echo", "<html>oops</html>").unwrap_err();
        assert!(e.message.contains("not an IP address"), "{e}");
        assert!(global_from("echo", "52.95.110.1 52.95.110.2").is_err());
        assert!(global_from("echo", "").is_err());
    }

    #[test]
    fn explicit_addresses() {
        assert_eq!(parse_explicit("10.0.0.5").unwrap().len(), 1);
        assert_eq!(
            parse_explicit("52.95.110.1, 2600:1f18::1").unwrap().len(),
            2
        );
        assert!(parse_explicit("52.95.110.1,52.95.110.2").is_err());
        assert!(parse_explicit("0.0.0.0").is_err());
        assert!(parse_explicit("nope")
            .unwrap_err()
            .message
            .starts_with("DNS_IP:"));
    }

    #[test]
    fn record_types() {
        assert_eq!(parse_record_types("a").unwrap(), vec![RecordType::A]);
        assert_eq!(
            parse_record_types("AAAA,A").unwrap(),
            vec![RecordType::A, RecordType::Aaaa]
        );
        assert!(parse_record_types("A,A").is_err());
        assert!(parse_record_types("CNAME")
            .unwrap_err()
            .message
            .contains("DNS_RECORD_TYPES"));
        assert!(parse_record_types("").is_err());
    }
}
