//! Every refusal is counted, but only a few of a source's repeats of one limit are logged
//! per period.

use std::net::IpAddr;

use super::*;
use crate::source::NetBlockSize;

#[test]
fn repeats_are_counted_but_logged_a_few_times_per_period() {
    let counters = LimitCounters::default();
    let a = NetBlockSize::default().source("192.0.2.1".parse::<IpAddr>().unwrap());
    let b = NetBlockSize::default().source("192.0.2.2".parse::<IpAddr>().unwrap());
    let t0 = Instant::now();
    let logged = (0..100)
        .filter(|_| counters.refused(a, Limit::SourceRate, t0))
        .count();
    assert_eq!(logged, LOGGED_PER_PERIOD as usize);
    assert!(
        counters.refused(b, Limit::SourceRate, t0),
        "another source is logged"
    );
    assert!(
        counters.refused(a, Limit::Penalised, t0),
        "another limit is logged"
    );
    assert!(
        counters.refused(a, Limit::SourceRate, t0 + LOG_PERIOD),
        "a new period"
    );
    assert_eq!(counters.get(Limit::SourceRate), 102);
    let later = t0 + LOG_PERIOD;
    let more = (0..20)
        .filter(|_| counters.refused(a, Limit::SourceRate, later))
        .count();
    assert_eq!(
        more,
        LOGGED_PER_PERIOD as usize - 1,
        "the new period's budget"
    );
}

#[test]
fn the_repeat_table_stays_bounded() {
    let counters = LimitCounters::default();
    let t0 = Instant::now();
    for n in 0..20_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        counters.refused(NetBlockSize::default().source(ip), Limit::SourceRate, t0);
    }
    assert!(counters.logged.lock().unwrap().len() <= MAX_LOGGED);
}
