//! `BASTION_MAX_TUNNELS`: the tunnels of all connections together, each holding a file
//! descriptor (its destination socket, and before it the name lookup) from the moment it is
//! admitted until its task has closed that socket. A [`TunnelPermit`] is that hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The server-wide tunnel count.
#[derive(Debug)]
pub struct TunnelSlots {
    max: usize,
    held: AtomicUsize,
}

/// One tunnel's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct TunnelPermit {
    slots: Arc<TunnelSlots>,
}

impl TunnelSlots {
    pub fn new(max: usize) -> Arc<TunnelSlots> {
        Arc::new(TunnelSlots {
            max,
            held: AtomicUsize::new(0),
        })
    }

    /// A slot, or `None` when all `max` are held.
    pub fn try_acquire(self: &Arc<Self>) -> Option<TunnelPermit> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(TunnelPermit {
            slots: self.clone(),
        })
    }

    /// Slots held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for TunnelPermit {
    fn drop(&mut self) {
        self.slots.held.fetch_sub(1, Ordering::AcqRel);
    }
}
