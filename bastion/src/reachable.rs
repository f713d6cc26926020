//! What this login may reach, told to its user: the destinations a held `session` shows (the
//! shell notice, and the stderr refusal of commands, sftp and scp), from the server's rules
//! (`destination_policy`) narrowed by the key line's `permitopen` (a certificate's are its CA
//! line's). Nothing beyond this login's own effective rules is ever listed; the list is
//! bounded and every line is made safe for a terminal.

#[cfg(test)]
mod tests;

use crate::destination_policy::DestinationPolicy;
use crate::key_options::{KeyRestrictions, PermitOpen};
use crate::net::{self, Escape, Quoting};

/// Destinations listed before "... and N more".
pub const MAX_LINES: usize = 20;

/// Longest destination line shown (a `permitopen` host may be up to 1024 characters).
const LINE_MAX: usize = 100;

/// The destinations of one login, ready to be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// One destination per line, unescaped, in rule or option order, without duplicates.
    lines: Vec<String>,
    /// The lines are the key's `permitopen` entries (the server's rules still apply to them).
    by_key: bool,
    /// A concrete first destination (host as `-L` takes it, port) for an example.
    example: Option<(String, u16)>,
}

impl Reach {
    /// The effective destinations of a login whose key line has `key`'s options.
    pub fn of(policy: &DestinationPolicy, key: &KeyRestrictions) -> Reach {
        if key.permit_open.is_empty() {
            return Reach {
                lines: policy.rule_lines(None),
                by_key: false,
                example: policy.first_concrete(None),
            };
        }
        let mut reach = Reach {
            lines: Vec::new(),
            // `permitopen="*:*"` alone narrows nothing: the lines are the server's rules.
            by_key: key.permit_open.iter().any(|p| p.host != "*"),
            example: None,
        };
        for entry in &key.permit_open {
            reach.add_entry(policy, entry);
        }
        reach
    }

    /// One `permitopen` entry: `*` as the host stands for the server's rules (on the entry's
    /// port); an entry the server refuses outright is left out.
    fn add_entry(&mut self, policy: &DestinationPolicy, entry: &PermitOpen) {
        if entry.host == "*" {
            for line in policy.rule_lines(entry.port) {
                self.push(line);
            }
            if self.example.is_none() {
                self.example = policy.first_concrete(entry.port);
            }
            return;
        }
        if !policy.may_open(&entry.host, entry.port) {
            return;
        }
        let line = match entry.port {
            Some(_) => entry.to_string(),
            None => format!("{entry} (any port)"),
        };
        self.push(line);
        if let (None, Some(port)) = (&self.example, entry.port) {
            self.example = Some((ssh_host(&entry.host), port));
        }
    }

    fn push(&mut self, line: String) {
        if !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }

    /// The notice a shell request gets (`ssh host`, `ssh -L ...` without `-N`).
    pub fn shell_notice(&self) -> String {
        let mut out =
            String::from("\r\nThis host only forwards ports: there is no shell here.\r\n");
        out.push_str(&self.destinations());
        out.push_str(
            "Your tunnels (-L, -W, ProxyJump) stay open while this session is open.\r\n\
             Press Ctrl-C or type ~. to leave. Next time, add -N to skip this session.\r\n",
        );
        out
    }

    /// The stderr text of a refused command, sftp or scp.
    pub fn no_commands(&self) -> String {
        let mut out = String::from(
            "This host only forwards ports: commands, sftp and scp are not available.\r\n",
        );
        out.push_str(&self.destinations());
        out
    }

    /// The list, the caveat and the example, each line ending in `\r\n`.
    fn destinations(&self) -> String {
        if self.lines.is_empty() {
            return "None of this key's permitopen destinations is allowed by this server's \
                    rules: it cannot open any tunnel here.\r\n"
                .to_owned();
        }
        let mut out = String::from(if self.by_key {
            "This key may open tunnels to (its permitopen entries):\r\n"
        } else {
            "This key may open tunnels to (this server's rules):\r\n"
        });
        for line in self.lines.iter().take(MAX_LINES) {
            out.push_str(&format!("  {}\r\n", safe(line)));
        }
        if self.lines.len() > MAX_LINES {
            out.push_str(&format!(
                "  ... and {} more\r\n",
                self.lines.len() - MAX_LINES
            ));
        }
        if self.by_key {
            out.push_str(
                "The server's own rules still apply: a name that resolves outside them is \
                 refused.\r\n",
            );
        }
        out.push_str(&match &self.example {
            Some((host, port)) => format!(
                "Example: ssh -N -L {}:{}:{port} <user>@<this host>\r\n",
                local_port(*port),
                safe(host)
            ),
            None => "Open a tunnel with: ssh -N -L local_port:destination:port \
                     <user>@<this host>\r\n"
                .to_owned(),
        });
        out
    }
}

/// A host as `ssh -L` takes it: IPv6 addresses in brackets.
fn ssh_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The local port of the example: 15432 for 5432, the port itself when that is not possible.
fn local_port(port: u16) -> u16 {
    port.checked_add(10_000).unwrap_or(port)
}

/// No control characters, nothing invisible, bounded length.
fn safe(text: &str) -> String {
    net::shown(text, Quoting::new(LINE_MAX, Escape::Printable, true))
}
