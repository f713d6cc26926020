//! The cap and the rate each refuse, the cap costs no token, and each kind is logged once.

use super::*;

#[test]
fn cap_then_rate() {
    let mut budget = ChannelBudget::new(ChannelLimits {
        max_open: 3,
        open_rate: 5,
    });
    assert_eq!(budget.try_open(3), Err(ChannelRefusal::Cap));
    assert_eq!((0..10).filter(|_| budget.try_open(0).is_ok()).count(), 5);
    assert_eq!(budget.try_open(0), Err(ChannelRefusal::Rate));
    assert!(budget.first(ChannelRefusal::Rate));
    assert!(!budget.first(ChannelRefusal::Rate));
    assert!(budget.first(ChannelRefusal::Cap));
    let unlimited = ChannelLimits {
        max_open: 1000,
        open_rate: 0,
    };
    let mut budget = ChannelBudget::new(unlimited);
    assert!((0..500).all(|_| budget.try_open(0).is_ok()));
    assert!(ChannelRefusal::Rate
        .message(&unlimited)
        .contains("BASTION_CHANNEL_OPEN_RATE"));
}
