//! How many channels an authenticated connection may hold and how fast it may open them:
//! `BASTION_MAX_CHANNELS` open at once (tunnels and `session` channels together), of which at
//! most `BASTION_MAX_SESSIONS` `session` channels (sshd's `MaxSessions`: they run nothing here,
//! and without this a connection's whole channel budget could be idle sessions), and
//! `BASTION_CHANNEL_OPEN_RATE` opens per second (bursts of as many). Server-wide, tunnels hold
//! one file descriptor each and share `BASTION_MAX_TUNNELS` ([`TunnelSlots`]). Beyond any of
//! these the open is refused with "resource shortage"; the connection and its other channels
//! carry on.

#[cfg(test)]
mod tests;
mod tunnel_slots;

use std::time::Instant;

use crate::rate_limit::TokenBucket;

pub use tunnel_slots::{TunnelPermit, TunnelSlots};

/// The channel settings.
#[derive(Debug, Clone, Copy)]
pub struct ChannelLimits {
    /// Channels per connection.
    pub max_open: usize,
    /// `session` channels per connection.
    pub max_sessions: usize,
    /// Opens per second per connection; 0: no limit.
    pub open_rate: u32,
    /// Tunnels server-wide.
    pub max_tunnels: usize,
}

/// Which limit refused an open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRefusal {
    Cap,
    Sessions,
    Rate,
    Tunnels,
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
            ChannelRefusal::Sessions => format!(
                "too many session channels open on this connection (at most {}, \
                 BASTION_MAX_SESSIONS); this bastion runs no commands: use ssh -N",
                limits.max_sessions
            ),
            ChannelRefusal::Rate => format!(
                "channels opened too fast (at most {} per second, BASTION_CHANNEL_OPEN_RATE); \
                 retry in a moment",
                limits.open_rate
            ),
            ChannelRefusal::Tunnels => format!(
                "the bastion holds its maximum of {} tunnels (BASTION_MAX_TUNNELS, all \
                 connections together); retry later",
                limits.max_tunnels
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
    logged: [bool; 4],
}

impl ChannelBudget {
    pub fn new(limits: ChannelLimits) -> ChannelBudget {
        ChannelBudget {
            limits,
            bucket: TokenBucket::full(limits.open_rate, Instant::now()),
            logged: [false; 4],
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

    /// May one more `session` channel open, with `open_now` channels and `sessions_now`
    /// sessions open? Both caps are checked before the rate.
    pub fn try_open_session(
        &mut self,
        open_now: usize,
        sessions_now: usize,
    ) -> Result<(), ChannelRefusal> {
        if open_now < self.limits.max_open && sessions_now >= self.limits.max_sessions {
            return Err(ChannelRefusal::Sessions);
        }
        self.try_open(open_now)
    }

    /// `true` the first time `refusal` happens on this connection.
    pub fn first(&mut self, refusal: ChannelRefusal) -> bool {
        let seen = &mut self.logged[refusal as usize];
        !std::mem::replace(seen, true)
    }
}
