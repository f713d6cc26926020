use super::*;
use ipnet::{Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn allow_file(content: &str) -> ClientPolicy {
    ClientPolicy::build("", "", Some((Path::new("hosts.allow"), content)), None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn deny_file(content: &str) -> ClientPolicy {
    ClientPolicy::build("", "", None, Some((Path::new("hosts.deny"), content)))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn files(allow: &str, deny: &str) -> ClientPolicy {
    ClientPolicy::build(
        "",
        "",
        Some((Path::new("hosts.allow"), allow)),
        Some((Path::new("hosts.deny"), deny)),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn allow_err(content: &str) -> String {
    match ClientPolicy::build("", "", Some((Path::new("/etc/hosts.allow"), content)), None) {
        Ok(_) => panic!("{content:?} should be refused"),
        Err(e) => e.to_string(),
    }
}

/// Which addresses a one-line deny file denies.
fn denies(clients: &str, addrs: &[&str]) -> Vec<bool> {
    let p = deny_file(&format!("bastion: {clients}\n"));
    addrs.iter().map(|a| !p.check(ip(a)).is_allowed()).collect()
}

fn denied_by(p: &ClientPolicy, a: &str) -> Option<String> {
    match p.check(ip(a)) {
        Decision::Deny { rule } => Some(rule),
        Decision::Allow { .. } => None,
    }
}

#[test]
fn every_supported_client_form() {
    assert_eq!(denies("ALL", &["1.2.3.4", "2001:db8::1"]), [true, true]);
    assert_eq!(denies("all", &["1.2.3.4"]), [true]);
    assert_eq!(
        denies("192.0.2.7", &["192.0.2.7", "192.0.2.8"]),
        [true, false]
    );
    assert_eq!(denies("10.", &["10.255.0.1", "11.0.0.1"]), [true, false]);
    assert_eq!(
        denies("172.16.", &["172.16.9.9", "172.17.0.1"]),
        [true, false]
    );
    assert_eq!(
        denies("192.168.1.", &["192.168.1.200", "192.168.2.1"]),
        [true, false]
    );
    assert_eq!(
        denies(
            "192.168.0.0/255.255.254.0",
            &["192.168.1.255", "192.168.2.0"]
        ),
        [true, false]
    );
    assert_eq!(
        denies("0.0.0.0/0.0.0.0", &["8.8.8.8", "::1"]),
        [true, false]
    );
    assert_eq!(
        denies("100.64.0.0/10", &["100.127.255.255", "100.128.0.0"]),
        [true, false]
    );
    assert_eq!(
        denies(
            "[2001:db8::]/32",
            &["2001:db8:ffff::1", "2001:db9::1", "10.0.0.1"]
        ),
        [true, false, false]
    );
    assert_eq!(
        denies("[2001:db8::7]", &["2001:db8::7", "2001:db8::8"]),
        [true, false]
    );
    // Several patterns, comma and/or blank separated.
    assert_eq!(
        denies(
            "10.0.0.1, 10.0.0.2 10.0.0.3,,[::1]",
            &["10.0.0.1", "10.0.0.2", "10.0.0.3", "::1", "10.0.0.4"]
        ),
        [true, true, true, true, false]
    );
}

#[test]
fn except_and_nested_except() {
    assert_eq!(
        denies("ALL EXCEPT 10.", &["10.1.1.1", "11.1.1.1", "2001:db8::1"]),
        [false, true, true]
    );
    assert_eq!(
        denies(
            "10. EXCEPT 10.1. EXCEPT 10.1.2.",
            &["10.0.0.1", "10.1.0.1", "10.1.2.3", "11.0.0.1"]
        ),
        [true, false, true, false]
    );
    assert_eq!(
        denies(
            "10.0.0.0/8, [fd00::]/8 except 10.9.0.0/16, [fd00::1]",
            &["10.1.0.1", "10.9.0.1", "fd00::2", "fd00::1"]
        ),
        [true, false, true, false]
    );
}

#[test]
fn comments_continuations_and_daemon_lists() {
    let content = "\
# hosts.deny for the bastion
\n   \n\
vsftpd: ALL            # another daemon's line: skipped\n\
in.tftpd: ALL: spawn (/bin/echo %a) &\n\
sshd: 192.0.2.1 # trailing comment\n\
bastion, vsftpd : 192.0.2.2, \\\n\
   192.0.2.3 \\\n\
   192.0.2.4\n\
SSHD BASTION: 192.0.2.5\n\
ALL: 198.51.100.0/24\n";
    let p = deny_file(content);
    for (a, line) in [
        ("192.0.2.1", 6),
        ("192.0.2.2", 7),
        ("192.0.2.3", 7),
        ("192.0.2.4", 7),
        ("192.0.2.5", 10),
        ("198.51.100.9", 11),
    ] {
        assert_eq!(
            denied_by(&p, a).as_deref(),
            Some(format!("hosts.deny line {line}").as_str()),
            "{a}"
        );
    }
    assert!(p.check(ip("192.0.2.6")).is_allowed());
    assert!(
        p.summary()
            .contains("2 hosts file line(s) for other daemons skipped"),
        "{}",
        p.summary()
    );
    // CRLF files.
    let p = deny_file("bastion: 192.0.2.1,\\\r\n 192.0.2.2\r\n");
    assert!(!p.check(ip("192.0.2.2")).is_allowed());
    // A continuation on the last line.
    let p = deny_file("bastion: 192.0.2.1 \\");
    assert!(!p.check(ip("192.0.2.1")).is_allowed());
}

#[test]
fn unsupported_forms_name_file_line_and_token() {
    for (line, needle) in [
        ("bastion: example.com", "\"example.com\""),
        ("bastion: .example.com", "domain"),
        ("bastion: @admins", "netgroup"),
        ("bastion: LOCAL", "wildcard"),
        ("bastion: KNOWN", "wildcard"),
        ("bastion: UNKNOWN", "wildcard"),
        ("bastion: PARANOID", "wildcard"),
        ("bastion: 10.0.0.*", "wildcards"),
        ("bastion: 10.0.0.?", "wildcards"),
        ("bastion: alice@10.0.0.1", "user@host"),
        ("bastion: /etc/bastion/clients", "file of patterns"),
        ("bastion: 10.0.0.1: deny", "third ':' field"),
        ("bastion: 10.0.0.0/8: spawn /bin/true", "third ':' field"),
        ("bastion: fd00::/8", "brackets"),
        ("bastion 10.0.0.1", "no ':'"),
        ("bastion:", "empty client list"),
        (": 10.0.0.1", "empty daemon list"),
        ("bastion: EXCEPT 10.0.0.1", "before it"),
        ("bastion: ALL EXCEPT", "after it"),
        ("ALL EXCEPT vsftpd: 10.0.0.1", "EXCEPT in the daemon list"),
        ("sshd@10.0.0.1: ALL", "daemon@host"),
        ("ss*: ALL", "wildcards"),
        ("KNOWN: ALL", "wildcard KNOWN"),
        ("bastion: 10.0.0.1/255.0.255.0", "not contiguous"),
        ("bastion: 10.0.0.1/8", "host bits"),
        (
            "bastion: 10.1.2.3/255.255.0.0",
            "use the network address 10.1.0.0/16",
        ),
        ("bastion: [fd00::1]/8", "host bits"),
        ("bastion: [fd00::/8]", "after the bracket"),
        ("bastion: [fd00::", "closing"),
        ("bastion: [fd00::]/129", "0..128"),
        ("bastion: [zz::]", "not an IPv6"),
        ("bastion: 10.0.0.0/33", "prefix length"),
        ("bastion: 10.0.0.0/08", "prefix length"),
        ("bastion: 256.1.", "octet"),
        ("bastion: 01.2.", "octet"),
        ("bastion: 1.2.3.4.", "too many octets"),
        ("bastion: 10.0.0.256", "not an IPv4"),
        ("bastion: 10..", "octet"),
    ] {
        let content = format!("# first line\n\nvsftpd: ALL\n{line}\n");
        let e = allow_err(&content);
        assert!(
            e.starts_with("BASTION_HOSTS_ALLOW_FILE /etc/hosts.allow line 4: "),
            "{line}: {e}"
        );
        assert!(e.contains(needle), "{line}: {e} lacks {needle}");
        assert!(!e.contains('\n'), "{e}");
    }
    // Client errors list the supported forms.
    assert!(allow_err("bastion: example.com").contains("supported client patterns"));
    assert!(allow_err("sshd@h: ALL").contains("supported daemon lists"));
    // The deny file names its own setting; continued lines report their first line.
    let e = ClientPolicy::build(
        "",
        "",
        None,
        Some((
            Path::new("deny"),
            "\nbastion: 10.0.0.1,\\\n  host.example\n",
        )),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("BASTION_HOSTS_DENY_FILE deny line 2: "),
        "{e}"
    );
}

#[test]
fn order_allow_beats_deny_then_default_allow() {
    // Deny everyone except a range.
    let p = files("bastion: 10.0.0.0/8\n", "ALL: ALL\n");
    assert_eq!(
        p.check(ip("10.1.2.3")),
        Decision::Allow {
            rule: Some("hosts.allow line 1".into())
        }
    );
    assert_eq!(
        p.check(ip("192.0.2.1")),
        Decision::Deny {
            rule: "hosts.deny line 1".into()
        }
    );
    assert_eq!(p.check(ip("2001:db8::1")).rule(), Some("hosts.deny line 1"));
    assert!(!p.is_permit_all());
    // Neither matches: allowed, no rule.
    let p = files("bastion: 10.0.0.0/8\n", "bastion: 192.0.2.0/24\n");
    assert_eq!(p.check(ip("198.51.100.1")), Decision::Allow { rule: None });
    assert_eq!(
        p.check(ip("198.51.100.1")).to_string(),
        "allowed (no rule matched)"
    );
    assert_eq!(
        p.check(ip("192.0.2.1")).to_string(),
        "denied by hosts.deny line 1"
    );
    // The first matching line is reported.
    let p = deny_file("bastion: 10.1.0.0/16\nbastion: 10.0.0.0/8\nbastion: 10.1.2.3\n");
    assert_eq!(
        denied_by(&p, "10.1.2.3").as_deref(),
        Some("hosts.deny line 1")
    );
    assert_eq!(
        denied_by(&p, "10.2.0.1").as_deref(),
        Some("hosts.deny line 2")
    );
    // Allow rules alone deny nobody.
    let p = allow_file("bastion: 10.0.0.0/8\n");
    assert!(p.is_permit_all());
    assert!(p.check(ip("192.0.2.1")).is_allowed());
    assert!(p.summary().contains("no deny rules"), "{}", p.summary());
    let p = ClientPolicy::permit_all();
    assert!(p.is_permit_all());
    assert_eq!(p.check(ip("::1")), Decision::Allow { rule: None });
}

#[test]
fn ipv4_mapped_clients_and_rules() {
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
    let p = deny_file("bastion: 10.0.0.0/8\n");
    assert_eq!(
        denied_by(&p, &mapped.to_string()).as_deref(),
        Some("hosts.deny line 1")
    );
    // A mapped rule is an IPv4 rule.
    let p = deny_file("bastion: [::ffff:192.0.2.0]/120\n");
    assert!(!p.check(ip("192.0.2.9")).is_allowed());
    assert!(!p.check(ip("::ffff:192.0.2.9")).is_allowed());
    assert!(p.check(ip("192.0.3.1")).is_allowed());
    // An IPv6 rule does not cover IPv4 clients, mapped or not.
    let p = deny_file("bastion: [::]/0\n");
    assert!(p.check(ip("::ffff:10.0.0.1")).is_allowed());
    assert!(!p.check(ip("2001:db8::1")).is_allowed());
    let p = ClientPolicy::build("", "::ffff:10.0.0.0/104", None, None).unwrap();
    assert_eq!(
        denied_by(&p, "10.2.3.4").as_deref(),
        Some("BASTION_DENY_CLIENTS 10.0.0.0/8")
    );
}

#[test]
fn env_cidr_lists() {
    let p = ClientPolicy::build(
        " 10.1.0.0/16 , 2001:db8::7",
        "10.0.0.0/8,[fd00::]/8,0.0.0.0/0",
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        p.check(ip("10.1.9.9")).rule(),
        Some("BASTION_ALLOW_CLIENTS 10.1.0.0/16")
    );
    assert!(p.check(ip("10.1.9.9")).is_allowed());
    assert_eq!(
        p.check(ip("2001:db8::7")).rule(),
        Some("BASTION_ALLOW_CLIENTS 2001:db8::7/128")
    );
    assert_eq!(
        denied_by(&p, "10.2.0.1").as_deref(),
        Some("BASTION_DENY_CLIENTS 10.0.0.0/8")
    );
    assert_eq!(
        denied_by(&p, "fd12::1").as_deref(),
        Some("BASTION_DENY_CLIENTS fd00::/8")
    );
    assert_eq!(
        denied_by(&p, "8.8.8.8").as_deref(),
        Some("BASTION_DENY_CLIENTS 0.0.0.0/0")
    );
    assert!(p.check(ip("2001:db8::8")).is_allowed());
    // Env entries come before file lines of the same kind.
    let p = ClientPolicy::build(
        "",
        "10.0.0.0/8",
        None,
        Some((Path::new("hosts.deny"), "ALL: ALL\n")),
    )
    .unwrap();
    assert_eq!(
        denied_by(&p, "10.0.0.1").as_deref(),
        Some("BASTION_DENY_CLIENTS 10.0.0.0/8")
    );
    assert_eq!(
        denied_by(&p, "11.0.0.1").as_deref(),
        Some("hosts.deny line 1")
    );
    for (allow, deny, needle) in [
        ("10.0.0.0/8,", "", "BASTION_ALLOW_CLIENTS: entry 2 is empty"),
        (
            "",
            "10.0.0.1/8",
            "BASTION_DENY_CLIENTS: entry 1 \"10.0.0.1/8\" has host bits",
        ),
        (
            "",
            "10.0.0.0/8, office.example.com",
            "entry 2 \"office.example.com\" is not an IP",
        ),
        ("10.0.0.0/40", "", "is not a CIDR"),
        ("[fd00::", "", "brackets"),
    ] {
        let e = ClientPolicy::build(allow, deny, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{e} lacks {needle}");
        assert!(e.contains("e.g. 10.0.0.0/8"), "{e}");
    }
    assert!(ClientPolicy::build("  ", "", None, None)
        .unwrap()
        .is_permit_all());
}

#[test]
fn reload_now_replaces_and_keeps_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let deny = dir.path().join("hosts.deny");
    std::fs::write(&deny, "bastion: 192.0.2.0/24\n").unwrap();
    let live = LivePolicy::load(String::new(), String::new(), None, Some(deny.clone())).unwrap();
    assert!(!live.check(ip("192.0.2.1")).is_allowed());
    assert!(live.check(ip("198.51.100.1")).is_allowed());
    assert!(!live.reload_now().unwrap(), "unchanged file");

    std::fs::write(&deny, "bastion: 198.51.100.0/24\n").unwrap();
    assert!(live.reload_now().unwrap());
    assert!(live.check(ip("192.0.2.1")).is_allowed());
    assert!(!live.check(ip("198.51.100.1")).is_allowed());

    // Broken file: error naming file and line, old policy stays.
    std::fs::write(&deny, "bastion: 198.51.100.0/24\nbastion: evil.example\n").unwrap();
    let e = live.reload_now().unwrap_err().to_string();
    assert!(
        e.contains("hosts.deny line 2") && e.contains("evil.example"),
        "{e}"
    );
    assert!(!live.check(ip("198.51.100.1")).is_allowed());
    // Deleted file: error naming the setting, old policy stays.
    std::fs::remove_file(&deny).unwrap();
    let e = live.reload_now().unwrap_err().to_string();
    assert!(e.starts_with("BASTION_HOSTS_DENY_FILE: cannot read"), "{e}");
    assert!(!live.check(ip("198.51.100.1")).is_allowed());
    // Same size, new content.
    std::fs::write(&deny, "bastion: 198.51.100.0/25\n").unwrap();
    assert!(live.reload_now().unwrap());
    assert!(live.check(ip("198.51.100.200")).is_allowed());
}

#[test]
fn load_errors_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = LivePolicy::load(String::new(), String::new(), Some(missing.clone()), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("BASTION_HOSTS_ALLOW_FILE: cannot read"),
        "{e}"
    );
    let e = LivePolicy::load(String::new(), String::new(), None, Some(missing))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("BASTION_HOSTS_DENY_FILE: cannot read"), "{e}");
    let bad = dir.path().join("allow");
    std::fs::write(&bad, "bastion: PARANOID\n").unwrap();
    let e = LivePolicy::load(String::new(), String::new(), Some(bad), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && e.contains("PARANOID"), "{e}");
    let e = LivePolicy::load("x".into(), String::new(), None, None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("BASTION_ALLOW_CLIENTS"), "{e}");
}

#[test]
fn range_primitives() {
    assert_eq!(
        normalize(vec![(5u32, 9), (1, 3), (4, 4), (20, 30), (25, 26)]),
        vec![(1, 9), (20, 30)]
    );
    assert_eq!(
        normalize(vec![(0u32, u32::MAX), (5, 9)]),
        vec![(0, u32::MAX)]
    );
    assert_eq!(
        normalize(vec![(10u32, u32::MAX), (0, 9)]),
        vec![(0, u32::MAX)]
    );
    assert_eq!(
        difference(&[(0u32, 100)], &[(0, 10), (50, 60), (100, 200)]),
        vec![(11, 49), (61, 99)]
    );
    assert_eq!(difference(&[(0u32, u32::MAX)], &[(0, u32::MAX)]), vec![]);
    assert_eq!(
        difference(&[(0u128, u128::MAX)], &[(1, u128::MAX - 1)]),
        vec![(0, 0), (u128::MAX, u128::MAX)]
    );
    assert_eq!(
        difference(&[(5u32, 6), (8, 9)], &[(0, 5), (9, 9)]),
        vec![(6, 6), (8, 8)]
    );
    let t = Table::build([(1u32, &[(0u32, 10), (20, 30)][..]), (0, &[(5, 25)][..])]);
    assert_eq!(
        (0..=31).map(|x| t.lookup(x)).collect::<Vec<_>>(),
        (0..=31)
            .map(|x| match x {
                0..=4 => Some(1),
                5..=25 => Some(0),
                26..=30 => Some(1),
                _ => None,
            })
            .collect::<Vec<_>>()
    );
    let t = Table::build([(0u32, &[(u32::MAX, u32::MAX)][..])]);
    assert_eq!(t.lookup(u32::MAX), Some(0));
    assert_eq!(t.lookup(0), None);
}

// ---- property tests against naive references ----

/// Networks that overlap a lot: clustered IPv4, clustered IPv6, IPv4-mapped, and random.
fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 8u8..=32).prop_map(|(low, len)| {
            let a = 0x0A00_0000 | (low & 0x000F_FFFF);
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len).unwrap()).trunc()
        }),
        (any::<u128>(), 0u8..=32).prop_map(|(a, len)| {
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a as u32), len).unwrap()).trunc()
        }),
        (any::<u128>(), 100u8..=128).prop_map(|(low, len)| {
            let a = (0xfd00u128 << 112) | (low & 0xFFFF_FFFF);
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).unwrap()).trunc()
        }),
        (any::<u128>(), 0u8..=128).prop_map(|(a, len)| {
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).unwrap()).trunc()
        }),
        (any::<u32>(), 96u8..=128).prop_map(|(low, len)| {
            let a = Ipv4Addr::from(0x0A00_0000 | (low & 0x000F_FFFF)).to_ipv6_mapped();
            IpNet::V6(Ipv6Net::new(a, len).unwrap()).trunc()
        }),
    ]
}

/// Addresses: near the clusters, fully random, or inside one of the given nets.
fn addrs_for(nets: &[IpNet], picks: &[(usize, u128, u8)]) -> Vec<IpAddr> {
    picks
        .iter()
        .map(|&(i, noise, kind)| match kind % 4 {
            0 => IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (noise as u32 & 0x000F_FFFF))),
            1 => IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) | (noise & 0xFFFF_FFFF))),
            2 => {
                if noise % 2 == 0 {
                    IpAddr::V4(Ipv4Addr::from(noise as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(noise))
                }
            }
            _ => match nets.get(i % nets.len().max(1)) {
                Some(IpNet::V4(n)) => {
                    let host = !u32::from(n.netmask()) & noise as u32;
                    let a = Ipv4Addr::from(u32::from(n.network()) | host);
                    if noise % 3 == 0 {
                        IpAddr::V6(a.to_ipv6_mapped())
                    } else {
                        IpAddr::V4(a)
                    }
                }
                Some(IpNet::V6(n)) => {
                    let host = !u128::from(n.netmask()) & noise;
                    IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
                }
                None => IpAddr::V4(Ipv4Addr::from(noise as u32)),
            },
        })
        .collect()
}

/// The naive reference for "ip is in one of nets", with the module's mapped-address rules.
fn naive_in(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| canonical_net(*n).contains(&ip))
}

fn hosts_syntax(n: &IpNet) -> String {
    match n {
        IpNet::V4(n) => n.to_string(),
        IpNet::V6(n) => format!("[{}]/{}", n.network(), n.prefix_len()),
    }
}

/// One hosts file rule: `a EXCEPT b EXCEPT c` (b and c may be empty).
type Rule = (Vec<IpNet>, Vec<IpNet>, Vec<IpNet>);

fn arb_rule() -> impl Strategy<Value = Rule> {
    (
        prop::collection::vec(arb_net(), 1..6),
        prop::collection::vec(arb_net(), 0..5),
        prop::collection::vec(arb_net(), 0..4),
    )
}

fn rule_line(r: &Rule) -> String {
    let list = |v: &[IpNet]| v.iter().map(hosts_syntax).collect::<Vec<_>>().join(", ");
    let mut line = format!("bastion: {}", list(&r.0));
    if !r.1.is_empty() {
        line.push_str(&format!(" EXCEPT {}", list(&r.1)));
        if !r.2.is_empty() {
            line.push_str(&format!(" EXCEPT {}", list(&r.2)));
        }
    }
    line
}

/// `a EXCEPT b EXCEPT c` = a minus (b minus c); an empty list matches nothing.
fn naive_rule(r: &Rule, ip: IpAddr) -> bool {
    let in_b_minus_c = naive_in(&r.1, ip) && !naive_in(&r.2, ip);
    naive_in(&r.0, ip) && !in_b_minus_c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn set_lookup_matches_naive(
        nets in prop::collection::vec(arb_net(), 0..50),
        picks in prop::collection::vec((any::<usize>(), any::<u128>(), any::<u8>()), 1..64),
    ) {
        let set = AddrSet::from_nets(nets.iter().copied());
        for ip in addrs_for(&nets, &picks) {
            prop_assert_eq!(set.contains(ip), naive_in(&nets, ip), "{}", ip);
        }
    }

    #[test]
    fn except_difference_matches_naive(
        a in prop::collection::vec(arb_net(), 0..20),
        b in prop::collection::vec(arb_net(), 0..20),
        c in prop::collection::vec(arb_net(), 0..10),
        picks in prop::collection::vec((any::<usize>(), any::<u128>(), any::<u8>()), 1..64),
    ) {
        let sa = AddrSet::from_nets(a.iter().copied());
        let sb = AddrSet::from_nets(b.iter().copied());
        let sc = AddrSet::from_nets(c.iter().copied());
        let nested = sa.minus(&sb.minus(&sc));
        let all: Vec<IpNet> = a.iter().chain(&b).chain(&c).copied().collect();
        for ip in addrs_for(&all, &picks) {
            let in_b_minus_c = naive_in(&b, ip) && !naive_in(&c, ip);
            let want = naive_in(&a, ip) && !in_b_minus_c;
            prop_assert_eq!(nested.contains(ip), want, "{}", ip);
        }
    }

    #[test]
    fn policy_matches_naive_first_match(
        allow in prop::collection::vec(arb_rule(), 0..5),
        deny in prop::collection::vec(arb_rule(), 0..5),
        picks in prop::collection::vec((any::<usize>(), any::<u128>(), any::<u8>()), 1..64),
    ) {
        let text = |rules: &[Rule]| {
            rules.iter().map(rule_line).collect::<Vec<_>>().join("\n")
        };
        let (allow_text, deny_text) = (text(&allow), text(&deny));
        let p = ClientPolicy::build(
            "",
            "",
            Some((Path::new("A"), &allow_text)),
            Some((Path::new("D"), &deny_text)),
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let all: Vec<IpNet> = allow
            .iter()
            .chain(&deny)
            .flat_map(|r| r.0.iter().chain(&r.1).chain(&r.2))
            .copied()
            .collect();
        for ip in addrs_for(&all, &picks) {
            let want = if let Some(i) = allow.iter().position(|r| naive_rule(r, ip)) {
                Decision::Allow { rule: Some(format!("A line {}", i + 1)) }
            } else if let Some(i) = deny.iter().position(|r| naive_rule(r, ip)) {
                Decision::Deny { rule: format!("D line {}", i + 1) }
            } else {
                Decision::Allow { rule: None }
            };
            prop_assert_eq!(p.check(ip), want, "{}", ip);
        }
    }
}

/// Prints (does not assert) the cost of a check with 10,000 random CIDRs. Run with
/// `cargo test --release lookup_speed -- --nocapture`.
#[test]
fn lookup_speed() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut entries = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let r = next();
        let entry = if i % 5 == 4 {
            let a = Ipv6Addr::from((u128::from(r) << 64) | u128::from(next()));
            IpNet::V6(Ipv6Net::new(a, 16 + (r % 113) as u8).unwrap()).trunc()
        } else {
            let a = Ipv4Addr::from((r >> 32) as u32);
            IpNet::V4(Ipv4Net::new(a, 8 + (r % 25) as u8).unwrap()).trunc()
        };
        entries.push(entry.to_string());
    }
    let list = entries.join(",");
    let started = std::time::Instant::now();
    let p = ClientPolicy::build("", &list, None, None).unwrap();
    let build = started.elapsed();
    let probes: Vec<IpAddr> = (0..100_000)
        .map(|i| {
            let r = next();
            if i % 5 == 4 {
                IpAddr::V6(Ipv6Addr::from((u128::from(r) << 64) | u128::from(next())))
            } else {
                IpAddr::V4(Ipv4Addr::from(r as u32))
            }
        })
        .collect();
    let rounds = 10;
    let started = std::time::Instant::now();
    let mut denied = 0usize;
    for _ in 0..rounds {
        for &a in &probes {
            if !std::hint::black_box(p.check(std::hint::black_box(a))).is_allowed() {
                denied += 1;
            }
        }
    }
    let per_check = started.elapsed().as_nanos() as f64 / (rounds * probes.len()) as f64;
    let started = std::time::Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for &a in &probes {
            if std::hint::black_box(p.deny.lookup(std::hint::black_box(a))).is_some() {
                hits += 1;
            }
        }
    }
    let per_lookup = started.elapsed().as_nanos() as f64 / (rounds * probes.len()) as f64;
    assert_eq!(hits, denied);
    println!(
        "client_policy: 10,000 CIDRs built in {build:?} into {}; check() {per_check:.1} ns \
         (incl. the rule label String), table lookup {per_lookup:.1} ns; {:.1}% denied",
        p.summary(),
        100.0 * denied as f64 / (rounds * probes.len()) as f64
    );
}
