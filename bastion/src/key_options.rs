//! Enforcement of `authorized_keys` key options: turns the raw options that
//! [`crate::authorized_keys`] tokenizes into [`KeyRestrictions`] (source-address patterns,
//! `permitopen` destinations, `expiry-time`, port-forwarding flags, `cert-authority` and
//! `principals`), and answers the questions asked at login and at each tunnel request.
//!
//! Semantics follow sshd(8) "AUTHORIZED_KEYS FILE FORMAT" (OpenSSH `auth-options.c`,
//! `match.c` and `addrmatch.c`), with these deliberate differences, all in the direction of
//! refusing rather than granting:
//!
//! - `from=` patterns are matched against the client's IP address only: the bastion does no
//!   reverse DNS (like sshd with its default `UseDNS no`). A host-name pattern such as
//!   `*.example.com` is accepted, as sshd accepts it, but it can only match the address text
//!   and therefore never matches; [`KeyRestrictions::warnings`] says so, for the caller to log.
//!   Malformed entries that sshd would silently treat as never-matching text (a bad CIDR such as
//!   `10.0.0.1/8` or `10.0.0.0/33`, an empty entry, embedded spaces) are errors here.
//! - `expiry-time` without a trailing `Z` is local time in sshd; this server runs in UTC
//!   containers and treats every `expiry-time` as UTC.
//! - `verify-required` is refused: neither russh nor `ssh-key` checks the FIDO
//!   user-verification flag, so a line asking for it cannot be honoured.
//! - Options that only concern shells, ptys, X11, agents, environment, user rc, tunnels or
//!   remote forwarding have no effect on a forward-only server; they are listed in
//!   [`KeyRestrictions::ignored`].
//!
//! Calendar arithmetic (days from civil date and back) is done by hand, without a date
//! crate; all times are unix seconds, UTC.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::authorized_keys::KeyOption;

/// sshd caps `permitopen`/`permitlisten` at this many entries per line.
const PERMIT_MAX: usize = 4096;
/// sshd (`NI_MAXHOST`): longest host accepted in `permitopen`.
const MAX_HOST_LEN: usize = 1024;

/// Options that have no effect on a forward-only server (no shell, pty, X11, agent,
/// environment, user rc, tun devices or remote forwarding).
const NO_EFFECT: &[&str] = &[
    "command",
    "environment",
    "agent-forwarding",
    "no-agent-forwarding",
    "pty",
    "no-pty",
    "user-rc",
    "no-user-rc",
    "x11-forwarding",
    "no-x11-forwarding",
    "touch-required",
    "no-touch-required",
    "tunnel",
    "permitlisten",
];
/// Flags this module acts on (or, for `verify-required`, refuses).
const FLAGS: &[&str] = &[
    "restrict",
    "port-forwarding",
    "no-port-forwarding",
    "cert-authority",
    "verify-required",
];
/// Options that take a `="value"`.
const NEEDS_VALUE: &[&str] = &[
    "from",
    "permitopen",
    "permitlisten",
    "expiry-time",
    "principals",
    "command",
    "environment",
    "tunnel",
];

/// Restrictions of one authorized_keys line, ready to enforce.
///
/// [`Default`] is a line without options: any client address, no per-key destination
/// narrowing, no expiry, port forwarding allowed, not a CA.
///
/// A line with `cert-authority` authorizes certificates signed by its key and must never
/// authenticate that key as a plain user key (sshd refuses that too); its other restrictions
/// (`from=`, `expiry-time`, `permitopen`, `restrict`) apply to every certificate login it
/// authorizes, so call [`KeyRestrictions::check_login`] on the CA line for those.
#[derive(Debug, Clone)]
pub struct KeyRestrictions {
    /// `from="pattern-list"`.
    pub from: Option<PatternList>,
    /// `permitopen="host:port"` (repeatable); empty = no per-key narrowing.
    pub permit_open: Vec<PermitOpen>,
    /// `expiry-time`, as unix seconds UTC (the earliest, if given more than once, as sshd).
    pub expiry: Option<u64>,
    /// False after `restrict` or `no-port-forwarding` unless a later `port-forwarding`
    /// re-enables it. Options apply left to right, as in sshd: `restrict,port-forwarding`
    /// allows forwarding, `port-forwarding,restrict` does not.
    pub port_forwarding: bool,
    pub cert_authority: bool,
    /// `principals="a,b"`; only accepted together with `cert-authority`.
    pub principals: Option<Vec<String>>,
    /// Options with no effect here (command, pty, x11, agent, environment, user-rc, …), by
    /// name, in order of appearance, each once: for the caller to log.
    pub ignored: Vec<String>,
    /// Accepted but suspicious settings, e.g. a `from=` host-name pattern that can never match
    /// because the bastion does no reverse DNS: for the caller to log.
    pub warnings: Vec<String>,
}

impl Default for KeyRestrictions {
    fn default() -> Self {
        KeyRestrictions {
            from: None,
            permit_open: Vec::new(),
            expiry: None,
            port_forwarding: true,
            cert_authority: false,
            principals: None,
            ignored: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl KeyRestrictions {
    /// Interpret the raw options of a line. Errors name the option and say what is wrong.
    ///
    /// Like sshd, this refuses a second `from=` or `principals=` (or `command=`), and
    /// `principals=` without `cert-authority` ("principals on non-CA key").
    pub fn from_options(options: &[KeyOption]) -> Result<KeyRestrictions, String> {
        let mut r = KeyRestrictions::default();
        let mut seen_command = false;
        for option in options {
            let name = option.name.to_ascii_lowercase();
            let name = name.as_str();
            let value = option.value.as_deref();
            check_value_presence(name, value)?;
            match (name, value) {
                ("restrict", None) | ("no-port-forwarding", None) => r.port_forwarding = false,
                ("port-forwarding", None) => r.port_forwarding = true,
                ("cert-authority", None) => r.cert_authority = true,
                ("from", Some(v)) => {
                    if r.from.is_some() {
                        return Err("multiple from= options on one line (sshd refuses them)".into());
                    }
                    let list = PatternList::parse(v).map_err(|e| format!("from=\"{v}\": {e}"))?;
                    r.warnings
                        .extend(list.warnings().iter().map(|w| format!("from=\"{v}\": {w}")));
                    r.from = Some(list);
                }
                ("permitopen", Some(v)) => {
                    if r.permit_open.len() >= PERMIT_MAX {
                        return Err(format!(
                            "more than {PERMIT_MAX} permitopen= options on one line"
                        ));
                    }
                    let permit =
                        PermitOpen::parse(v).map_err(|e| format!("permitopen=\"{v}\": {e}"))?;
                    r.permit_open.push(permit);
                }
                ("expiry-time", Some(v)) => {
                    let t =
                        parse_expiry_time(v).map_err(|e| format!("expiry-time=\"{v}\": {e}"))?;
                    r.expiry = Some(r.expiry.map_or(t, |old| old.min(t)));
                }
                ("principals", Some(v)) => {
                    if r.principals.is_some() {
                        return Err(
                            "multiple principals= options on one line (sshd refuses them)".into(),
                        );
                    }
                    r.principals =
                        Some(parse_principals(v).map_err(|e| format!("principals=\"{v}\": {e}"))?);
                }
                ("verify-required", None) => {
                    return Err(
                        "option verify-required cannot be enforced: this server does not \
                         check the FIDO user-verification flag, so the line is refused rather \
                         than accepted with less protection than it asks for"
                            .into(),
                    )
                }
                (n, _) if NO_EFFECT.contains(&n) => {
                    if n == "command" {
                        if seen_command {
                            return Err(
                                "multiple command= options on one line (sshd refuses them)".into(),
                            );
                        }
                        seen_command = true;
                    }
                    if !r.ignored.iter().any(|i| i == n) {
                        r.ignored.push(n.to_owned());
                    }
                }
                (n, _) => {
                    return Err(format!(
                        "unknown option \"{n}\" (see sshd(8) AUTHORIZED_KEYS FILE FORMAT)"
                    ))
                }
            }
        }
        if r.principals.is_some() && !r.cert_authority {
            return Err(
                "option principals= is only valid together with cert-authority \
                 (sshd: \"principals on non-CA key\")"
                    .into(),
            );
        }
        Ok(r)
    }

    /// Is the key usable now from this client address? `Err(reason)` for the audit log.
    ///
    /// The key is usable up to and including the second of its `expiry-time` (sshd refuses
    /// only once `expiry < now`). IPv4-mapped IPv6 clients are matched as IPv4.
    pub fn check_login(&self, client: IpAddr, now_unix: u64) -> Result<(), String> {
        if let Some(expiry) = self.expiry {
            if expiry < now_unix {
                return Err(format!(
                    "key expired at {} (expiry-time)",
                    format_utc(expiry)
                ));
            }
        }
        if let Some(from) = &self.from {
            let client = canonical_ip(client);
            match from.evaluate(client) {
                Verdict::Allowed => {}
                Verdict::NoMatch => {
                    return Err(format!("client {client} not allowed by from=\"{from}\""));
                }
                Verdict::Denied(pattern) => {
                    return Err(format!(
                        "client {client} not allowed by from=\"{from}\" (matches \"!{pattern}\")"
                    ));
                }
            }
        }
        if !self.port_forwarding {
            return Err(
                "port forwarding disabled for this key (restrict / no-port-forwarding)".into(),
            );
        }
        Ok(())
    }

    /// Does the per-key `permitopen` list allow this requested destination? An empty list
    /// allows everything: it only narrows the server-wide policy, which the caller checks
    /// separately.
    ///
    /// Matching as sshd: host compared literally (ASCII case-insensitively, no DNS, no
    /// patterns), port exact or `*`; a `permitopen` host of `*` matches any host (sshd's
    /// `FWD_PERMIT_ANY_HOST`). The requested host may be bracketed (`[::1]`); two IP literals
    /// are equal when they are the same address (`::1` and `0::1`).
    pub fn permits_destination(&self, host: &str, port: u16) -> bool {
        self.permit_open.is_empty() || self.permit_open.iter().any(|p| p.matches(host, port))
    }
}

fn check_value_presence(name: &str, value: Option<&str>) -> Result<(), String> {
    if !(FLAGS.contains(&name) || NEEDS_VALUE.contains(&name) || NO_EFFECT.contains(&name)) {
        return Err(format!(
            "unknown option \"{name}\" (see sshd(8) AUTHORIZED_KEYS FILE FORMAT)"
        ));
    }
    match (NEEDS_VALUE.contains(&name), value) {
        (true, None) => Err(format!("option {name} needs a value: {name}=\"...\"")),
        (false, Some(_)) => Err(format!("option {name} takes no value")),
        _ => Ok(()),
    }
}

fn parse_principals(v: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for name in v.split(',') {
        if name.is_empty() {
            return Err("empty principal name (names are separated by single commas)".into());
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "principal \"{}\" contains whitespace; names are separated by commas, without \
                 spaces",
                name.escape_debug()
            ));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as a dual-stack listener reports IPv4
/// clients) as the IPv4 address; anything else unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parse one address-or-CIDR entry as sshd's `addr_pton_cidr` does: a bare address is a /32
/// or /128, and a network with bits set below its prefix ("10.0.0.1/8") is an error
/// (sshd: "inconsistent mask length"). IPv4-mapped IPv6 networks become IPv4 networks, so
/// they match clients as [`canonical_ip`] reports them.
pub fn parse_addr_or_cidr(s: &str) -> Result<IpNet, String> {
    let net = if s.contains('/') {
        let net = IpNet::from_str(s)
            .map_err(|_| format!("\"{s}\" is not a valid address/prefix-length"))?;
        if net.trunc() != net {
            return Err(format!(
                "\"{s}\" has bits set beyond its prefix length (did you mean {}?)",
                net.trunc()
            ));
        }
        net
    } else {
        let addr = IpAddr::from_str(s).map_err(|_| format!("\"{s}\" is not a valid IP address"))?;
        IpNet::from(addr)
    };
    Ok(canonical_net(net))
}

fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(n);
            }
        }
    }
    net
}

/// A `from=` pattern list with sshd semantics: comma-separated patterns, each optionally
/// negated with `!`; a pattern is a CIDR (`10.0.0.0/8`, `2001:db8::/32`), an IP address, or
/// a wildcard pattern with `*` and `?` matched (case-insensitively) against the client's
/// address text. A negated match anywhere denies; otherwise the client is allowed iff some
/// positive pattern matches.
///
/// The bastion does no reverse DNS, so a host-name pattern (`*.example.com`, `bastion1`)
/// never matches; it is accepted, as sshd accepts it, with a warning in
/// [`PatternList::warnings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternList {
    source: String,
    patterns: Vec<Pattern>,
    warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    negated: bool,
    /// As written, without the `!`.
    text: String,
    matcher: Matcher,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Net(IpNet),
    /// Lowercased wildcard pattern.
    Text(String),
}

enum Verdict<'a> {
    Allowed,
    NoMatch,
    /// Denied by this negated pattern (as written, without `!`).
    Denied(&'a str),
}

impl PatternList {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty pattern list".into());
        }
        let mut patterns = Vec::new();
        let mut warnings = Vec::new();
        for raw in s.split(',') {
            let (negated, text) = match raw.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, raw),
            };
            if text.is_empty() {
                return Err(if raw.is_empty() {
                    "empty pattern (patterns are separated by single commas)".into()
                } else {
                    "\"!\" must be followed by a pattern".into()
                });
            }
            if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "pattern \"{}\" contains whitespace; patterns are separated by commas, \
                     without spaces",
                    raw.escape_debug()
                ));
            }
            let matcher = if text.contains('/') {
                if text.contains(['*', '?']) {
                    return Err(format!(
                        "pattern \"{text}\" mixes a prefix length with wildcards; use either \
                         a CIDR such as 10.0.0.0/8 or a wildcard such as 10.0.*"
                    ));
                }
                Matcher::Net(parse_addr_or_cidr(text)?)
            } else if let Ok(addr) = IpAddr::from_str(text) {
                Matcher::Net(canonical_net(IpNet::from(addr)))
            } else {
                let lower = text.to_ascii_lowercase();
                let wildcard = lower.contains(['*', '?']);
                let address_like = lower
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '*' | '?'));
                if !wildcard || !address_like {
                    warnings.push(format!(
                        "pattern \"{text}\" is not an address, CIDR or address wildcard; this \
                         server does no reverse DNS and matches it against the client's IP \
                         address text, so it never matches"
                    ));
                }
                Matcher::Text(lower)
            };
            patterns.push(Pattern {
                negated,
                text: text.to_owned(),
                matcher,
            });
        }
        Ok(PatternList {
            source: s.to_owned(),
            patterns,
            warnings,
        })
    }

    /// Is this client address allowed? IPv4-mapped IPv6 addresses are matched as IPv4.
    pub fn matches(&self, ip: IpAddr) -> bool {
        matches!(self.evaluate(canonical_ip(ip)), Verdict::Allowed)
    }

    /// The list as written in the option.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Patterns that were accepted but can never match (host names), explained.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn evaluate(&self, ip: IpAddr) -> Verdict<'_> {
        let text = ip.to_string().to_ascii_lowercase();
        let mut allowed = false;
        for p in &self.patterns {
            let hit = match &p.matcher {
                Matcher::Net(net) => net.contains(&ip),
                Matcher::Text(pattern) => wildcard_match(pattern.as_bytes(), text.as_bytes()),
            };
            if hit {
                if p.negated {
                    return Verdict::Denied(&p.text);
                }
                allowed = true;
            }
        }
        if allowed {
            Verdict::Allowed
        } else {
            Verdict::NoMatch
        }
    }
}

impl fmt::Display for PatternList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// sshd's `match_pattern`: `*` matches any run of characters (also none), `?` exactly one.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` seen and the text position it currently absorbs up to.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, absorbed)) => {
                    p = star + 1;
                    t = absorbed + 1;
                    backtrack = Some((star, absorbed + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// One `permitopen="host:port"` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermitOpen {
    /// Without brackets; `*` means any host (as sshd's `FWD_PERMIT_ANY_HOST`).
    pub host: String,
    /// `None` = `*` (any port).
    pub port: Option<u16>,
}

impl PermitOpen {
    /// Parse `host:port`, `[v6addr]:port`, or with `*` as the port. Like sshd's `hpdelim2`,
    /// `host/port` is accepted too. The port must be 1-65535 or `*`.
    pub fn parse(s: &str) -> Result<PermitOpen, String> {
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains whitespace; expected host:port, e.g. db.internal:5432".into());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or("unterminated \"[\": write IPv6 addresses as [2001:db8::1]:22")?;
            let port = after
                .strip_prefix(':')
                .or_else(|| after.strip_prefix('/'))
                .ok_or_else(|| {
                    if after.is_empty() {
                        "missing port: expected [address]:port".to_owned()
                    } else {
                        format!("unexpected \"{after}\" after \"]\": expected [address]:port")
                    }
                })?;
            (host, port)
        } else {
            s.split_once([':', '/']).ok_or(
                "missing port: expected host:port (or host:* for any port); IPv6 addresses go \
                 in brackets, [2001:db8::1]:22",
            )?
        };
        if host.is_empty() {
            return Err("empty host: expected host:port".into());
        }
        if host.len() > MAX_HOST_LEN {
            return Err(format!("host longer than {MAX_HOST_LEN} characters"));
        }
        let port = parse_permit_port(port, s)?;
        Ok(PermitOpen {
            host: host.to_owned(),
            port,
        })
    }

    /// Does this entry allow `host:port`? See [`KeyRestrictions::permits_destination`].
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        if self.host == "*" {
            return true;
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if self.host.eq_ignore_ascii_case(host) {
            return true;
        }
        matches!(
            (IpAddr::from_str(&self.host), IpAddr::from_str(host)),
            (Ok(a), Ok(b)) if a == b
        )
    }
}

fn parse_permit_port(port: &str, whole: &str) -> Result<Option<u16>, String> {
    if port == "*" {
        return Ok(None);
    }
    if port.is_empty() {
        return Err(format!(
            "missing port after \"{}\": expected host:port or host:*",
            whole.trim_end_matches([':', '/'])
        ));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "port \"{port}\" is not a number (1-65535) or *; IPv6 addresses go in brackets, \
             [2001:db8::1]:22"
        ));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port \"{port}\" is out of range 1-65535")),
        Ok(p) => Ok(Some(p)),
    }
}

impl fmt::Display for PermitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => f.write_str(":*"),
        }
    }
}

/// Parse an `expiry-time` as sshd's `parse_absolute_time`: `YYYYMMDD`, `YYYYMMDDHHMM` or
/// `YYYYMMDDHHMMSS`, optionally followed by `Z` or `UTC` (case-insensitive). Returns unix
/// seconds.
///
/// sshd reads a time without `Z` as the server's local time; this server runs in UTC
/// containers and reads every time as UTC. A date-only time means its first second
/// (00:00:00). Ranges are validated (month 1-12, day within the month, hour 0-23,
/// minute and second 0-59); years before 1970 are refused, and so is the epoch itself
/// (sshd treats 0 as "invalid expires time").
pub fn parse_expiry_time(s: &str) -> Result<u64, String> {
    let digits = if let Some(d) = s.strip_suffix(['Z', 'z']) {
        d
    } else if s.len() > 3
        && s.is_char_boundary(s.len() - 3)
        && s[s.len() - 3..].eq_ignore_ascii_case("utc")
    {
        &s[..s.len() - 3]
    } else {
        s
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(
            "expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally followed by Z \
             (all times are UTC)"
                .into(),
        );
    }
    let field = |range: std::ops::Range<usize>| -> u32 {
        digits
            .get(range)
            .and_then(|f| f.parse().ok())
            .unwrap_or_default()
    };
    let (year, month, day) = (field(0..4), field(4..6), field(6..8));
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (field(8..10), field(10..12), 0),
        _ => (field(8..10), field(10..12), field(12..14)),
    };
    if year < 1970 {
        return Err(format!("year {year} is before 1970"));
    }
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} is not 01-12"));
    }
    let last = days_in_month(year, month);
    if day < 1 || day > last {
        return Err(format!(
            "day {day:02} does not exist in {year:04}-{month:02} (which has {last} days)"
        ));
    }
    if hour > 23 {
        return Err(format!("hour {hour:02} is not 00-23"));
    }
    if minute > 59 {
        return Err(format!("minute {minute:02} is not 00-59"));
    }
    if second > 59 {
        return Err(format!("second {second:02} is not 00-59"));
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    match u64::try_from(secs) {
        Ok(0) | Err(_) => {
            Err("the time is the unix epoch itself, which sshd treats as invalid".into())
        }
        Ok(t) => Ok(t),
    }
}

/// Length of a month, as the distance to the first of the next month.
fn days_in_month(year: u32, month: u32) -> u32 {
    let (y, m) = (i64::from(year), month);
    let next = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    u32::try_from(next - days_from_civil(y, m, 1)).unwrap_or(31)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are within their small ranges by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Unix seconds as an RFC 3339 UTC timestamp, e.g. `2026-01-01T00:00:00Z`.
pub fn format_utc(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    let rem = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
