//! Who may hold a connection before authenticating, and how many connections a source may
//! have. Three per-source limits, on the real client address grouped by [`Source`]: new
//! connections per second, connections at once, and unauthenticated connections at once.
//! Then two server-wide caps: on every connection (`BASTION_MAX_CONNECTIONS`: each holds a
//! file descriptor) and on unauthenticated ones (`BASTION_MAX_STARTUPS`). At either cap a
//! newcomer is not refused but takes the slot of the connection that has made the least
//! [`Progress`] for longest (a pending PROXY header, then no identification for a second, then
//! identification only, then an unfinished key exchange; oldest first: see
//! [`Progress::eviction_rank`]). Connections past the key exchange are never evicted; only when
//! none can be is the newcomer refused.
//!
//! An evicted connection keeps its descriptor until its task has closed it, so at
//! `BASTION_MAX_CONNECTIONS` evictions admit at most [`EVICTION_SLACK`] connections beyond the
//! cap; past that, newcomers are refused until the evicted ones are gone. When the bastion
//! listens on a non-loopback address, a loopback peer (the container's own health check) is
//! admitted up to [`LOCAL_SLACK`] beyond the cap, so a full bastion is not killed as unhealthy.
//!
//! A connection holds a [`Ticket`] (its place in its source's counts) for its whole life and a
//! [`StartupSlot`] until it authenticates. Behind a load balancer, a connection is admitted
//! without a source (`ProxyPending`) and [`Admission::claim`]s one when its header arrives.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::progress::{Cut, Progress, Stage};
use crate::rate_limit::TokenBucket;
use crate::source::Source;

/// The limits, each 0 for "no limit" except `max_connections` and `max_startups`.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub max_connections: usize,
    pub max_startups: usize,
    pub per_source_startups: u32,
    pub per_source_connections: u32,
    /// New connections per second per source (bursts of as many).
    pub per_source_rate: u32,
}

/// Why a connection was refused at admission; each names the setting that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    SourceRate,
    SourceConnections,
    SourceStartups,
    /// Every connection slot is taken and no squatter can be evicted.
    Connections,
    /// Every pre-authentication slot holds a connection past its key exchange.
    Startups,
}

/// Connections admitted beyond `BASTION_MAX_CONNECTIONS` while the squatters they evicted
/// close (see the module doc).
pub const EVICTION_SLACK: usize = 8;
/// Loopback connections (the container's health check) admitted beyond
/// `BASTION_MAX_CONNECTIONS` when the bastion listens on a non-loopback address.
pub const LOCAL_SLACK: usize = 4;

impl Refusal {
    pub fn setting(self) -> &'static str {
        match self {
            Refusal::SourceRate => "BASTION_PER_SOURCE_CONNECTION_RATE",
            Refusal::SourceConnections => "BASTION_PER_SOURCE_MAX_CONNECTIONS",
            Refusal::SourceStartups => "BASTION_PER_SOURCE_MAX_STARTUPS",
            Refusal::Connections => "BASTION_MAX_CONNECTIONS",
            Refusal::Startups => "BASTION_MAX_STARTUPS",
        }
    }
}

#[derive(Debug)]
struct PerSource {
    startups: u32,
    connections: u32,
    bucket: TokenBucket,
}

struct Slot {
    source: Option<Source>,
    progress: Arc<Progress>,
}

#[derive(Default)]
struct Table {
    next: u64,
    /// Every admitted connection, until its [`Ticket`] is dropped.
    connections: usize,
    slots: HashMap<u64, Slot>,
    sources: HashMap<Source, PerSource>,
}

/// The server's admission state.
pub struct Admission {
    limits: AdmissionLimits,
    epoch: Instant,
    table: Mutex<Table>,
}

/// A connection's place in its source's connection count; dropped when it closes.
pub struct Ticket {
    admission: Arc<Admission>,
    source: Option<Source>,
}

/// A pre-authentication slot; dropped (freed) at login or when the connection ends.
pub struct StartupSlot {
    admission: Arc<Admission>,
    id: u64,
    progress: Arc<Progress>,
}

/// A connection that gave up its slot to a newcomer: who it was, for the audit.
#[derive(Debug, Clone)]
pub struct Eviction {
    pub source: Option<Source>,
    pub stage: Stage,
    pub idle_ms: u64,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            epoch: Instant::now(),
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admit a new connection from `source` (`None`: PROXY header pending); `local`: a
    /// loopback peer of a bastion listening elsewhere (see [`LOCAL_SLACK`]). On success the
    /// connection holds a ticket and a slot, and `Eviction` says whom it displaced.
    pub fn admit(
        self: &Arc<Self>,
        source: Option<Source>,
        local: bool,
    ) -> Result<(Ticket, StartupSlot, Option<Eviction>), Refusal> {
        let now = Instant::now();
        let mut table = self.table();
        if let Some(source) = source {
            self.check_source(&mut table, source, now)?;
        }
        let evicted = self.make_room(&mut table, local)?;
        let stage = match source {
            Some(_) => Stage::Connected,
            None => Stage::ProxyPending,
        };
        let progress = Progress::new(stage, self.epoch);
        table.next += 1;
        let id = table.next;
        table.slots.insert(
            id,
            Slot {
                source,
                progress: progress.clone(),
            },
        );
        if let Some(source) = source {
            count_in(&mut table, source, now);
        }
        table.connections += 1;
        drop(table);
        let ticket = Ticket {
            admission: self.clone(),
            source,
        };
        let slot = StartupSlot {
            admission: self.clone(),
            id,
            progress,
        };
        Ok((ticket, slot, evicted))
    }

    /// The PROXY header arrived: the pending connection becomes `source`'s, under its limits.
    pub fn claim(
        &self,
        ticket: &mut Ticket,
        slot: &StartupSlot,
        source: Source,
    ) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut table = self.table();
        self.check_source(&mut table, source, now)?;
        // An evicted slot is gone from the table; the connection is closing anyway.
        let Some(entry) = table.slots.get_mut(&slot.id) else {
            return Err(Refusal::Startups);
        };
        entry.source = Some(source);
        count_in(&mut table, source, now);
        ticket.source = Some(source);
        slot.progress.advance(Stage::Connected);
        Ok(())
    }

    /// The per-source checks, in order: rate, connections, unauthenticated connections.
    fn check_source(&self, table: &mut Table, source: Source, now: Instant) -> Result<(), Refusal> {
        let limits = self.limits;
        if table.sources.len() > SOURCE_TABLE_TIDY && !table.sources.contains_key(&source) {
            tidy(table, limits.per_source_rate, now);
        }
        let entry = table.sources.entry(source).or_insert_with(|| PerSource {
            startups: 0,
            connections: 0,
            bucket: TokenBucket::full(limits.per_source_rate, now),
        });
        if !entry.bucket.try_take(limits.per_source_rate, now) {
            return Err(Refusal::SourceRate);
        }
        if limits.per_source_connections > 0 && entry.connections >= limits.per_source_connections {
            return Err(Refusal::SourceConnections);
        }
        if limits.per_source_startups > 0 && entry.startups >= limits.per_source_startups {
            return Err(Refusal::SourceStartups);
        }
        Ok(())
    }

    /// At a cap, evict the least-progressed squatter, or refuse when there is none. One
    /// eviction frees room under both caps (a squatter holds a connection and a slot).
    fn make_room(&self, table: &mut Table, local: bool) -> Result<Option<Eviction>, Refusal> {
        let cap = self.limits.max_connections;
        if table.connections >= cap && !(local && table.connections < cap + LOCAL_SLACK) {
            if table.connections >= cap + EVICTION_SLACK {
                return Err(Refusal::Connections);
            }
            return self.evict(table).map(Some).ok_or(Refusal::Connections);
        }
        if table.slots.len() < self.limits.max_startups {
            return Ok(None);
        }
        self.evict(table).map(Some).ok_or(Refusal::Startups)
    }

    /// Evict the least-progressed, oldest squatter, if any may be.
    fn evict(&self, table: &mut Table) -> Option<Eviction> {
        let now_us = self.us_now();
        let victim = table
            .slots
            .iter()
            .filter_map(|(id, slot)| {
                let rank = slot.progress.eviction_rank(now_us)?;
                Some((*id, rank, slot.progress.since_us(), slot.progress.stage()))
            })
            .min_by_key(|(_, rank, since, _)| (*rank, *since));
        let (id, _, since, stage) = victim?;
        let slot = table.slots.remove(&id)?;
        if let Some(source) = slot.source {
            if let Some(entry) = table.sources.get_mut(&source) {
                entry.startups = entry.startups.saturating_sub(1);
            }
        }
        slot.progress.cut(Cut::Evicted(stage));
        Some(Eviction {
            source: slot.source,
            stage,
            idle_ms: now_us.saturating_sub(since) / 1000,
        })
    }

    fn us_now(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_micros() as u64
    }

    /// Unauthenticated connections now (tests and the audit summary).
    pub fn startups(&self) -> usize {
        self.table().slots.len()
    }

    /// Connections now, authenticated or not (evicted ones until they have closed).
    pub fn connections(&self) -> usize {
        self.table().connections
    }

    /// Sources with state kept (bounded: see [`SOURCE_TABLE_TIDY`]).
    pub fn tracked_sources(&self) -> usize {
        self.table().sources.len()
    }
}

/// Above this many sources, a new one first drops the entries that hold nothing (no
/// connection, a full bucket), so a flood from many addresses cannot grow the table forever.
const SOURCE_TABLE_TIDY: usize = 16_384;

fn tidy(table: &mut Table, rate: u32, now: Instant) {
    table
        .sources
        .retain(|_, e| e.connections > 0 || !e.bucket.is_full(rate, now));
}

fn count_in(table: &mut Table, source: Source, now: Instant) {
    let entry = table.sources.entry(source).or_insert_with(|| PerSource {
        startups: 0,
        connections: 0,
        bucket: TokenBucket::full(0, now),
    });
    entry.startups += 1;
    entry.connections += 1;
}

impl StartupSlot {
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }
}

impl Drop for StartupSlot {
    fn drop(&mut self) {
        let mut table = self.admission.table();
        // Already gone when this connection was evicted.
        let Some(slot) = table.slots.remove(&self.id) else {
            return;
        };
        if let Some(source) = slot.source {
            if let Some(entry) = table.sources.get_mut(&source) {
                entry.startups = entry.startups.saturating_sub(1);
            }
        }
    }
}

impl Ticket {
    pub fn source(&self) -> Option<Source> {
        self.source
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let rate = self.admission.limits.per_source_rate;
        let mut table = self.admission.table();
        table.connections = table.connections.saturating_sub(1);
        let Some(source) = self.source else {
            return;
        };
        if let Some(entry) = table.sources.get_mut(&source) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 && entry.bucket.is_full(rate, Instant::now()) {
                table.sources.remove(&source);
            }
        }
    }
}
