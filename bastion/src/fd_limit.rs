//! File descriptors: at start, the soft `RLIMIT_NOFILE` is raised to the hard limit (a process
//! started with the common 1024 soft limit would otherwise run out long before its caps), and
//! the server-wide caps are fitted into it.
//!
//! Every connection holds one descriptor (its socket), every tunnel one more (its destination
//! socket; the name lookup before it runs under the same slot), so `BASTION_MAX_CONNECTIONS` +
//! `BASTION_MAX_TUNNELS` + [`RESERVE`] must fit in the limit. The reserve keeps `accept` fed:
//! a connection refused at a cap is accepted (one descriptor) and closed, so a refusal never
//! becomes `EMFILE`. When the caps do not fit, they are lowered in proportion until they do,
//! and the start says so at warn level (`fd_limit`): refusing to start on a host with a small
//! hard limit would turn a capacity question into an outage.

#[cfg(test)]
mod tests;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept out of the caps: the process's own (standard streams, the listener, the
/// runtime's epoll and wakers, signal pipes: 12 measured at start), short-lived ones (key and
/// hosts files re-read, `/proc/net` for the bastion's own addresses), the one a refused
/// connection holds between `accept` and its close, and the connections admitted beyond
/// `BASTION_MAX_CONNECTIONS` while evicted squatters close or for the container's health check
/// ([`EVICTION_SLACK`](crate::admission::EVICTION_SLACK),
/// [`LOCAL_SLACK`](crate::admission::LOCAL_SLACK)).
pub const RESERVE: u64 = 64;

/// The target when the hard limit is "unlimited" (Linux caps `nofile` at `fs.nr_open`, by
/// default 2^20, and refuses anything higher).
const UNLIMITED_TARGET: u64 = 1 << 20;

/// The limit as found and as left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit the process started with.
    pub soft_before: u64,
    /// The soft limit now: the one the caps must fit in.
    pub soft: u64,
    /// The hard limit (`None`: unlimited).
    pub hard: Option<u64>,
    /// Why the soft limit could not be raised, if it could not.
    pub error: Option<String>,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit. Never fails: when the kernel refuses,
/// the current soft limit stays and `error` says why.
pub fn raise() -> NofileLimit {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let soft_before = current.unwrap_or(UNLIMITED_TARGET);
    let target = maximum.unwrap_or(UNLIMITED_TARGET);
    let mut limit = NofileLimit {
        soft_before,
        soft: soft_before,
        hard: maximum,
        error: None,
    };
    if target <= soft_before {
        return limit;
    }
    let wanted = Rlimit {
        current: Some(target),
        maximum,
    };
    match setrlimit(Resource::Nofile, wanted) {
        Ok(()) => limit.soft = target,
        Err(e) => limit.error = Some(format!("cannot raise the soft limit to {target}: {e}")),
    }
    limit
}

/// The server-wide caps that hold descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdCaps {
    pub max_connections: usize,
    pub max_tunnels: usize,
}

impl FdCaps {
    /// Descriptors the caps need, the reserve included.
    pub fn needed(&self) -> u64 {
        (self.max_connections as u64)
            .saturating_add(self.max_tunnels as u64)
            .saturating_add(RESERVE)
    }
}

/// `caps` as they fit in `limit` descriptors: unchanged when they fit, else both lowered in
/// proportion (at least one each). Err when not even that fits.
pub fn fit(limit: u64, caps: FdCaps) -> Result<FdCaps, String> {
    if caps.needed() <= limit {
        return Ok(caps);
    }
    let budget = limit.saturating_sub(RESERVE);
    if budget < 2 {
        return Err(format!(
            "the open file limit is {limit}: the bastion needs at least {} (one connection, one \
             tunnel and a reserve of {RESERVE}); raise the hard limit (`ulimit -Hn`, the ECS \
             task definition's `ulimits` entry `nofile`)",
            RESERVE + 2
        ));
    }
    let (c, t) = (caps.max_connections as u64, caps.max_tunnels as u64);
    let connections = (budget * c / (c + t)).clamp(1, budget - 1);
    let tunnels = (budget - connections).min(t);
    Ok(FdCaps {
        max_connections: connections as usize,
        max_tunnels: tunnels as usize,
    })
}

/// What the start logs when the caps were lowered to fit `limit`: the settings, what they
/// needed, what they became and how to fix it.
pub fn lowered_note(limit: u64, wanted: FdCaps, fitted: FdCaps) -> Option<String> {
    (wanted != fitted).then(|| {
        format!(
            "BASTION_MAX_CONNECTIONS={} and BASTION_MAX_TUNNELS={} need {} open files with the \
             reserve of {RESERVE}, more than the limit of {limit}: lowered to {} and {}; raise \
             the hard limit (the ECS task definition's `ulimits` entry `nofile`, `ulimit -Hn`, \
             `docker run --ulimit nofile=N:N`) or set the caps lower",
            wanted.max_connections,
            wanted.max_tunnels,
            wanted.needed(),
            fitted.max_connections,
            fitted.max_tunnels
        )
    })
}
