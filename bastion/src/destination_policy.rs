//! Where a tunnel may go: the `BASTION_PERMIT_OPEN` rule list, the ranges no rule opens
//! (`off_limits`: link-local, with the ECS credentials endpoint and instance metadata, and
//! `fd00:ec2::/32`, in every spelling), the built-in denials only a rule naming the address
//! lifts (loopback, multicast, ...), and the single name lookup for each request. It also says
//! in words what the rules open, and whether a destination could ever pass them, for the list
//! a held session shows (`reachable`).
//!
//! A destination name is resolved exactly once, every resolved address is checked, and the
//! caller connects only to the returned addresses. There is no second lookup, so a DNS answer
//! that changes between "check" and "connect" (rebinding) cannot slip past the policy. The
//! lookup itself (`/etc/hosts`, then DNS, bounded per connection, in total and in time) is
//! the `resolver` module's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use crate::net::{self, Compatible, Escape, Nat64, Quoting};
use crate::off_limits::{self, Hit};
use crate::resolver::ConnectionLookups;

mod rule;

use rule::{parse_rule, Ports, Rule};

/// The setting this module parses; named in every configuration error.
const SETTING: &str = "BASTION_PERMIT_OPEN";

/// The accepted rule forms, repeated at the end of every rule error.
const FORMS: &str = "forms: host:port, *.suffix:port, CIDR:port";

/// Longest requested host shown in a refusal message (keeps messages near 200 characters).
const SHOWN_HOST_MAX: usize = 48;

/// Longest rule summary quoted in a refusal message.
const SUMMARY_MAX: usize = 64;

/// Ranges allowed when `BASTION_PERMIT_OPEN` is empty (minus the built-in denials).
const PRIVATE: [IpNet; 4] = [
    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),
    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),
    IpNet::new_assert(IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),
];

/// A range the bastion refuses unless a rule names the address or a range inside it.
struct Denial {
    net: IpNet,
    /// Completes "X is ..." / "which is ...".
    what: &'static str,
    /// One or two words for the startup summary.
    short: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpNet {
    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), len)
}

const fn v6(a: u16, b: u16, len: u8) -> IpNet {
    IpNet::new_assert(IpAddr::V6(Ipv6Addr::new(a, b, 0, 0, 0, 0, 0, 0)), len)
}

/// Built-in denials a rule naming the address lifts (the ranges no rule opens are in
/// `off_limits`). Order matters only for messages: the first match is reported.
/// (Checks require every denial containing the address to be lifted, see `check`.)
const DENIALS: [Denial; 8] = [
    Denial {
        net: v4(127, 0, 0, 0, 8),
        what: "loopback",
        short: "loopback",
    },
    Denial {
        net: IpNet::new_assert(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
        what: "loopback",
        short: "loopback",
    },
    Denial {
        net: v4(0, 0, 0, 0, 8),
        what: "unspecified (0.0.0.0/8, \"this network\")",
        short: "unspecified",
    },
    Denial {
        net: IpNet::new_assert(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128),
        what: "unspecified",
        short: "unspecified",
    },
    Denial {
        net: v4(255, 255, 255, 255, 32),
        what: "broadcast",
        short: "broadcast",
    },
    Denial {
        net: v4(224, 0, 0, 0, 4),
        what: "multicast",
        short: "multicast",
    },
    Denial {
        net: v6(0xff00, 0, 8),
        what: "multicast",
        short: "multicast",
    },
    Denial {
        net: v4(240, 0, 0, 0, 4),
        what: "reserved (240.0.0.0/4)",
        short: "reserved",
    },
];

/// The parsed `BASTION_PERMIT_OPEN` policy. Immutable after [`DestinationPolicy::parse`].
#[derive(Debug, Clone)]
pub struct DestinationPolicy {
    rules: Vec<Rule>,
    /// Short rule list quoted in refusals, computed once at parse time.
    summary: String,
}

impl DestinationPolicy {
    /// Parse the comma-separated rule list (BASTION_PERMIT_OPEN). Empty/whitespace-only =>
    /// default policy (private ranges on any port).
    pub fn parse(spec: &str) -> Result<DestinationPolicy, DestinationRuleError> {
        let mut rules = Vec::new();
        if !spec.trim().is_empty() {
            for (i, raw) in spec.split(',').enumerate() {
                let entry = raw.trim();
                if entry.is_empty() {
                    return Err(DestinationRuleError {
                        message: format!(
                            "{SETTING}: entry {} is empty (two commas in a row, or a comma at \
                             the start or end): remove it ({FORMS})",
                            i + 1
                        ),
                    });
                }
                rules.push(parse_rule(entry)?);
            }
        }
        let summary = summarize(&rules);
        Ok(DestinationPolicy { rules, summary })
    }

    /// Number of explicit rules (0 = default private-ranges policy).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Human summary for a startup log line.
    pub fn describe(&self) -> String {
        if self.rules.is_empty() {
            return format!(
                "default: private ranges ({}) on any port; loopback, link-local, metadata, \
                 multicast and reserved addresses refused",
                PRIVATE.map(|n| n.to_string()).join(", ")
            );
        }
        let listed: Vec<String> = self
            .rules
            .iter()
            .map(|r| {
                let opens = r.opens();
                if opens.is_empty() {
                    r.to_string()
                } else {
                    format!("{r} (opens {})", opens.join(", "))
                }
            })
            .collect();
        let n = self.rules.len();
        let noun = if n == 1 { "rule" } else { "rules" };
        format!("{n} {noun}: {}", listed.join(", "))
    }

    /// What the rules open, for people: one line per rule (`10.0.0.0/8 port 5432`,
    /// `*.db.internal any port`), or the private ranges when there are none. With `port`, only
    /// the rules that cover it, each narrowed to it.
    pub fn rule_lines(&self, port: Option<u16>) -> Vec<String> {
        if self.rules.is_empty() {
            let ports = rule::ports_text(port.map_or(Ports::Any, Ports::One));
            return PRIVATE.iter().map(|n| format!("{n} {ports}")).collect();
        }
        self.rules.iter().filter_map(|r| r.human(port)).collect()
    }

    /// The first rule naming one host (a name or an address) on one port, as `-L` takes it
    /// (`db.internal`, `10.0.0.5`, `[fd00::5]`), for an example; with `port`, only rules
    /// covering it.
    pub fn first_concrete(&self, port: Option<u16>) -> Option<(String, u16)> {
        self.rules.iter().find_map(|r| {
            let p = match (r.ports, port) {
                (Ports::One(p), None) => p,
                (ports, Some(p)) if ports.matches(p) => p,
                _ => return None,
            };
            r.host_for_ssh().map(|h| (h, p))
        })
    }

    /// Could a request for `host` (as a client or a `permitopen` entry writes it, brackets
    /// optional) on `port` (`None`: some port) ever pass these rules? False only when it is
    /// refused whatever a name resolves to: not a valid host, an address outside every rule
    /// (or off limits, or denied and not lifted), a name that no rule on that port could admit.
    pub fn may_open(&self, host: &str, port: Option<u16>) -> bool {
        let Ok(requested) = classify(host) else {
            return false;
        };
        self.candidate_ports(port)
            .into_iter()
            .any(|p| match &requested {
                Requested::Literal(ip) => self.check(host, Some(&requested), *ip, p).is_ok(),
                Requested::Name(name) => {
                    self.rules.is_empty()
                        || self
                            .rules
                            .iter()
                            .any(|r| r.ports.matches(p) && (r.is_address() || r.matches_name(name)))
                }
            })
    }

    /// The ports worth checking for "some port": `port` itself if given, else every port a
    /// rule names plus, when a rule (or the default policy) covers any port, one port no rule
    /// names, which stands for all the others.
    fn candidate_ports(&self, port: Option<u16>) -> Vec<u16> {
        if let Some(p) = port {
            return vec![p];
        }
        let mut ports: Vec<u16> = self
            .rules
            .iter()
            .filter_map(|r| match r.ports {
                Ports::One(p) => Some(p),
                Ports::Any => None,
            })
            .collect();
        if self.rules.is_empty() || self.rules.iter().any(|r| r.ports == Ports::Any) {
            if let Some(other) = (1..=u16::MAX).find(|p| !ports.contains(p)) {
                ports.push(other);
            }
        }
        ports
    }

    /// Pure check of one already-resolved address for a request. `requested_host` is the name
    /// or literal the client asked for (it decides whether name rules apply and how the
    /// refusal reads).
    pub fn check_addr(&self, requested_host: &str, addr: IpAddr, port: u16) -> Result<(), Refusal> {
        // An unparseable host simply matches no name rule; address rules still apply.
        let requested = classify(requested_host).ok();
        self.check(requested_host, requested.as_ref(), addr, port)
    }

    /// Validate the host string, resolve it once (IP literals are not looked up; names by
    /// the connection's `lookups`, `/etc/hosts` then DNS, bounded by `timeout`), check EVERY
    /// resolved address, and return the deduplicated checked addresses in resolver order. Any
    /// address failing => the whole request is refused. Addresses are returned as resolved
    /// (an IPv4-mapped address stays mapped); they were checked as the IPv4 address they
    /// stand for.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        lookups: &ConnectionLookups,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        let requested = classify(host).map_err(|why| {
            Refusal::Prohibited(format!(
                "{} is not a valid host name or IP address ({why})",
                quoted(host)
            ))
        })?;
        let found: Vec<SocketAddr> = match &requested {
            Requested::Literal(ip) => vec![SocketAddr::new(*ip, port)],
            Requested::Name(_) => match lookups.lookup(host, timeout).await {
                Ok(ips) => ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect(),
                Err(e) => {
                    return Err(Refusal::Unresolvable(format!(
                        "cannot resolve {}: {e}",
                        shown(host)
                    )))
                }
            },
        };
        let mut addrs: Vec<SocketAddr> = Vec::with_capacity(found.len());
        for a in found {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        if addrs.is_empty() {
            return Err(Refusal::Unresolvable(format!(
                "cannot resolve {}: no addresses",
                shown(host)
            )));
        }
        for a in &addrs {
            self.check(host, Some(&requested), a.ip(), port)?;
        }
        Ok(addrs)
    }

    fn check(
        &self,
        host: &str,
        requested: Option<&Requested>,
        addr: IpAddr,
        port: u16,
    ) -> Result<(), Refusal> {
        let subject = Subject {
            host,
            requested,
            addr,
            port,
        };
        if port == 0 {
            return Err(Refusal::Prohibited(format!(
                "{}: port 0 is not a destination port",
                subject.asked()
            )));
        }
        if let Some(hit) = off_limits::reached_by(addr) {
            return Err(Refusal::Prohibited(off_limits_message(&subject, hit)));
        }
        let canon = canonical(addr);
        for d in DENIALS.iter().filter(|d| d.net.contains(&canon)) {
            if !self.rules.iter().any(|r| r.lifts(&d.net, canon, port)) {
                return Err(Refusal::Prohibited(self.denied_message(&subject, d, canon)));
            }
        }
        let permitted = if self.rules.is_empty() {
            PRIVATE.iter().any(|n| n.contains(&canon))
        } else {
            let name = match requested {
                Some(Requested::Name(n)) => Some(n.as_str()),
                _ => None,
            };
            self.rules.iter().any(|r| {
                r.ports.matches(port)
                    && (r.matches_addr(canon) || name.is_some_and(|n| r.matches_name(n)))
            })
        };
        if permitted {
            return Ok(());
        }
        let message = if self.rules.is_empty() {
            format!(
                "{} not a private address, and {SETTING} is empty (private ranges only)",
                subject.is(canon)
            )
        } else {
            format!(
                "{} is not permitted by {SETTING} (rules: {})",
                subject.resolved(canon),
                self.summary
            )
        };
        Err(Refusal::Prohibited(message))
    }

    fn denied_message(&self, subject: &Subject<'_>, d: &Denial, canon: IpAddr) -> String {
        match subject.requested {
            Some(Requested::Name(name)) => {
                let by_name = self
                    .rules
                    .iter()
                    .any(|r| r.ports.matches(subject.port) && r.matches_name(name));
                let hint = if by_name {
                    " (a host name rule cannot open it; only an address or CIDR rule can)"
                } else {
                    ""
                };
                format!("{} {}; refused{hint}", subject.is(canon), d.what)
            }
            _ => format!(
                "{} {}; the bastion never forwards to it",
                subject.is(canon),
                d.what
            ),
        }
    }
}

/// "X is link-local (...); the bastion never forwards to it, whatever the rules", with the IPv4
/// address a spelling carries: "[64:ff9b::a9fe:aa02]:80 (169.254.170.2 by NAT64) is ...".
fn off_limits_message(subject: &Subject<'_>, hit: Hit) -> String {
    let is = match hit.via {
        None => subject.is(subject.addr),
        Some((how, v4)) => subject.is_as(&format!("{v4} by {}", how.name())),
    };
    format!(
        "{is} {}; the bastion never forwards to it, whatever the rules",
        hit.range.what
    )
}

/// What the client asked for, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requested {
    Literal(IpAddr),
    /// Lower-case, without a trailing dot.
    Name(String),
}

/// Classify a requested host: an IP literal (optionally in brackets) or a plausible DNS name.
fn classify(host: &str) -> Result<Requested, &'static str> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return net::parse_ip(inner)
            .map(Requested::Literal)
            .ok_or("brackets hold only an IP address");
    }
    if let Some(ip) = net::parse_ip(host) {
        return Ok(Requested::Literal(ip));
    }
    normalize_name(host).map(Requested::Name)
}

/// Check a DNS name and return it lower-case without a trailing dot.
fn normalize_name(name: &str) -> Result<String, &'static str> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("empty");
    }
    if bare.len() > 253 {
        return Err("longer than 253 characters");
    }
    let mut last = "";
    for label in bare.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("only letters, digits, - and _ are allowed");
        }
        last = label;
    }
    // "10.1.2", "2130706433" or "1.0x7f" are not names: the system resolver reads them as
    // (legacy forms of) IPv4 addresses. No real top-level domain looks like a number.
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if hex || last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("looks like a malformed IP address");
    }
    Ok(bare.to_ascii_lowercase())
}

/// The IPv4 address an IPv6 address stands for, if any: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`) and NAT64 well-known-prefix (`64:ff9b::a.b.c.d`) addresses
/// are checked as that IPv4 address. `::` and `::1` stay IPv6 (unspecified, loopback).
fn canonical(ip: IpAddr) -> IpAddr {
    net::canonical_ip(ip, Compatible::AsIpv4, Nat64::AsIpv4)
}

/// The rule list as quoted in refusals, cut at a rule boundary to stay short.
fn summarize(rules: &[Rule]) -> String {
    let mut out = String::new();
    for (i, r) in rules.iter().enumerate() {
        let text = r.to_string();
        let sep = if out.is_empty() { "" } else { ", " };
        if !out.is_empty() && out.len() + sep.len() + text.len() > SUMMARY_MAX {
            out.push_str(&format!(", ... ({} more)", rules.len() - i));
            break;
        }
        out.push_str(sep);
        out.push_str(&text);
    }
    out
}

/// A request as it reads in a refusal.
struct Subject<'a> {
    host: &'a str,
    requested: Option<&'a Requested>,
    addr: IpAddr,
    port: u16,
}

impl Subject<'_> {
    fn is_name(&self) -> bool {
        !matches!(self.requested, Some(Requested::Literal(_)))
    }

    /// "db.x:22" or "10.1.2.3:22" / "[fd00::1]:22".
    fn asked(&self) -> String {
        if self.is_name() {
            format!("{}:{}", shown(self.host), self.port)
        } else {
            SocketAddr::new(self.addr, self.port).to_string()
        }
    }

    /// The address, with the IPv4 address it stands for when that differs.
    fn addr_text(&self, canon: IpAddr) -> String {
        if canon == self.addr {
            self.addr.to_string()
        } else {
            format!("{} ({canon})", self.addr)
        }
    }

    /// "10.1.2.3:22 is" / "db.x:22 resolves to 10.1.2.3, which is".
    fn is(&self, canon: IpAddr) -> String {
        if self.is_name() {
            format!(
                "{} resolves to {}, which is",
                self.asked(),
                self.addr_text(canon)
            )
        } else if canon == self.addr {
            format!("{} is", self.asked())
        } else {
            format!("{} ({canon}) is", self.asked())
        }
    }

    /// Like [`Subject::is`], with `shown` in parentheses after the address.
    fn is_as(&self, shown: &str) -> String {
        if self.is_name() {
            format!(
                "{} resolves to {} ({shown}), which is",
                self.asked(),
                self.addr
            )
        } else {
            format!("{} ({shown}) is", self.asked())
        }
    }

    /// "10.1.2.3:22" / "db.x:22 (resolves to 10.1.2.3)".
    fn resolved(&self, canon: IpAddr) -> String {
        if self.is_name() {
            format!("{} (resolves to {})", self.asked(), self.addr_text(canon))
        } else if canon == self.addr {
            self.asked()
        } else {
            format!("{} ({canon})", self.asked())
        }
    }
}

/// A client-supplied host, made printable and short.
fn shown(host: &str) -> String {
    net::shown(host, printable(SHOWN_HOST_MAX))
}

fn quoted(s: &str) -> String {
    net::quoted(s, printable(SHOWN_HOST_MAX))
}

fn quoted_max(s: &str, max: usize) -> String {
    net::quoted(s, printable(max))
}

/// ASCII control characters become '?'; other characters outside printable ASCII are kept if
/// printable and escaped (\u{...}) if not, so a message cannot reshape a log line.
const fn printable(max: usize) -> Quoting {
    Quoting::new(max, Escape::Printable, true)
}

/// Why a tunnel request was refused; the text goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Policy says no: reported to the client as SSH open failure "administratively
    /// prohibited" with this text.
    Prohibited(String),
    /// Name did not resolve / resolution timed out: reported as "connect failed".
    Unresolvable(String),
}

impl Refusal {
    /// The text for the client and the audit log.
    pub fn message(&self) -> &str {
        match self {
            Refusal::Prohibited(m) | Refusal::Unresolvable(m) => m,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A malformed `BASTION_PERMIT_OPEN`: names the offending rule and says how to fix it.
#[derive(Debug)]
pub struct DestinationRuleError {
    message: String,
}

impl fmt::Display for DestinationRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DestinationRuleError {}

#[cfg(test)]
mod tests;
