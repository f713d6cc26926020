//! Bursts up to the rate pass, the next event waits for the refill, and rate 0 is no limit.

use std::time::Duration;

use super::*;

#[test]
fn a_burst_of_rate_passes_then_refills_at_rate_per_second() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::full(5, t0);
    assert_eq!((0..8).filter(|_| bucket.try_take(5, t0)).count(), 5);
    assert!(!bucket.try_take(5, t0 + Duration::from_millis(100)));
    // 5 per second: one token back after 200 ms.
    assert!(bucket.try_take(5, t0 + Duration::from_millis(210)));
    assert!(!bucket.try_take(5, t0 + Duration::from_millis(220)));
    assert!(!bucket.is_full(5, t0 + Duration::from_millis(500)));
    assert!(bucket.is_full(5, t0 + Duration::from_secs(2)));
    assert_eq!(
        (0..8)
            .filter(|_| bucket.try_take(5, t0 + Duration::from_secs(2)))
            .count(),
        5
    );
}

#[test]
fn rate_zero_never_limits() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::full(0, t0);
    assert!((0..1000).all(|_| bucket.try_take(0, t0)));
}
