//! How often each limit has bitten since start, and how much of it reaches the log. Under a
//! flood, a line per refused connection would be a second flood (and a CloudWatch bill), so a
//! refusal at accept is logged once per source and limit per minute; every one is counted,
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
    StartupsFull,
    Evicted,
    ProxyTimeout,
    BannerTimeout,
    LoginTimeout,
    ChannelCap,
    ChannelRate,
}

const LIMITS: usize = 13;

impl Limit {
    fn index(self) -> usize {
        self as usize
    }
}

/// Suppress repeats of one (source, limit) log line for this long.
pub const LOG_PERIOD: Duration = Duration::from_secs(60);
/// The repeat table is cleared when it grows past this (a flood from many sources).
const MAX_LOGGED: usize = 4096;

#[derive(Default)]
pub struct LimitCounters {
    counts: [AtomicU64; LIMITS],
    logged: Mutex<HashMap<(Source, Limit), Instant>>,
    last_sent: Mutex<[u64; LIMITS]>,
}

impl LimitCounters {
    pub fn bump(&self, limit: Limit) {
        self.counts[limit.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, limit: Limit) -> u64 {
        self.counts[limit.index()].load(Ordering::Relaxed)
    }

    /// Count a refusal of `source`; `true` when it should also be logged (the first time
    /// in [`LOG_PERIOD`] for this source and limit).
    pub fn refused(&self, source: Source, limit: Limit, now: Instant) -> bool {
        self.bump(limit);
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = logged.get(&(source, limit)) {
            if now.saturating_duration_since(*at) < LOG_PERIOD {
                return false;
            }
        }
        if logged.len() >= MAX_LOGGED {
            logged.retain(|_, at| now.saturating_duration_since(*at) < LOG_PERIOD);
            if logged.len() >= MAX_LOGGED {
                logged.clear();
            }
        }
        logged.insert((source, limit), now);
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
            startups_full: c(Limit::StartupsFull),
            evicted: c(Limit::Evicted),
            proxy_timeout: c(Limit::ProxyTimeout),
            banner_timeout: c(Limit::BannerTimeout),
            login_timeout: c(Limit::LoginTimeout),
            channel_cap: c(Limit::ChannelCap),
            channel_rate: c(Limit::ChannelRate),
        });
    }
}
