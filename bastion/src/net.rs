//! IP addresses and networks as every policy module reads them: strict parsing of addresses
//! and CIDRs, the canonical form an IPv6 address or network takes when it stands for IPv4,
//! host-bit checks, and quoting of untrusted text for messages.
//!
//! One parser serves all callers (`client_policy`, `destination_policy`, `key_options`,
//! `certificates`, `proxy_header`); where they differ, the difference is an explicit option:
//!
//! - **Notations.** Addresses use the strict standard-library grammar for every caller:
//!   dotted-quad IPv4 with decimal octets and no leading zeros, and RFC 4291 IPv6 text.
//!   Legacy resolver forms (`127.1`, `0x7f.0.0.1`, `0177.0.0.1`, `2130706433`) and IPv6 zone
//!   ids (`fe80::1%eth0`) are not addresses anywhere. (`destination_policy` additionally
//!   refuses them as host names: see its `normalize_name`.)
//! - **Brackets** ([`Brackets`]): `client_policy` and `proxy_header` accept `[fd00::]/8`,
//!   `[fd00::/8]` and `[fd00::1]`; `key_options`/`certificates` (sshd syntax) do not;
//!   `destination_policy` strips its own `[host]:port` brackets before calling.
//! - **Host bits**: every caller refuses a CIDR with bits set below its prefix
//!   ([`NetError::HostBits`] names the network meant); none truncates silently. Each caller
//!   words the error itself, showing the network with [`net_text`] in its own [`V6Form`].
//! - **IPv4-mapped** (`::ffff:a.b.c.d`) addresses and networks (prefix >= 96) are IPv4 for
//!   every caller. **IPv4-compatible** (`::a.b.c.d`, except `::` and `::1`) and **NAT64**
//!   (`64:ff9b::a.b.c.d`) addresses are IPv4 only for `destination_policy`
//!   ([`Compatible::AsIpv4`], [`Nat64::AsIpv4`]); its rule networks convert NAT64 but never
//!   IPv4-compatible space ([`canonical_net`] has no such option: `::/96` holds `::` and
//!   `::1`, which stay IPv6), so a rule CIDR inside `::/96` matches nothing there.
//! - **Every embedded IPv4** ([`embedded_ipv4`]): all the IPv4 addresses an IPv6 address can
//!   carry (also 6to4, Teredo, ISATAP, SIIT, NAT64 local-use), for the checks that must hold
//!   in any spelling (`off_limits`); no address rule reads these forms as IPv4.
//! - **Quoting** ([`Quoting`]): `client_policy` escapes like `str::escape_debug`,
//!   `destination_policy` turns ASCII controls into `?` (and keeps `"` and `\`), and
//!   `proxy_header` uses `{:?}` without an ellipsis.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

mod embedded;

pub use embedded::{embedded_ipv4, Embedding};

/// Whether IPv4-compatible addresses (`::a.b.c.d`) stand for IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatible {
    /// `::a.b.c.d` stays IPv6 (`Ipv6Addr::to_canonical`).
    Keep,
    /// `::a.b.c.d` is `a.b.c.d`, except `::` (unspecified) and `::1` (loopback).
    AsIpv4,
}

/// Whether NAT64 well-known-prefix addresses (`64:ff9b::a.b.c.d`) stand for IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat64 {
    Keep,
    AsIpv4,
}

/// Whether IPv6 may be written in brackets: `[fd00::]/8`, `[fd00::/8]`, `[fd00::1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brackets {
    Allowed,
    /// Brackets are just characters, so the text is not an address.
    Rejected,
}

/// How an IPv6 network is written in a message (IPv4 is always `a.b.c.d/len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V6Form {
    /// `fd00::/8`
    Plain,
    /// `[fd00::]/8`
    AddrBracketed,
    /// `[fd00::/8]`
    WholeBracketed,
}

/// Why a text is not an address or network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// `[` without a matching `]` at the end or before `/len`.
    UnbalancedBrackets,
    /// Has a `/` but is not `address/prefix-length`.
    NotCidr,
    /// Has no `/` and is not an IP address.
    NotAddress,
    /// A CIDR with bits set below its prefix; `network` is the network it is inside.
    HostBits { network: IpNet },
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::UnbalancedBrackets => f.write_str("has unbalanced brackets"),
            NetError::NotCidr => f.write_str("is not a CIDR (address/prefix length)"),
            NetError::NotAddress => f.write_str("is not an IP address or CIDR"),
            NetError::HostBits { network } => write!(f, "has host bits set: use {network}"),
        }
    }
}

impl std::error::Error for NetError {}

/// A strict IP address (see the module doc for what is not one).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

/// A CIDR or a bare IP address (a /32 or /128), exact (no host bits), not canonicalised.
pub fn parse_net(text: &str, brackets: Brackets) -> Result<IpNet, NetError> {
    let plain = match (brackets, text.strip_prefix('[')) {
        (Brackets::Allowed, Some(rest)) => match rest.split_once(']') {
            Some((inner, "")) => inner.to_owned(),
            Some((inner, len)) if len.starts_with('/') => format!("{inner}{len}"),
            _ => return Err(NetError::UnbalancedBrackets),
        },
        _ => text.to_owned(),
    };
    if plain.contains('/') {
        let net: IpNet = plain.parse().map_err(|_| NetError::NotCidr)?;
        exact(net)
    } else {
        parse_ip(&plain)
            .map(IpNet::from)
            .ok_or(NetError::NotAddress)
    }
}

/// `net`, or [`NetError::HostBits`] if it has bits set below its prefix.
pub fn exact(net: IpNet) -> Result<IpNet, NetError> {
    let network = net.trunc();
    if network == net {
        Ok(net)
    } else {
        Err(NetError::HostBits { network })
    }
}

/// The IPv4 address `ip` stands for, per the options (IPv4-mapped always), else `ip`.
pub fn canonical_ip(ip: IpAddr, compatible: Compatible, nat64: Nat64) -> IpAddr {
    let IpAddr::V6(a) = ip else { return ip };
    if let Some(v4) = a.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    if compatible == Compatible::AsIpv4 && !a.is_unspecified() && !a.is_loopback() {
        if let Some(v4) = a.to_ipv4() {
            return IpAddr::V4(v4);
        }
    }
    if nat64 == Nat64::AsIpv4 && is_nat64(&a) {
        return IpAddr::V4(low_v4(&a));
    }
    ip
}

/// A network in IPv4-mapped space (or NAT64 space, per `nat64`) with a prefix of at least 96
/// as the IPv4 network it stands for; anything else unchanged.
pub fn canonical_net(net: IpNet, nat64: Nat64) -> IpNet {
    let IpNet::V6(n) = net else { return net };
    let a = n.network();
    let embedded = a.to_ipv4_mapped().is_some() || (nat64 == Nat64::AsIpv4 && is_nat64(&a));
    if embedded && n.prefix_len() >= 96 {
        if let Ok(v4) = Ipv4Net::new(low_v4(&a), n.prefix_len() - 96) {
            return IpNet::V4(v4);
        }
    }
    net
}

fn is_nat64(a: &Ipv6Addr) -> bool {
    a.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
}

fn low_v4(a: &Ipv6Addr) -> Ipv4Addr {
    let [.., a0, b, c, d] = a.octets();
    Ipv4Addr::new(a0, b, c, d)
}

/// `net` as written in a message.
pub fn net_text(net: IpNet, form: V6Form) -> String {
    match (net, form) {
        (IpNet::V4(_), _) | (IpNet::V6(_), V6Form::Plain) => net.to_string(),
        (IpNet::V6(n), V6Form::AddrBracketed) => format!("[{}]/{}", n.addr(), n.prefix_len()),
        (IpNet::V6(_), V6Form::WholeBracketed) => format!("[{net}]"),
    }
}

/// How untrusted characters are made safe for one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// `str::escape_debug`: `\n`, `\"`, `\\`, `\'`, `\u{..}`.
    Debug,
    /// The `{:?}` form of a string (like [`Escape::Debug`] but `'` is kept).
    DebugFmt,
    /// ASCII control characters become `?`; printable ASCII (`"` and `\` included) and
    /// printable non-ASCII are kept; other characters are escaped (`\u{..}`).
    Printable,
}

/// How untrusted text is cut and escaped for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoting {
    /// Characters kept (before escaping).
    pub max_chars: usize,
    pub escape: Escape,
    /// Append `...` when the text was cut.
    pub ellipsis: bool,
}

impl Quoting {
    pub const fn new(max_chars: usize, escape: Escape, ellipsis: bool) -> Self {
        Quoting {
            max_chars,
            escape,
            ellipsis,
        }
    }
}

/// `text` cut and escaped per `q`, without quotes.
pub fn shown(text: &str, q: Quoting) -> String {
    let cut: String = text.chars().take(q.max_chars).collect();
    let mut out = match q.escape {
        Escape::Debug => cut.escape_debug().to_string(),
        Escape::DebugFmt => {
            let debug = format!("{cut:?}");
            debug
                .strip_prefix('"')
                .and_then(|d| d.strip_suffix('"'))
                .map_or_else(|| debug.clone(), str::to_owned)
        }
        Escape::Printable => cut.chars().map(printable).collect(),
    };
    if q.ellipsis && text.chars().nth(q.max_chars).is_some() {
        out.push_str("...");
    }
    out
}

/// `text` cut and escaped per `q`, in double quotes.
pub fn quoted(text: &str, q: Quoting) -> String {
    format!("\"{}\"", shown(text, q))
}

fn printable(c: char) -> String {
    if c.is_ascii_graphic() || c == ' ' {
        c.to_string()
    } else if c.is_ascii() {
        "?".to_owned()
    } else {
        c.escape_debug().to_string()
    }
}

#[cfg(test)]
mod tests;
