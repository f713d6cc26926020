//! Who may take a pre-authentication slot: the cap on unauthenticated connections
//! (`BASTION_MAX_STARTUPS`, like sshd's `MaxStartups`), so a flood of connections that never
//! log in cannot hold every slot for longer than the login deadline. A slot is held from
//! accept until the connection authenticates (or ends).

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The server's unauthenticated-connection counter and its cap.
#[derive(Debug, Clone)]
pub struct Startups {
    taken: Arc<AtomicUsize>,
    max: usize,
}

impl Startups {
    pub fn new(max: usize) -> Startups {
        Startups {
            taken: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Take a slot if fewer than the cap are taken; `None`: drop the connection.
    pub fn try_take(&self) -> Option<StartupSlot> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| StartupSlot(self.taken.clone()))
    }

    /// Slots taken now.
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }
}

/// Held while a connection is unauthenticated; dropping it frees the slot.
#[derive(Debug)]
pub struct StartupSlot(Arc<AtomicUsize>);

impl Drop for StartupSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
