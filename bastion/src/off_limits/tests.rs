use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidr(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// 169.254.170.2 (the ECS credentials endpoint) in every spelling the bastion knows.
const CREDENTIALS_SPELLINGS: [(&str, &str); 13] = [
    ("169.254.170.2", "itself"),
    ("::ffff:169.254.170.2", "IPv4-mapped"),
    ("::ffff:a9fe:aa02", "IPv4-mapped"),
    ("::a9fe:aa02", "IPv4-compatible"),
    ("::ffff:0:a9fe:aa02", "IPv4-translated"),
    ("64:ff9b::a9fe:aa02", "NAT64"),
    ("64:ff9b:1:a9fe:aa:200::", "NAT64 local-use /48"),
    ("64:ff9b:1::a9fe:aa02", "NAT64 local-use /96"),
    ("2002:a9fe:aa02::1", "6to4"),
    ("2001:0:a9fe:aa02::1", "Teredo server"),
    ("2001:0:4136:e378:8000:63bf:5601:55fd", "Teredo client"),
    ("2001:db8::5efe:a9fe:aa02", "ISATAP"),
    ("2001:db8::200:5efe:a9fe:aa02", "ISATAP (universal)"),
];

#[test]
fn every_spelling_of_the_credentials_endpoint_is_off_limits() {
    for (text, how) in CREDENTIALS_SPELLINGS {
        let hit = reached_by(ip(text)).unwrap_or_else(|| panic!("{text} ({how}) got through"));
        assert_eq!(hit.range.net, cidr("169.254.0.0/16"), "{text}");
        if how != "itself" {
            assert_eq!(
                hit.via.map(|(_, v4)| v4),
                Some(Ipv4Addr::new(169, 254, 170, 2)),
                "{text}"
            );
            assert!(hit.to_string().starts_with("169.254.170.2 by "), "{hit}");
        }
    }
}

#[test]
fn ipv6_ranges_are_off_limits() {
    for text in [
        "fe80::1",
        "febf::1",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "fd00:ec2:ffff::1",
    ] {
        assert!(reached_by(ip(text)).is_some(), "{text}");
    }
}

#[test]
fn neighbours_are_not_off_limits() {
    for text in [
        "169.253.255.255",
        "169.255.0.0",
        "10.0.0.1",
        "127.0.0.1",
        "fec0::1",
        "fd00:ec3::1",
        "fd00::1",
        "::",
        "::1",
        "::ffff:10.1.2.3",
        "64:ff9b::a01:203",
        "2002:a01:203::1",
        "2001:db8::a9fe:aa02",
        "2001:db8::5efe:a01:203",
        "2600:1f18::1",
    ] {
        assert!(reached_by(ip(text)).is_none(), "{text}");
    }
}

#[test]
fn networks_inside_the_ranges_in_any_spelling() {
    for text in [
        "169.254.0.0/16",
        "169.254.170.0/24",
        "169.254.170.2/32",
        "fe80::/10",
        "fe80::/64",
        "fd00:ec2::/32",
        "fd00:ec2::254/128",
        "::ffff:169.254.0.0/112",
        "::169.254.0.0/112",
        "64:ff9b::a9fe:0/112",
        "64:ff9b::a9fe:aa02/128",
        "2002:a9fe::/32",
        "2002:a9fe:aa02::/48",
        "2001:0:a9fe::/48",
        "2001:db8::5efe:a9fe:0/112",
    ] {
        assert!(inside(cidr(text)).is_some(), "{text}");
    }
}

#[test]
fn broader_or_other_networks_are_not_inside() {
    for text in [
        "0.0.0.0/0",
        "169.254.0.0/15",
        "169.0.0.0/8",
        "::/0",
        "fe80::/9",
        "fc00::/7",
        "fd00::/8",
        "fd00:ec2::/31",
        "::ffff:0:0/96",
        "::/96",
        "64:ff9b::/96",
        "64:ff9b::a9fe:0/111",
        "2002::/16",
        "2002:a9fe::/31",
        "2001::/32",
        "10.0.0.0/8",
    ] {
        assert!(inside(cidr(text)).is_none(), "{text}");
    }
}
