//! Logging setup and the audit events: one structured event per connection, authentication
//! decision, tunnel and refused request. Every event has an `event` field; in JSON mode the
//! fields sit at the top level of each line (CloudWatch Logs Insights can filter on them).
//! Nothing secret is logged: keys appear only as SHA256 fingerprints.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::config::LogFormat;
use crate::proxy_header::ProxyError;
use crate::tunnel::TunnelReport;

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
        debug!(event = "connection", conn = id, client = %client, "health check connection");
        return;
    }
    info!(
        event = "connection",
        conn = id,
        client = %client,
        sender = sender.as_deref(),
        vpce_id,
        "connection accepted"
    );
}

pub fn connection_closed(
    id: u64,
    client: SocketAddr,
    duration: Duration,
    reason: &str,
    health_check: bool,
) {
    if health_check {
        debug!(event = "connection_closed", conn = id, client = %client, reason, "health check closed");
        return;
    }
    info!(
        event = "connection_closed",
        conn = id,
        client = %client,
        duration_ms = duration.as_millis() as u64,
        reason,
        "connection closed"
    );
}

/// A PROXY header problem: the connection is closed before the SSH banner.
pub fn proxy_rejected(sender: SocketAddr, error: &ProxyError) {
    match error {
        ProxyError::UntrustedSender(_) => warn!(
            event = "proxy_rejected",
            sender = %sender,
            reason = %error,
            "PROXY header from an untrusted sender (spoofing attempt?): closed"
        ),
        ProxyError::Io(_) => debug!(
            event = "proxy_rejected",
            sender = %sender,
            reason = %error,
            "connection ended before a PROXY header"
        ),
        _ => info!(
            event = "proxy_rejected",
            sender = %sender,
            reason = %error,
            "no valid PROXY header: closed"
        ),
    }
}

/// The client policy refused the settled client address.
pub fn client_refused(client: SocketAddr, sender: SocketAddr, rule: &str) {
    info!(
        event = "client_refused",
        client = %client,
        sender = %sender,
        rule,
        "client address refused by policy: closed before the SSH banner"
    );
}

pub fn connection_dropped(client: SocketAddr, reason: &str) {
    warn!(event = "connection_dropped", client = %client, reason, "connection dropped at accept");
}

pub fn auth(
    id: u64,
    client: SocketAddr,
    user: &str,
    fingerprint: &str,
    accepted: bool,
    detail: &str,
) {
    let result = if accepted { "accepted" } else { "rejected" };
    info!(
        event = "auth",
        conn = id,
        client = %client,
        user,
        fingerprint,
        result,
        detail,
        "public key {result}"
    );
}

pub fn request_refused(conn: u64, client: SocketAddr, kind: &str, detail: &str) {
    info!(
        event = "request_refused",
        conn,
        client = %client,
        kind,
        detail,
        "refused {kind} request"
    );
}

pub fn tunnel_refused(conn: &ConnInfo, destination: &str, reason: &str) {
    info!(
        event = "tunnel_refused",
        conn = conn.id,
        client = %conn.client,
        user = %conn.user,
        fingerprint = %conn.fingerprint,
        destination,
        reason,
        "tunnel refused"
    );
}

pub fn tunnel_opened(conn: &ConnInfo, channel: u32, destination: &str, resolved: SocketAddr) {
    info!(
        event = "tunnel_open",
        conn = conn.id,
        client = %conn.client,
        user = %conn.user,
        fingerprint = %conn.fingerprint,
        channel,
        destination,
        resolved = %resolved,
        "tunnel opened"
    );
}

pub fn tunnel_closed(
    conn: &ConnInfo,
    channel: u32,
    destination: &str,
    resolved: SocketAddr,
    report: &TunnelReport,
    duration: Duration,
) {
    info!(
        event = "tunnel_close",
        conn = conn.id,
        client = %conn.client,
        user = %conn.user,
        fingerprint = %conn.fingerprint,
        channel,
        destination,
        resolved = %resolved,
        bytes_to_destination = report.bytes_to_destination,
        bytes_from_destination = report.bytes_from_destination,
        duration_ms = duration.as_millis() as u64,
        reason = %report.reason.describe(),
        "tunnel closed"
    );
}
