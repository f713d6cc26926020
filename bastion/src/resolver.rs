//! Name lookups of tunnel destinations, bounded in number and in time: an in-process,
//! asynchronous DNS stub resolver (hickory) that answers from `/etc/hosts` first and then asks
//! the servers of `/etc/resolv.conf`.
//!
//! Why not the system resolver (`getaddrinfo` through `tokio::net::lookup_host`): it holds one
//! thread of tokio's blocking pool (512 threads) for each lookup, and a timeout abandons the
//! future, not the thread. A DNS server that never answers let a few connections hold every
//! thread for glibc's whole retry time, and everyone else's lookups waited behind them. Here a
//! lookup is a future holding a socket or a few; its deadline drops it, and with it the
//! sockets and its slot.
//!
//! Two bounds: a connection has at most `per_connection` lookups in progress (its others wait
//! for one of them to end), the whole bastion at most `total`. Waiting for a slot and the
//! lookup itself share one deadline (`BASTION_CONNECT_TIMEOUT`), so an attacker's lookups of
//! names nobody answers occupy a few slots for that long and then fail, and other users'
//! lookups find free slots (unless an attacker holds `total / per_connection` connections).
//!
//! A name in `/etc/hosts` is answered from the file, as given (no search list), before any
//! query and without a slot, as glibc's `hosts: files dns` does; IP literals never come here
//! (`destination_policy` takes them as they are). What the files mean, and where this differs
//! from glibc, is in `resolver/system.rs`.

mod system;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::net::NetError;
use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Hosts, TokioResolver};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::net::{self, Escape, Quoting};

/// The setting bounding all lookups in progress at once.
pub const TOTAL_SETTING: &str = "BASTION_DNS_MAX_LOOKUPS";
/// The setting bounding one connection's lookups in progress at once.
pub const PER_CONNECTION_SETTING: &str = "BASTION_DNS_MAX_LOOKUPS_PER_CONNECTION";

/// Longest piece of a resolver error shown to the client.
const ERROR_SHOWN_MAX: usize = 80;

/// How many lookups may be in progress at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupLimits {
    /// On the whole bastion (`BASTION_DNS_MAX_LOOKUPS`).
    pub total: usize,
    /// On one SSH connection (`BASTION_DNS_MAX_LOOKUPS_PER_CONNECTION`).
    pub per_connection: usize,
}

impl LookupLimits {
    /// Default of `BASTION_DNS_MAX_LOOKUPS`: bounds the sockets lookups hold (a lookup of a
    /// name nobody answers holds up to 6 UDP sockets at once per name server it asks: A and
    /// AAAA, each sent up to 3 times), so at most 768 with one server, while a DNS server that answers in
    /// a millisecond serves over 100,000 lookups a second through it. Filling it with names
    /// nobody answers takes 16 authenticated connections.
    pub const DEFAULT_TOTAL: u32 = 128;
    /// Default of `BASTION_DNS_MAX_LOOKUPS_PER_CONNECTION`: a client opening dozens of tunnels
    /// to names at once waits a few milliseconds for slots when DNS answers, and a connection
    /// whose names are never answered holds no more than 8 slots.
    pub const DEFAULT_PER_CONNECTION: u32 = 8;
}

/// The bastion's resolver: the DNS client, the hosts file, the bastion-wide slots.
pub struct Resolver {
    dns: TokioResolver,
    hosts: Hosts,
    slots: Semaphore,
    limits: LookupLimits,
    summary: String,
}

impl Resolver {
    /// The resolver of this host: `/etc/resolv.conf` and `/etc/hosts`, read now, once.
    pub fn from_system(limits: LookupLimits) -> Result<Resolver, String> {
        Resolver::from_files(
            Path::new(system::RESOLV_CONF),
            Path::new(system::HOSTS),
            limits,
        )
    }

    /// A resolver configured by these files (a missing one means what it means to glibc).
    pub fn from_files(
        resolv_conf: &Path,
        hosts: &Path,
        limits: LookupLimits,
    ) -> Result<Resolver, String> {
        let conf = system::read_optional(resolv_conf)?;
        let hosts = system::read_optional(hosts)?;
        Resolver::new(
            conf.as_deref(),
            hosts.as_deref().unwrap_or_default(),
            limits,
        )
    }

    /// A resolver from the contents of `resolv.conf` (`None`: no such file) and `hosts`.
    pub fn new(
        resolv_conf: Option<&[u8]>,
        hosts: &[u8],
        limits: LookupLimits,
    ) -> Result<Resolver, String> {
        Resolver::assemble(system::SystemConfig::parse(resolv_conf, hosts)?, limits)
    }

    fn assemble(system: system::SystemConfig, limits: LookupLimits) -> Result<Resolver, String> {
        let summary = format!(
            "{}; at most {} lookups at once, {} per connection",
            system.summary, limits.total, limits.per_connection
        );
        Ok(Resolver {
            dns: system.build()?,
            hosts: system.hosts,
            slots: Semaphore::new(limits.total),
            limits,
            summary,
        })
    }

    /// One line for the `config` event: servers, search list, options, limits.
    pub fn describe(&self) -> &str {
        &self.summary
    }

    /// The lookups of one SSH connection (with its own slots).
    pub fn for_connection(self: &Arc<Self>) -> ConnectionLookups {
        ConnectionLookups {
            slots: Semaphore::new(self.limits.per_connection),
            resolver: self.clone(),
        }
    }

    /// The addresses `/etc/hosts` gives `name` (IPv4, then IPv6), if it lists it.
    fn hosts_file(&self, name: &Name) -> Option<Vec<IpAddr>> {
        let mut found = Vec::new();
        for kind in [RecordType::A, RecordType::AAAA] {
            if let Some(lookup) = self
                .hosts
                .lookup_static_host(&Query::query(name.clone(), kind))
            {
                found.extend(lookup.answers().iter().filter_map(|r| r.data.ip_addr()));
            }
        }
        (!found.is_empty()).then_some(found)
    }
}

/// The lookups of one SSH connection: its slots, and the bastion's resolver.
pub struct ConnectionLookups {
    slots: Semaphore,
    resolver: Arc<Resolver>,
}

impl ConnectionLookups {
    /// The addresses of `host` (a validated DNS name, not an IP literal), from `/etc/hosts` or
    /// DNS, within `timeout` in all (waiting for a slot included). Dropping the future, or the
    /// deadline, ends the lookup and frees its sockets and slots.
    pub async fn lookup(&self, host: &str, timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
        let name = Name::from_str_relaxed(host).map_err(|e| LookupError::failed(&e.to_string()))?;
        if let Some(found) = self.resolver.hosts_file(&name) {
            return Ok(found);
        }
        let deadline = Instant::now() + timeout;
        let limits = self.resolver.limits;
        let _mine = slot(&self.slots, deadline).await.ok_or(LookupError::Busy {
            timeout,
            scope: Scope::Connection(limits.per_connection),
        })?;
        let _ours = slot(&self.resolver.slots, deadline)
            .await
            .ok_or(LookupError::Busy {
                timeout,
                scope: Scope::Bastion(limits.total),
            })?;
        match tokio::time::timeout_at(deadline, self.resolver.dns.lookup_ip(name)).await {
            Err(_) => Err(LookupError::NoAnswer(timeout)),
            Ok(Err(e)) => Err(LookupError::from_net(&e)),
            Ok(Ok(found)) => Ok(found.iter().collect()),
        }
    }
}

/// A permit of `slots` before `deadline`, or `None`.
async fn slot(slots: &Semaphore, deadline: Instant) -> Option<SemaphorePermit<'_>> {
    match tokio::time::timeout_at(deadline, slots.acquire()).await {
        Ok(Ok(permit)) => Some(permit),
        // The semaphores are never closed; a closed one could only mean "no slot".
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Whose slots were all taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Connection(usize),
    Bastion(usize),
}

/// Why a name gave no address. The text follows "cannot resolve NAME: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// The name exists but has no IPv4 or IPv6 address.
    NoAddress,
    /// No answer within the deadline.
    NoAnswer(Duration),
    /// The DNS servers did not answer (the resolver gave up before the deadline).
    ServersSilent,
    /// Every slot stayed taken until the deadline.
    Busy { timeout: Duration, scope: Scope },
    /// Anything else, as the resolver put it (cut and made printable).
    Failed(String),
}

impl LookupError {
    fn failed(text: &str) -> LookupError {
        let q = Quoting::new(ERROR_SHOWN_MAX, Escape::Printable, true);
        LookupError::Failed(net::shown(text, q))
    }

    fn from_net(e: &NetError) -> LookupError {
        if e.is_nx_domain() {
            LookupError::NoSuchName
        } else if e.is_no_records_found() {
            LookupError::NoAddress
        } else if matches!(e, NetError::Timeout) {
            LookupError::ServersSilent
        } else {
            LookupError::failed(&e.to_string())
        }
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NoSuchName => f.write_str("no such name"),
            LookupError::NoAddress => f.write_str("the name has no address"),
            LookupError::NoAnswer(t) => write!(f, "no answer within {t:?}"),
            LookupError::ServersSilent => f.write_str("the DNS servers did not answer"),
            LookupError::Busy { timeout, scope } => {
                let (whose, n, setting) = match scope {
                    Scope::Connection(n) => ("this connection", n, PER_CONNECTION_SETTING),
                    Scope::Bastion(n) => ("the bastion", n, TOTAL_SETTING),
                };
                write!(
                    f,
                    "no lookup slot free within {timeout:?} ({whose} has {n} lookups in \
                     progress, {setting})"
                )
            }
            LookupError::Failed(text) => f.write_str(text),
        }
    }
}
