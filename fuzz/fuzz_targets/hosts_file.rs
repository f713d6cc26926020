//! `bastion::client_policy::ClientPolicy::build` with the input as a hosts.allow and/or
//! hosts.deny file and as the allow/deny CIDR lists, then `check` on fixed and derived
//! addresses.
//!
//! Byte 0 picks where the rest goes (allow file, deny file, both, the CIDR lists). Checks: no
//! panic; an allow decision from a rule names it and a deny always names its rule; a policy
//! with no deny rules allows everyone; IPv4-mapped addresses get the IPv4 verdict.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use bastion::client_policy::{ClientPolicy, Decision};
use libfuzzer_sys::fuzz_target;

/// Fixed addresses that rules commonly name, and some taken from the input's bytes.
fn addresses(data: &[u8]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = vec![
        Ipv4Addr::new(10, 0, 0, 1).into(),
        Ipv4Addr::new(192, 168, 1, 20).into(),
        Ipv4Addr::new(203, 0, 113, 9).into(),
        Ipv4Addr::LOCALHOST.into(),
        Ipv4Addr::UNSPECIFIED.into(),
        Ipv4Addr::BROADCAST.into(),
        Ipv6Addr::LOCALHOST.into(),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).into(),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42).into(),
    ];
    for chunk in data.chunks_exact(4).take(4) {
        out.push(Ipv4Addr::from(<[u8; 4]>::try_from(chunk).expect("4 bytes")).into());
    }
    for chunk in data.chunks_exact(16).take(2) {
        out.push(Ipv6Addr::from(<[u8; 16]>::try_from(chunk).expect("16 bytes")).into());
    }
    out
}

fn check_all(policy: &ClientPolicy, ips: &[IpAddr]) {
    let _ = policy.summary();
    for &ip in ips {
        let decision = policy.check(ip);
        if let Decision::Deny { rule } = &decision {
            assert!(!rule.is_empty(), "a denial names no rule");
            assert!(
                !policy.is_permit_all(),
                "denied by a policy with no deny rule"
            );
        }
        if let IpAddr::V4(v4) = ip {
            let mapped = policy.check(IpAddr::V6(v4.to_ipv6_mapped()));
            assert_eq!(mapped, decision, "{ip} and its IPv4-mapped form differ");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let allow = Path::new("/etc/hosts.allow");
    let deny = Path::new("/etc/hosts.deny");
    let policy = match control % 5 {
        0 => ClientPolicy::build("", "", Some((allow, text)), None),
        1 => ClientPolicy::build("", "", None, Some((deny, text))),
        2 => ClientPolicy::build("", "", Some((allow, text)), Some((deny, text))),
        3 => ClientPolicy::build(text, "", None, None),
        _ => ClientPolicy::build("10.0.0.0/8", text, None, Some((deny, "ALL: ALL"))),
    };
    let Ok(policy) = policy else { return };
    check_all(&policy, &addresses(rest));
});
