//! Who a "source" is for per-source limits and penalties: the real client address (from the
//! PROXY header when one is used), grouped into network blocks so that one IPv6 user, who
//! typically holds a whole /64, counts once (`BASTION_PER_SOURCE_NET_BLOCK_SIZE`, sshd's
//! `PerSourceNetBlockSize`: `32:64` by default, IPv4 prefix : IPv6 prefix).

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// The network block of a client address: the key of every per-source table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpNet);

impl fmt::Display for Source {
    /// A single address is shown bare (`203.0.113.7`), a block as a CIDR (`2001:db8::/64`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The prefix lengths that group addresses into sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetBlockSize {
    v4: u8,
    v6: u8,
}

impl Default for NetBlockSize {
    fn default() -> Self {
        NetBlockSize { v4: 32, v6: 64 }
    }
}

impl NetBlockSize {
    /// Parse `V4:V6` (`32:64`), or one number for IPv4 alone (`24`, IPv6 stays /64).
    pub fn parse(text: &str) -> Result<NetBlockSize, String> {
        let text = text.trim();
        let (v4, v6) = match text.split_once(':') {
            Some((v4, v6)) => (v4, Some(v6)),
            None => (text, None),
        };
        let prefix = |part: &str, max: u8| -> Result<u8, String> {
            match part.trim().parse::<u8>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{part:?} is not a prefix length from 1 to {max}; write IPv4:IPv6 \
                     prefix lengths such as 32:64 (each address of IPv4, each /64 of IPv6)"
                )),
            }
        };
        Ok(NetBlockSize {
            v4: prefix(v4, 32)?,
            v6: match v6 {
                Some(v6) => prefix(v6, 128)?,
                None => NetBlockSize::default().v6,
            },
        })
    }

    /// The source a client address belongs to (an IPv4-mapped address counts as IPv4).
    pub fn source(&self, ip: IpAddr) -> Source {
        let ip = ip.to_canonical();
        let prefix = if ip.is_ipv4() { self.v4 } else { self.v6 };
        // The prefix is within range by construction, so this never falls back.
        let net = IpNet::new(ip, prefix).unwrap_or_else(|_| IpNet::from(ip));
        Source(net.trunc())
    }
}

impl fmt::Display for NetBlockSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.v4, self.v6)
    }
}
