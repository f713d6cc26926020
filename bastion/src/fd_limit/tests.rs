//! The caps fit the limit unchanged when they can, else shrink in proportion within it; the
//! soft limit is raised to the hard one.

use super::*;
use crate::admission::{EVICTION_SLACK, LOCAL_SLACK};

const DEFAULTS: FdCaps = FdCaps {
    max_connections: 1024,
    max_tunnels: 4096,
};

#[test]
fn caps_that_fit_are_left_alone() {
    assert_eq!(fit(65_535, DEFAULTS), Ok(DEFAULTS));
    assert_eq!(fit(DEFAULTS.needed(), DEFAULTS), Ok(DEFAULTS));
}

#[test]
fn caps_over_the_limit_shrink_in_proportion_within_it() {
    for limit in [128, 256, 1024, 4096, 5183] {
        let fitted = fit(limit, DEFAULTS).unwrap();
        assert!(fitted.needed() <= limit, "{limit}: {fitted:?}");
        assert!(
            fitted.needed() + 2 >= limit,
            "{limit}: most of the budget is used: {fitted:?}"
        );
        let ratio = fitted.max_tunnels as f64 / fitted.max_connections as f64;
        assert!((3.5..=4.5).contains(&ratio), "{limit}: {fitted:?}");
    }
    let fitted = FdCaps {
        max_connections: 12,
        max_tunnels: 52,
    };
    assert_eq!(fit(128, DEFAULTS), Ok(fitted));
    let note = lowered_note(128, DEFAULTS, fitted).unwrap();
    for needle in [
        "BASTION_MAX_CONNECTIONS=1024",
        "need 5184",
        "limit of 128",
        "12 and 52",
    ] {
        assert!(note.contains(needle), "{needle}: {note}");
    }
    assert_eq!(lowered_note(65_535, DEFAULTS, DEFAULTS), None);
}

#[test]
fn a_tiny_budget_keeps_one_of_each_and_too_little_is_an_error() {
    let lopsided = FdCaps {
        max_connections: 1,
        max_tunnels: 100_000,
    };
    let fitted = fit(RESERVE + 2, lopsided).unwrap();
    assert_eq!((fitted.max_connections, fitted.max_tunnels), (1, 1));
    let fitted = fit(RESERVE + 10, lopsided).unwrap();
    assert_eq!((fitted.max_connections, fitted.max_tunnels), (1, 9));
    let err = fit(RESERVE + 1, DEFAULTS).unwrap_err();
    assert!(err.contains("raise the hard limit"), "{err}");
}

#[test]
fn the_reserve_covers_the_admission_slack() {
    assert!(RESERVE >= (EVICTION_SLACK.max(LOCAL_SLACK) as u64) + 32);
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_limit() {
    let limit = raise();
    let now = getrlimit(Resource::Nofile);
    assert_eq!(limit.error, None);
    assert_eq!(now.current, Some(limit.soft));
    if let Some(hard) = limit.hard {
        assert_eq!(limit.soft, hard);
    }
    assert!(limit.soft >= limit.soft_before);
}
