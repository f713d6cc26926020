//! Per-source penalties, in the spirit of sshd's `PerSourcePenalties`: a connection that fails
//! authentication, ends before authenticating, or runs out its login deadline adds penalty
//! time to its [`Source`]; once a source's penalty reaches `min`, it is refused at accept,
//! before any SSH byte, until the penalty runs out. Penalties add up, capped at `max` from
//! now, and decay in real time. Exempt addresses (`BASTION_PER_SOURCE_PENALTY_EXEMPT`: CIDRs,
//! and by default clients matched by an allow rule) are never penalised. The table holds at most
//! `max-sources` entries; when full, new sources go unpenalised (sshd's "permissive"
//! overflow) rather than evicting penalised ones.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::source::Source;

/// Who is never penalised (`BASTION_PER_SOURCE_PENALTY_EXEMPT`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PenaltyExempt {
    pub nets: Vec<IpNet>,
    /// Clients matched by an allow rule (`BASTION_ALLOW_CLIENTS`, hosts.allow).
    pub allowed: bool,
}

/// What a connection did to earn a penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// Tried a key or password and ended without logging in.
    AuthFail,
    /// Ended (or was evicted, or sent nothing) before any authentication attempt.
    NoAuth,
    /// Still unauthenticated at `BASTION_LOGIN_GRACE_TIME`.
    GraceExceeded,
}

impl Offence {
    pub fn name(self) -> &'static str {
        match self {
            Offence::AuthFail => "authfail",
            Offence::NoAuth => "noauth",
            Offence::GraceExceeded => "grace-exceeded",
        }
    }
}

/// `BASTION_PER_SOURCE_PENALTIES`: `no`, or `key:value` pairs over the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PenaltySettings {
    pub enabled: bool,
    pub authfail: Duration,
    pub noauth: Duration,
    pub grace_exceeded: Duration,
    pub min: Duration,
    pub max: Duration,
    pub max_sources: usize,
}

impl Default for PenaltySettings {
    /// sshd 9.8's defaults.
    fn default() -> Self {
        PenaltySettings {
            enabled: true,
            authfail: Duration::from_secs(5),
            noauth: Duration::from_secs(1),
            grace_exceeded: Duration::from_secs(10),
            min: Duration::from_secs(15),
            max: Duration::from_secs(600),
            max_sources: 65_536,
        }
    }
}

const KEYS: &str = "authfail, noauth, grace-exceeded, min, max (durations such as 5s or 10m) \
                    and max-sources (a count)";

impl PenaltySettings {
    pub fn parse(text: &str) -> Result<PenaltySettings, String> {
        let mut settings = PenaltySettings::default();
        let text = text.trim();
        match text {
            "no" | "off" | "false" => {
                settings.enabled = false;
                return Ok(settings);
            }
            "" | "yes" | "on" | "true" => return Ok(settings),
            _ => {}
        }
        for item in text.split([',', ' ']).filter(|s| !s.is_empty()) {
            let Some((key, value)) = item.split_once(':') else {
                return Err(format!(
                    "{item:?} is not key:value; keys are {KEYS}, or the whole value no"
                ));
            };
            if key == "max-sources" {
                settings.max_sources = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=10_000_000).contains(n))
                    .ok_or_else(|| {
                        format!("max-sources:{value}: use a count from 1 to 10000000")
                    })?;
                continue;
            }
            let duration = humantime::parse_duration(value)
                .map_err(|e| format!("{key}:{value}: {e}; use a duration such as 5s or 10m"))?;
            match key {
                "authfail" => settings.authfail = duration,
                "noauth" => settings.noauth = duration,
                "grace-exceeded" => settings.grace_exceeded = duration,
                "min" => settings.min = duration,
                "max" => settings.max = duration,
                _ => return Err(format!("unknown key {key:?}; keys are {KEYS}")),
            }
        }
        if settings.max < settings.min {
            return Err(format!(
                "max ({}) is below min ({}): no penalty could ever start",
                humantime::format_duration(settings.max),
                humantime::format_duration(settings.min)
            ));
        }
        Ok(settings)
    }

    fn cost(&self, offence: Offence) -> Duration {
        match offence {
            Offence::AuthFail => self.authfail,
            Offence::NoAuth => self.noauth,
            Offence::GraceExceeded => self.grace_exceeded,
        }
    }
}

#[derive(Debug)]
struct Entry {
    expiry: Instant,
    active: bool,
    /// Refusals while active; the first is logged, the rest only counted.
    refused: u64,
}

/// A penalty that just started, for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub source: Source,
    pub duration: Duration,
}

/// At accept: what the table says about a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clear,
    /// Refused; `first` is true once per penalty (log it), `remaining` until it ends.
    Refused {
        remaining: Duration,
        first: bool,
    },
}

#[derive(Default)]
struct Table {
    entries: HashMap<Source, Entry>,
    last_purge: Option<Instant>,
}

/// The penalty table.
pub struct Penalties {
    settings: PenaltySettings,
    exempt: PenaltyExempt,
    table: Mutex<Table>,
}

impl Penalties {
    pub fn new(settings: PenaltySettings, exempt: PenaltyExempt) -> Penalties {
        Penalties {
            settings,
            exempt,
            table: Mutex::new(Table::default()),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a client is exempt: listed, or allow-listed when `allowed` is set.
    pub fn is_exempt(&self, ip: IpAddr, allow_listed: bool) -> bool {
        let ip = ip.to_canonical();
        (allow_listed && self.exempt.allowed) || self.exempt.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether `source` is penalised now.
    pub fn check(&self, source: Source, now: Instant) -> Verdict {
        if !self.settings.enabled {
            return Verdict::Clear;
        }
        let mut table = self.table();
        let Some(entry) = table.entries.get_mut(&source) else {
            return Verdict::Clear;
        };
        if entry.expiry <= now {
            table.entries.remove(&source);
            return Verdict::Clear;
        }
        if !entry.active {
            return Verdict::Clear;
        }
        entry.refused += 1;
        Verdict::Refused {
            remaining: entry.expiry - now,
            first: entry.refused == 1,
        }
    }

    /// Add `offence`'s penalty to the source of `ip`; `Some` when this starts a penalty.
    pub fn record(
        &self,
        source: Source,
        ip: IpAddr,
        offence: Offence,
        now: Instant,
    ) -> Option<Started> {
        let cost = self.settings.cost(offence);
        if !self.settings.enabled || cost.is_zero() || self.is_exempt(ip, false) {
            return None;
        }
        let mut table = self.table();
        if !table.entries.contains_key(&source) && !self.make_room(&mut table, now) {
            return None;
        }
        let cap = now + self.settings.max;
        let entry = table.entries.entry(source).or_insert(Entry {
            expiry: now,
            active: false,
            refused: 0,
        });
        entry.expiry = (entry.expiry.max(now) + cost).min(cap);
        if entry.active || entry.expiry - now < self.settings.min {
            return None;
        }
        entry.active = true;
        entry.refused = 0;
        Some(Started {
            source,
            duration: entry.expiry - now,
        })
    }

    /// Room for one more source: drop expired entries (at most once a second); `false` when
    /// the table is still full.
    fn make_room(&self, table: &mut Table, now: Instant) -> bool {
        if table.entries.len() < self.settings.max_sources {
            return true;
        }
        let due = table
            .last_purge
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if due {
            table.last_purge = Some(now);
            table.entries.retain(|_, e| e.expiry > now);
        }
        table.entries.len() < self.settings.max_sources
    }

    /// Sources in the table (bounded by `max-sources`).
    pub fn tracked(&self) -> usize {
        self.table().entries.len()
    }
}
