//! The cap, the session cap and the rate each refuse, the caps cost no token, each kind is
//! logged once, and the server-wide tunnel slots are held until their permit is dropped.

use super::*;

fn limits(max_open: usize, max_sessions: usize, open_rate: u32) -> ChannelLimits {
    ChannelLimits {
        max_open,
        max_sessions,
        open_rate,
        max_tunnels: 10,
    }
}

#[test]
fn cap_then_rate() {
    let mut budget = ChannelBudget::new(limits(3, 3, 5));
    assert_eq!(budget.try_open(3), Err(ChannelRefusal::Cap));
    assert_eq!((0..10).filter(|_| budget.try_open(0).is_ok()).count(), 5);
    assert_eq!(budget.try_open(0), Err(ChannelRefusal::Rate));
    assert!(budget.first(ChannelRefusal::Rate));
    assert!(!budget.first(ChannelRefusal::Rate));
    assert!(budget.first(ChannelRefusal::Cap));
    let unlimited = limits(1000, 1000, 0);
    let mut budget = ChannelBudget::new(unlimited);
    assert!((0..500).all(|_| budget.try_open(0).is_ok()));
    assert!(ChannelRefusal::Rate
        .message(&unlimited)
        .contains("BASTION_CHANNEL_OPEN_RATE"));
}

#[test]
fn sessions_have_their_own_cap_within_the_channel_cap() {
    let limits = limits(5, 2, 0);
    let mut budget = ChannelBudget::new(limits);
    assert_eq!(budget.try_open_session(1, 1), Ok(()));
    assert_eq!(budget.try_open_session(2, 2), Err(ChannelRefusal::Sessions));
    assert_eq!(budget.try_open_session(5, 2), Err(ChannelRefusal::Cap));
    assert_eq!(budget.try_open(2), Ok(()), "tunnels are not sessions");
    assert!(budget.first(ChannelRefusal::Sessions));
    assert!(!budget.first(ChannelRefusal::Sessions));
    assert!(ChannelRefusal::Sessions
        .message(&limits)
        .contains("BASTION_MAX_SESSIONS"));
}

#[test]
fn tunnel_slots_are_shared_and_freed_with_their_permit() {
    let slots = TunnelSlots::new(3);
    let held: Vec<_> = (0..5).filter_map(|_| slots.try_acquire()).collect();
    assert_eq!((held.len(), slots.held()), (3, 3));
    assert!(slots.try_acquire().is_none());
    drop(held);
    assert_eq!(slots.held(), 0);
    assert!(slots.try_acquire().is_some());
    assert!(ChannelRefusal::Tunnels
        .message(&limits(1, 1, 0))
        .contains("BASTION_MAX_TUNNELS"));
}
