//! How many channels one authenticated connection may hold and how fast it may open them:
//! `BASTION_MAX_CHANNELS` open at once (tunnels and `session` channels together) and
//! `BASTION_CHANNEL_OPEN_RATE` opens per second (bursts of as many). Beyond either, the open is
//! refused with "resource shortage"; the connection and its other channels carry on.

#[cfg(test)]
mod tests;

use std::time::Instant;

use crate::rate_limit::TokenBucket;

/// The two settings.
#[derive(Debug, Clone, Copy)]
pub struct ChannelLimits {
    pub max_open: usize,
    /// Opens per second; 0: no limit.
    pub open_rate: u32,
}

/// Which limit refused an open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRefusal {
    Cap,
    Rate,
}

impl ChannelRefusal {
    /// The message the client sees and the audit records.
    pub fn message(self, limits: &ChannelLimits) -> String {
        match self {
            ChannelRefusal::Cap => format!(
                "too many channels open on this connection (at most {}, BASTION_MAX_CHANNELS); \
                 close some tunnels or use another connection",
                limits.max_open
            ),
            ChannelRefusal::Rate => format!(
                "channels opened too fast (at most {} per second, BASTION_CHANNEL_OPEN_RATE); \
                 retry in a moment",
                limits.open_rate
            ),
        }
    }
}

/// One connection's budget.
#[derive(Debug)]
pub struct ChannelBudget {
    limits: ChannelLimits,
    bucket: TokenBucket,
    /// Whether each refusal kind was logged already on this connection (log once, count all).
    logged: [bool; 2],
}

impl ChannelBudget {
    pub fn new(limits: ChannelLimits) -> ChannelBudget {
        ChannelBudget {
            limits,
            bucket: TokenBucket::full(limits.open_rate, Instant::now()),
            logged: [false; 2],
        }
    }

    pub fn limits(&self) -> &ChannelLimits {
        &self.limits
    }

    /// May one more channel open, with `open_now` open? The cap is checked first, so an
    /// open refused by the cap costs no rate token.
    pub fn try_open(&mut self, open_now: usize) -> Result<(), ChannelRefusal> {
        if open_now >= self.limits.max_open {
            return Err(ChannelRefusal::Cap);
        }
        if !self.bucket.try_take(self.limits.open_rate, Instant::now()) {
            return Err(ChannelRefusal::Rate);
        }
        Ok(())
    }

    /// `true` the first time `refusal` happens on this connection.
    pub fn first(&mut self, refusal: ChannelRefusal) -> bool {
        let seen = &mut self.logged[refusal as usize];
        !std::mem::replace(seen, true)
    }
}
