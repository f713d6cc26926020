//! `bastion::destination_policy::DestinationPolicy::parse` (the `BASTION_PERMIT_OPEN` rule
//! list) on arbitrary text, then `check_addr` for fixed and derived addresses and ports.
//!
//! Checks: no panic; every refusal has a message; the default policy (no rules) refuses
//! loopback, link-local (metadata) and unspecified destinations (the built-in denials, which
//! only a rule inside a denied range can lift); every policy that parses refuses the
//! off-limits ranges (the ECS credentials endpoint in several spellings, `fe80::1`,
//! `fd00:ec2::254`); an IPv4-mapped address gets the same answer as the IPv4 address it stands
//! for.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bastion::destination_policy::DestinationPolicy;
use libfuzzer_sys::fuzz_target;

const ALWAYS_REFUSED: [IpAddr; 5] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
];

/// Refused by every policy, whatever its rules.
const OFF_LIMITS: [IpAddr; 6] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0xa9fe, 0xaa02)),
    IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xa9fe, 0xaa02)),
    IpAddr::V6(Ipv6Addr::new(0x2002, 0xa9fe, 0xaa02, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254)),
];

fn addresses(data: &[u8]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = vec![
        Ipv4Addr::new(10, 0, 1, 5).into(),
        Ipv4Addr::new(172, 16, 0, 9).into(),
        Ipv4Addr::new(192, 168, 3, 4).into(),
        Ipv4Addr::new(8, 8, 8, 8).into(),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).into(),
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0x0a00, 0x0105).into(),
    ];
    for chunk in data.chunks_exact(4).take(4) {
        out.push(Ipv4Addr::from(<[u8; 4]>::try_from(chunk).expect("4 bytes")).into());
    }
    for chunk in data.chunks_exact(16).take(2) {
        out.push(Ipv6Addr::from(<[u8; 16]>::try_from(chunk).expect("16 bytes")).into());
    }
    out
}

fn check_all(policy: &DestinationPolicy, hosts: &[&str], ips: &[IpAddr], ports: &[u16]) {
    for &port in ports {
        for &ip in ips {
            for host in hosts.iter().copied().chain([ip.to_string().as_str()]) {
                let answer = policy.check_addr(host, ip, port);
                if let Err(refusal) = &answer {
                    assert!(!refusal.message().is_empty());
                }
                if let IpAddr::V4(v4) = ip {
                    let mapped = policy.check_addr(host, IpAddr::V6(v4.to_ipv6_mapped()), port);
                    assert_eq!(mapped.is_ok(), answer.is_ok(), "{host} {ip}:{port}");
                }
            }
        }
        let unruled = ALWAYS_REFUSED
            .iter()
            .copied()
            .filter(|_| policy.rule_count() == 0);
        for ip in unruled.chain(OFF_LIMITS) {
            for host in hosts {
                assert!(
                    policy.check_addr(host, ip, port).is_err(),
                    "{host} {ip}:{port} allowed"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = DestinationPolicy::parse(spec) else {
        return;
    };
    let _ = (policy.rule_count(), policy.describe());
    // Host names from the rules themselves, so name rules get exercised.
    let mut hosts = vec!["db.internal", "localhost", "[fd00::1]"];
    hosts.extend(
        spec.split([',', ':', ' '])
            .filter(|h| !h.is_empty())
            .take(3),
    );
    let ports = [
        22,
        5432,
        u16::from_be_bytes([data.first().copied().unwrap_or(0), 1]),
    ];
    check_all(&policy, &hosts, &addresses(data), &ports);
});
