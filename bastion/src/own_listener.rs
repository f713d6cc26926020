//! The bastion's own listening sockets as tunnel destinations: refused whatever the rules.
//!
//! A tunnel back into the bastion's own listener reaches it from the bastion's own address,
//! which behind an NLB sits in the NLB's subnets and so is a trusted PROXY sender: the user
//! could send a PROXY header naming any client and log in again "from" there, defeating
//! `from=`, a certificate's `source-address`, the client rules and the audit's client address.
//! Even without PROXY trust such a nested login only hides the real client. So a destination
//! is refused when its port is one the bastion listens on and its address is one of this
//! host's: loopback, the unspecified address, the listen address, or any local interface
//! address (the task's ENI addresses), read at start and read again when a destination on a
//! listening port is not among them (a failed read refuses: it cannot be told apart). Every
//! local address counts even when the bastion listens on one address only: refusing a
//! neighbour service on the same port of another local address costs nothing real.

mod local_addrs;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use crate::net::{self, Compatible, Nat64};

/// The listening sockets and the addresses of this host.
#[derive(Debug)]
pub struct OwnListeners {
    listening: Vec<SocketAddr>,
    /// The local addresses last read (canonical: IPv4-mapped as IPv4).
    known: Mutex<Vec<IpAddr>>,
    read: fn() -> Result<Vec<IpAddr>, String>,
}

impl OwnListeners {
    /// The bastion listens on `listening` (as bound: the real port, not 0).
    pub fn new(listening: Vec<SocketAddr>) -> OwnListeners {
        OwnListeners::with_reader(listening, local_addrs::read)
    }

    /// With another way to list the local addresses (tests).
    pub fn with_reader(
        listening: Vec<SocketAddr>,
        read: fn() -> Result<Vec<IpAddr>, String>,
    ) -> OwnListeners {
        let known = read().unwrap_or_default();
        OwnListeners {
            listening,
            known: Mutex::new(known.into_iter().map(canonical).collect()),
            read,
        }
    }

    /// `Err(why)` when `dest` (a resolved destination) reaches one of the bastion's listeners;
    /// `why` completes "db:2222 ...": "reaches the bastion's own listener ...".
    pub fn check(&self, dest: SocketAddr) -> Result<(), String> {
        let Some(listener) = self.listening.iter().find(|l| l.port() == dest.port()) else {
            return Ok(());
        };
        let ip = canonical(dest.ip());
        let refuse = |how: &str| {
            Err(format!(
                "reaches the bastion's own listener {listener}{how}; a tunnel back into the \
                 bastion is refused whatever the rules"
            ))
        };
        if ip.is_loopback() || ip.is_unspecified() || ip == canonical(listener.ip()) {
            return refuse("");
        }
        if self.known().contains(&ip) {
            return refuse(&format!(" ({ip} is an address of this host)"));
        }
        match (self.read)() {
            Ok(now) => {
                let now: Vec<IpAddr> = now.into_iter().map(canonical).collect();
                let local = now.contains(&ip);
                *self.known() = now;
                if local {
                    return refuse(&format!(" ({ip} is an address of this host)"));
                }
                Ok(())
            }
            Err(e) => Err(format!(
                "may reach the bastion's own listener {listener}: cannot tell whether {ip} is \
                 an address of this host ({e}); refused"
            )),
        }
    }

    /// The local addresses last read (no copy: callers look one address up or replace them).
    fn known(&self) -> std::sync::MutexGuard<'_, Vec<IpAddr>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// IPv4-mapped addresses as the IPv4 address a connect reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    net::canonical_ip(ip, Compatible::Keep, Nat64::Keep)
}
