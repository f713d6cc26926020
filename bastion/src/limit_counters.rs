//! How often each limit has bitten since start, and how much of it reaches the log. Under a
//! flood, a line per refused connection would be a second flood (and a CloudWatch bill), so
//! refusals at accept are logged at most [`LOGGED_PER_PERIOD`] times per source and limit per
//! minute; every one is counted,
//! and the counts go out as one `limits` audit event per minute when they changed, and at
//! shutdown.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::audit::{self, LimitCounts};
use crate::source::Source;

/// Every limit that is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    ClientRules,
    Penalised,
    PenaltyStarted,
    SourceRate,
    SourceConnections,
    SourceStartups,
    ConnectionsFull,
    StartupsFull,
    Evicted,
    ProxyTimeout,
    BannerTimeout,
    LoginTimeout,
    ChannelCap,
    SessionCap,
    ChannelRate,
    TunnelsFull,
}

const LIMITS: usize = 16;

impl Limit {
    fn index(self) -> usize {
        self as usize
    }
}

/// The period of the log budget, and of the `limits` event.
pub const LOG_PERIOD: Duration = Duration::from_secs(60);
/// Refusals of one source by one limit logged per period; the rest are only counted.
pub const LOGGED_PER_PERIOD: u32 = 5;
/// The repeat table is cleared when it grows past this (a flood from many sources).
const MAX_LOGGED: usize = 4096;

#[derive(Default)]
pub struct LimitCounters {
    counts: [AtomicU64; LIMITS],
    /// Per (source, limit): when its period started and how many were logged in it.
    logged: Mutex<HashMap<(Source, Limit), (Instant, u32)>>,
    last_sent: Mutex<[u64; LIMITS]>,
}

impl LimitCounters {
    pub fn bump(&self, limit: Limit) {
        self.counts[limit.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, limit: Limit) -> u64 {
        self.counts[limit.index()].load(Ordering::Relaxed)
    }

    /// Count a refusal of `source`; `true` when it should also be logged (one of the first
    /// [`LOGGED_PER_PERIOD`] in this [`LOG_PERIOD`] for this source and limit).
    pub fn refused(&self, source: Source, limit: Limit, now: Instant) -> bool {
        self.bump(limit);
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < LOG_PERIOD;
        if let Some((started, count)) = logged.get_mut(&(source, limit)) {
            if fresh(started) {
                *count += 1;
                return *count <= LOGGED_PER_PERIOD;
            }
        }
        if logged.len() >= MAX_LOGGED {
            logged.retain(|_, (at, _)| fresh(at));
            if logged.len() >= MAX_LOGGED {
                logged.clear();
            }
        }
        logged.insert((source, limit), (now, 1));
        true
    }

    fn snapshot(&self) -> [u64; LIMITS] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }

    /// Log the `limits` event if any count changed since the last one.
    pub fn report(&self) {
        let now = self.snapshot();
        let mut last = self
            .last_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *last == now {
            return;
        }
        *last = now;
        let c = |l: Limit| now[l.index()];
        audit::limits(&LimitCounts {
            client_rules: c(Limit::ClientRules),
            penalised: c(Limit::Penalised),
            penalties_started: c(Limit::PenaltyStarted),
            source_rate: c(Limit::SourceRate),
            source_connections: c(Limit::SourceConnections),
            source_startups: c(Limit::SourceStartups),
            connections_full: c(Limit::ConnectionsFull),
            startups_full: c(Limit::StartupsFull),
            evicted: c(Limit::Evicted),
            proxy_timeout: c(Limit::ProxyTimeout),
            banner_timeout: c(Limit::BannerTimeout),
            login_timeout: c(Limit::LoginTimeout),
            channel_cap: c(Limit::ChannelCap),
            session_cap: c(Limit::SessionCap),
            channel_rate: c(Limit::ChannelRate),
            tunnels_full: c(Limit::TunnelsFull),
        });
    }
}
