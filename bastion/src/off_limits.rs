//! The destinations no rule opens: link-local IPv4 (169.254.0.0/16, where the ECS credentials
//! endpoint 169.254.170.2 and instance metadata 169.254.169.254 live), link-local IPv6
//! (`fe80::/10`) and `fd00:ec2::/32` (EC2's IPv6 metadata and DNS), in every spelling.
//!
//! A bastion user never needs the task's credentials, the instance metadata or a link-local
//! service, and every container of a task shares the task role. So unlike the other built-in
//! denials of `destination_policy` (loopback, multicast, ...), which a rule naming the address
//! lifts, these are refused whatever the rules say: a rule that names an address or a range
//! inside them is a configuration error ([`inside`]), and a resolved destination in them is
//! refused at connect time ([`reached_by`]), also when it is spelled as an IPv6 address that
//! carries the IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, ...:
//! [`net::embedded_ipv4`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::net::{self, Embedding};

/// One range no tunnel reaches.
#[derive(Debug)]
pub struct OffLimits {
    pub net: IpNet,
    /// Completes "X is ..." / "which is ...".
    pub what: &'static str,
}

/// The ranges, IPv4 first.
pub const RANGES: [OffLimits; 3] = [
    OffLimits {
        net: IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
        what: "link-local (instance metadata and the ECS credentials endpoint live there)",
    },
    OffLimits {
        net: IpNet::new_assert(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
        what: "link-local",
    },
    OffLimits {
        net: IpNet::new_assert(
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0)),
            32,
        ),
        what: "in fd00:ec2::/32 (EC2 IPv6 instance metadata and DNS)",
    },
];

/// The ranges as one line, for help texts and summaries.
pub const SUMMARY: &str = "169.254.0.0/16, fe80::/10 and fd00:ec2::/32";

/// An address (or every address of a network) in an off-limits range.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    pub range: &'static OffLimits,
    /// How an IPv6 address carries the IPv4 address that is in the range (`None`: the
    /// address itself is).
    pub via: Option<(Embedding, Ipv4Addr)>,
}

impl fmt::Display for Hit {
    /// "link-local (...)" or "169.254.170.2 by NAT64: link-local (...)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            None => f.write_str(self.range.what),
            Some((how, v4)) => write!(f, "{v4} by {}: {}", how.name(), self.range.what),
        }
    }
}

/// The off-limits range `ip` reaches, itself or through an IPv4 address it carries.
pub fn reached_by(ip: IpAddr) -> Option<Hit> {
    if let Some(range) = range_of(ip) {
        return Some(Hit { range, via: None });
    }
    let IpAddr::V6(a) = ip else { return None };
    net::embedded_ipv4(&a).into_iter().find_map(|(how, v4)| {
        range_of(IpAddr::V4(v4)).map(|range| Hit {
            range,
            via: Some((how, v4)),
        })
    })
}

/// The off-limits range every address of `net` reaches (by one mechanism), so that a rule
/// naming `net` could open nothing but off-limits addresses. `None` when some address of `net`
/// is outside them: such a rule is accepted and the ranges stay carved out of it.
///
/// Each mechanism fixes some bits of the address (its prefix and the 16 bits of 169.254), so
/// every address of a network matches exactly when its first and last addresses do.
pub fn inside(net: IpNet) -> Option<Hit> {
    let (first, last) = (net.network(), net.broadcast());
    if let Some(range) = range_of(first).filter(|r| r.net.contains(&last)) {
        return Some(Hit { range, via: None });
    }
    let (IpAddr::V6(a), IpAddr::V6(b)) = (first, last) else {
        return None;
    };
    let at_end = net::embedded_ipv4(&b);
    net::embedded_ipv4(&a).into_iter().find_map(|(how, v4)| {
        let range = range_of(IpAddr::V4(v4))?;
        at_end
            .iter()
            .any(|(h, w)| *h == how && range.net.contains(&IpAddr::V4(*w)))
            .then_some(Hit {
                range,
                via: Some((how, v4)),
            })
    })
}

fn range_of(ip: IpAddr) -> Option<&'static OffLimits> {
    RANGES.iter().find(|r| r.net.contains(&ip))
}

#[cfg(test)]
mod tests;
