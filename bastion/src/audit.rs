//! Logging setup and the audit events: one structured event per connection, authentication
//! decision, tunnel, refused request and reload. Every event has an `event` field whose value
//! and fields are defined once in the catalogue ([`events`]); the functions here are the only
//! place that emits them. In JSON mode the fields sit at the top level of each line
//! (CloudWatch Logs Insights can filter on them). Nothing secret is logged: keys appear only
//! as SHA256 fingerprints, commands only as their length.
//!
//! This module is a leaf: it imports nothing from the rest of the crate, so any layer may
//! report to it and data still flows one way.

pub mod events;
#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use events::*;

/// Output format of logs and audit events (written to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch Logs Insights friendly).
    Json,
    /// Human-readable lines.
    Text,
}

/// Install the global subscriber. `RUST_LOG` refines the level (default `info`).
pub fn init(format: Option<LogFormat>) {
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Who is on a connection, once authenticated; shared by its tunnels' events.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub id: u64,
    pub client: SocketAddr,
    pub user: String,
    pub fingerprint: String,
    /// The user certificate it logged in with, if any.
    pub cert: Option<CertIdentity>,
}

/// Who a user certificate says its holder is: what identifies a person in the audit log (the
/// login name is whatever the client chose). Logged as `key_id`, `principals` (comma-joined),
/// `serial` and `ca_fingerprint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub key_id: String,
    pub principals: String,
    pub serial: u64,
    pub ca_fingerprint: String,
}

/// The certificate fields of an event; all absent for a plain key.
struct CertFields<'a> {
    key_id: Option<&'a str>,
    principals: Option<&'a str>,
    serial: Option<u64>,
    ca_fingerprint: Option<&'a str>,
}

fn cert_fields(cert: Option<&CertIdentity>) -> CertFields<'_> {
    CertFields {
        key_id: cert.map(|c| c.key_id.as_str()),
        principals: cert.map(|c| c.principals.as_str()),
        serial: cert.map(|c| c.serial),
        ca_fingerprint: cert.map(|c| c.ca_fingerprint.as_str()),
    }
}

/// Whether the host certificate is valid, runs out soon, or has run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateHealth {
    Valid,
    ExpiresSoon,
    Expired,
}

/// What the `host_certificate` event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCertificateSummary {
    pub key_id: String,
    pub principals: String,
    pub serial: u64,
    /// UTC time, or `forever`.
    pub valid_until: String,
    pub ca_fingerprint: String,
    /// Seconds left; `None` for a certificate valid forever.
    pub expires_in_s: Option<u64>,
}

/// What the configuration event reports at start.
#[derive(Debug, Clone)]
pub struct ConfigSummary {
    pub authorized_keys: usize,
    pub certificate_authorities: usize,
    pub revoked: usize,
    pub keys_source: String,
    pub permit_open: String,
    pub proxy_protocol: String,
    pub clients: String,
    pub name_lookups: String,
}

/// How bad a PROXY header problem is, which decides the level it is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProblem {
    /// A header from a sender that is not trusted: possibly spoofing.
    Untrusted,
    /// The connection ended before a header arrived.
    Ended,
    /// A malformed, missing or late header.
    Invalid,
}

/// What a tunnel moved, and why it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelTotals {
    pub bytes_to_destination: u64,
    pub bytes_from_destination: u64,
    pub reason: String,
}

pub fn host_key(fingerprint: &str, source: &str, generated: bool) {
    if generated {
        warn!(
            event = HOST_KEY.name,
            fingerprint,
            source,
            "no BASTION_HOST_KEY or BASTION_HOST_KEY_FILE: using an ephemeral Ed25519 host key; \
             clients will see a changed host key after every restart"
        );
    } else {
        info!(
            event = HOST_KEY.name,
            fingerprint, source, "host key loaded"
        );
    }
}

/// The `host_certificate` event at `$level` with `$message`.
macro_rules! host_certificate_event {
    ($level:ident, $c:expr, $message:expr) => {
        $level!(
            event = HOST_CERTIFICATE.name,
            key_id = %$c.key_id,
            principals = %$c.principals,
            serial = $c.serial,
            valid_until = %$c.valid_until,
            ca_fingerprint = %$c.ca_fingerprint,
            expires_in_s = $c.expires_in_s,
            "{}",
            $message
        )
    };
}

/// The host certificate presented: info when valid, warn when it runs out soon, error once it
/// has (clients then refuse it); `fix` says how to sign a new one.
pub fn host_certificate(c: &HostCertificateSummary, health: CertificateHealth, fix: &str) {
    match health {
        CertificateHealth::Valid => {
            host_certificate_event!(info, c, "host certificate presented with the host key")
        }
        CertificateHealth::ExpiresSoon => host_certificate_event!(
            warn,
            c,
            format!(
                "host certificate expires at {} (within 7 days). Sign a new one: {fix}, \
                 then restart",
                c.valid_until
            )
        ),
        CertificateHealth::Expired => host_certificate_event!(
            error,
            c,
            format!(
                "host certificate expired at {}: clients trusting the host CA refuse this                  bastion; {fix}, then restart",
                c.valid_until
            )
        ),
    }
}

pub fn config(c: &ConfigSummary) {
    info!(event = CONFIG.name, authorized_keys = c.authorized_keys,
          certificate_authorities = c.certificate_authorities, revoked = c.revoked,
          keys_source = %c.keys_source, permit_open = %c.permit_open,
          proxy_protocol = %c.proxy_protocol, clients = %c.clients,
          name_lookups = %c.name_lookups, "configuration loaded");
}

/// The open file limit at start and the caps fitted in it.
#[derive(Debug, Clone)]
pub struct FdSummary {
    pub soft_before: u64,
    pub limit: u64,
    pub hard: Option<u64>,
    pub reserve: u64,
    pub max_connections: usize,
    pub max_tunnels: usize,
    /// Why this is a warning: the caps were lowered, or the limit could not be raised.
    pub problem: Option<String>,
}

/// The `fd_limit` event at `$level` (`info` or `warn`) with `$message`.
macro_rules! fd_limit_event {
    ($level:ident, $s:expr, $message:expr) => {
        $level!(
            event = FD_LIMIT.name,
            soft_before = $s.soft_before,
            limit = $s.limit,
            hard = $s.hard,
            reserve = $s.reserve,
            max_connections = $s.max_connections,
            max_tunnels = $s.max_tunnels,
            "{}",
            $message
        )
    };
}

pub fn fd_limit(s: &FdSummary) {
    match &s.problem {
        None => fd_limit_event!(info, s, "open file limit and the caps within it"),
        Some(problem) => fd_limit_event!(warn, s, problem),
    }
}

pub fn key_option_note(line: usize, fingerprint: &str, note: &str) {
    info!(
        event = KEY_OPTION_NOTE.name,
        line, fingerprint, note, "authorized_keys option has no effect here"
    );
}

/// A line that loads but cannot work as written (a `from=` host name, a security key without
/// `no-touch-required`): the same event as a note, at warn level.
pub fn key_line_warning(line: usize, fingerprint: &str, note: &str) {
    warn!(
        event = KEY_OPTION_NOTE.name,
        line, fingerprint, note, "authorized_keys line cannot work as written"
    );
}

pub fn key_line_rejected(source: &str, line: usize, error: &str) {
    error!(
        event = KEY_LINE_REJECTED.name,
        source, line, error, "authorized_keys line rejected; other lines loaded"
    );
}

pub fn keys_wait(setting: &str, path: &std::path::Path, limit: Duration) {
    info!(
        event = KEYS_WAIT.name,
        setting,
        path = %path.display(),
        limit_s = limit.as_secs_f64(),
        "waiting for a key file to appear before loading keys and listening"
    );
}

pub fn keys_appeared(setting: &str, path: &std::path::Path, waited: Duration) {
    info!(
        event = KEYS_APPEARED.name,
        setting,
        path = %path.display(),
        waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
        "the key file appeared"
    );
}

pub fn listening(addr: SocketAddr) {
    info!(event = LISTENING.name, addr = %addr, "listening for SSH connections");
}

pub fn connection_opened(
    id: u64,
    client: SocketAddr,
    sender: Option<SocketAddr>,
    vpce_id: Option<&str>,
    health_check: bool,
) {
    let sender = sender.map(|s| s.to_string());
    if health_check {
        debug!(event = CONNECTION.name, conn = id, client = %client, "health check connection");
        return;
    }
    info!(event = CONNECTION.name, conn = id, client = %client, sender = sender.as_deref(),
          vpce_id, "connection accepted");
}

pub fn connection_closed(
    id: u64,
    client: SocketAddr,
    duration: Duration,
    reason: &str,
    health_check: bool,
) {
    if health_check {
        debug!(event = CONNECTION_CLOSED.name, conn = id, client = %client, reason,
               "health check closed");
        return;
    }
    info!(event = CONNECTION_CLOSED.name, conn = id, client = %client,
          duration_ms = duration.as_millis() as u64, reason, "connection closed");
}

/// Closed at accept by `limit` (a setting name); `client` is an address or a source block.
pub fn connection_dropped(client: &dyn std::fmt::Display, limit: &str, reason: &str) {
    warn!(event = CONNECTION_DROPPED.name, client = %client, limit, reason,
          "connection dropped at accept");
}

/// A source's penalty started.
pub fn penalty(client: &dyn std::fmt::Display, offence: &str, duration: Duration) {
    warn!(event = PENALTY.name, client = %client, offence, duration_s = duration.as_secs(),
          "source penalised: its connections are refused at accept until the penalty runs out");
}

pub fn banner_timeout(conn: u64, client: SocketAddr) {
    info!(event = BANNER_TIMEOUT.name, conn, client = %client,
          "no SSH identification within BASTION_BANNER_TIMEOUT; closing");
}

/// How many times each limit bit since start.
#[derive(Debug, Clone, Default)]
pub struct LimitCounts {
    pub client_rules: u64,
    pub penalised: u64,
    pub penalties_started: u64,
    pub source_rate: u64,
    pub source_connections: u64,
    pub source_startups: u64,
    pub connections_full: u64,
    pub startups_full: u64,
    pub evicted: u64,
    pub proxy_timeout: u64,
    pub banner_timeout: u64,
    pub login_timeout: u64,
    pub channel_cap: u64,
    pub session_cap: u64,
    pub channel_rate: u64,
    pub tunnels_full: u64,
}

pub fn limits(c: &LimitCounts) {
    info!(
        event = LIMITS.name,
        client_rules = c.client_rules,
        penalised = c.penalised,
        penalties_started = c.penalties_started,
        source_rate = c.source_rate,
        source_connections = c.source_connections,
        source_startups = c.source_startups,
        connections_full = c.connections_full,
        startups_full = c.startups_full,
        evicted = c.evicted,
        proxy_timeout = c.proxy_timeout,
        banner_timeout = c.banner_timeout,
        login_timeout = c.login_timeout,
        channel_cap = c.channel_cap,
        session_cap = c.session_cap,
        channel_rate = c.channel_rate,
        tunnels_full = c.tunnels_full,
        "limit counters since start"
    );
}

/// A PROXY header problem: the connection is closed before the SSH banner.
pub fn proxy_rejected(sender: SocketAddr, problem: ProxyProblem, reason: &str) {
    let event = PROXY_REJECTED.name;
    match problem {
        ProxyProblem::Untrusted => warn!(event, sender = %sender, reason,
            "PROXY header from an untrusted sender (spoofing attempt?): closed"),
        ProxyProblem::Ended => debug!(event, sender = %sender, reason,
            "connection ended before a PROXY header"),
        ProxyProblem::Invalid => info!(event, sender = %sender, reason,
            "no valid PROXY header: closed"),
    }
}

/// The client policy refused the settled client address.
pub fn client_refused(client: SocketAddr, sender: SocketAddr, rule: &str) {
    info!(event = CLIENT_REFUSED.name, client = %client, sender = %sender, rule,
          "client address refused by policy: closed before the SSH banner");
}

pub fn health_check(sender: SocketAddr, count: u64) {
    debug!(event = HEALTH_CHECK.name, sender = %sender, count, "load balancer health check");
}

pub fn login_timeout(conn: u64, client: SocketAddr) {
    info!(event = LOGIN_TIMEOUT.name, conn, client = %client,
          "not authenticated within BASTION_LOGIN_GRACE_TIME; closing");
}

/// An authentication decision; `cert`: the certificate presented, if any.
pub fn auth(
    id: u64,
    client: SocketAddr,
    user: &str,
    fingerprint: &str,
    cert: Option<&CertIdentity>,
    accepted: bool,
    detail: &str,
) {
    let result = if accepted { "accepted" } else { "rejected" };
    let c = cert_fields(cert);
    let what = if cert.is_some() {
        "certificate"
    } else {
        "public key"
    };
    info!(event = AUTH.name, conn = id, client = %client, user, fingerprint,
          key_id = c.key_id, principals = c.principals, serial = c.serial,
          ca_fingerprint = c.ca_fingerprint, result, detail, "{what} {result}");
}

pub fn request_refused(conn: u64, client: SocketAddr, kind: &str, detail: &str) {
    info!(event = REQUEST_REFUSED.name, conn, client = %client, kind, detail,
          "refused {kind} request");
}

pub fn tunnel_refused(conn: &ConnInfo, destination: &str, reason: &str) {
    let c = cert_fields(conn.cert.as_ref());
    info!(event = TUNNEL_REFUSED.name, conn = conn.id, client = %conn.client,
          user = %conn.user, fingerprint = %conn.fingerprint, key_id = c.key_id,
          principals = c.principals, serial = c.serial, ca_fingerprint = c.ca_fingerprint,
          destination, reason, "tunnel refused");
}

pub fn tunnel_opened(conn: &ConnInfo, channel: u32, destination: &str, resolved: SocketAddr) {
    let c = cert_fields(conn.cert.as_ref());
    info!(event = TUNNEL_OPEN.name, conn = conn.id, client = %conn.client, user = %conn.user,
          fingerprint = %conn.fingerprint, key_id = c.key_id, principals = c.principals,
          serial = c.serial, ca_fingerprint = c.ca_fingerprint, channel, destination,
          resolved = %resolved, "tunnel opened");
}

pub fn tunnel_closed(
    conn: &ConnInfo,
    channel: u32,
    destination: &str,
    resolved: SocketAddr,
    totals: &TunnelTotals,
    duration: Duration,
) {
    let c = cert_fields(conn.cert.as_ref());
    info!(event = TUNNEL_CLOSE.name, conn = conn.id, client = %conn.client,
          user = %conn.user, fingerprint = %conn.fingerprint, key_id = c.key_id,
          principals = c.principals, serial = c.serial, ca_fingerprint = c.ca_fingerprint,
          channel, destination,
          resolved = %resolved, bytes_to_destination = totals.bytes_to_destination,
          bytes_from_destination = totals.bytes_from_destination,
          duration_ms = duration.as_millis() as u64, reason = %totals.reason, "tunnel closed");
}

pub fn keys_reloaded(trigger: &str, keys: usize, revoked: usize, source: &str) {
    info!(
        event = KEYS_RELOADED.name,
        trigger, keys, revoked, source, "authorized keys reloaded"
    );
}

pub fn client_policy_reloaded(trigger: &str, summary: &str) {
    info!(
        event = CLIENT_POLICY_RELOADED.name,
        trigger, summary, "client policy reloaded"
    );
}

/// A reload that found its files readable and unchanged (`event`: the file kind's event).
pub fn reload_unchanged(event: &EventSpec, trigger: &str, what: &str) {
    info!(
        event = event.name,
        trigger, "{what} files readable and unchanged"
    );
}

/// A reload that failed: the last good version stays (`event`: the file kind's event).
pub fn reload_failed(event: &EventSpec, trigger: &str, error: &str, what: &str) {
    error!(
        event = event.name,
        trigger, error, "keeping the previous {what}"
    );
}

pub fn access_revoked(conn: u64, reason: &str) {
    warn!(
        event = ACCESS_REVOKED.name,
        conn, reason, "closing the connection and its tunnels: its key is no longer authorized"
    );
}

/// `suppressed`: the failures since the last one logged, not logged themselves.
pub fn accept_error(error: &std::io::Error, suppressed: u64) {
    warn!(event = ACCEPT_ERROR.name, error = %error, suppressed,
          "accept failed; the listener is kept and accept retried");
}

pub fn shutdown(signal: &str, grace: Duration) {
    info!(
        event = SHUTDOWN.name,
        signal,
        grace_s = grace.as_secs_f64(),
        "stopping: no new connections; open tunnels may finish"
    );
}

pub fn shutdown_grace_expired(connections: usize) {
    warn!(
        event = SHUTDOWN_GRACE_EXPIRED.name,
        connections, "grace period over: closing the remaining tunnels"
    );
}

pub fn shutdown_complete() {
    info!(event = SHUTDOWN_COMPLETE.name, "all connections closed");
}
