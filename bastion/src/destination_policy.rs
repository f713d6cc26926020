//! Where a tunnel may go: the `BASTION_PERMIT_OPEN` rule list, the built-in denials no rule can
//! lift by accident (loopback, link-local metadata and credentials endpoints, multicast, ...),
//! and the single name lookup for each request.
//!
//! A destination name is resolved exactly once, every resolved address is checked, and the
//! caller connects only to the returned addresses. There is no second lookup, so a DNS answer
//! that changes between "check" and "connect" (rebinding) cannot slip past the policy.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

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

const LINK_LOCAL_V4: &str =
    "link-local (instance metadata and the ECS credentials endpoint live there)";

/// Built-in denials. Order matters only for messages: the first match is reported.
/// (Checks require every denial containing the address to be lifted, see `check`.)
const DENIALS: [Denial; 11] = [
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
        net: v4(169, 254, 0, 0, 16),
        what: LINK_LOCAL_V4,
        short: "link-local",
    },
    Denial {
        net: v6(0xfe80, 0, 10),
        what: "link-local",
        short: "link-local",
    },
    Denial {
        net: v6(0xfd00, 0x0ec2, 32),
        what: "in fd00:ec2::/32 (EC2 IPv6 instance metadata and DNS)",
        short: "EC2 IPv6 metadata",
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

/// Which destination ports a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    Any,
    One(u16),
}

impl Ports {
    fn matches(self, port: u16) -> bool {
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
enum Target {
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
struct Rule {
    target: Target,
    ports: Ports,
}

impl Rule {
    /// Name rules: does this rule cover the requested name?
    fn matches_name(&self, name: &str) -> bool {
        match &self.target {
            Target::Name(n) => n == name,
            // A valid name has no empty labels, so ending in ".suffix" means a longer name.
            Target::Suffix(s) => name.ends_with(s.as_str()),
            Target::Addr(_) | Target::Net(_) => false,
        }
    }

    /// Address rules: does this rule cover the (canonical) address?
    fn matches_addr(&self, addr: IpAddr) -> bool {
        match &self.target {
            Target::Addr(a) => *a == addr,
            Target::Net(n) => n.contains(&addr),
            Target::Name(_) | Target::Suffix(_) => false,
        }
    }

    /// Does this rule name `addr` explicitly enough to lift the denial of `denied`: the same
    /// address, or a network that lies entirely inside the denied range?
    fn lifts(&self, denied: &IpNet, addr: IpAddr, port: u16) -> bool {
        self.ports.matches(port)
            && match &self.target {
                Target::Addr(a) => *a == addr,
                Target::Net(n) => n.contains(&addr) && denied.contains(n),
                Target::Name(_) | Target::Suffix(_) => false,
            }
    }

    /// The denials this rule opens (for the startup summary).
    fn opens(&self) -> Vec<&'static str> {
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
    pub fn parse(spec: &str) -> Result<DestinationPolicy, PolicyError> {
        let mut rules = Vec::new();
        if !spec.trim().is_empty() {
            for (i, raw) in spec.split(',').enumerate() {
                let entry = raw.trim();
                if entry.is_empty() {
                    return Err(PolicyError {
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

    /// Pure check of one already-resolved address for a request. `requested_host` is the name
    /// or literal the client asked for (it decides whether name rules apply and how the
    /// refusal reads).
    pub fn check_addr(&self, requested_host: &str, addr: IpAddr, port: u16) -> Result<(), Refusal> {
        // An unparseable host simply matches no name rule; address rules still apply.
        let requested = classify(requested_host).ok();
        self.check(requested_host, requested.as_ref(), addr, port)
    }

    /// Validate the host string, resolve it once (IP literals are not looked up; names via
    /// `tokio::net::lookup_host` bounded by `timeout`), check EVERY resolved address, and
    /// return the deduplicated checked addresses in resolver order. Any address failing =>
    /// the whole request is refused. Addresses are returned as resolved (an IPv4-mapped
    /// address stays mapped); they were checked as the IPv4 address they stand for.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
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
            Requested::Name(_) => {
                match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
                    Err(_) => {
                        return Err(Refusal::Unresolvable(format!(
                            "cannot resolve {}: no answer within {timeout:?}",
                            shown(host)
                        )))
                    }
                    Ok(Err(e)) => {
                        return Err(Refusal::Unresolvable(format!(
                            "cannot resolve {}: {e}",
                            shown(host)
                        )))
                    }
                    Ok(Ok(addrs)) => addrs.collect(),
                }
            }
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
        return inner
            .parse::<IpAddr>()
            .map(Requested::Literal)
            .map_err(|_| "brackets hold only an IP address");
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
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
    let IpAddr::V6(a) = ip else { return ip };
    if a.is_unspecified() || a.is_loopback() {
        return ip;
    }
    if let Some(v4) = a.to_ipv4() {
        return IpAddr::V4(v4);
    }
    if has_embedded_v4(&a) {
        return IpAddr::V4(low_v4(&a));
    }
    ip
}

/// Is `a` in a /96 whose addresses stand for an IPv4 address (IPv4-mapped or NAT64)?
fn has_embedded_v4(a: &Ipv6Addr) -> bool {
    let s = a.segments();
    s[..6] == [0, 0, 0, 0, 0, 0xffff] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
}

fn low_v4(a: &Ipv6Addr) -> Ipv4Addr {
    let o = a.octets();
    Ipv4Addr::new(o[12], o[13], o[14], o[15])
}

/// Rule networks in IPv4-mapped or NAT64 space become the IPv4 network they stand for, so they
/// match the canonical addresses they are compared with.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net {
        if n.prefix_len() >= 96 && has_embedded_v4(&n.network()) {
            let len = n.prefix_len() - 96;
            if let Ok(v4net) = ipnet::Ipv4Net::new(low_v4(&n.network()), len) {
                return IpNet::V4(v4net);
            }
        }
    }
    net
}

fn rule_error(entry: &str, problem: &str, fix: &str) -> PolicyError {
    PolicyError {
        message: format!(
            "{SETTING}: rule {} {problem}: {fix} ({FORMS})",
            quoted_max(entry, 100)
        ),
    }
}

fn parse_rule(entry: &str) -> Result<Rule, PolicyError> {
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

fn parse_ports(entry: &str, port: &str) -> Result<Ports, PolicyError> {
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

fn parse_target(entry: &str, host: &str, bracketed: bool) -> Result<Target, PolicyError> {
    if host.is_empty() {
        return Err(rule_error(
            entry,
            "has no host",
            "put a host, IP address or CIDR before :PORT",
        ));
    }
    if host.contains('/') {
        let Ok(net) = host.parse::<IpNet>() else {
            return Err(rule_error(
                entry,
                &format!("has an invalid CIDR {}", quoted(host)),
                "use a network address and prefix length, e.g. 10.0.0.0/16:5432 or [fd00::/8]:*",
            ));
        };
        let network = net.trunc();
        if network != net {
            let shown = match network {
                IpNet::V4(_) => network.to_string(),
                IpNet::V6(_) => format!("[{network}]"),
            };
            return Err(rule_error(
                entry,
                &format!("has host bits set in {}", quoted(host)),
                &format!("use the network address {shown}"),
            ));
        }
        return Ok(Target::Net(canonical_net(net)));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
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
    shown_max(host, SHOWN_HOST_MAX)
}

fn shown_max(s: &str, max: usize) -> String {
    // ASCII control characters become '?'; other characters outside printable ASCII are kept
    // if printable and escaped (\u{...}) if not, so a message cannot reshape a log line.
    let mut out = String::new();
    for c in s.chars().take(max) {
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else if c.is_ascii() {
            out.push('?');
        } else {
            out.extend(c.escape_debug());
        }
    }
    if s.chars().count() > max {
        out.push_str("...");
    }
    out
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", shown(s))
}

fn quoted_max(s: &str, max: usize) -> String {
    format!("\"{}\"", shown_max(s, max))
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
pub struct PolicyError {
    message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(spec: &str) -> DestinationPolicy {
        DestinationPolicy::parse(spec).unwrap()
    }

    fn allowed(p: &DestinationPolicy, host: &str, port: u16) -> bool {
        let addr = classify(host)
            .ok()
            .and_then(|r| match r {
                Requested::Literal(a) => Some(a),
                Requested::Name(_) => None,
            })
            .unwrap();
        p.check_addr(host, addr, port).is_ok()
    }

    fn prohibited(r: Result<(), Refusal>) -> String {
        match r {
            Err(Refusal::Prohibited(m)) => m,
            other => panic!("expected Prohibited, got {other:?}"),
        }
    }

    const T: Duration = Duration::from_secs(3);

    #[test]
    fn every_rule_form_parses() {
        let p = policy(
            " db.internal:5432 , DB2.Internal.:22,*.rds.amazonaws.com:5432, 10.0.0.0/16:5432,\
             [fd00::/8]:*, 10.1.2.3:*, [fd00::1]:5432, 127.0.0.1:8080, _svc.x-y:1",
        );
        assert_eq!(p.rule_count(), 9);
        let d = p.describe();
        assert!(
            d.starts_with("9 rules: db.internal:5432, db2.internal:22, "),
            "{d}"
        );
        assert!(d.contains("*.rds.amazonaws.com:5432"), "{d}");
        assert!(d.contains("[fd00::/8]:*"), "{d}");
        assert!(d.contains("[fd00::1]:5432"), "{d}");
        assert!(d.contains("127.0.0.1:8080 (opens loopback)"), "{d}");
        assert_eq!(policy("a.b:1").describe(), "1 rule: a.b:1");
    }

    #[test]
    fn empty_spec_is_default_policy() {
        for spec in ["", "   ", "\t\n"] {
            let p = policy(spec);
            assert_eq!(p.rule_count(), 0);
            assert!(p.describe().starts_with(
                "default: private ranges (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7) \
                 on any port"
            ));
        }
    }

    #[test]
    fn invalid_port_message_is_exact() {
        let e = DestinationPolicy::parse("db:abc").unwrap_err().to_string();
        assert_eq!(
            e,
            "BASTION_PERMIT_OPEN: rule \"db:abc\" has an invalid port \"abc\": use a number \
             1-65535 or * (forms: host:port, *.suffix:port, CIDR:port)"
        );
    }

    #[test]
    fn malformed_rules_name_the_entry() {
        let cases = [
            ("db", "has no port"),
            ("db:", "has no port"),
            ("db:0", "port 0"),
            ("db:65536", "invalid port"),
            ("db:+22", "invalid port"),
            ("db: 22", "invalid port"),
            ("*:22", "10.0.0.0/8:*"),
            ("*.:22", "invalid wildcard suffix"),
            ("*.*.x:22", "more than one *"),
            ("a.*.com:22", "wrong place"),
            ("foo*.com:22", "wrong place"),
            ("*.2.3:22", "malformed IP"),
            ("10.0.0.1/8:*", "10.0.0.0/8"),
            ("[fd00::1/8]:*", "[fd00::/8]"),
            ("10.0.0.0/33:*", "invalid CIDR"),
            ("fd00::1:5432", "brackets"),
            ("fd00::/8:*", "brackets"),
            ("[fd00::1]", "has no port"),
            ("[fd00::1]5432", "unexpected text"),
            ("[fd00::1:22", "without ]"),
            ("[db.internal]:22", "not an IP address"),
            ("a b:22", "invalid host name"),
            ("a..b:22", "empty label"),
            ("db!.x:22", "invalid host name"),
            (":22", "has no host"),
            ("1.2.3:22", "malformed IP"),
            ("2130706433:22", "malformed IP"),
            ("db.0x7f:22", "malformed IP"),
            ("héllo:22", "invalid host name"),
        ];
        for (entry, fragment) in cases {
            let e = DestinationPolicy::parse(&format!("ok.internal:1, {entry}"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("BASTION_PERMIT_OPEN: rule "), "{entry}: {e}");
            assert!(e.contains(&format!("\"{entry}\"")), "{entry}: {e}");
            assert!(e.contains(fragment), "{entry}: {e}");
            assert!(
                e.ends_with("(forms: host:port, *.suffix:port, CIDR:port)"),
                "{e}"
            );
        }
        let long_label = format!("{}.com:22", "a".repeat(64));
        let e = DestinationPolicy::parse(&long_label)
            .unwrap_err()
            .to_string();
        assert!(e.contains("63"), "{e}");
        let long_name = format!("{}b:22", "a.".repeat(127));
        let e = DestinationPolicy::parse(&long_name)
            .unwrap_err()
            .to_string();
        assert!(e.contains("253"), "{e}");
    }

    #[test]
    fn empty_entries_are_errors() {
        for spec in ["a.b:1,,c.d:2", "a.b:1,", ",a.b:1", "a.b:1, ,c.d:2"] {
            let e = DestinationPolicy::parse(spec).unwrap_err().to_string();
            assert!(e.starts_with("BASTION_PERMIT_OPEN: entry "), "{e}");
            assert!(e.contains("is empty"), "{e}");
        }
    }

    #[test]
    fn default_policy_allows_private_ranges() {
        let p = policy("");
        for (host, port) in [
            ("10.1.2.3", 5432),
            ("172.16.0.1", 22),
            ("192.168.1.1", 1),
            ("fd12::1", 5432),
            ("[fd12::1]", 443),
            ("::ffff:10.1.2.3", 22),
        ] {
            assert!(allowed(&p, host, port), "{host}:{port}");
        }
    }

    #[test]
    fn default_policy_refuses_public_and_denied() {
        let p = policy("");
        for (host, port) in [
            ("8.8.8.8", 443),
            ("2001:db8::1", 443),
            ("127.0.0.1", 22),
            ("::1", 22),
            ("169.254.169.254", 80),
            ("169.254.170.2", 80),
            ("fe80::1", 22),
            ("fd00:ec2::254", 80),
            ("::ffff:169.254.169.254", 80),
            ("::ffff:127.0.0.1", 22),
            ("::127.0.0.1", 22),
            ("64:ff9b::169.254.169.254", 80),
            ("0.0.0.0", 22),
            ("::", 22),
            ("224.0.0.1", 22),
            ("ff02::1", 22),
            ("255.255.255.255", 22),
            ("240.0.0.1", 22),
            ("10.1.2.3", 0),
        ] {
            assert!(!allowed(&p, host, port), "{host}:{port}");
        }
    }

    #[test]
    fn refusal_messages_explain() {
        let p = policy("");
        let m = prohibited(p.check_addr("169.254.169.254", ip("169.254.169.254"), 80));
        assert_eq!(
            m,
            "169.254.169.254:80 is link-local (instance metadata and the ECS credentials \
             endpoint live there); the bastion never forwards to it"
        );
        let m = prohibited(p.check_addr("db.example.com", ip("127.0.0.1"), 5432));
        assert_eq!(
            m,
            "db.example.com:5432 resolves to 127.0.0.1, which is loopback; refused"
        );
        let m =
            prohibited(p.check_addr("::ffff:169.254.169.254", ip("::ffff:169.254.169.254"), 80));
        assert!(
            m.starts_with("[::ffff:169.254.169.254]:80 (169.254.169.254) is link-local"),
            "{m}"
        );
        let m = prohibited(p.check_addr("fd00:ec2::254", ip("fd00:ec2::254"), 80));
        assert!(m.contains("fd00:ec2::/32"), "{m}");
        let m = prohibited(p.check_addr("8.8.8.8", ip("8.8.8.8"), 443));
        assert!(m.contains("not a private address"), "{m}");

        let p = policy("db.internal:5432, 10.0.0.0/16:5432");
        let m = prohibited(p.check_addr("10.1.2.3", ip("10.1.2.3"), 22));
        assert_eq!(
            m,
            "10.1.2.3:22 is not permitted by BASTION_PERMIT_OPEN (rules: db.internal:5432, \
             10.0.0.0/16:5432)"
        );
        let m = prohibited(p.check_addr("other.internal", ip("10.1.2.3"), 22));
        assert!(
            m.starts_with("other.internal:22 (resolves to 10.1.2.3) is not permitted"),
            "{m}"
        );
    }

    #[test]
    fn refusal_messages_stay_short() {
        let many: Vec<String> = (1..40)
            .map(|i| format!("host{i}.example.internal:{i}"))
            .collect();
        let p = policy(&many.join(","));
        let long_host = format!("{}.internal", "a".repeat(60));
        let m = prohibited(p.check_addr(
            &long_host,
            ip("fd12:3456:789a:bcde:f012:3456:789a:bcde"),
            65535,
        ));
        assert!(m.len() <= 230, "{} chars: {m}", m.len());
        assert!(m.contains("more)"), "{m}");
        let m = prohibited(p.check_addr("a\u{7}b\u{202e}", ip("127.0.0.1"), 22));
        assert!(
            m.starts_with("a?b\\u{202e}:22 resolves to 127.0.0.1"),
            "{m}"
        );
    }

    #[test]
    fn exact_loopback_rule_opens_only_that_address_and_port() {
        let p = policy("127.0.0.1:8080");
        assert!(allowed(&p, "127.0.0.1", 8080));
        assert!(allowed(&p, "::ffff:127.0.0.1", 8080));
        assert!(!allowed(&p, "127.0.0.1", 8081));
        assert!(!allowed(&p, "127.0.0.2", 8080));
        assert!(!allowed(&p, "::1", 8080));
        assert!(!allowed(&p, "10.1.2.3", 8080));
    }

    #[test]
    fn loopback_cidr_opens_loopback() {
        let p = policy("127.0.0.0/8:*");
        assert!(allowed(&p, "127.0.0.1", 22));
        assert!(allowed(&p, "127.9.9.9", 65535));
        assert!(!allowed(&p, "169.254.169.254", 80));
        assert!(p.describe().contains("(opens loopback)"));
    }

    #[test]
    fn broad_rules_do_not_lift_denials() {
        let p = policy("0.0.0.0/0:*, [::/0]:*");
        assert!(allowed(&p, "8.8.8.8", 443));
        assert!(allowed(&p, "2001:db8::1", 443));
        for host in [
            "127.0.0.1",
            "169.254.169.254",
            "169.254.170.2",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!allowed(&p, host, 80), "{host}");
        }
    }

    #[test]
    fn denial_inside_private_range_wins() {
        let p = policy("[fc00::/7]:*");
        assert!(allowed(&p, "fd12::1", 80));
        assert!(!allowed(&p, "fd00:ec2::254", 80));
        let p = policy("[fd00:ec2::254]:80");
        assert!(allowed(&p, "fd00:ec2::254", 80));
        assert!(!allowed(&p, "fd00:ec2::253", 80));
    }

    #[test]
    fn overlapping_denials_must_all_be_lifted() {
        let p = policy("240.0.0.0/4:*");
        assert!(allowed(&p, "240.0.0.1", 80));
        assert!(!allowed(&p, "255.255.255.255", 80));
        assert!(allowed(
            &policy("255.255.255.255:80"),
            "255.255.255.255",
            80
        ));
    }

    #[test]
    fn mapped_and_nat64_rules_are_canonical() {
        let p = policy("[::ffff:10.0.0.0/104]:22, [64:ff9b::8.8.8.8]:53");
        assert!(p.describe().contains("10.0.0.0/8:22"), "{}", p.describe());
        assert!(allowed(&p, "10.1.2.3", 22));
        assert!(allowed(&p, "::ffff:10.1.2.3", 22));
        assert!(allowed(&p, "8.8.8.8", 53));
        assert!(allowed(&p, "64:ff9b::808:808", 53));
    }

    #[test]
    fn wildcard_matches_names_only() {
        let p = policy("*.internal:5432");
        let a = ip("10.1.2.3");
        assert!(p.check_addr("db.internal", a, 5432).is_ok());
        assert!(p.check_addr("DB.Internal.", a, 5432).is_ok());
        assert!(p.check_addr("a.b.internal", ip("8.8.8.8"), 5432).is_ok());
        assert!(p.check_addr("db.internal", a, 5433).is_err());
        assert!(p.check_addr("internal", a, 5432).is_err());
        assert!(p.check_addr("db.internal.evil.com", a, 5432).is_err());
        assert!(p.check_addr("dbinternal", a, 5432).is_err());
        assert!(p.check_addr("10.1.2.3", a, 5432).is_err());
        // Wildcards never lift a denial.
        let m = prohibited(p.check_addr("db.internal", ip("169.254.169.254"), 5432));
        assert!(m.contains("a host name rule cannot open it"), "{m}");
    }

    #[test]
    fn exact_name_rules_are_case_insensitive() {
        let p = policy("DB.Internal.:5432");
        assert!(p.check_addr("db.internal", ip("10.0.0.1"), 5432).is_ok());
        assert!(p.check_addr("db.INTERNAL.", ip("10.0.0.1"), 5432).is_ok());
        assert!(p.check_addr("x.db.internal", ip("10.0.0.1"), 5432).is_err());
    }

    #[tokio::test]
    async fn name_rule_does_not_open_loopback() {
        let p = policy("localhost:22");
        let m = match p.resolve("localhost", 22, T).await {
            Err(Refusal::Prohibited(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(m.starts_with("localhost:22 resolves to "), "{m}");
        assert!(m.contains("loopback"), "{m}");
        assert!(m.contains("a host name rule cannot open it"), "{m}");
    }

    #[tokio::test]
    async fn localhost_refused_by_default() {
        let m = match policy("").resolve("localhost", 5432, T).await {
            Err(Refusal::Prohibited(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(m.contains("loopback"), "{m}");
    }

    #[tokio::test]
    async fn loopback_rule_and_name_resolve_to_checked_addresses() {
        let p = policy("127.0.0.1:2222, [::1]:2222");
        let addrs = p.resolve("localhost", 2222, T).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 2222));
        let mut seen = addrs.clone();
        seen.dedup();
        assert_eq!(seen.len(), addrs.len());
    }

    #[tokio::test]
    async fn literal_resolves_to_itself() {
        let p = policy("");
        let cases = [
            ("10.1.2.3", "10.1.2.3:5432"),
            ("[fd12::1]", "[fd12::1]:5432"),
            ("fd12::1", "[fd12::1]:5432"),
        ];
        for (host, want) in cases {
            let got = p.resolve(host, 5432, T).await.unwrap();
            assert_eq!(got, vec![want.parse::<SocketAddr>().unwrap()], "{host}");
        }
        assert!(matches!(
            p.resolve("8.8.8.8", 53, T).await,
            Err(Refusal::Prohibited(_))
        ));
    }

    #[tokio::test]
    async fn invalid_requested_hosts_are_prohibited() {
        let p = policy("");
        let long = "a".repeat(300);
        for host in [
            "a b",
            "",
            &long,
            "[db.internal]",
            "fe80::1%eth0",
            "10.1.2",
            "a..b",
            "x\n",
        ] {
            match p.resolve(host, 22, T).await {
                Err(Refusal::Prohibited(m)) => {
                    assert!(m.contains("not a valid host name or IP address"), "{m}");
                    assert!(m.len() < 200, "{m}");
                    assert!(!m.contains('\n'), "{m}");
                }
                other => panic!("{host}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn unresolvable_name() {
        let p = policy("");
        match p
            .resolve("nonexistent.invalid", 22, Duration::from_secs(2))
            .await
        {
            Err(Refusal::Unresolvable(m)) => {
                assert!(m.starts_with("cannot resolve nonexistent.invalid: "), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusal_message_accessor() {
        assert_eq!(Refusal::Prohibited("a".into()).message(), "a");
        assert_eq!(Refusal::Unresolvable("b".into()).to_string(), "b");
    }
}
