//! The cap evicts the least-progressed squatter (never one past its key exchange), the
//! per-source limits refuse in order, slots and counts are freed exactly once, and a pending
//! PROXY connection claims its source's limits when its header arrives.

use std::net::IpAddr;

use super::*;
use crate::source::NetBlockSize;

fn source(s: &str) -> Source {
    NetBlockSize::default().source(s.parse::<IpAddr>().unwrap())
}

fn limits(max_startups: usize) -> AdmissionLimits {
    AdmissionLimits {
        max_startups,
        per_source_startups: 0,
        per_source_connections: 0,
        per_source_rate: 0,
    }
}

#[test]
fn at_the_cap_the_least_progressed_oldest_squatter_is_evicted() {
    let admission = Admission::new(limits(3));
    let (_t1, s1, _) = admission.admit(Some(source("192.0.2.1"))).unwrap();
    let (_t2, s2, _) = admission.admit(Some(source("192.0.2.2"))).unwrap();
    let (_t3, s3, _) = admission.admit(Some(source("192.0.2.3"))).unwrap();
    s1.progress().advance(Stage::Banner);
    s2.progress().advance(Stage::KexDone);
    // s3 has sent nothing but is younger than a second: ordered with s1 by age, and older.
    let (_t4, s4, evicted) = admission.admit(Some(source("192.0.2.4"))).unwrap();
    assert_eq!(evicted.unwrap().stage, Stage::Connected);
    assert!(s3.progress().is_evicted());
    assert_eq!(admission.startups(), 3);
    std::thread::sleep(std::time::Duration::from_millis(5));
    s4.progress().advance(Stage::Banner);
    // s1 and s4 both at Banner: s1 has been there longer.
    let (_t5, _s5, evicted) = admission.admit(Some(source("192.0.2.5"))).unwrap();
    assert_eq!(evicted.unwrap().stage, Stage::Banner);
    assert!(s1.progress().is_evicted() && !s4.progress().is_evicted());
    assert!(
        !s2.progress().is_evicted(),
        "past the key exchange: never evicted"
    );
    drop((s1, s3));
    assert_eq!(
        admission.startups(),
        3,
        "an evicted slot is not freed twice"
    );
}

#[test]
fn a_connection_silent_for_a_second_goes_before_older_banner_only_squatters() {
    let admission = Admission::new(limits(3));
    let (_t1, s1, _) = admission.admit(Some(source("192.0.2.1"))).unwrap();
    s1.progress().advance(Stage::Banner);
    let (_t2, s2, _) = admission.admit(Some(source("192.0.2.2"))).unwrap();
    let (_t3, s3, _) = admission.admit(Some(source("192.0.2.3"))).unwrap();
    s3.progress().advance(Stage::KexStarted);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_t4, _s4, evicted) = admission.admit(Some(source("192.0.2.4"))).unwrap();
    assert_eq!(evicted.unwrap().stage, Stage::Connected);
    assert!(
        s2.progress().is_evicted(),
        "silent for a second: first to go"
    );
    // Then the banner-only squatter, although the key exchange started earlier.
    let (_t5, _s5, evicted) = admission.admit(Some(source("192.0.2.5"))).unwrap();
    assert_eq!(evicted.unwrap().stage, Stage::Banner);
    assert!(s1.progress().is_evicted() && !s3.progress().is_evicted());
}

#[test]
fn a_cap_full_of_progressing_connections_refuses_the_newcomer() {
    let admission = Admission::new(limits(2));
    let held: Vec<_> = (1..=2)
        .map(|n| {
            let (t, s, _) = admission
                .admit(Some(source(&format!("192.0.2.{n}"))))
                .unwrap();
            s.progress().advance(Stage::Authenticating);
            (t, s)
        })
        .collect();
    let refused = admission.admit(Some(source("192.0.2.9")));
    assert_eq!(refused.err(), Some(Refusal::Startups));
    drop(held);
    assert_eq!(admission.startups(), 0);
    assert!(admission.admit(Some(source("192.0.2.9"))).is_ok());
}

#[test]
fn pending_proxy_connections_go_first_then_claim_their_source() {
    let mut l = limits(2);
    l.per_source_startups = 1;
    let admission = Admission::new(l);
    let (_t1, s1, _) = admission.admit(Some(source("192.0.2.1"))).unwrap();
    let (mut t2, s2, _) = admission.admit(None).unwrap();
    let (mut t3, s3, evicted) = admission.admit(None).unwrap();
    assert_eq!(evicted.unwrap().stage, Stage::ProxyPending);
    assert!(s2.progress().is_evicted() && !s1.progress().is_evicted());
    assert_eq!(
        admission.claim(&mut t2, &s2, source("192.0.2.7")).err(),
        Some(Refusal::Startups),
        "an evicted connection cannot come back"
    );
    // The header names a source already at its limit of one unauthenticated connection.
    assert_eq!(
        admission.claim(&mut t3, &s3, source("192.0.2.1")).err(),
        Some(Refusal::SourceStartups)
    );
    admission.claim(&mut t3, &s3, source("192.0.2.8")).unwrap();
    assert_eq!(t3.source(), Some(source("192.0.2.8")));
    assert_eq!(s3.progress().stage(), Stage::Connected);
}

#[test]
fn per_source_limits_refuse_in_order_and_free_on_drop() {
    let admission = Admission::new(AdmissionLimits {
        max_startups: 100,
        per_source_startups: 2,
        per_source_connections: 3,
        per_source_rate: 0,
    });
    let a = source("192.0.2.1");
    let (t1, s1, _) = admission.admit(Some(a)).unwrap();
    let (t2, s2, _) = admission.admit(Some(a)).unwrap();
    assert_eq!(
        admission.admit(Some(a)).err(),
        Some(Refusal::SourceStartups)
    );
    assert!(
        admission.admit(Some(source("192.0.2.2"))).is_ok(),
        "other sources unaffected"
    );
    // Logging in frees the unauthenticated slot but the connection still counts.
    drop((s1, s2));
    let (t3, _s3, _) = admission.admit(Some(a)).unwrap();
    assert_eq!(
        admission.admit(Some(a)).err(),
        Some(Refusal::SourceConnections)
    );
    drop((t1, t2, t3));
    assert!(admission.admit(Some(a)).is_ok());
}

#[test]
fn the_rate_per_source_refuses_bursts_beyond_it() {
    let admission = Admission::new(AdmissionLimits {
        max_startups: 1000,
        per_source_startups: 0,
        per_source_connections: 0,
        per_source_rate: 5,
    });
    let a = source("192.0.2.1");
    let held: Vec<_> = (0..20)
        .filter_map(|_| admission.admit(Some(a)).ok())
        .collect();
    assert_eq!(held.len(), 5);
    assert_eq!(admission.admit(Some(a)).err(), Some(Refusal::SourceRate));
    assert!(admission.admit(Some(source("192.0.2.2"))).is_ok());
}

#[test]
fn the_source_table_does_not_grow_without_bound() {
    let admission = Admission::new(AdmissionLimits {
        max_startups: 10,
        per_source_startups: 0,
        per_source_connections: 0,
        per_source_rate: 1_000_000,
    });
    for n in 0..40_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        let admitted = admission.admit(Some(NetBlockSize::default().source(ip)));
        drop(admitted);
    }
    assert!(admission.tracked_sources() <= SOURCE_TABLE_TIDY + 1);
}
