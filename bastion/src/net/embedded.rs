//! Every IPv4 address an IPv6 address can carry, by each transition mechanism that puts one
//! inside: what a check that must hold "in any spelling" looks at.
//!
//! [`super::canonical_ip`] converts only the forms that address rules read as IPv4 (mapped,
//! and for destinations compatible and NAT64 well-known-prefix addresses). The off-limits
//! check of `destination_policy` goes further: an address that carries a link-local IPv4
//! address by any of these mechanisms is refused, however unlikely the route, because no user
//! ever needs such a spelling and a missed one would hand out the task role.

use std::net::{Ipv4Addr, Ipv6Addr};

/// How an IPv6 address carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d` (RFC 4291).
    Mapped,
    /// `::a.b.c.d` (RFC 4291, deprecated).
    Compatible,
    /// `::ffff:0:a.b.c.d` (SIIT, RFC 2765).
    Translated,
    /// `64:ff9b::a.b.c.d` (NAT64 well-known prefix, RFC 6052).
    Nat64,
    /// In the NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215) with a prefix of this
    /// length (48, 56, 64 or 96), at the RFC 6052 position for that length.
    Nat64Local(u8),
    /// `2002:WWXX:YYZZ::/48` (6to4, RFC 3056).
    SixToFour,
    /// A Teredo server address, `2001:0:WWXX:YYZZ::/64` (RFC 4380).
    TeredoServer,
    /// A Teredo client address: the last 32 bits inverted (RFC 4380).
    TeredoClient,
    /// An ISATAP interface identifier `…:0:5efe:a.b.c.d` or `…:200:5efe:a.b.c.d` (RFC 5214).
    Isatap,
}

impl Embedding {
    /// The mechanism's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Embedding::Mapped => "IPv4-mapped",
            Embedding::Compatible => "IPv4-compatible",
            Embedding::Translated => "IPv4-translated",
            Embedding::Nat64 => "NAT64",
            Embedding::Nat64Local(_) => "NAT64 local-use",
            Embedding::SixToFour => "6to4",
            Embedding::TeredoServer => "Teredo server",
            Embedding::TeredoClient => "Teredo client",
            Embedding::Isatap => "ISATAP",
        }
    }
}

/// Every (mechanism, IPv4 address) that `a` carries; empty for an IPv6 address that carries
/// none. One address can carry several (an ISATAP identifier under a 6to4 prefix).
pub fn embedded_ipv4(a: &Ipv6Addr) -> Vec<(Embedding, Ipv4Addr)> {
    let o = a.octets();
    let s = a.segments();
    let v4 = |i: usize, j: usize, k: usize, l: usize| Ipv4Addr::new(o[i], o[j], o[k], o[l]);
    let low = v4(12, 13, 14, 15);
    let mut out = Vec::new();
    match s[..6] {
        [0, 0, 0, 0, 0, 0xffff] => out.push((Embedding::Mapped, low)),
        [0, 0, 0, 0, 0, 0] => out.push((Embedding::Compatible, low)),
        [0, 0, 0, 0, 0xffff, 0] => out.push((Embedding::Translated, low)),
        [0x64, 0xff9b, 0, 0, 0, 0] => out.push((Embedding::Nat64, low)),
        _ => {}
    }
    if s[..3] == [0x64, 0xff9b, 1] {
        out.extend([
            (Embedding::Nat64Local(48), v4(6, 7, 9, 10)),
            (Embedding::Nat64Local(56), v4(7, 9, 10, 11)),
            (Embedding::Nat64Local(64), v4(9, 10, 11, 12)),
            (Embedding::Nat64Local(96), low),
        ]);
    }
    match s[..2] {
        [0x2002, _] => out.push((Embedding::SixToFour, v4(2, 3, 4, 5))),
        [0x2001, 0] => {
            out.push((Embedding::TeredoServer, v4(4, 5, 6, 7)));
            out.push((Embedding::TeredoClient, Ipv4Addr::from(!u32::from(low))));
        }
        _ => {}
    }
    if matches!(s[4..6], [0 | 0x200, 0x5efe]) {
        out.push((Embedding::Isatap, low));
    }
    out
}
