//! The hosts_access(5) file parser (`hosts.allow` / `hosts.deny`): logical lines with `\`
//! continuations and comments, daemon lists, and the IP-address client patterns this server
//! supports, each as an [`AddrSet`].

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::ranges::AddrSet;
use super::{exact_net, quoted, ClientPolicyError, CLIENT_FORMS, DAEMON_FORMS, DAEMON_NAMES};

/// Parse a hosts_access file: the rules of the lines for this server, labelled
/// `<path> line <n>`, and the number of lines skipped as being for other daemons.
pub(super) fn parse_hosts_file(
    setting: &str,
    path: &Path,
    content: &str,
) -> Result<(Vec<(String, AddrSet)>, usize), ClientPolicyError> {
    let mut rules = Vec::new();
    let mut skipped = 0;
    for (line_no, line) in logical_lines(content) {
        let at = |problem: String| {
            ClientPolicyError::new(format!(
                "{setting} {} line {line_no}: {problem}",
                path.display()
            ))
        };
        if line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(&line);
        let [daemon_field, rest @ ..] = fields.as_slice() else {
            continue;
        };
        if rest.is_empty() {
            return Err(at(format!(
                "{} has no ':' between the daemon list and the client list (expected e.g. \
                 `bastion: 10.0.0.0/8`)",
                quoted(line.trim())
            )));
        }
        if !is_for_us(daemon_field).map_err(&at)? {
            skipped += 1;
            continue;
        }
        let [client_field] = rest else {
            return Err(at(format!(
                "a third ':' field is not supported (no options or shell commands); IPv6 \
                 addresses go in brackets, e.g. [fd00::]/8, in {}",
                quoted(line.trim())
            )));
        };
        let set = client_list(client_field).map_err(|why| at(format!("{why}; {CLIENT_FORMS}")))?;
        rules.push((format!("{} line {line_no}", path.display()), set));
    }
    Ok((rules, skipped))
}

/// Physical lines joined at `\` continuations, with `#` comments removed; each with the number
/// of its first physical line.
pub(super) fn logical_lines(content: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in content.lines().enumerate() {
        let code = raw.split_once('#').map_or(raw, |(before, _)| before);
        let (first, mut text) = pending.take().unwrap_or((i + 1, String::new()));
        match code.trim_end().strip_suffix('\\') {
            Some(body) => {
                text.push_str(body);
                text.push(' ');
                pending = Some((first, text));
            }
            None => {
                text.push_str(code);
                out.push((first, text));
            }
        }
    }
    out.extend(pending);
    out
}

/// Split at ':' outside `[...]` (IPv6 addresses contain ':').
pub(super) fn split_fields(line: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in line.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    fields
}

/// List items are separated by commas and/or blanks.
pub(super) fn tokens(list: &str) -> Vec<&str> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Does this daemon list select this server? Errors for forms that cannot be decided.
pub(super) fn is_for_us(field: &str) -> Result<bool, String> {
    let toks = tokens(field);
    if toks.is_empty() {
        return Err(format!("empty daemon list before ':'; {DAEMON_FORMS}"));
    }
    let mut ours = false;
    for tok in toks {
        let upper = tok.to_ascii_uppercase();
        let name = tok.split('@').next().unwrap_or(tok);
        let names_us = name.eq_ignore_ascii_case("ALL")
            || DAEMON_NAMES.iter().any(|d| name.eq_ignore_ascii_case(d));
        if upper == "EXCEPT" {
            return Err(format!(
                "EXCEPT in the daemon list is not supported; {DAEMON_FORMS}"
            ));
        }
        if matches!(upper.as_str(), "LOCAL" | "KNOWN" | "UNKNOWN" | "PARANOID") {
            return Err(format!(
                "wildcard {tok} in the daemon list is not supported; {DAEMON_FORMS}"
            ));
        }
        if tok.contains(['*', '?']) {
            return Err(format!(
                "daemon pattern {} with wildcards is not supported; {DAEMON_FORMS}",
                quoted(tok)
            ));
        }
        if names_us && tok.contains('@') {
            return Err(format!(
                "daemon@host pattern {} is not supported; {DAEMON_FORMS}",
                quoted(tok)
            ));
        }
        if names_us {
            ours = true;
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
        {
            return Err(format!(
                "{} is not a daemon name; {DAEMON_FORMS}",
                quoted(tok)
            ));
        }
    }
    Ok(ours)
}

/// A client list with EXCEPT: `a EXCEPT b EXCEPT c` = a minus (b minus c).
pub(super) fn client_list(field: &str) -> Result<AddrSet, String> {
    let toks = tokens(field);
    if toks.is_empty() {
        return Err("empty client list after ':'".to_owned());
    }
    let mut groups: Vec<Vec<&str>> = vec![Vec::new()];
    for tok in toks {
        if tok.eq_ignore_ascii_case("EXCEPT") {
            groups.push(Vec::new());
        } else if let Some(group) = groups.last_mut() {
            group.push(tok);
        }
    }
    let mut sets = Vec::with_capacity(groups.len());
    for (i, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(if i == 0 {
                "EXCEPT with no client pattern before it".to_owned()
            } else {
                "EXCEPT with no client pattern after it".to_owned()
            });
        }
        let parts = group
            .iter()
            .map(|tok| client_pattern(tok))
            .collect::<Result<Vec<_>, _>>()?;
        sets.push(AddrSet::union(parts));
    }
    let mut result = sets.pop().unwrap_or_default();
    while let Some(outer) = sets.pop() {
        result = outer.minus(&result);
    }
    Ok(result)
}

/// One client pattern.
pub(super) fn client_pattern(tok: &str) -> Result<AddrSet, String> {
    let upper = tok.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(AddrSet::all());
    }
    let unsupported = |what: &str| Err(format!("client pattern {} {what}", quoted(tok)));
    if matches!(upper.as_str(), "LOCAL" | "KNOWN" | "UNKNOWN" | "PARANOID") {
        return unsupported("is a wildcard that needs host name lookups, which are not supported");
    }
    if tok.starts_with('@') {
        return unsupported("is a NIS netgroup, which is not supported");
    }
    if tok.starts_with('/') {
        return unsupported("is a file of patterns, which is not supported");
    }
    if tok.contains(['*', '?']) {
        return unsupported("has wildcards, which are not supported");
    }
    if tok.contains('@') {
        return unsupported("is a user@host pattern, which is not supported");
    }
    if tok.starts_with('.') {
        return unsupported("is a domain suffix; host names are not supported");
    }
    if let Some(inner) = tok.strip_prefix('[') {
        return ipv6_pattern(tok, inner).map(|net| AddrSet::from_nets([net]));
    }
    if !tok
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '/')
    {
        return unsupported(
            "is not an address pattern (host names are not supported; IPv6 goes in brackets)",
        );
    }
    ipv4_pattern(tok).map(|net| AddrSet::from_nets([IpNet::V4(net)]))
}

/// `[v6]` or `[v6]/len` (`inner` is after the `[`).
pub(super) fn ipv6_pattern(tok: &str, inner: &str) -> Result<IpNet, String> {
    let Some((addr, after)) = inner.split_once(']') else {
        return Err(format!("client pattern {} has no closing ']'", quoted(tok)));
    };
    if addr.contains('/') {
        return Err(format!(
            "client pattern {}: put the prefix length after the bracket, e.g. [fd00::]/8",
            quoted(tok)
        ));
    }
    let ip: Ipv6Addr = addr
        .parse()
        .map_err(|_| format!("client pattern {}: not an IPv6 address", quoted(tok)))?;
    let len = match after {
        "" => 128,
        _ => after
            .strip_prefix('/')
            .and_then(parse_len)
            .filter(|&l| l <= 128)
            .ok_or_else(|| {
                format!(
                    "client pattern {}: expected [address] or [address]/0..128",
                    quoted(tok)
                )
            })?,
    };
    let net = Ipv6Net::new(ip, len).map_err(|e| format!("client pattern {}: {e}", quoted(tok)))?;
    exact_net(IpNet::V6(net), tok)
}

/// `a.b.c.d`, `a.b.c.` (prefix), `a.b.c.d/len`, `a.b.c.d/m.m.m.m`.
pub(super) fn ipv4_pattern(tok: &str) -> Result<Ipv4Net, String> {
    let bad = |what: &str| format!("client pattern {} {what}", quoted(tok));
    let net = if let Some((addr, mask)) = tok.split_once('/') {
        let ip: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad("does not start with an IPv4 address"))?;
        let len = if mask.contains('.') {
            let m = u32::from(
                mask.parse::<Ipv4Addr>()
                    .map_err(|_| bad("has an invalid netmask"))?,
            );
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return Err(bad("has a netmask that is not contiguous"));
            }
            u8::try_from(m.leading_ones()).map_err(|_| bad("has an invalid netmask"))?
        } else {
            parse_len(mask)
                .filter(|&l| l <= 32)
                .ok_or_else(|| bad("has an invalid prefix length (0..32)"))?
        };
        Ipv4Net::new(ip, len).map_err(|e| bad(&e.to_string()))?
    } else if let Some(prefix) = tok.strip_suffix('.') {
        let mut octets = [0u8; 4];
        let parts: Vec<&str> = prefix.split('.').collect();
        if parts.len() > 3 {
            return Err(bad("has too many octets for a prefix (a., a.b. or a.b.c.)"));
        }
        for (slot, part) in octets.iter_mut().zip(&parts) {
            *slot = parse_octet(part).ok_or_else(|| bad("has an invalid octet"))?;
        }
        let len = u8::try_from(parts.len() * 8).map_err(|_| bad("is too long"))?;
        Ipv4Net::new(Ipv4Addr::from(octets), len).map_err(|e| bad(&e.to_string()))?
    } else {
        let ip: Ipv4Addr = tok.parse().map_err(|_| bad("is not an IPv4 address"))?;
        Ipv4Net::from(ip)
    };
    match exact_net(IpNet::V4(net), tok)? {
        IpNet::V4(n) => Ok(n),
        IpNet::V6(_) => Err(bad("is not IPv4")),
    }
}

/// A decimal prefix length (digits only, no sign or leading zeros beyond "0").
pub(super) fn parse_len(s: &str) -> Option<u8> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// A decimal octet 0..255 without leading zeros.
pub(super) fn parse_octet(s: &str) -> Option<u8> {
    parse_len(s)
}
