//! One `BASTION_PERMIT_OPEN` rule: its target (name, `*.suffix`, address or network) and
//! ports, how it matches a request, how it reads for people (`10.0.0.0/8 port 5432`), and the
//! rule parser with its error messages.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    canonical, normalize_name, quoted, quoted_max, DestinationRuleError, DENIALS, FORMS, SETTING,
};
use crate::net::{self, Brackets, Nat64, NetError, V6Form};
use crate::off_limits;

/// Which destination ports a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ports {
    Any,
    One(u16),
}

impl Ports {
    pub(super) fn matches(self, port: u16) -> bool {
        match self {
            Ports::Any => true,
            Ports::One(p) => p == port,
        }
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ports::Any => f.write_str("*"),
            Ports::One(p) => write!(f, "{p}"),
        }
    }
}

/// What a rule matches. Names are stored lower-case without a trailing dot; addresses and
/// networks in canonical form (see [`canonical`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// Exact requested name.
    Name(String),
    /// Requested name ending in this suffix; stored with its leading dot (".internal").
    Suffix(String),
    /// One resolved (or literal) address.
    Addr(IpAddr),
    /// Resolved (or literal) addresses inside this network.
    Net(IpNet),
}

#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) target: Target,
    pub(super) ports: Ports,
}

impl Rule {
    /// Name rules: does this rule cover the requested name?
    pub(super) fn matches_name(&self, name: &str) -> bool {
        match &self.target {
            Target::Name(n) => n == name,
            // A valid name has no empty labels, so ending in ".suffix" means a longer name.
            Target::Suffix(s) => name.ends_with(s.as_str()),
            Target::Addr(_) | Target::Net(_) => false,
        }
    }

    /// Address rules: does this rule cover the (canonical) address?
    pub(super) fn matches_addr(&self, addr: IpAddr) -> bool {
        match &self.target {
            Target::Addr(a) => *a == addr,
            Target::Net(n) => n.contains(&addr),
            Target::Name(_) | Target::Suffix(_) => false,
        }
    }

    /// Does this rule name `addr` explicitly enough to lift the denial of `denied`: the same
    /// address, or a network that lies entirely inside the denied range?
    pub(super) fn lifts(&self, denied: &IpNet, addr: IpAddr, port: u16) -> bool {
        self.ports.matches(port)
            && match &self.target {
                Target::Addr(a) => *a == addr,
                Target::Net(n) => n.contains(&addr) && denied.contains(n),
                Target::Name(_) | Target::Suffix(_) => false,
            }
    }

    /// The denials this rule opens (for the startup summary).
    pub(super) fn opens(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for d in &DENIALS {
            let inside = match &self.target {
                Target::Addr(a) => d.net.contains(a),
                Target::Net(n) => d.net.contains(n),
                Target::Name(_) | Target::Suffix(_) => false,
            };
            if inside && !out.contains(&d.short) {
                out.push(d.short);
            }
        }
        out
    }
}

impl Rule {
    /// Is this an address or network rule (which a name may reach by resolving into it)?
    pub(super) fn is_address(&self) -> bool {
        matches!(self.target, Target::Addr(_) | Target::Net(_))
    }

    /// The rule for people (`10.0.0.0/8 port 5432`, `*.db.internal any port`), narrowed to
    /// `port` when given; `None` when the rule does not cover `port`.
    pub(super) fn human(&self, port: Option<u16>) -> Option<String> {
        let ports = match port {
            None => self.ports,
            Some(p) if self.ports.matches(p) => Ports::One(p),
            Some(_) => return None,
        };
        let target = match &self.target {
            Target::Name(n) => n.clone(),
            Target::Suffix(s) => format!("*{s}"),
            Target::Addr(a) => a.to_string(),
            Target::Net(n) => n.to_string(),
        };
        Some(format!("{target} {}", ports_text(ports)))
    }

    /// The one host this rule names, as `ssh -L` takes it (IPv6 in brackets); `None` for a
    /// suffix or a network.
    pub(super) fn host_for_ssh(&self) -> Option<String> {
        match &self.target {
            Target::Name(n) => Some(n.clone()),
            Target::Addr(IpAddr::V4(a)) => Some(a.to_string()),
            Target::Addr(IpAddr::V6(a)) => Some(format!("[{a}]")),
            Target::Suffix(_) | Target::Net(_) => None,
        }
    }
}

/// `port 5432` or `any port`.
pub(super) fn ports_text(ports: Ports) -> String {
    match ports {
        Ports::Any => "any port".to_owned(),
        Ports::One(p) => format!("port {p}"),
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = self.ports;
        match &self.target {
            Target::Name(n) => write!(f, "{n}:{ports}"),
            Target::Suffix(s) => write!(f, "*{s}:{ports}"),
            Target::Addr(IpAddr::V4(a)) => write!(f, "{a}:{ports}"),
            Target::Addr(IpAddr::V6(a)) => write!(f, "[{a}]:{ports}"),
            Target::Net(n @ IpNet::V4(_)) => write!(f, "{n}:{ports}"),
            Target::Net(n @ IpNet::V6(_)) => write!(f, "[{n}]:{ports}"),
        }
    }
}

/// Rule networks in IPv4-mapped or NAT64 space become the IPv4 network they stand for, so they
/// match the canonical addresses they are compared with. (IPv4-compatible networks stay
/// IPv6: see [`net`].)
pub(super) fn canonical_net(net: IpNet) -> IpNet {
    net::canonical_net(net, Nat64::AsIpv4)
}

pub(super) fn rule_error(entry: &str, problem: &str, fix: &str) -> DestinationRuleError {
    DestinationRuleError {
        message: format!(
            "{SETTING}: rule {} {problem}: {fix} ({FORMS})",
            quoted_max(entry, 100)
        ),
    }
}

/// A rule that would open an off-limits range: "names 64:ff9b::a9fe:aa02, which is
/// 169.254.170.2 by NAT64: link-local (...)" or "names 2002:a9fe::/32, which is inside
/// 169.254.0.0/16 by 6to4: link-local (...)".
fn off_limits_error(
    entry: &str,
    named: &str,
    net: bool,
    hit: off_limits::Hit,
) -> DestinationRuleError {
    let range = hit.range;
    let what = match (net, hit.via) {
        (true, Some((how, _))) => {
            format!(
                "which is inside {} by {}: {}",
                range.net,
                how.name(),
                range.what
            )
        }
        _ => format!("which is {hit}"),
    };
    rule_error(
        entry,
        &format!("names {named}, {what}"),
        &format!(
            "remove it (the bastion never forwards to {}, in any spelling, whatever the rules)",
            off_limits::SUMMARY
        ),
    )
}

pub(super) fn parse_rule(entry: &str) -> Result<Rule, DestinationRuleError> {
    const BRACKETS: &str = "put IPv6 addresses and networks in brackets, e.g. [fd00::1]:5432 \
                            or [fd00::/8]:*";
    let (host, bracketed, port) = if let Some(rest) = entry.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return Err(rule_error(entry, "has [ without ]", BRACKETS));
        };
        match after.strip_prefix(':') {
            Some(port) => (inner, true, port),
            None if after.is_empty() => {
                return Err(rule_error(
                    entry,
                    "has no port",
                    "add :PORT or :* after the ]",
                ))
            }
            None => {
                return Err(rule_error(
                    entry,
                    &format!("has unexpected text {} after ]", quoted(after)),
                    "write [ADDRESS]:PORT",
                ))
            }
        }
    } else {
        match entry.rsplit_once(':') {
            None => {
                return Err(rule_error(
                    entry,
                    "has no port",
                    "add :PORT or :* (e.g. db.internal:5432)",
                ))
            }
            Some((host, _)) if host.contains(':') => {
                return Err(rule_error(
                    entry,
                    "has an IPv6 address without brackets",
                    BRACKETS,
                ))
            }
            Some((host, port)) => (host, false, port),
        }
    };
    let ports = parse_ports(entry, port)?;
    let target = parse_target(entry, host, bracketed)?;
    Ok(Rule { target, ports })
}

pub(super) fn parse_ports(entry: &str, port: &str) -> Result<Ports, DestinationRuleError> {
    const FIX: &str = "use a number 1-65535 or *";
    if port == "*" {
        return Ok(Ports::Any);
    }
    if port.is_empty() {
        return Err(rule_error(entry, "has no port after the colon", FIX));
    }
    let n = if port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse::<u16>().ok()
    } else {
        None
    };
    match n {
        Some(0) => Err(rule_error(entry, "has port 0", FIX)),
        Some(p) => Ok(Ports::One(p)),
        None => Err(rule_error(
            entry,
            &format!("has an invalid port {}", quoted(port)),
            FIX,
        )),
    }
}

pub(super) fn parse_target(
    entry: &str,
    host: &str,
    bracketed: bool,
) -> Result<Target, DestinationRuleError> {
    if host.is_empty() {
        return Err(rule_error(
            entry,
            "has no host",
            "put a host, IP address or CIDR before :PORT",
        ));
    }
    if host.contains('/') {
        return net_target(entry, host);
    }
    if let Some(ip) = net::parse_ip(host) {
        if let Some(hit) = off_limits::reached_by(ip) {
            return Err(off_limits_error(entry, &ip.to_string(), false, hit));
        }
        return Ok(Target::Addr(canonical(ip)));
    }
    if bracketed {
        return Err(rule_error(
            entry,
            &format!(
                "has {} in brackets, which is not an IP address",
                quoted(host)
            ),
            "brackets are only for IPv6 addresses and networks",
        ));
    }
    if host == "*" {
        return Err(rule_error(
            entry,
            "allows any host",
            "a wildcard needs a suffix (*.internal:5432); to open a range use a CIDR such as \
             10.0.0.0/8:*",
        ));
    }
    let wildcard_fix = "* may only start a rule, as *.suffix (e.g. *.internal:5432)";
    if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.contains('*') {
            return Err(rule_error(entry, "has more than one *", wildcard_fix));
        }
        let norm = normalize_name(suffix).map_err(|why| {
            rule_error(
                entry,
                &format!("has an invalid wildcard suffix {} ({why})", quoted(suffix)),
                "use *. followed by a DNS name, e.g. *.internal:5432",
            )
        })?;
        return Ok(Target::Suffix(format!(".{norm}")));
    }
    if host.contains('*') {
        return Err(rule_error(entry, "has * in the wrong place", wildcard_fix));
    }
    normalize_name(host).map(Target::Name).map_err(|why| {
        rule_error(
            entry,
            &format!("has an invalid host name {} ({why})", quoted(host)),
            "use a DNS name (letters, digits, - and _; labels up to 63 characters), an IP \
             address or a CIDR",
        )
    })
}

/// A CIDR target: exact (no host bits), IPv4-mapped and NAT64 networks as IPv4.
fn net_target(entry: &str, host: &str) -> Result<Target, DestinationRuleError> {
    match net::parse_net(host, Brackets::Rejected) {
        Ok(net) => match off_limits::inside(net) {
            Some(hit) => Err(off_limits_error(
                entry,
                &net::net_text(net, V6Form::Plain),
                true,
                hit,
            )),
            None => Ok(Target::Net(canonical_net(net))),
        },
        Err(NetError::HostBits { network }) => Err(rule_error(
            entry,
            &format!("has host bits set in {}", quoted(host)),
            &format!(
                "use the network address {}",
                net::net_text(network, V6Form::WholeBracketed)
            ),
        )),
        Err(_) => Err(rule_error(
            entry,
            &format!("has an invalid CIDR {}", quoted(host)),
            "use a network address and prefix length, e.g. 10.0.0.0/16:5432 or [fd00::/8]:*",
        )),
    }
}
