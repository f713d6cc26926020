//! The addresses of this host (the task's network namespace), read from `/proc` without any
//! unsafe code or dependency: IPv4 from `/proc/net/fib_trie` (its `/32 host LOCAL` entries),
//! IPv6 from `/proc/net/if_inet6`. Both are per network namespace, so inside a Fargate task they
//! list the task's ENI addresses and loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const FIB_TRIE: &str = "/proc/net/fib_trie";
const IF_INET6: &str = "/proc/net/if_inet6";

/// Every local address, IPv4 then IPv6; an error names the file that could not be read. A
/// missing `if_inet6` means IPv6 is off: no IPv6 address, not an error.
pub fn read() -> Result<Vec<IpAddr>, String> {
    let fib = std::fs::read_to_string(FIB_TRIE).map_err(|e| format!("reading {FIB_TRIE}: {e}"))?;
    let mut out = parse_fib_trie(&fib);
    match std::fs::read_to_string(IF_INET6) {
        Ok(text) => out.extend(parse_if_inet6(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {IF_INET6}: {e}")),
    }
    Ok(out)
}

/// The IPv4 addresses a `fib_trie` dump marks `/32 host LOCAL`: a `|-- a.b.c.d` line, then
/// one line per route to it (`/32 host LOCAL` for an address of this host).
pub fn parse_fib_trie(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut current: Option<Ipv4Addr> = None;
    for line in text.lines().map(str::trim) {
        if let Some(addr) = line.strip_prefix("|-- ") {
            current = addr.trim().parse().ok();
        } else if line.starts_with('/') {
            let local = line.split_whitespace().collect::<Vec<_>>() == ["/32", "host", "LOCAL"];
            if let Some(ip) = current.filter(|_| local).map(IpAddr::V4) {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        } else {
            current = None;
        }
    }
    out
}

/// The addresses of an `if_inet6` dump: 32 hex digits first on each line.
pub fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|hex| {
            u128::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 32)
        })
        .map(|bits| IpAddr::V6(Ipv6Addr::from(bits)))
        .collect()
}
