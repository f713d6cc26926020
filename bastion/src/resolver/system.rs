//! What `/etc/resolv.conf` and `/etc/hosts` mean to the resolver, kept as close to glibc as
//! hickory allows.
//!
//! From `resolv.conf` (hickory's parser): `nameserver`, `search` or `domain` (the last one
//! wins; with neither, the domain of the host name), `ndots`, `timeout`, `attempts` and `edns0`; other options (`rotate`,
//! `single-request`, ...) are ignored. A missing file, or one without a `nameserver`, means
//! the server on 127.0.0.1, as in glibc. A timeout or attempt count of 0 counts as 1.
//!
//! Set here whatever the files say: both address families are asked for (`getaddrinfo` with
//! `AF_UNSPEC` did the same; every address is then checked by `destination_policy`), answers
//! are not cached (glibc has no cache; the VPC resolver caches, and a cache would hold
//! attacker-chosen answers in the bastion's memory), and hickory's own hosts-file step is off
//! (the bastion looks a name up in `/etc/hosts` as given, before DNS, like glibc; hickory would
//! try the search-list forms in DNS first).
//!
//! Both files are read once, at start: a change needs a restart (a container's files are
//! written before it starts). `localhost` and names under it are loopback and `.invalid`
//! names do not exist (RFC 6761), even with no hosts line.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::system_conf::parse_resolv_conf;
use hickory_resolver::{Hosts, TokioResolver};

/// The resolver configuration file.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The static host table.
pub const HOSTS: &str = "/etc/hosts";

/// glibc's server when `resolv.conf` names none.
const DEFAULT_NAMESERVER: &str = "nameserver 127.0.0.1\n";

/// The parsed files.
pub struct SystemConfig {
    config: ResolverConfig,
    options: ResolverOpts,
    pub hosts: Hosts,
    /// Servers, search list and options, for the `config` event.
    pub summary: String,
}

/// The contents of `path`, or `None` when there is no such file.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot read {}: {e}; name lookups of tunnel destinations need it readable (or \
             absent)",
            path.display()
        )),
    }
}

impl SystemConfig {
    /// `resolv_conf`: the file's contents, `None` when it does not exist.
    pub fn parse(resolv_conf: Option<&[u8]>, hosts: &[u8]) -> Result<SystemConfig, String> {
        let mut text = resolv_conf.unwrap_or_default().to_vec();
        if !names_a_server(&text) {
            text.extend_from_slice(b"\n");
            text.extend_from_slice(DEFAULT_NAMESERVER.as_bytes());
        }
        let (mut config, mut options) = parse_resolv_conf(&text)
            .map_err(|e| format!("{RESOLV_CONF}: {e}; fix the file (see resolv.conf(5))"))?;
        if !config.search().is_empty() {
            // glibc searches the `search` (or `domain`) list alone; the host name's domain is
            // only the fallback when there is neither (hickory would add it to the list).
            let (search, servers) = (config.search().to_vec(), config.name_servers().to_vec());
            config = ResolverConfig::from_parts(None, search, servers);
        }
        options.timeout = options.timeout.max(Duration::from_secs(1));
        options.attempts = options.attempts.max(1);
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        let mut table = Hosts::default();
        table
            .read_hosts_conf(hosts)
            .map_err(|e| format!("{HOSTS}: {e}; fix the file (see hosts(5))"))?;
        let summary = summarize(&config, &options, resolv_conf.is_some());
        Ok(SystemConfig {
            config,
            options,
            hosts: table,
            summary,
        })
    }

    /// The DNS client (no socket is opened until the first query).
    pub fn build(&self) -> Result<TokioResolver, String> {
        TokioResolver::builder_with_config(self.config.clone(), TokioRuntimeProvider::default())
            .with_options(self.options.clone())
            .build()
            .map_err(|e| format!("cannot set up the DNS resolver from {RESOLV_CONF}: {e}"))
    }
}

/// Whether a `nameserver` line is present (hickory refuses a file without one; glibc then
/// uses 127.0.0.1).
fn names_a_server(text: &[u8]) -> bool {
    String::from_utf8_lossy(text).lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver") && words.next().is_some()
    })
}

/// "nameservers 10.0.0.2; search ec2.internal; ndots 1, timeout 5s, 2 attempts; /etc/hosts
/// first".
fn summarize(config: &ResolverConfig, options: &ResolverOpts, had_file: bool) -> String {
    let servers: Vec<String> = config
        .name_servers()
        .iter()
        .map(|s| s.ip.to_string())
        .collect();
    let mut search: Vec<String> = config.search().iter().map(ToString::to_string).collect();
    if let Some(domain) = config.domain() {
        search.push(domain.to_string());
    }
    let from = if had_file {
        ""
    } else {
        " (no /etc/resolv.conf)"
    };
    let search = if search.is_empty() {
        "no search list".to_owned()
    } else {
        format!("search {}", search.join(" "))
    };
    format!(
        "nameservers {}{from}; {search}; ndots {}, timeout {}s, {} attempts; {HOSTS} first",
        servers.join(" "),
        options.ndots,
        options.timeout.as_secs(),
        options.attempts
    )
}

#[cfg(test)]
impl SystemConfig {
    /// The same servers on another port (resolv.conf cannot name one): tests run their own.
    pub fn on_port(mut self, port: u16) -> SystemConfig {
        let servers = self
            .config
            .name_servers()
            .iter()
            .cloned()
            .map(|mut server| {
                for connection in &mut server.connections {
                    connection.port = port;
                }
                server
            })
            .collect();
        let search = self.config.search().to_vec();
        self.config = ResolverConfig::from_parts(self.config.domain().cloned(), search, servers);
        self
    }
}
