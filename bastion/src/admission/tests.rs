//! The cap evicts the least-progressed squatter (never one past its key exchange), the
//! per-source limits refuse in order, slots and counts are freed exactly once, and a pending
//! PROXY connection claims its source's limits when its header arrives. At the cap on all
//! connections a squatter is evicted (within a slack while it closes), else the newcomer is
//! refused; the container's health check gets a small slack of its own.

use std::net::IpAddr;

use super::*;
use crate::source::NetBlockSize;

fn source(s: &str) -> Source {
    NetBlockSize::default().source(s.parse::<IpAddr>().unwrap())
}

fn limits(max_startups: usize) -> AdmissionLimits {
    AdmissionLimits {
        max_connections: 100_000,
        max_startups,
        per_source_startups: 0,
        per_source_connections: 0,
        per_source_rate: 0,
    }
}

#[test]
fn at_the_cap_the_least_progressed_oldest_squatter_is_evicted() {
    let admission = Admission::new(limits(3));
    let (_t1, s1, _) = admission.admit(Some(source("192.0.2.1")), false).unwrap();
    let (_t2, s2, _) = admission.admit(Some(source("192.0.2.2")), false).unwrap();
    let (_t3, s3, _) = admission.admit(Some(source("192.0.2.3")), false).unwrap();
    s1.progress().advance(Stage::Banner);
    s2.progress().advance(Stage::KexDone);
    // s3 has sent nothing but is younger than a second: ordered with s1 by age, and older.
    let (_t4, s4, evicted) = admission.admit(Some(source("192.0.2.4")), false).unwrap();
    assert_eq!(evicted.unwrap().stage, Stage::Connected);
    assert!(s3.progress().is_evicted());
    assert_eq!(admission.startups(), 3);
    std::thread::sleep(std::time::Duration::from_millis(5));
    s4.progress().advance(Stage::Banner);
    // s1 and s4 both at Banner: s1 has been there longer.
    let (_t5, _s5, evicted) = admission.admit(Some(source("192.0.2.5")), false).unwrap();
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
    let (_t1, s1, _) = admission.admit(Some(source("192.0.2.1")), false).unwrap();
    s1.progress().advance(Stage::Banner);
    let (_t2, s2, _) = admission.admit(Some(source("192.0.2.2")), false).unwrap();
    let (_t3, s3, _) = admission.admit(Some(source("192.0.2.3")), false).unwrap();
    s3.progress().advance(Stage::KexStarted);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_t4, _s4, evicted) = admission.admit(Some(source("192.0.2.4")), false).unwrap();
    assert_eq!(evicted.unwrap().stage, Stage::Connected);
    assert!(
        s2.progress().is_evicted(),
        "silent for a second: first to go"
    );
    // Then the banner-only squatter, although the key exchange started earlier.
    let (_t5, _s5, evicted) = admission.admit(Some(source("192.0.2.5")), false).unwrap();
    assert_eq!(evicted.unwrap().stage, Stage::Banner);
    assert!(s1.progress().is_evicted() && !s3.progress().is_evicted());
}

#[test]
fn a_cap_full_of_progressing_connections_refuses_the_newcomer() {
    let admission = Admission::new(limits(2));
    let held: Vec<_> = (1..=2)
        .map(|n| {
            let (t, s, _) = admission
                .admit(Some(source(&format!("192.0.2.{n}"))), false)
                .unwrap();
            s.progress().advance(Stage::Authenticating);
            (t, s)
        })
        .collect();
    let refused = admission.admit(Some(source("192.0.2.9")), false);
    assert_eq!(refused.err(), Some(Refusal::Startups));
    drop(held);
    assert_eq!(admission.startups(), 0);
    assert!(admission.admit(Some(source("192.0.2.9")), false).is_ok());
}

#[test]
fn pending_proxy_connections_go_first_then_claim_their_source() {
    let mut l = limits(2);
    l.per_source_startups = 1;
    let admission = Admission::new(l);
    let (_t1, s1, _) = admission.admit(Some(source("192.0.2.1")), false).unwrap();
    let (mut t2, s2, _) = admission.admit(None, false).unwrap();
    let (mut t3, s3, evicted) = admission.admit(None, false).unwrap();
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
        max_connections: 100_000,
        max_startups: 100,
        per_source_startups: 2,
        per_source_connections: 3,
        per_source_rate: 0,
    });
    let a = source("192.0.2.1");
    let (t1, s1, _) = admission.admit(Some(a), false).unwrap();
    let (t2, s2, _) = admission.admit(Some(a), false).unwrap();
    assert_eq!(
        admission.admit(Some(a), false).err(),
        Some(Refusal::SourceStartups)
    );
    assert!(
        admission.admit(Some(source("192.0.2.2")), false).is_ok(),
        "other sources unaffected"
    );
    // Logging in frees the unauthenticated slot but the connection still counts.
    drop((s1, s2));
    let (t3, _s3, _) = admission.admit(Some(a), false).unwrap();
    assert_eq!(
        admission.admit(Some(a), false).err(),
        Some(Refusal::SourceConnections)
    );
    drop((t1, t2, t3));
    assert!(admission.admit(Some(a), false).is_ok());
}

#[test]
fn the_rate_per_source_refuses_bursts_beyond_it() {
    let admission = Admission::new(AdmissionLimits {
        max_connections: 100_000,
        max_startups: 1000,
        per_source_startups: 0,
        per_source_connections: 0,
        per_source_rate: 5,
    });
    let a = source("192.0.2.1");
    let held: Vec<_> = (0..20)
        .filter_map(|_| admission.admit(Some(a), false).ok())
        .collect();
    assert_eq!(held.len(), 5);
    assert_eq!(
        admission.admit(Some(a), false).err(),
        Some(Refusal::SourceRate)
    );
    assert!(admission.admit(Some(source("192.0.2.2")), false).is_ok());
}

#[test]
fn the_source_table_does_not_grow_without_bound() {
    let admission = Admission::new(AdmissionLimits {
        max_connections: 100_000,
        max_startups: 10,
        per_source_startups: 0,
        per_source_connections: 0,
        per_source_rate: 1_000_000,
    });
    for n in 0..40_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        let admitted = admission.admit(Some(NetBlockSize::default().source(ip)), false);
        drop(admitted);
    }
    assert!(admission.tracked_sources() <= SOURCE_TABLE_TIDY + 1);
}

fn total(max_connections: usize) -> Arc<Admission> {
    Admission::new(AdmissionLimits {
        max_connections,
        ..limits(100)
    })
}

/// `n` connections from distinct sources, all logged in (their startup slots released).
fn logged_in(admission: &Arc<Admission>, n: u8) -> Vec<Ticket> {
    (1..=n)
        .map(|i| {
            let (ticket, slot, _) = admission
                .admit(Some(source(&format!("192.0.2.{i}"))), false)
                .unwrap();
            drop(slot);
            ticket
        })
        .collect()
}

#[test]
fn at_max_connections_a_newcomer_is_refused_until_one_closes() {
    let admission = total(3);
    let mut held = logged_in(&admission, 3);
    assert_eq!(admission.connections(), 3);
    let refused = admission.admit(Some(source("198.51.100.1")), false);
    assert_eq!(refused.err(), Some(Refusal::Connections));
    assert_eq!(Refusal::Connections.setting(), "BASTION_MAX_CONNECTIONS");
    assert_eq!(admission.connections(), 3, "a refusal holds nothing");
    held.pop();
    assert_eq!(admission.connections(), 2);
    assert!(admission.admit(Some(source("198.51.100.1")), false).is_ok());
}

#[test]
fn at_max_connections_a_squatter_is_evicted_within_the_slack() {
    let admission = total(3);
    let _held = logged_in(&admission, 2);
    let (squatter_ticket, squatter, _) = admission.admit(None, false).unwrap();
    let (_t2, newcomer, evicted) = admission
        .admit(Some(source("198.51.100.1")), false)
        .unwrap();
    assert_eq!(evicted.unwrap().stage, Stage::ProxyPending);
    assert!(squatter.progress().is_evicted() && !newcomer.progress().is_evicted());
    // The evicted one still holds its socket until its task ends: counted until then.
    assert_eq!(admission.connections(), 4);
    // Each newcomer evicts the previous one, but never more than the slack beyond the cap.
    let mut chain = vec![(_t2, newcomer)];
    for i in 0..EVICTION_SLACK + 4 {
        match admission.admit(Some(source(&format!("198.51.100.{}", i + 2))), false) {
            Ok((t, s, evicted)) => {
                assert!(evicted.is_some());
                chain.push((t, s));
            }
            Err(refusal) => assert_eq!(refusal, Refusal::Connections),
        }
    }
    assert_eq!(admission.connections(), 3 + EVICTION_SLACK);
    drop((chain, squatter_ticket, squatter));
    assert_eq!(
        admission.connections(),
        2,
        "slots and counts are freed exactly once"
    );
}

#[test]
fn a_local_health_check_gets_in_at_max_connections_within_its_slack() {
    let admission = total(2);
    let _held = logged_in(&admission, 2);
    let local = Some(source("127.0.0.1"));
    // Health checks past their key exchange: none can be evicted to make room.
    let checks: Vec<_> = (0..LOCAL_SLACK + 2)
        .filter_map(|_| admission.admit(local, true).ok())
        .inspect(|(_, slot, _)| slot.progress().advance(Stage::KexDone))
        .collect();
    assert_eq!(checks.len(), LOCAL_SLACK);
    assert_eq!(
        admission.admit(local, false).err(),
        Some(Refusal::Connections),
        "not exempt unless local"
    );
}
