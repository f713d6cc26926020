//! Enforcement of `authorized_keys` key options: tokenizes a line's option list
//! ([`parse_options`], used by `authorized_keys`) and turns the options into
//! [`KeyRestrictions`] (source-address patterns,
//! `permitopen` destinations, `expiry-time`, port-forwarding flags, `cert-authority`,
//! `principals` and `no-touch-required`), and answers the questions asked at login and at each tunnel request.
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
//! - Nor do they expose the user-presence (touch) flag of a security key's signature, so a
//!   security key (`sk-…`) logs in only on a line with `no-touch-required` (sshd's meaning:
//!   no touch needed), never on a plain or `touch-required` line, where sshd would demand a
//!   touch this server cannot see ([`KeyRestrictions::no_touch_required`], enforced by
//!   `key_strength` at login).
//! - Options that only concern shells, ptys, X11, agents, environment, user rc, tunnels or
//!   remote forwarding have no effect on a forward-only server; they are listed in
//!   [`KeyRestrictions::ignored`].
//!
//! All times are unix seconds, UTC; the calendar is the `time` crate's (see [`expiry_time`]).

mod expiry_time;
mod permit_open;
mod tokenizer;

pub use expiry_time::{format_utc, now_unix, parse_expiry_time};
pub use permit_open::PermitOpen;
pub use tokenizer::{parse_options, truncate, KeyOption};

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::net::{self, Brackets, Compatible, Nat64, NetError};

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
    "tunnel",
    "permitlisten",
];
/// Flags this module acts on (or, for `verify-required`, refuses).
const FLAGS: &[&str] = &[
    "restrict",
    "port-forwarding",
    "no-port-forwarding",
    "cert-authority",
    "touch-required",
    "no-touch-required",
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
    /// `no-touch-required`: a security key (`sk-…`) may log in although this server cannot
    /// check its user-presence flag (see `key_strength`). Left to right, as in sshd: a later
    /// `touch-required` clears it; `restrict` does not touch it.
    pub no_touch_required: bool,
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
            no_touch_required: false,
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
                ("no-touch-required", None) => r.no_touch_required = true,
                ("touch-required", None) => r.no_touch_required = false,
                ("from", Some(v)) => r.set_from(v)?,
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
                (n, _) if NO_EFFECT.contains(&n) => r.ignore(n, &mut seen_command)?,
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

    /// `from="v"`: at most once per line, as sshd.
    fn set_from(&mut self, v: &str) -> Result<(), String> {
        if self.from.is_some() {
            return Err("multiple from= options on one line (sshd refuses them)".into());
        }
        let list = PatternList::parse(v).map_err(|e| format!("from=\"{v}\": {e}"))?;
        self.warnings
            .extend(list.warnings().iter().map(|w| format!("from=\"{v}\": {w}")));
        self.from = Some(list);
        Ok(())
    }

    /// An option with no effect here: listed once in `ignored`; `command=` at most once per
    /// line, as sshd.
    fn ignore(&mut self, n: &str, seen_command: &mut bool) -> Result<(), String> {
        if n == "command" {
            if *seen_command {
                return Err("multiple command= options on one line (sshd refuses them)".into());
            }
            *seen_command = true;
        }
        if !self.ignored.iter().any(|i| i == n) {
            self.ignored.push(n.to_owned());
        }
        Ok(())
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
    net::canonical_ip(ip, Compatible::Keep, Nat64::Keep)
}

/// Parse one address-or-CIDR entry as sshd's `addr_pton_cidr` does: a bare address is a /32
/// or /128, and a network with bits set below its prefix ("10.0.0.1/8") is an error
/// (sshd: "inconsistent mask length"). IPv4-mapped IPv6 networks become IPv4 networks, so
/// they match clients as [`canonical_ip`] reports them. No brackets (sshd syntax).
pub fn parse_addr_or_cidr(s: &str) -> Result<IpNet, String> {
    match net::parse_net(s, Brackets::Rejected) {
        Ok(n) => Ok(net::canonical_net(n, Nat64::Keep)),
        Err(NetError::HostBits { network }) => Err(format!(
            "\"{s}\" has bits set beyond its prefix length (did you mean {network}?)"
        )),
        Err(NetError::NotCidr | NetError::UnbalancedBrackets) => {
            Err(format!("\"{s}\" is not a valid address/prefix-length"))
        }
        Err(NetError::NotAddress) => Err(format!("\"{s}\" is not a valid IP address")),
    }
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
            } else if let Some(addr) = net::parse_ip(text) {
                Matcher::Net(net::canonical_net(IpNet::from(addr), Nat64::Keep))
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

#[cfg(test)]
mod tests;
