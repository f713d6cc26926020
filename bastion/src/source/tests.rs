//! IPv6 clients group by their /64 (or the configured prefix), IPv4 by address, mapped
//! addresses count as IPv4, and bad sizes are refused with the expected form.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn default_groups_ipv6_by_64_and_ipv4_by_address() {
    let blocks = NetBlockSize::default();
    assert_eq!(
        blocks.source(ip("2001:db8:1:2::1")),
        blocks.source(ip("2001:db8:1:2:ffff::9"))
    );
    assert_ne!(
        blocks.source(ip("2001:db8:1:2::1")),
        blocks.source(ip("2001:db8:1:3::1"))
    );
    assert_ne!(
        blocks.source(ip("192.0.2.1")),
        blocks.source(ip("192.0.2.2"))
    );
    assert_eq!(
        blocks.source(ip("::ffff:192.0.2.1")),
        blocks.source(ip("192.0.2.1"))
    );
    assert_eq!(blocks.source(ip("192.0.2.1")).to_string(), "192.0.2.1");
    assert_eq!(
        blocks.source(ip("2001:db8:1:2::1")).to_string(),
        "2001:db8:1:2::/64"
    );
}

#[test]
fn configured_sizes_apply_and_bad_ones_are_explained() {
    let blocks = NetBlockSize::parse("24:48").unwrap();
    assert_eq!(
        blocks.source(ip("192.0.2.1")),
        blocks.source(ip("192.0.2.200"))
    );
    assert_eq!(
        blocks.source(ip("2001:db8:1:2::1")),
        blocks.source(ip("2001:db8:1:ff::1"))
    );
    assert_eq!(blocks.to_string(), "24:48");
    assert_eq!(NetBlockSize::parse("32").unwrap(), NetBlockSize::default());
    for bad in ["0:64", "33:64", "32:129", "x", "32:", ""] {
        let e = NetBlockSize::parse(bad).unwrap_err();
        assert!(e.contains("32:64"), "{bad}: {e}");
    }
}
