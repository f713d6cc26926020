//! `permitopen="host:port"`: one per-key destination, parsed and matched as sshd does, except
//! that an address in `off_limits` (link-local, `fd00:ec2::/32`, in any spelling) is an error:
//! the line is rejected like any line with a malformed option.

use std::fmt;

use super::MAX_HOST_LEN;
use crate::net;
use crate::off_limits;

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
        if let Some(hit) = net::parse_ip(host).and_then(off_limits::reached_by) {
            return Err(format!(
                "names {host}, which is {hit}; remove it (the bastion never forwards to {}, \
                 in any spelling, whatever the options)",
                off_limits::SUMMARY
            ));
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
            (net::parse_ip(&self.host), net::parse_ip(host)),
            (Some(a), Some(b)) if a == b
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
