use super::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICIjdiUtJdomjTqyaNtCcLVJrVxramimyS26/xj01HsR";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn opt(name: &str, value: Option<&str>) -> KeyOption {
    KeyOption {
        name: name.into(),
        value: value.map(Into::into),
    }
}

/// Restrictions of a full authorized_keys line with these options.
fn line(options: &str) -> Result<KeyRestrictions, String> {
    let (options, _key) = parse_options(&format!("{options} {KEY} comment"))?;
    KeyRestrictions::from_options(&options)
}

const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

// ---- dates -------------------------------------------------------------------------

/// Days in each month of `year`, as `parse_expiry_time` knows them (the calendar is the
/// `time` crate's since the hand-written one was replaced).
fn month_lengths_of(year: u32) -> Vec<u32> {
    (1..=12)
        .map(|m| {
            (28..=31)
                .take_while(|d| parse_expiry_time(&format!("{year:04}{m:02}{d:02}")).is_ok())
                .last()
                .unwrap()
        })
        .collect()
}

#[test]
fn month_lengths() {
    let lengths = month_lengths_of;
    let common = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    assert_eq!(lengths(2026), common);
    assert_eq!(lengths(2100)[1], 28);
    assert_eq!(lengths(2024)[1], 29);
    assert_eq!(lengths(2000)[1], 29);
}

#[test]
fn civil_round_trip() {
    // Days since 1970-01-01, as the unix time of their midnight, and back.
    let day = |d: u64| d * 86_400;
    assert_eq!(parse_expiry_time("20000301"), Ok(day(11_017)));
    assert_eq!(parse_expiry_time("20260101"), Ok(day(20_454)));
    for days in [1, 59, 60, 365, 11_016, 11_017, 20_454, 2_932_896] {
        let text = format_utc(day(days));
        let digits: String = text[..10].chars().filter(char::is_ascii_digit).collect();
        assert_eq!(parse_expiry_time(&digits), Ok(day(days)), "{text}");
    }
    assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_utc(NOW), "2026-01-01T00:00:00Z");
    assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(format_utc(253_402_300_799), "9999-12-31T23:59:59Z");
}

#[test]
fn expiry_time_lengths_and_zone() {
    assert_eq!(parse_expiry_time("20260101"), Ok(NOW));
    assert_eq!(parse_expiry_time("20260101Z"), Ok(NOW));
    assert_eq!(
        parse_expiry_time("202601011230"),
        Ok(NOW + 12 * 3600 + 30 * 60)
    );
    assert_eq!(parse_expiry_time("202601011230z"), Ok(NOW + 45_000));
    assert_eq!(parse_expiry_time("20260101123005"), Ok(NOW + 45_005));
    assert_eq!(parse_expiry_time("20260101123005Z"), Ok(NOW + 45_005));
    assert_eq!(parse_expiry_time("20260101123005UTC"), Ok(NOW + 45_005));
    assert_eq!(parse_expiry_time("20240229"), Ok(1_709_164_800));
    assert_eq!(parse_expiry_time("99991231235959Z"), Ok(253_402_300_799));
}

#[test]
fn expiry_time_invalid() {
    for (bad, why) in [
        ("20261301", "month 13"),
        ("20260001", "month 00"),
        ("20260230", "day 30"),
        ("20250229", "day 29"),
        ("20260100", "day 00"),
        ("202601012400", "hour 24"),
        ("202601011260", "minute 60"),
        ("20260101235960", "second 60"),
        ("19691231", "before 1970"),
        ("19700101", "epoch"),
        ("2026010", "expected YYYYMMDD"),
        ("2026010112", "expected YYYYMMDD"),
        ("2026-01-01", "expected YYYYMMDD"),
        ("2026O101", "expected YYYYMMDD"),
        ("+2026010", "expected YYYYMMDD"),
        ("20260101 ", "expected YYYYMMDD"),
        ("Z", "expected YYYYMMDD"),
        ("", "expected YYYYMMDD"),
        ("20260101ZZ", "expected YYYYMMDD"),
        ("２０２６０１０１", "expected YYYYMMDD"),
    ] {
        let e = parse_expiry_time(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn expiry_enforced_inclusive_and_earliest_wins() {
    let r = line("expiry-time=\"20260101\",expiry-time=\"20270101\"").unwrap();
    assert_eq!(r.expiry, Some(NOW));
    assert!(r.check_login(ip("10.0.0.1"), NOW - 1).is_ok());
    assert!(r.check_login(ip("10.0.0.1"), NOW).is_ok());
    let e = r.check_login(ip("10.0.0.1"), NOW + 1).unwrap_err();
    assert_eq!(e, "key expired at 2026-01-01T00:00:00Z (expiry-time)");
    let e = line("expiry-time=\"20261301\"").unwrap_err();
    assert!(e.starts_with("expiry-time=\"20261301\": month 13"), "{e}");
}

// ---- from= -------------------------------------------------------------------------

#[test]
fn from_cidr_and_addresses() {
    let p = PatternList::parse("10.0.0.0/8,192.168.1.7,2001:db8::/32").unwrap();
    assert!(p.matches(ip("10.200.3.4")));
    assert!(p.matches(ip("192.168.1.7")));
    assert!(!p.matches(ip("192.168.1.8")));
    assert!(p.matches(ip("2001:db8:1::5")));
    assert!(!p.matches(ip("2001:db9::1")));
    assert!(!p.matches(ip("11.0.0.1")));
    assert!(p.warnings().is_empty());
}

#[test]
fn from_wildcards() {
    let p = PatternList::parse("10.1.*,192.168.?.1,2001:DB8::*").unwrap();
    assert!(p.matches(ip("10.1.2.3")));
    assert!(!p.matches(ip("10.11.2.3")));
    assert!(p.matches(ip("192.168.5.1")));
    assert!(!p.matches(ip("192.168.55.1")));
    assert!(p.matches(ip("2001:db8::abcd")), "case-insensitive hex");
    assert!(p.warnings().is_empty());
    assert!(PatternList::parse("*").unwrap().matches(ip("::1")));
    assert!(wildcard_match(b"a*b*c", b"aXXbYYc"));
    assert!(wildcard_match(b"**", b""));
    assert!(!wildcard_match(b"a*b", b"aXXc"));
    assert!(!wildcard_match(b"?", b""));
}

#[test]
fn from_negation_wins_anywhere() {
    let p = PatternList::parse("10.0.0.0/8,!10.1.0.0/16").unwrap();
    assert!(p.matches(ip("10.2.0.1")));
    assert!(!p.matches(ip("10.1.0.1")));
    let p = PatternList::parse("!10.1.*,10.0.0.0/8").unwrap();
    assert!(!p.matches(ip("10.1.9.9")));
    assert!(p.matches(ip("10.9.9.9")));
    // A negation alone allows nobody: a positive match is still required.
    let p = PatternList::parse("!10.1.0.0/16").unwrap();
    assert!(!p.matches(ip("10.2.0.1")));
    assert!(!p.matches(ip("10.1.0.1")));
}

#[test]
fn from_mixed_and_reasons() {
    let r = line("from=\"10.0.0.0/8,!10.6.6.6,192.168.*,2001:db8::1\"").unwrap();
    assert!(r.check_login(ip("10.1.2.3"), NOW).is_ok());
    assert!(r.check_login(ip("192.168.44.1"), NOW).is_ok());
    assert!(r.check_login(ip("2001:db8::1"), NOW).is_ok());
    let e = r.check_login(ip("10.6.6.6"), NOW).unwrap_err();
    assert!(e.contains("(matches \"!10.6.6.6\")"), "{e}");
    let r = line("from=\"10.0.0.0/8\"").unwrap();
    assert_eq!(
        r.check_login(ip("203.0.113.9"), NOW).unwrap_err(),
        "client 203.0.113.9 not allowed by from=\"10.0.0.0/8\""
    );
}

#[test]
fn from_ipv4_mapped_clients_match_as_ipv4() {
    let p = PatternList::parse("10.0.0.0/8,192.168.1.*").unwrap();
    assert!(p.matches(ip("::ffff:10.1.2.3")));
    assert!(p.matches(ip("::ffff:192.168.1.9")));
    assert!(!p.matches(ip("::ffff:11.1.2.3")));
    let p = PatternList::parse("::ffff:10.0.0.0/104").unwrap();
    assert!(p.matches(ip("10.1.2.3")), "mapped patterns become IPv4 too");
    let r = line("from=\"10.0.0.0/8\"").unwrap();
    let e = r.check_login(ip("::ffff:203.0.113.9"), NOW).unwrap_err();
    assert!(e.starts_with("client 203.0.113.9 "), "{e}");
}

#[test]
fn from_host_names_accepted_with_warning_never_match() {
    let r = line("from=\"*.example.com,10.0.0.0/8\"").unwrap();
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("*.example.com") && r.warnings[0].contains("never matches"));
    assert!(r.check_login(ip("10.0.0.1"), NOW).is_ok());
    assert!(r.check_login(ip("203.0.113.9"), NOW).is_err());
    let p = PatternList::parse("bastion1").unwrap();
    assert_eq!(p.warnings().len(), 1);
    assert!(!p.matches(ip("10.0.0.1")));
    // A negated name cannot deny anything either.
    assert!(PatternList::parse("!*.evil.example,*")
        .unwrap()
        .matches(ip("10.0.0.1")));
}

#[test]
fn from_malformed() {
    for (bad, why) in [
        ("", "empty pattern list"),
        ("10.0.0.0/8,", "empty pattern"),
        (",10.0.0.0/8", "empty pattern"),
        ("10.0.0.0/8,,10.1.0.0/16", "empty pattern"),
        ("!", "must be followed"),
        ("10.0.0.0/33", "not a valid address/prefix"),
        ("10.0.0.0/", "not a valid address/prefix"),
        ("10.0.0.0/abc", "not a valid address/prefix"),
        ("2001:db8::/129", "not a valid address/prefix"),
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("10.0.*/8", "mixes a prefix length"),
        ("10.0.0.0/8, 192.168.0.0/16", "whitespace"),
    ] {
        let e = PatternList::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    assert!(line("from=\"10.0.0.0/8\",from=\"10.1.0.0/16\"")
        .unwrap_err()
        .contains("multiple from="));
    assert!(line("from=\"10.0.0.1/8\"")
        .unwrap_err()
        .starts_with("from=\"10.0.0.1/8\": "));
}

// ---- permitopen --------------------------------------------------------------------

#[test]
fn permitopen_repeated_and_matching() {
    let r = line(
        "permitopen=\"db.internal:5432\",permitopen=\"Cache:*\",permitopen=\"[2001:db8::1]:22\"",
    )
    .unwrap();
    assert_eq!(r.permit_open.len(), 3);
    assert_eq!(
        r.permit_open[0],
        PermitOpen {
            host: "db.internal".into(),
            port: Some(5432)
        }
    );
    assert_eq!(r.permit_open[1].port, None);
    assert_eq!(r.permit_open[2].host, "2001:db8::1");
    assert!(r.permits_destination("db.internal", 5432));
    assert!(
        r.permits_destination("DB.Internal", 5432),
        "case-insensitive"
    );
    assert!(!r.permits_destination("db.internal", 5433));
    assert!(
        !r.permits_destination("db.internal.", 5432),
        "literal, no normalisation"
    );
    assert!(!r.permits_destination("other", 5432));
    assert!(r.permits_destination("cache", 1));
    assert!(r.permits_destination("cache", 65535));
    assert!(r.permits_destination("2001:db8::1", 22));
    assert!(r.permits_destination("[2001:db8::1]", 22));
    assert!(r.permits_destination("2001:db8:0::1", 22), "same address");
    assert!(!r.permits_destination("2001:db8::1", 23));
    assert_eq!(r.permit_open[2].to_string(), "[2001:db8::1]:22");
    assert_eq!(r.permit_open[1].to_string(), "Cache:*");
}

#[test]
fn permitopen_absent_allows_and_star_host() {
    let r = line("no-pty").unwrap();
    assert!(r.permit_open.is_empty());
    assert!(r.permits_destination("anything", 1));
    let r = line("permitopen=\"*:443\"").unwrap();
    assert!(r.permits_destination("anything", 443));
    assert!(!r.permits_destination("anything", 80));
    let r = line("permitopen=\"10.0.0.5/22\"").unwrap();
    assert!(
        r.permits_destination("10.0.0.5", 22),
        "sshd also accepts host/port"
    );
}

#[test]
fn permitopen_malformed() {
    for (bad, why) in [
        ("db", "missing port"),
        ("db:", "missing port"),
        (":22", "empty host"),
        ("db:0", "out of range"),
        ("db:65536", "out of range"),
        ("db:http", "not a number"),
        ("db:-1", "not a number"),
        ("db: 22", "whitespace"),
        ("db :22", "whitespace"),
        (" db:22", "whitespace"),
        ("2001:db8::1:22", "not a number"),
        ("[2001:db8::1]", "missing port"),
        ("[2001:db8::1]22", "unexpected"),
        ("[2001:db8::1:22", "unterminated"),
        ("[]:22", "empty host"),
        ("", "missing port"),
    ] {
        let e = PermitOpen::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    let e = line("permitopen=\"db\"").unwrap_err();
    assert!(e.starts_with("permitopen=\"db\": missing port"), "{e}");
    let long = format!("permitopen=\"{}:22\"", "a".repeat(MAX_HOST_LEN + 1));
    assert!(line(&long).unwrap_err().contains("longer than"));
}

// ---- flags -------------------------------------------------------------------------

#[test]
fn forwarding_flags_in_order() {
    assert!(line("no-pty").unwrap().port_forwarding);
    assert!(KeyRestrictions::default().port_forwarding);
    let r = line("restrict").unwrap();
    assert!(!r.port_forwarding);
    assert_eq!(
        r.check_login(ip("10.0.0.1"), NOW).unwrap_err(),
        "port forwarding disabled for this key (restrict / no-port-forwarding)"
    );
    let r = line("restrict,port-forwarding").unwrap();
    assert!(r.port_forwarding);
    assert!(r.check_login(ip("10.0.0.1"), NOW).is_ok());
    assert!(!line("port-forwarding,restrict").unwrap().port_forwarding);
    assert!(!line("no-port-forwarding").unwrap().port_forwarding);
    assert!(
        line("no-port-forwarding,port-forwarding")
            .unwrap()
            .port_forwarding
    );
    assert!(
        !line("RESTRICT,pty").unwrap().port_forwarding,
        "names are case-insensitive"
    );
}

#[test]
fn principals_need_cert_authority() {
    let r = line("cert-authority,principals=\"alice,ops-team\"").unwrap();
    assert!(r.cert_authority);
    assert_eq!(
        r.principals,
        Some(vec!["alice".to_owned(), "ops-team".to_owned()])
    );
    let r = line("principals=\"alice\",cert-authority").unwrap();
    assert!(r.cert_authority, "order does not matter");
    let e = line("principals=\"alice\"").unwrap_err();
    assert!(e.contains("only valid together with cert-authority"), "{e}");
    let e = line("restrict,principals=\"alice\"").unwrap_err();
    assert!(e.contains("cert-authority"), "{e}");
    assert!(line("cert-authority,principals=\"a,,b\"").is_err());
    assert!(line("cert-authority,principals=\"a, b\"").is_err());
    assert!(line("cert-authority,principals=\"\"").is_err());
    assert!(line("cert-authority,principals=\"a\",principals=\"b\"")
        .unwrap_err()
        .contains("multiple principals="));
    let r = line("cert-authority").unwrap();
    assert!(r.cert_authority && r.principals.is_none() && r.port_forwarding);
}

#[test]
fn ignored_options_listed_once_in_order() {
    let r = line(
        "command=\"echo hi\",no-pty,no-agent-forwarding,no-X11-forwarding,no-user-rc,pty,\
         environment=\"A=b\",agent-forwarding,x11-forwarding,user-rc,tunnel=\"1\",\
         permitlisten=\"8080\",no-pty",
    )
    .unwrap();
    assert_eq!(
        r.ignored,
        [
            "command",
            "no-pty",
            "no-agent-forwarding",
            "no-x11-forwarding",
            "no-user-rc",
            "pty",
            "environment",
            "agent-forwarding",
            "x11-forwarding",
            "user-rc",
            "tunnel",
            "permitlisten",
        ]
    );
    assert!(r.port_forwarding && r.from.is_none() && r.permit_open.is_empty());
    assert!(line("command=\"a\",command=\"b\"")
        .unwrap_err()
        .contains("multiple command="));
}

#[test]
fn no_touch_required_applies_left_to_right_and_restrict_leaves_it() {
    for (options, waived) in [
        ("no-pty", false),
        ("touch-required", false),
        ("no-touch-required", true),
        ("no-touch-required,touch-required", false),
        ("touch-required,no-touch-required", true),
        ("restrict", false),
        ("no-touch-required,restrict", true),
        ("restrict,no-touch-required", true),
    ] {
        let r = line(options).unwrap();
        assert_eq!(r.no_touch_required, waived, "{options}");
        assert!(
            r.ignored.is_empty() || options == "no-pty",
            "{options}: {:?}",
            r.ignored
        );
    }
    assert!(line("no-touch-required=\"1\"")
        .unwrap_err()
        .contains("takes no value"));
}

#[test]
fn verify_required_is_refused() {
    let e = line("verify-required").unwrap_err();
    assert!(e.contains("verify-required cannot be enforced"), "{e}");
}

#[test]
fn options_built_directly_are_validated() {
    let e = KeyRestrictions::from_options(&[opt("from", None)]).unwrap_err();
    assert!(e.contains("needs a value"), "{e}");
    let e = KeyRestrictions::from_options(&[opt("restrict", Some("x"))]).unwrap_err();
    assert!(e.contains("takes no value"), "{e}");
    let e = KeyRestrictions::from_options(&[opt("bogus", None)]).unwrap_err();
    assert!(e.contains("unknown option \"bogus\""), "{e}");
    let e = KeyRestrictions::from_options(&[opt("bogus", Some("1"))]).unwrap_err();
    assert!(e.contains("unknown option \"bogus\""), "{e}");
    let r = KeyRestrictions::from_options(&[opt("No-Port-Forwarding", None)]).unwrap();
    assert!(!r.port_forwarding);
    let r = KeyRestrictions::from_options(&[]).unwrap();
    assert!(r.check_login(ip("203.0.113.9"), u64::MAX).is_ok());
}

#[test]
fn check_login_order_expiry_then_from_then_forwarding() {
    let r = line("restrict,from=\"10.0.0.0/8\",expiry-time=\"20260101\"").unwrap();
    assert!(r
        .check_login(ip("11.0.0.1"), NOW + 1)
        .unwrap_err()
        .contains("expired"));
    assert!(r
        .check_login(ip("11.0.0.1"), NOW)
        .unwrap_err()
        .contains("from="));
    assert!(r
        .check_login(ip("10.0.0.1"), NOW)
        .unwrap_err()
        .contains("port forwarding"));
}

// ---- quoting / tokenizer (parse_options, then from_options) ------------------------

#[test]
fn quoted_values_are_unescaped() {
    let r = line("from=\"10.0.0.0/8,!10.9.9.9\",permitopen=\"db:5432\"").unwrap();
    assert_eq!(
        r.from.as_ref().map(PatternList::as_str),
        Some("10.0.0.0/8,!10.9.9.9")
    );
    // `\"` inside a value is a literal quote: here it makes the pattern text, which is
    // not an address, so it warns and never matches.
    let r = line("from=\"\\\"10.0.0.1\\\"\"").unwrap();
    assert_eq!(
        r.from.as_ref().map(PatternList::as_str),
        Some("\"10.0.0.1\"")
    );
    assert!(!r.from.as_ref().unwrap().matches(ip("10.0.0.1")));
    assert_eq!(r.warnings.len(), 1);
    // A comma inside quotes belongs to the value, not to the option list.
    let r = line("permitopen=\"a:1\",from=\"10.0.0.1,10.0.0.2\"").unwrap();
    assert!(r.from.unwrap().matches(ip("10.0.0.2")));
    assert_eq!(r.permit_open.len(), 1);
}
