//! The one configuration type: every flag, its `BASTION_*` environment variable, its default,
//! and the validation that turns raw input into [`Settings`] before anything listens.
//!
//! ECS injects configuration and secrets as environment variables, so each setting is both a
//! flag and a variable; secrets and lists accept content (`BASTION_AUTHORIZED_KEYS`) or a path
//! (`BASTION_AUTHORIZED_KEYS_FILE`). A bad value fails start with a message that names the
//! setting, the value (never a secret) and how to fix it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use std::sync::Arc;

use crate::admission::AdmissionLimits;
pub use crate::audit::LogFormat;
use crate::authorized_keys::KeySources;
use crate::channel_budget::ChannelLimits;
use crate::client_policy::LivePolicy;
use crate::destination_policy::DestinationPolicy;
use crate::flow::FlowLimits;
use crate::host_certificate::HostCertificate;
use crate::host_key::HostKey;
use crate::key_store::KeyStore;
use crate::key_strength::MinRsaBits;
use crate::key_wait::KeyFile;
use crate::net::{self, Brackets, Nat64};
use crate::penalties::{PenaltyExempt, PenaltySettings};
use crate::proxy_header::{ProxyConfig, ProxyMode};
use crate::resolver::{LookupLimits, Resolver};
use crate::source::NetBlockSize;

/// Forward-only SSH jumpbox: `ssh -L`, `ssh -W` and `ProxyJump` tunnels, and nothing else.
///
/// Authentication is by public key only. No shell, no commands, no file transfer, no agent,
/// X11 or remote (-R) forwarding. Tunnels go only where BASTION_PERMIT_OPEN allows, never to
/// link-local addresses (instance metadata, the ECS credentials endpoint) or the bastion's own
/// listener, and never to loopback or multicast addresses unless a rule names them explicitly.
#[derive(Debug, Parser)]
#[command(name = "bastion", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exit 0 if a server on the configured listen port answers with an SSH banner (for ECS
    /// health checks: the image has no shell).
    Healthcheck {
        /// How long to wait for the banner.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Validate the configuration (every flag and BASTION_* variable, as a start would) without
    /// listening; print what is in force and exit 0, or the error and exit 2. Deploy checks use
    /// it to ask the bastion itself whether a value (e.g. BASTION_PERMIT_OPEN) is accepted.
    CheckConfig,
}

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Address and port to listen on; use [::]:2222 for IPv6 (dual-stack where the OS allows).
    #[arg(long, env = "BASTION_LISTEN", default_value = "0.0.0.0:2222")]
    pub listen: String,

    /// Host private key, as OpenSSH private key text (what Secrets Manager injects). Without
    /// this or --host-key-file an ephemeral Ed25519 key is generated (clients will see a new
    /// host key after every restart).
    #[arg(
        long,
        env = "BASTION_HOST_KEY",
        hide_env_values = true,
        conflicts_with = "host_key_file"
    )]
    pub host_key: Option<String>,

    /// Path of the host private key file (OpenSSH format).
    #[arg(long, env = "BASTION_HOST_KEY_FILE")]
    pub host_key_file: Option<PathBuf>,

    /// OpenSSH host certificate of the host key (the text of host_key-cert.pub, made by
    /// `ssh-keygen -s host_ca -h -I id -n names -V ...`), presented with the host key so that
    /// clients with a `@cert-authority` known_hosts line trust the bastion. The start fails if
    /// it is a user certificate, is for another key, or is not valid now; a warning is logged
    /// from 7 days before it expires.
    #[arg(
        long,
        env = "BASTION_HOST_CERTIFICATE",
        conflicts_with = "host_certificate_file"
    )]
    pub host_certificate: Option<String>,

    /// Path of the OpenSSH host certificate file (host_key-cert.pub).
    #[arg(long, env = "BASTION_HOST_CERTIFICATE_FILE")]
    pub host_certificate_file: Option<PathBuf>,

    /// Authorized public keys, as the text of an OpenSSH authorized_keys file.
    #[arg(
        long,
        env = "BASTION_AUTHORIZED_KEYS",
        hide_env_values = true,
        conflicts_with = "authorized_keys_file"
    )]
    pub authorized_keys: Option<String>,

    /// Path of an OpenSSH authorized_keys file; reloaded when it changes (and on SIGHUP):
    /// tunnels of a removed key are closed.
    #[arg(long, env = "BASTION_AUTHORIZED_KEYS_FILE")]
    pub authorized_keys_file: Option<PathBuf>,

    /// Revoked keys: public key lines or SHA256:... fingerprints, one per line. A revoked key
    /// (or CA key) cannot log in; its open tunnels are closed when the list is reloaded.
    #[arg(
        long,
        env = "BASTION_REVOKED_KEYS",
        conflicts_with = "revoked_keys_file"
    )]
    pub revoked_keys: Option<String>,

    /// Path of the revoked keys list; reloaded when it changes (and on SIGHUP).
    #[arg(long, env = "BASTION_REVOKED_KEYS_FILE")]
    pub revoked_keys_file: Option<PathBuf>,

    /// At start, how long to wait for BASTION_AUTHORIZED_KEYS_FILE and BASTION_REVOKED_KEYS_FILE
    /// to exist when they do not yet (a sidecar container writing them as the task starts):
    /// checked every 200 ms; nothing listens (the health check fails) until the keys are
    /// loaded; a file still missing after this long stops the start. 0s: no wait.
    #[arg(long, env = "BASTION_WAIT_FOR_KEYS", default_value = "0s", value_parser = parse_duration)]
    pub wait_for_keys: Duration,

    /// Smallest RSA key accepted, in bits: user keys, cert-authority keys, a certificate's key
    /// and its CA, and the host key. An authorized_keys line with a smaller RSA key is rejected
    /// (the other lines load); a smaller host key stops the start. May be lowered to 1024
    /// (OpenSSH's own floor) for old keys that cannot be replaced yet, never below.
    #[arg(long, env = "BASTION_MIN_RSA_BITS", default_value_t = MinRsaBits::DEFAULT)]
    pub min_rsa_bits: u32,

    /// Where tunnels may go: comma-separated rules host:port, *.suffix:port, CIDR:port
    /// ([v6]:port; * for any port). Empty: private ranges (10/8, 172.16/12, 192.168/16,
    /// fc00::/7) on any port. Loopback and multicast stay refused unless a rule names the
    /// address or a range inside it; link-local (169.254.0.0/16, fe80::/10) and fd00:ec2::/32
    /// are refused whatever the rules, in any spelling, and a rule naming them is an error.
    #[arg(long, env = "BASTION_PERMIT_OPEN", default_value = "")]
    pub permit_open: String,

    /// Log format; default json when standard error is not a terminal (a container), else text.
    #[arg(long, env = "BASTION_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// On SIGTERM/SIGINT: how long open tunnels may keep running before they are closed.
    /// Keep it below the ECS stopTimeout (default 30s).
    #[arg(long, env = "BASTION_SHUTDOWN_GRACE", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Time a client has, from TCP accept, to finish the banner exchange and authenticate.
    #[arg(long, env = "BASTION_LOGIN_GRACE_TIME", default_value = "30s", value_parser = parse_duration)]
    pub login_grace_time: Duration,

    /// Public keys a connection may try (offered or signed) before it is disconnected.
    #[arg(long, env = "BASTION_MAX_AUTH_TRIES", default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_auth_tries: u32,

    /// Connections at once, server-wide, authenticated or not. Each holds a file descriptor
    /// (and each tunnel one more: BASTION_MAX_TUNNELS); with a reserve of 64 the two must fit
    /// in the open file limit, or both are lowered at start (with a warning). At the cap a new
    /// connection takes the place of an unauthenticated one as at BASTION_MAX_STARTUPS, or is
    /// refused at accept, before any SSH byte.
    #[arg(long, env = "BASTION_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,

    /// Unauthenticated connections at once, server-wide. At the cap a new connection takes the
    /// slot of the one that has made the least progress for longest (no PROXY header, then no
    /// SSH identification, then no key exchange); connections past the key exchange are never
    /// evicted, and only when every slot holds one is the newcomer refused.
    #[arg(long, env = "BASTION_MAX_STARTUPS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_startups: u32,

    /// Unauthenticated connections at once from one source (client address, or IPv6 block:
    /// see BASTION_PER_SOURCE_NET_BLOCK_SIZE); more are refused at accept. 0: no limit.
    #[arg(long, env = "BASTION_PER_SOURCE_MAX_STARTUPS", default_value_t = 8)]
    pub per_source_max_startups: u32,

    /// Connections at once from one source, authenticated or not. 0: no limit.
    #[arg(long, env = "BASTION_PER_SOURCE_MAX_CONNECTIONS", default_value_t = 64)]
    pub per_source_max_connections: u32,

    /// New connections per second from one source (bursts of as many). 0: no limit.
    #[arg(long, env = "BASTION_PER_SOURCE_CONNECTION_RATE", default_value_t = 20)]
    pub per_source_connection_rate: u32,

    /// How client addresses group into sources for the per-source limits and penalties:
    /// IPv4 prefix:IPv6 prefix (sshd's PerSourceNetBlockSize). 32:64 counts each IPv4
    /// address, and each IPv6 /64 (what one user or host usually holds), as one source.
    #[arg(
        long,
        env = "BASTION_PER_SOURCE_NET_BLOCK_SIZE",
        default_value = "32:64"
    )]
    pub per_source_net_block_size: String,

    /// Penalties that refuse a misbehaving source at accept (like sshd's PerSourcePenalties):
    /// `no`, or key:duration pairs over the defaults authfail:5s (failed authentication),
    /// noauth:1s (closed or evicted before trying to authenticate), grace-exceeded:10s (login
    /// deadline), min:15s (penalty needed before refusing), max:10m (cap), max-sources:65536
    /// (table size; when full, new sources are not penalised).
    #[arg(
        long,
        env = "BASTION_PER_SOURCE_PENALTIES",
        default_value = "authfail:5s,noauth:1s,grace-exceeded:10s,min:15s,max:10m,max-sources:65536"
    )]
    pub per_source_penalties: String,

    /// Clients never penalised: comma-separated CIDRs, and the word `allowed` for clients
    /// matched by an allow rule (BASTION_ALLOW_CLIENTS, hosts.allow). Leave `allowed` out when
    /// the allow rules list everyone who may connect rather than a trusted few.
    #[arg(
        long,
        env = "BASTION_PER_SOURCE_PENALTY_EXEMPT",
        default_value = "allowed"
    )]
    pub per_source_penalty_exempt: String,

    /// Time a client has, once admitted, to send its SSH identification line.
    #[arg(long, env = "BASTION_BANNER_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub banner_timeout: Duration,

    /// Channels (tunnels and session channels) one connection may hold open at once.
    #[arg(long, env = "BASTION_MAX_CHANNELS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_channels: u32,

    /// Session channels (what `ssh` without -N opens; they run nothing here) one connection
    /// may hold open, within BASTION_MAX_CHANNELS (sshd's MaxSessions).
    #[arg(long, env = "BASTION_MAX_SESSIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_sessions: u32,

    /// Tunnels at once, server-wide (all connections together); each holds a file descriptor
    /// to its destination. More are refused with an SSH open failure naming this setting.
    #[arg(long, env = "BASTION_MAX_TUNNELS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_tunnels: u32,

    /// Channel opens per second on one connection (bursts of as many); more are refused.
    /// 0: no limit.
    #[arg(long, env = "BASTION_CHANNEL_OPEN_RATE", default_value_t = 50)]
    pub channel_open_rate: u32,

    /// Send an SSH keepalive after this much silence from the client (0 disables); 3
    /// unanswered keepalives close the connection. Keeps idle tunnels alive through an NLB's
    /// 350 s idle timeout.
    #[arg(long, env = "BASTION_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub keepalive_interval: Duration,

    /// Time allowed to resolve and connect to a tunnel's destination.
    #[arg(long, env = "BASTION_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Name lookups of tunnel destinations (DNS queries to the servers of /etc/resolv.conf)
    /// in progress at once on the whole bastion; more wait for a slot, within
    /// BASTION_CONNECT_TIMEOUT. Names in /etc/hosts and IP literals need no slot.
    #[arg(long, env = "BASTION_DNS_MAX_LOOKUPS", default_value_t = LookupLimits::DEFAULT_TOTAL,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub dns_max_lookups: u32,

    /// Name lookups in progress at once on one connection; its others wait for a slot, within
    /// BASTION_CONNECT_TIMEOUT. Keeps a few connections from taking every slot of
    /// BASTION_DNS_MAX_LOOKUPS with names whose DNS server never answers.
    #[arg(long, env = "BASTION_DNS_MAX_LOOKUPS_PER_CONNECTION",
          default_value_t = LookupLimits::DEFAULT_PER_CONNECTION,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub dns_max_lookups_per_connection: u32,

    /// A tunnel whose destination accepts no bytes for this long while data waits for it is
    /// closed, so one stuck destination cannot hold the connection's other tunnels.
    #[arg(long, env = "BASTION_TUNNEL_STALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub tunnel_stall_timeout: Duration,
    /// PROXY protocol (v1 and v2) before SSH: off, optional (use a header when present) or
    /// required (close connections without one). Use required behind an NLB whose target group
    /// has proxy protocol v2 enabled.
    #[arg(long, env = "BASTION_PROXY_PROTOCOL", default_value = "off", value_parser = parse_proxy_mode)]
    pub proxy_protocol: ProxyMode,

    /// Senders allowed to send a PROXY header (the NLB's subnets), comma-separated CIDRs.
    /// Default: the private ranges. A header from anyone else is logged as spoofing and closed.
    #[arg(long, env = "BASTION_PROXY_TRUSTED", default_value = "")]
    pub proxy_trusted: String,

    /// Time allowed for the whole PROXY header to arrive.
    #[arg(long, env = "BASTION_PROXY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub proxy_timeout: Duration,

    /// Client addresses always allowed (like a hosts.allow entry), comma-separated CIDRs.
    /// Checked on the real client address (from the PROXY header when one is used).
    #[arg(long, env = "BASTION_ALLOW_CLIENTS", default_value = "")]
    pub allow_clients: String,

    /// Client addresses refused (like a hosts.deny entry), comma-separated CIDRs.
    /// Order: allow match, allow; deny match, deny; otherwise allow.
    #[arg(long, env = "BASTION_DENY_CLIENTS", default_value = "")]
    pub deny_clients: String,

    /// hosts.allow file (TCP wrappers syntax, daemon ALL, bastion or sshd); reloaded when it
    /// changes and on SIGHUP.
    #[arg(long, env = "BASTION_HOSTS_ALLOW_FILE")]
    pub hosts_allow_file: Option<PathBuf>,

    /// hosts.deny file (TCP wrappers syntax); `ALL: ALL` here with allow entries makes an
    /// allow-list.
    #[arg(long, env = "BASTION_HOSTS_DENY_FILE")]
    pub hosts_deny_file: Option<PathBuf>,
}

/// Validated configuration: everything the server needs, nothing left to parse.
pub struct Settings {
    pub listen: SocketAddr,
    pub host_key: HostKey,
    /// Presented with the host key, when configured.
    pub host_certificate: Option<HostCertificate>,
    pub keys: Arc<KeyStore>,
    pub destinations: DestinationPolicy,
    pub shutdown_grace: Duration,
    pub login_grace_time: Duration,
    pub max_auth_tries: u32,
    pub admission: AdmissionLimits,
    pub net_blocks: NetBlockSize,
    pub penalties: PenaltySettings,
    pub penalty_exempt: PenaltyExempt,
    pub banner_timeout: Duration,
    pub channels: ChannelLimits,
    pub keepalive_interval: Option<Duration>,
    pub connect_timeout: Duration,
    /// Name lookups of destinations (`/etc/resolv.conf`, `/etc/hosts`, read at start).
    pub resolver: Arc<Resolver>,
    pub flow: FlowLimits,
    pub proxy: ProxyConfig,
    pub clients: Arc<LivePolicy>,
}

/// A configuration error: the message names the setting and says how to fix it.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn parse_proxy_mode(s: &str) -> Result<ProxyMode, String> {
    s.parse()
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}: use a duration such as 30s, 2m or 500ms"))
}

/// Parse `BASTION_LISTEN`: `host:port` with an IP literal host (`0.0.0.0:2222`, `[::]:2222`).
pub fn parse_listen(value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse::<SocketAddr>().map_err(|_| {
        ConfigError(format!(
            "BASTION_LISTEN: \"{value}\" is not an address:port; use an IP literal and a port, \
             such as 0.0.0.0:2222 or [::]:2222"
        ))
    })
}

/// `BASTION_PER_SOURCE_PENALTY_EXEMPT`: comma-separated CIDRs or addresses, and `allowed`.
fn parse_exempt(list: &str) -> Result<PenaltyExempt, ConfigError> {
    let mut exempt = PenaltyExempt::default();
    for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if entry == "allowed" {
            exempt.allowed = true;
            continue;
        }
        let net = net::parse_net(entry, Brackets::Allowed).map_err(|e| {
            ConfigError(format!(
                "BASTION_PER_SOURCE_PENALTY_EXEMPT: {entry:?}: {e}; list CIDRs or addresses \
                 such as 203.0.113.0/24,2001:db8::/48, and `allowed` for allow-listed clients"
            ))
        })?;
        exempt.nets.push(net::canonical_net(net, Nat64::Keep));
    }
    Ok(exempt)
}

impl Options {
    /// The durations that must be more than zero, with an example each.
    fn check_durations(&self) -> Result<(), ConfigError> {
        for (value, name, example) in [
            (
                self.tunnel_stall_timeout,
                "BASTION_TUNNEL_STALL_TIMEOUT",
                "30s",
            ),
            (self.login_grace_time, "BASTION_LOGIN_GRACE_TIME", "30s"),
            (self.banner_timeout, "BASTION_BANNER_TIMEOUT", "5s"),
            (self.connect_timeout, "BASTION_CONNECT_TIMEOUT", "10s"),
            (self.proxy_timeout, "BASTION_PROXY_TIMEOUT", "5s"),
        ] {
            if value.is_zero() {
                return Err(ConfigError(format!(
                    "{name}: must be more than 0 (for example {example})"
                )));
            }
        }
        Ok(())
    }

    /// The key files `BASTION_WAIT_FOR_KEYS` waits for: those named by a `_FILE` setting
    /// whose content variable is not set.
    pub fn key_files(&self) -> Vec<KeyFile> {
        let keys = self
            .authorized_keys
            .is_none()
            .then_some(("BASTION_AUTHORIZED_KEYS_FILE", &self.authorized_keys_file));
        let revoked = self
            .revoked_keys
            .is_none()
            .then_some(("BASTION_REVOKED_KEYS_FILE", &self.revoked_keys_file));
        [keys, revoked]
            .into_iter()
            .flatten()
            .filter_map(|(setting, path)| {
                path.as_ref().map(|p| KeyFile {
                    setting,
                    path: p.clone(),
                })
            })
            .collect()
    }

    /// Validate every setting. Reads the key files; does not bind anything.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let listen = parse_listen(&self.listen)?;
        self.check_durations()?;
        let min_rsa_bits = MinRsaBits::new(self.min_rsa_bits).map_err(ConfigError)?;
        let host_key = HostKey::load(self.host_key.as_deref(), self.host_key_file.as_deref())
            .and_then(|key| key.check_strength(min_rsa_bits).map(|()| key))
            .map_err(|e| ConfigError(e.to_string()))?;
        let host_certificate = HostCertificate::load(
            self.host_certificate.as_deref(),
            self.host_certificate_file.as_deref(),
            host_key.key.public_key(),
            crate::key_options::now_unix(),
        )
        .map_err(|e| ConfigError(e.to_string()))?;
        let keys = KeyStore::load(KeySources {
            keys: self.authorized_keys,
            keys_file: self.authorized_keys_file,
            revoked: self.revoked_keys,
            revoked_file: self.revoked_keys_file,
            min_rsa_bits,
        })
        .map_err(|e| ConfigError(e.to_string()))?;
        let destinations =
            DestinationPolicy::parse(&self.permit_open).map_err(|e| ConfigError(e.to_string()))?;
        let resolver = Resolver::from_system(LookupLimits {
            total: self.dns_max_lookups as usize,
            per_connection: self.dns_max_lookups_per_connection as usize,
        })
        .map_err(ConfigError)?;
        let net_blocks = NetBlockSize::parse(&self.per_source_net_block_size)
            .map_err(|e| ConfigError(format!("BASTION_PER_SOURCE_NET_BLOCK_SIZE: {e}")))?;
        let penalties = PenaltySettings::parse(&self.per_source_penalties)
            .map_err(|e| ConfigError(format!("BASTION_PER_SOURCE_PENALTIES: {e}")))?;
        let penalty_exempt = parse_exempt(&self.per_source_penalty_exempt)?;
        let trusted = if self.proxy_trusted.trim().is_empty() {
            ProxyConfig::default_trusted()
        } else {
            ProxyConfig::parse_trusted(&self.proxy_trusted).map_err(ConfigError)?
        };
        let clients = LivePolicy::load(
            self.allow_clients,
            self.deny_clients,
            self.hosts_allow_file,
            self.hosts_deny_file,
        )
        .map_err(|e| ConfigError(e.to_string()))?;
        Ok(Settings {
            listen,
            host_key,
            host_certificate,
            keys,
            destinations,
            shutdown_grace: self.shutdown_grace,
            login_grace_time: self.login_grace_time,
            max_auth_tries: self.max_auth_tries,
            admission: AdmissionLimits {
                max_connections: self.max_connections as usize,
                max_startups: self.max_startups as usize,
                per_source_startups: self.per_source_max_startups,
                per_source_connections: self.per_source_max_connections,
                per_source_rate: self.per_source_connection_rate,
            },
            net_blocks,
            penalties,
            penalty_exempt,
            banner_timeout: self.banner_timeout,
            channels: ChannelLimits {
                max_open: self.max_channels as usize,
                max_sessions: self.max_sessions as usize,
                open_rate: self.channel_open_rate,
                max_tunnels: self.max_tunnels as usize,
            },
            keepalive_interval: (!self.keepalive_interval.is_zero())
                .then_some(self.keepalive_interval),
            connect_timeout: self.connect_timeout,
            resolver: Arc::new(resolver),
            flow: FlowLimits {
                stall_timeout: self.tunnel_stall_timeout,
                ..FlowLimits::default()
            },
            proxy: ProxyConfig {
                mode: self.proxy_protocol,
                trusted,
                timeout: self.proxy_timeout,
            },
            clients,
        })
    }
}

#[cfg(test)]
mod tests;
