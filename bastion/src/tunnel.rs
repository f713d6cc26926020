//! Tunnels: the `direct-tcpip` channels of one connection, from the open request to the close.
//!
//! Opening a tunnel is one path (after the session's channel budget and a server-wide tunnel
//! slot, `channel_budget`, held until the destination socket is closed): the key's `permitopen` → resolve and check the destination (`destination_policy`, then
//! `own_listener`: never the bastion itself) → connect → reply → audit →
//! count it open → copy bytes both ways ([`pump`]) → audit its close → stop counting once the
//! client has closed the channel (shutdown waits for that). A refusal at any step is the SSH
//! open failure the client prints (`administratively prohibited` for policy, `connect failed`
//! for an unreachable destination) and a `tunnel_refused` event.
//!
//! [`Tunnels`] is the per-connection table the session adapter feeds: the client's data, EOF
//! and close for each channel go to that channel's [`ChannelQueue`] without waiting.

mod pump;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::net::TcpStream;

pub use pump::{pump, CloseReason, TunnelReport};

use crate::audit::{self, ConnInfo, TunnelTotals};
use crate::channel_budget::TunnelPermit;
use crate::connections::ConnState;
use crate::destination_policy::{DestinationPolicy, Refusal};
use crate::flow::{ChannelQueue, Flow, PushError};
use crate::key_options::KeyRestrictions;
use crate::own_listener::OwnListeners;
use crate::resolver::{ConnectionLookups, Resolver};

/// Where tunnels may go, how names are looked up and how long connecting may take (shared by
/// every connection).
pub struct TunnelSettings {
    pub destinations: DestinationPolicy,
    /// The bastion's own listeners, refused whatever the rules.
    pub own_listeners: OwnListeners,
    /// Name lookups; each connection takes its own bounded share (`Tunnels::new`).
    pub resolver: Arc<Resolver>,
    pub connect_timeout: Duration,
}

/// A refused open: the SSH failure code and the text the client prints.
type Refused = (ChannelOpenFailure, String);

const PROHIBITED: ChannelOpenFailure = ChannelOpenFailure::AdministrativelyProhibited;

/// A refusal as the client sees it: the SSH failure code and its text.
fn failure(code: ChannelOpenFailure, reason: &str) -> ChannelOpenFailure {
    ChannelOpenFailure::Other {
        code: code.code(),
        reason: reason.to_owned(),
    }
}

/// A limit refusal: `resource shortage` (the client may retry later).
pub fn shortage(reason: &str) -> ChannelOpenFailure {
    failure(ChannelOpenFailure::ResourceShortage, reason)
}

/// A policy refusal: `administratively prohibited`, what OpenSSH prints for `PermitOpen`.
pub fn prohibited(reason: &str) -> ChannelOpenFailure {
    failure(ChannelOpenFailure::AdministrativelyProhibited, reason)
}

/// A `direct-tcpip` request that passed the channel budget.
pub struct Request<'a> {
    pub host: &'a str,
    pub port: u32,
    /// Its `BASTION_MAX_TUNNELS` slot, held until the destination socket is closed.
    pub permit: TunnelPermit,
}

/// The tunnels of one connection, by channel.
pub struct Tunnels {
    channels: HashMap<ChannelId, Arc<ChannelQueue>>,
    flow: Arc<Flow>,
    state: Arc<ConnState>,
    settings: Arc<TunnelSettings>,
    /// This connection's name lookups (its own slots).
    lookups: Arc<ConnectionLookups>,
}

impl Tunnels {
    pub fn new(flow: Arc<Flow>, state: Arc<ConnState>, settings: Arc<TunnelSettings>) -> Self {
        let lookups = Arc::new(settings.resolver.for_connection());
        Tunnels {
            channels: HashMap::new(),
            flow,
            state,
            settings,
            lookups,
        }
    }

    /// The server's destination rules.
    pub fn destinations(&self) -> &DestinationPolicy {
        &self.settings.destinations
    }

    /// A `direct-tcpip` request from an authenticated user: refuse it at once, or start
    /// connecting (off the session loop; the reply is sent when the outcome is known).
    pub async fn open(
        &mut self,
        conn: Arc<ConnInfo>,
        restrictions: &KeyRestrictions,
        channel: Channel<Msg>,
        request: Request<'_>,
        reply: ChannelOpenHandle,
    ) {
        let Request { host, port, permit } = request;
        let destination = format!("{host}:{port}");
        let admitted = match u16::try_from(port) {
            Ok(p) if p != 0 => self.admit(restrictions, &destination, host, p),
            _ => Err((PROHIBITED, format!("invalid destination port {port}"))),
        };
        let port = match admitted {
            Ok(port) => port,
            Err((code, text)) => {
                audit::tunnel_refused(&conn, &destination, &text);
                reply.reject(failure(code, &text)).await;
                return;
            }
        };
        let queue = ChannelQueue::new(self.flow.clone());
        self.channels.insert(channel.id(), queue.clone());
        let opening = Opening {
            conn,
            destination,
            host: host.to_owned(),
            port,
            queue,
            flow: self.flow.clone(),
            state: self.state.clone(),
            settings: self.settings.clone(),
            _permit: permit,
            lookups: self.lookups.clone(),
        };
        tokio::spawn(opening.run(channel, reply));
    }

    /// The check made before any lookup: the key's `permitopen`.
    fn admit(
        &mut self,
        restrictions: &KeyRestrictions,
        destination: &str,
        host: &str,
        port: u16,
    ) -> Result<u16, Refused> {
        if !restrictions.permits_destination(host, port) {
            let why = format!("{destination} is not permitted by this key's permitopen option");
            return Err((PROHIBITED, why));
        }
        Ok(port)
    }

    /// Tunnels open or opening (they count toward `BASTION_MAX_CHANNELS`, which the session
    /// checks before [`Tunnels::open`]). Refused opens are forgotten here.
    pub fn open_count(&mut self) -> usize {
        self.channels
            .retain(|_, q| q.was_opened() || !q.is_closed());
        self.channels.values().filter(|q| !q.is_closed()).count()
    }

    /// Client data for a tunnel: queued without waiting; over the hard cap, the tunnel closes.
    /// `false` when the channel is not a tunnel (the data is someone else's).
    pub fn data(&self, channel: ChannelId, data: &[u8]) -> bool {
        let Some(queue) = self.channels.get(&channel) else {
            return false;
        };
        if let Err(PushError::HardCap { queued }) = queue.push(data) {
            let why = format!(
                "destination is not keeping up: {queued} bytes held for it, each packet counted with its overhead (cap {}); tunnel closed",
                self.flow.limits().channel_hard_cap
            );
            queue.close_with_reason(&why);
        }
        true
    }

    /// The client sent EOF on a tunnel: half-close towards the destination.
    pub fn eof(&self, channel: ChannelId) {
        if let Some(queue) = self.channels.get(&channel) {
            queue.push_eof();
        }
    }

    /// The client closed the channel: it has everything, the tunnel stops counting.
    pub fn closed(&mut self, channel: ChannelId) {
        if let Some(queue) = self.channels.remove(&channel) {
            queue.finish();
            if queue.release() {
                self.state.tunnel_released();
            }
        }
    }
}

impl Drop for Tunnels {
    fn drop(&mut self) {
        for queue in self.channels.values() {
            queue.close_with_reason("SSH connection ended");
        }
    }
}

/// A tunnel being opened, then run, off the session loop.
struct Opening {
    conn: Arc<ConnInfo>,
    destination: String,
    host: String,
    port: u16,
    queue: Arc<ChannelQueue>,
    flow: Arc<Flow>,
    state: Arc<ConnState>,
    settings: Arc<TunnelSettings>,
    /// Freed when this tunnel's task ends, after its destination socket is closed.
    _permit: TunnelPermit,
    lookups: Arc<ConnectionLookups>,
}

impl Opening {
    async fn run(self, channel: Channel<Msg>, reply: ChannelOpenHandle) {
        let (stream, resolved) = match self.reach().await {
            Ok(ok) => ok,
            Err((code, text)) => {
                audit::tunnel_refused(&self.conn, &self.destination, &text);
                self.queue.close();
                reply.reject(failure(code, &text)).await;
                return;
            }
        };
        // Counted until the client closes the channel (`Tunnels::closed`), i.e. until it has
        // received everything: shutdown waits for that.
        self.state.tunnel_opened();
        self.queue.set_opened();
        reply.accept().await;
        let channel_id = u32::from(channel.id());
        audit::tunnel_opened(&self.conn, channel_id, &self.destination, resolved);
        let started = Instant::now();
        self.state.tunnel_started();
        let report = pump(channel, stream, self.queue.clone(), self.flow.clone()).await;
        let totals = TunnelTotals {
            bytes_to_destination: report.bytes_to_destination,
            bytes_from_destination: report.bytes_from_destination,
            reason: report.reason.describe(),
        };
        let elapsed = started.elapsed();
        audit::tunnel_closed(
            &self.conn,
            channel_id,
            &self.destination,
            resolved,
            &totals,
            elapsed,
        );
        self.state.tunnel_logged();
        if self.queue.release() {
            self.state.tunnel_released();
        }
    }

    /// Resolve once, check every address (the policy, then the bastion's own listeners),
    /// connect to a checked one.
    async fn reach(&self) -> Result<(TcpStream, SocketAddr), Refused> {
        let timeout = self.settings.connect_timeout;
        let policy = &self.settings.destinations;
        let resolved = policy.resolve(&self.host, self.port, &self.lookups, timeout);
        let addrs = match resolved.await {
            Ok(addrs) => addrs,
            Err(Refusal::Prohibited(t)) => return Err((PROHIBITED, t)),
            Err(Refusal::Unresolvable(t)) => return Err((ChannelOpenFailure::ConnectFailed, t)),
        };
        for addr in &addrs {
            self.settings.own_listeners.check(*addr).map_err(|why| {
                let literal = self.host.trim_start_matches('[').trim_end_matches(']');
                let text = if literal.parse::<std::net::IpAddr>().ok() == Some(addr.ip()) {
                    format!("{} {why}", self.destination)
                } else {
                    format!("{} (resolves to {addr}) {why}", self.destination)
                };
                (PROHIBITED, text)
            })?;
        }
        connect(&addrs, timeout).await.map_err(|why| {
            let text = format!("cannot connect to {}: {why}", self.destination);
            (ChannelOpenFailure::ConnectFailed, text)
        })
    }
}

/// Connect to the first reachable address among `addrs` (all already checked by policy),
/// within `timeout` overall.
pub async fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no address to connect to");
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Interactive protocols (psql, redis-cli) suffer from Nagle delays.
                let _ = stream.set_nodelay(true);
                return Ok((stream, *addr));
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => {
                last = format!("{addr}: no answer within {}s", timeout.as_secs_f32());
                break;
            }
        }
    }
    Err(last)
}
