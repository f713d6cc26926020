//! Penalties start at `min`, add up to `max`, run out in real time, spare exempt addresses,
//! and the table stays within `max-sources`.

use std::time::Duration;

use super::*;
use crate::source::NetBlockSize;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn source(s: &str) -> Source {
    NetBlockSize::default().source(ip(s))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn refused_only_once_min_is_reached_then_until_expiry() {
    let penalties = Penalties::new(PenaltySettings::default(), PenaltyExempt::default());
    let (a, t0) = (source("192.0.2.1"), Instant::now());
    // authfail 5s, min 15s: three failures are 15 s of penalty.
    assert_eq!(
        penalties.record(a, ip("192.0.2.1"), Offence::AuthFail, t0),
        None
    );
    assert_eq!(
        penalties.record(a, ip("192.0.2.1"), Offence::AuthFail, t0),
        None
    );
    assert_eq!(penalties.check(a, t0), Verdict::Clear);
    let started = penalties.record(a, ip("192.0.2.1"), Offence::AuthFail, t0);
    assert_eq!(
        started,
        Some(Started {
            source: a,
            duration: secs(15)
        })
    );
    assert_eq!(
        penalties.check(a, t0 + secs(1)),
        Verdict::Refused {
            remaining: secs(14),
            first: true
        }
    );
    assert_eq!(
        penalties.check(a, t0 + secs(2)),
        Verdict::Refused {
            remaining: secs(13),
            first: false
        }
    );
    assert_eq!(penalties.check(source("192.0.2.2"), t0), Verdict::Clear);
    assert_eq!(penalties.check(a, t0 + secs(15)), Verdict::Clear, "decayed");
    assert_eq!(penalties.tracked(), 0, "an expired entry is dropped");
}

#[test]
fn penalties_decay_between_offences_and_are_capped_at_max() {
    let settings = PenaltySettings::parse("noauth:4s,min:10s,max:30s").unwrap();
    let penalties = Penalties::new(settings, PenaltyExempt::default());
    let (a, t0) = (source("192.0.2.1"), Instant::now());
    // One offence every 5 s never accumulates 10 s: each 4 s penalty has run out.
    for n in 0..10 {
        assert_eq!(
            penalties.record(a, ip("192.0.2.1"), Offence::NoAuth, t0 + secs(5 * n)),
            None
        );
    }
    let t1 = t0 + secs(100);
    for _ in 0..20 {
        penalties.record(a, ip("192.0.2.1"), Offence::NoAuth, t1);
    }
    match penalties.check(a, t1) {
        Verdict::Refused { remaining, .. } => assert_eq!(remaining, secs(30), "capped at max"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn exempt_addresses_and_disabled_penalties_never_refuse() {
    let exempt = PenaltyExempt {
        nets: vec!["10.0.0.0/8".parse().unwrap()],
        allowed: true,
    };
    assert!(PenaltySettings::default().enabled);
    let penalties = Penalties::new(PenaltySettings::default(), exempt);
    let t0 = Instant::now();
    for _ in 0..10 {
        penalties.record(
            source("10.1.2.3"),
            ip("10.1.2.3"),
            Offence::GraceExceeded,
            t0,
        );
    }
    assert_eq!(penalties.check(source("10.1.2.3"), t0), Verdict::Clear);
    assert!(penalties.is_exempt(ip("192.0.2.1"), true), "allow-listed");
    assert!(!penalties.is_exempt(ip("192.0.2.1"), false));
    let off = Penalties::new(
        PenaltySettings::parse("no").unwrap(),
        PenaltyExempt::default(),
    );
    for _ in 0..10 {
        off.record(
            source("192.0.2.1"),
            ip("192.0.2.1"),
            Offence::GraceExceeded,
            t0,
        );
    }
    assert_eq!(off.check(source("192.0.2.1"), t0), Verdict::Clear);
    assert_eq!(off.tracked(), 0);
}

#[test]
fn a_full_table_keeps_its_penalties_and_ignores_new_sources() {
    let settings = PenaltySettings::parse("max-sources:3,authfail:20s").unwrap();
    let penalties = Penalties::new(settings, PenaltyExempt::default());
    let t0 = Instant::now();
    for n in 1..=3 {
        let a = format!("192.0.2.{n}");
        assert!(penalties
            .record(source(&a), ip(&a), Offence::AuthFail, t0)
            .is_some());
    }
    for n in 4..=200 {
        let a = format!("192.0.2.{n}");
        assert_eq!(
            penalties.record(source(&a), ip(&a), Offence::AuthFail, t0),
            None
        );
    }
    assert_eq!(penalties.tracked(), 3);
    assert!(matches!(
        penalties.check(source("192.0.2.1"), t0),
        Verdict::Refused { .. }
    ));
    // Once the old ones expire, new sources are tracked again.
    let later = t0 + secs(21);
    assert!(penalties
        .record(
            source("192.0.2.9"),
            ip("192.0.2.9"),
            Offence::AuthFail,
            later
        )
        .is_some());
}

#[test]
fn settings_parse_like_sshd_and_explain_mistakes() {
    let s = PenaltySettings::parse("authfail:10s grace-exceeded:1m,max:1h").unwrap();
    assert_eq!(s.authfail, secs(10));
    assert_eq!(s.grace_exceeded, secs(60));
    assert_eq!(s.max, secs(3600));
    assert_eq!(s.noauth, secs(1), "unset keys keep their defaults");
    assert_eq!(
        PenaltySettings::parse("yes").unwrap(),
        PenaltySettings::default()
    );
    for (bad, says) in [
        ("authfail", "key:value"),
        ("crash:90s", "unknown key"),
        ("authfail:5 parsecs", "duration"),
        ("max-sources:0", "count"),
        ("min:20m,max:10m", "below min"),
    ] {
        let e = PenaltySettings::parse(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
