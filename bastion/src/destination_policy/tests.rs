use super::*;

use std::sync::Arc;

use crate::resolver::{LookupLimits, Resolver};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn policy(spec: &str) -> DestinationPolicy {
    DestinationPolicy::parse(spec).unwrap()
}

fn allowed(p: &DestinationPolicy, host: &str, port: u16) -> bool {
    let addr = classify(host)
        .ok()
        .and_then(|r| match r {
            Requested::Literal(a) => Some(a),
            Requested::Name(_) => None,
        })
        .unwrap();
    p.check_addr(host, addr, port).is_ok()
}

fn prohibited(r: Result<(), Refusal>) -> String {
    match r {
        Err(Refusal::Prohibited(m)) => m,
        other => panic!("expected Prohibited, got {other:?}"),
    }
}

const T: Duration = Duration::from_secs(3);

/// The hosts file of these tests (no DNS server is asked: names not listed here are special
/// names, answered by the resolver itself, or `.invalid`).
const HOSTS: &str = "127.0.0.1 localhost\n::1 localhost\n10.9.8.7 db.hosts.test\n\
                     10.9.8.8 split.hosts.test\n169.254.169.254 split.hosts.test\n";

/// A connection's lookups, with [`HOSTS`] as `/etc/hosts`.
fn lookups() -> ConnectionLookups {
    let limits = LookupLimits {
        total: 4,
        per_connection: 2,
    };
    let resolver = Resolver::new(Some(b"nameserver 127.0.0.1\n"), HOSTS.as_bytes(), limits)
        .expect("test resolver");
    Arc::new(resolver).for_connection()
}

#[test]
fn every_rule_form_parses() {
    let p = policy(
        " db.internal:5432 , DB2.Internal.:22,*.rds.amazonaws.com:5432, 10.0.0.0/16:5432,\
         [fd00::/8]:*, 10.1.2.3:*, [fd00::1]:5432, 127.0.0.1:8080, _svc.x-y:1",
    );
    assert_eq!(p.rule_count(), 9);
    let d = p.describe();
    assert!(
        d.starts_with("9 rules: db.internal:5432, db2.internal:22, "),
        "{d}"
    );
    assert!(d.contains("*.rds.amazonaws.com:5432"), "{d}");
    assert!(d.contains("[fd00::/8]:*"), "{d}");
    assert!(d.contains("[fd00::1]:5432"), "{d}");
    assert!(d.contains("127.0.0.1:8080 (opens loopback)"), "{d}");
    assert_eq!(policy("a.b:1").describe(), "1 rule: a.b:1");
}

#[test]
fn empty_spec_is_default_policy() {
    for spec in ["", "   ", "\t\n"] {
        let p = policy(spec);
        assert_eq!(p.rule_count(), 0);
        assert!(p.describe().starts_with(
            "default: private ranges (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7) \
             on any port"
        ));
    }
}

#[test]
fn invalid_port_message_is_exact() {
    let e = DestinationPolicy::parse("db:abc").unwrap_err().to_string();
    assert_eq!(
        e,
        "BASTION_PERMIT_OPEN: rule \"db:abc\" has an invalid port \"abc\": use a number \
         1-65535 or * (forms: host:port, *.suffix:port, CIDR:port)"
    );
}

#[test]
fn malformed_rules_name_the_entry() {
    let cases = [
        ("db", "has no port"),
        ("db:", "has no port"),
        ("db:0", "port 0"),
        ("db:65536", "invalid port"),
        ("db:+22", "invalid port"),
        ("db: 22", "invalid port"),
        ("*:22", "10.0.0.0/8:*"),
        ("*.:22", "invalid wildcard suffix"),
        ("*.*.x:22", "more than one *"),
        ("a.*.com:22", "wrong place"),
        ("foo*.com:22", "wrong place"),
        ("*.2.3:22", "malformed IP"),
        ("10.0.0.1/8:*", "10.0.0.0/8"),
        ("[fd00::1/8]:*", "[fd00::/8]"),
        ("10.0.0.0/33:*", "invalid CIDR"),
        ("fd00::1:5432", "brackets"),
        ("fd00::/8:*", "brackets"),
        ("[fd00::1]", "has no port"),
        ("[fd00::1]5432", "unexpected text"),
        ("[fd00::1:22", "without ]"),
        ("[db.internal]:22", "not an IP address"),
        ("a b:22", "invalid host name"),
        ("a..b:22", "empty label"),
        ("db!.x:22", "invalid host name"),
        (":22", "has no host"),
        ("1.2.3:22", "malformed IP"),
        ("2130706433:22", "malformed IP"),
        ("db.0x7f:22", "malformed IP"),
        ("héllo:22", "invalid host name"),
    ];
    for (entry, fragment) in cases {
        let e = DestinationPolicy::parse(&format!("ok.internal:1, {entry}"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("BASTION_PERMIT_OPEN: rule "), "{entry}: {e}");
        assert!(e.contains(&format!("\"{entry}\"")), "{entry}: {e}");
        assert!(e.contains(fragment), "{entry}: {e}");
        assert!(
            e.ends_with("(forms: host:port, *.suffix:port, CIDR:port)"),
            "{e}"
        );
    }
    let long_label = format!("{}.com:22", "a".repeat(64));
    let e = DestinationPolicy::parse(&long_label)
        .unwrap_err()
        .to_string();
    assert!(e.contains("63"), "{e}");
    let long_name = format!("{}b:22", "a.".repeat(127));
    let e = DestinationPolicy::parse(&long_name)
        .unwrap_err()
        .to_string();
    assert!(e.contains("253"), "{e}");
}

#[test]
fn empty_entries_are_errors() {
    for spec in ["a.b:1,,c.d:2", "a.b:1,", ",a.b:1", "a.b:1, ,c.d:2"] {
        let e = DestinationPolicy::parse(spec).unwrap_err().to_string();
        assert!(e.starts_with("BASTION_PERMIT_OPEN: entry "), "{e}");
        assert!(e.contains("is empty"), "{e}");
    }
}

#[test]
fn default_policy_allows_private_ranges() {
    let p = policy("");
    for (host, port) in [
        ("10.1.2.3", 5432),
        ("172.16.0.1", 22),
        ("192.168.1.1", 1),
        ("fd12::1", 5432),
        ("[fd12::1]", 443),
        ("::ffff:10.1.2.3", 22),
    ] {
        assert!(allowed(&p, host, port), "{host}:{port}");
    }
}

#[test]
fn default_policy_refuses_public_and_denied() {
    let p = policy("");
    for (host, port) in [
        ("8.8.8.8", 443),
        ("2001:db8::1", 443),
        ("127.0.0.1", 22),
        ("::1", 22),
        ("169.254.169.254", 80),
        ("169.254.170.2", 80),
        ("fe80::1", 22),
        ("fd00:ec2::254", 80),
        ("::ffff:169.254.169.254", 80),
        ("::ffff:127.0.0.1", 22),
        ("::127.0.0.1", 22),
        ("64:ff9b::169.254.169.254", 80),
        ("0.0.0.0", 22),
        ("::", 22),
        ("224.0.0.1", 22),
        ("ff02::1", 22),
        ("255.255.255.255", 22),
        ("240.0.0.1", 22),
        ("10.1.2.3", 0),
    ] {
        assert!(!allowed(&p, host, port), "{host}:{port}");
    }
}

#[test]
fn refusal_messages_explain() {
    let p = policy("");
    let m = prohibited(p.check_addr("169.254.169.254", ip("169.254.169.254"), 80));
    assert_eq!(
        m,
        "169.254.169.254:80 is link-local (instance metadata and the ECS credentials \
         endpoint live there); the bastion never forwards to it, whatever the rules"
    );
    let m = prohibited(p.check_addr("db.example.com", ip("127.0.0.1"), 5432));
    assert_eq!(
        m,
        "db.example.com:5432 resolves to 127.0.0.1, which is loopback; refused"
    );
    let m = prohibited(p.check_addr("::ffff:169.254.169.254", ip("::ffff:169.254.169.254"), 80));
    assert!(
        m.starts_with("[::ffff:169.254.169.254]:80 (169.254.169.254 by IPv4-mapped) is link-local"),
        "{m}"
    );
    let m = prohibited(p.check_addr("creds.example", ip("64:ff9b::a9fe:aa02"), 80));
    assert!(
        m.starts_with(
            "creds.example:80 resolves to 64:ff9b::a9fe:aa02 (169.254.170.2 by NAT64), which \
             is link-local"
        ),
        "{m}"
    );
    let m = prohibited(p.check_addr("fd00:ec2::254", ip("fd00:ec2::254"), 80));
    assert!(m.contains("fd00:ec2::/32"), "{m}");
    let m = prohibited(p.check_addr("8.8.8.8", ip("8.8.8.8"), 443));
    assert!(m.contains("not a private address"), "{m}");

    let p = policy("db.internal:5432, 10.0.0.0/16:5432");
    let m = prohibited(p.check_addr("10.1.2.3", ip("10.1.2.3"), 22));
    assert_eq!(
        m,
        "10.1.2.3:22 is not permitted by BASTION_PERMIT_OPEN (rules: db.internal:5432, \
         10.0.0.0/16:5432)"
    );
    let m = prohibited(p.check_addr("other.internal", ip("10.1.2.3"), 22));
    assert!(
        m.starts_with("other.internal:22 (resolves to 10.1.2.3) is not permitted"),
        "{m}"
    );
}

#[test]
fn refusal_messages_stay_short() {
    let many: Vec<String> = (1..40)
        .map(|i| format!("host{i}.example.internal:{i}"))
        .collect();
    let p = policy(&many.join(","));
    let long_host = format!("{}.internal", "a".repeat(60));
    let m = prohibited(p.check_addr(
        &long_host,
        ip("fd12:3456:789a:bcde:f012:3456:789a:bcde"),
        65535,
    ));
    assert!(m.len() <= 230, "{} chars: {m}", m.len());
    assert!(m.contains("more)"), "{m}");
    let m = prohibited(p.check_addr("a\u{7}b\u{202e}", ip("127.0.0.1"), 22));
    assert!(
        m.starts_with("a?b\\u{202e}:22 resolves to 127.0.0.1"),
        "{m}"
    );
}

#[test]
fn exact_loopback_rule_opens_only_that_address_and_port() {
    let p = policy("127.0.0.1:8080");
    assert!(allowed(&p, "127.0.0.1", 8080));
    assert!(allowed(&p, "::ffff:127.0.0.1", 8080));
    assert!(!allowed(&p, "127.0.0.1", 8081));
    assert!(!allowed(&p, "127.0.0.2", 8080));
    assert!(!allowed(&p, "::1", 8080));
    assert!(!allowed(&p, "10.1.2.3", 8080));
}

#[test]
fn loopback_cidr_opens_loopback() {
    let p = policy("127.0.0.0/8:*");
    assert!(allowed(&p, "127.0.0.1", 22));
    assert!(allowed(&p, "127.9.9.9", 65535));
    assert!(!allowed(&p, "169.254.169.254", 80));
    assert!(p.describe().contains("(opens loopback)"));
}

#[test]
fn broad_rules_do_not_lift_denials() {
    let p = policy("0.0.0.0/0:*, [::/0]:*");
    assert!(allowed(&p, "8.8.8.8", 443));
    assert!(allowed(&p, "2001:db8::1", 443));
    for host in [
        "127.0.0.1",
        "169.254.169.254",
        "169.254.170.2",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(!allowed(&p, host, 80), "{host}");
    }
}

#[test]
fn off_limits_inside_a_private_range_stay_refused() {
    let p = policy("[fc00::/7]:*");
    assert!(allowed(&p, "fd12::1", 80));
    assert!(!allowed(&p, "fd00:ec2::254", 80));
}

/// Rules that would open link-local or EC2 metadata addresses, in every spelling.
const OFF_LIMITS_RULES: [&str; 16] = [
    "169.254.170.2:80",
    "169.254.169.254:*",
    "169.254.0.0/16:*",
    "169.254.170.0/24:80",
    "[fe80::1]:22",
    "[fe80::/64]:*",
    "[fd00:ec2::254]:80",
    "[FD00:EC2::/32]:*",
    "[::ffff:169.254.170.2]:80",
    "[::ffff:a9fe:aa02]:80",
    "[::a9fe:aa02]:80",
    "[64:ff9b::a9fe:aa02]:80",
    "[64:ff9b::169.254.0.0/112]:*",
    "[::169.254.0.0/112]:*",
    "[2002:a9fe:aa02::/48]:*",
    "[2001:db8::5efe:a9fe:aa02]:80",
];

#[test]
fn rules_naming_off_limits_addresses_are_errors() {
    for rule in OFF_LIMITS_RULES {
        for spec in [rule.to_owned(), format!("10.0.0.0/8:*, {rule}")] {
            let e = DestinationPolicy::parse(&spec)
                .expect_err(&spec)
                .to_string();
            assert!(e.starts_with("BASTION_PERMIT_OPEN: rule "), "{e}");
            assert!(
                e.contains("link-local") || e.contains("fd00:ec2::/32"),
                "{e}"
            );
            assert!(e.contains("never forwards to 169.254.0.0/16"), "{e}");
        }
    }
    let e = DestinationPolicy::parse("[64:ff9b::a9fe:aa02]:80")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("names 64:ff9b::a9fe:aa02, which is 169.254.170.2 by NAT64: link-local"),
        "{e}"
    );
    let e = DestinationPolicy::parse("[2002:a9fe::/32]:*")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("names 2002:a9fe::/32, which is inside 169.254.0.0/16 by 6to4"),
        "{e}"
    );
}

#[test]
fn broader_rules_keep_the_off_limits_carved_out() {
    let p = policy("169.254.0.0/15:*, [fe80::/9]:*, [2002::/16]:*");
    assert!(allowed(&p, "169.255.0.1", 80));
    assert!(allowed(&p, "fec0::1", 80));
    assert!(allowed(&p, "2002:a01:203::1", 80));
    for host in ["169.254.170.2", "fe80::1", "2002:a9fe:aa02::1"] {
        assert!(!allowed(&p, host, 80), "{host}");
    }
}

#[test]
fn every_spelling_is_refused_under_the_broadest_rules() {
    let p = policy("0.0.0.0/0:*, [::/0]:*, *.example:*, [::ffff:0:0/96]:*");
    for host in [
        "169.254.170.2",
        "169.254.169.254",
        "::ffff:169.254.170.2",
        "::ffff:a9fe:aa02",
        "::a9fe:aa02",
        "::ffff:0:a9fe:aa02",
        "64:ff9b::a9fe:aa02",
        "64:ff9b:1::a9fe:aa02",
        "2002:a9fe:aa02::1",
        "2001:0:4136:e378:8000:63bf:5601:55fd",
        "2001:db8::5efe:a9fe:aa02",
        "fe80::1",
        "fd00:ec2::254",
    ] {
        let m = prohibited(p.check_addr(host, ip(host), 80));
        assert!(
            m.contains("the bastion never forwards to it, whatever the rules"),
            "{m}"
        );
        let m = prohibited(p.check_addr("x.example", ip(host), 80));
        assert!(m.contains("never forwards"), "{m}");
    }
    assert!(allowed(&p, "8.8.8.8", 80));
    assert!(allowed(&p, "2600:1f18::1", 80));
}

#[test]
fn overlapping_denials_must_all_be_lifted() {
    let p = policy("240.0.0.0/4:*");
    assert!(allowed(&p, "240.0.0.1", 80));
    assert!(!allowed(&p, "255.255.255.255", 80));
    assert!(allowed(
        &policy("255.255.255.255:80"),
        "255.255.255.255",
        80
    ));
}

#[test]
fn mapped_and_nat64_rules_are_canonical() {
    let p = policy("[::ffff:10.0.0.0/104]:22, [64:ff9b::8.8.8.8]:53");
    assert!(p.describe().contains("10.0.0.0/8:22"), "{}", p.describe());
    assert!(allowed(&p, "10.1.2.3", 22));
    assert!(allowed(&p, "::ffff:10.1.2.3", 22));
    assert!(allowed(&p, "8.8.8.8", 53));
    assert!(allowed(&p, "64:ff9b::808:808", 53));
}

#[test]
fn wildcard_matches_names_only() {
    let p = policy("*.internal:5432");
    let a = ip("10.1.2.3");
    assert!(p.check_addr("db.internal", a, 5432).is_ok());
    assert!(p.check_addr("DB.Internal.", a, 5432).is_ok());
    assert!(p.check_addr("a.b.internal", ip("8.8.8.8"), 5432).is_ok());
    assert!(p.check_addr("db.internal", a, 5433).is_err());
    assert!(p.check_addr("internal", a, 5432).is_err());
    assert!(p.check_addr("db.internal.evil.com", a, 5432).is_err());
    assert!(p.check_addr("dbinternal", a, 5432).is_err());
    assert!(p.check_addr("10.1.2.3", a, 5432).is_err());
    // Wildcards never lift a denial.
    let m = prohibited(p.check_addr("db.internal", ip("127.0.0.1"), 5432));
    assert!(m.contains("a host name rule cannot open it"), "{m}");
}

#[test]
fn exact_name_rules_are_case_insensitive() {
    let p = policy("DB.Internal.:5432");
    assert!(p.check_addr("db.internal", ip("10.0.0.1"), 5432).is_ok());
    assert!(p.check_addr("db.INTERNAL.", ip("10.0.0.1"), 5432).is_ok());
    assert!(p.check_addr("x.db.internal", ip("10.0.0.1"), 5432).is_err());
}

#[tokio::test]
async fn name_rule_does_not_open_loopback() {
    let p = policy("localhost:22");
    let m = match p.resolve("localhost", 22, &lookups(), T).await {
        Err(Refusal::Prohibited(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(m.starts_with("localhost:22 resolves to "), "{m}");
    assert!(m.contains("loopback"), "{m}");
    assert!(m.contains("a host name rule cannot open it"), "{m}");
}

#[tokio::test]
async fn localhost_refused_by_default() {
    let m = match policy("").resolve("localhost", 5432, &lookups(), T).await {
        Err(Refusal::Prohibited(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(m.contains("loopback"), "{m}");
}

#[tokio::test]
async fn loopback_rule_and_name_resolve_to_checked_addresses() {
    let p = policy("127.0.0.1:2222, [::1]:2222");
    let addrs = p.resolve("localhost", 2222, &lookups(), T).await.unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 2222));
    let mut seen = addrs.clone();
    seen.dedup();
    assert_eq!(seen.len(), addrs.len());
}

#[tokio::test]
async fn literal_resolves_to_itself() {
    let p = policy("");
    let cases = [
        ("10.1.2.3", "10.1.2.3:5432"),
        ("[fd12::1]", "[fd12::1]:5432"),
        ("fd12::1", "[fd12::1]:5432"),
    ];
    for (host, want) in cases {
        let got = p.resolve(host, 5432, &lookups(), T).await.unwrap();
        assert_eq!(got, vec![want.parse::<SocketAddr>().unwrap()], "{host}");
    }
    assert!(matches!(
        p.resolve("8.8.8.8", 53, &lookups(), T).await,
        Err(Refusal::Prohibited(_))
    ));
}

#[tokio::test]
async fn invalid_requested_hosts_are_prohibited() {
    let p = policy("");
    let long = "a".repeat(300);
    for host in [
        "a b",
        "",
        &long,
        "[db.internal]",
        "fe80::1%eth0",
        "10.1.2",
        "a..b",
        "x\n",
    ] {
        match p.resolve(host, 22, &lookups(), T).await {
            Err(Refusal::Prohibited(m)) => {
                assert!(m.contains("not a valid host name or IP address"), "{m}");
                assert!(m.len() < 200, "{m}");
                assert!(!m.contains('\n'), "{m}");
            }
            other => panic!("{host}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn unresolvable_name() {
    let p = policy("");
    match p
        .resolve(
            "nonexistent.invalid",
            22,
            &lookups(),
            Duration::from_secs(2),
        )
        .await
    {
        Err(Refusal::Unresolvable(m)) => {
            assert!(m.starts_with("cannot resolve nonexistent.invalid: "), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

/// A hosts-file name is answered from the file (no DNS server runs here) and checked like any.
#[tokio::test]
async fn hosts_file_names_resolve_and_every_address_is_checked() {
    let p = policy("");
    let got = p.resolve("DB.hosts.test.", 5432, &lookups(), T).await;
    assert_eq!(got, Ok(vec!["10.9.8.7:5432".parse().unwrap()]));
    // One of two addresses is the metadata endpoint: the whole request is refused.
    let m = match p.resolve("split.hosts.test", 80, &lookups(), T).await {
        Err(Refusal::Prohibited(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(
        m.starts_with("split.hosts.test:80 resolves to 169.254.169.254"),
        "{m}"
    );
}

#[test]
fn refusal_message_accessor() {
    assert_eq!(Refusal::Prohibited("a".into()).message(), "a");
    assert_eq!(Refusal::Unresolvable("b".into()).to_string(), "b");
}
