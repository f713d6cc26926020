//! Out of descriptors, the loop pauses each time and logs once a period; a connection's own
//! error is retried at once.

use super::*;

fn emfile() -> io::Error {
    io::Error::from_raw_os_error(24)
}

#[test]
fn running_out_of_descriptors_pauses_every_time_and_logs_once_a_period() {
    let mut errors = AcceptErrors::default();
    let t0 = Instant::now();
    assert!(errors.should_log(t0));
    for i in 0..600u64 {
        let now = t0 + PAUSE * i as u32;
        assert_eq!(errors.failed(&emfile(), now), PAUSE, "never spins");
    }
    // 600 errors over 60 s: the first logged, the rest held for the next period.
    assert_eq!(errors.suppressed, 599);
    assert!(!errors.should_log(t0 + LOG_PERIOD - Duration::from_millis(1)));
    let later = t0 + LOG_PERIOD;
    assert_eq!(errors.failed(&emfile(), later), PAUSE);
    assert_eq!(
        errors.suppressed, 0,
        "logged with the count of those held back"
    );
    assert_eq!(errors.last_logged, Some(later));
}

#[test]
fn one_connections_own_error_is_retried_at_once() {
    let mut errors = AcceptErrors::default();
    let now = Instant::now();
    let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
    assert_eq!(errors.failed(&aborted, now), Duration::ZERO);
    assert_eq!(errors.failed(&emfile(), now), PAUSE);
}
