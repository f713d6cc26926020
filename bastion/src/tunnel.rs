//! One tunnel: connecting to a checked destination address, then copying bytes both ways
//! between the SSH channel and the TCP stream with half-close, until either side is done.
//!
//! Client-to-destination bytes arrive through the channel's [`ChannelQueue`] (filled by the
//! session handler without waiting); destination-to-client bytes go out through russh's
//! channel writer, which waits for the client's window. The flow rules live in `flow`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use russh::server::Msg;
use russh::Channel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::audit::ConnInfo;
use crate::flow::{ChannelQueue, Flow, Inbound};

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

/// Why a tunnel ended, for the audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides sent EOF, or the client closed the channel.
    Normal,
    /// The destination stopped accepting data for the stall timeout.
    DestinationStalled(Duration),
    /// Writing to or reading from the destination failed.
    DestinationError(String),
    /// The SSH side went away (connection closed, channel closed by the bastion).
    ChannelGone(String),
}

impl CloseReason {
    pub fn describe(&self) -> String {
        match self {
            CloseReason::Normal => "closed".into(),
            CloseReason::DestinationStalled(t) => format!(
                "destination accepted no data for {}s (BASTION_TUNNEL_STALL_TIMEOUT)",
                t.as_secs()
            ),
            CloseReason::DestinationError(e) => format!("destination error: {e}"),
            CloseReason::ChannelGone(why) => why.clone(),
        }
    }
}

enum ToDest {
    ClientEof,
    ClientClosed,
    Failed(CloseReason),
}

enum FromDest {
    DestEof,
    Failed(CloseReason),
}

/// What a tunnel did, for the audit event.
pub struct TunnelReport {
    pub bytes_to_destination: u64,
    pub bytes_from_destination: u64,
    pub reason: CloseReason,
}

/// Copy both ways until done. Consumes the channel and the stream.
pub async fn pump(
    channel: Channel<Msg>,
    stream: TcpStream,
    queue: Arc<ChannelQueue>,
    flow: Arc<Flow>,
) -> TunnelReport {
    // Inbound data comes through the queue (the handler's `data` callback); dropping the read
    // half makes russh skip its bounded per-channel queue instead of waiting on it.
    let (read_half, writer) = channel.split();
    drop(read_half);
    let (mut rd, mut wr) = stream.into_split();
    let stall = flow.limits().stall_timeout;
    let starve_after = flow.limits().starve_after;
    let mut to_bytes = 0u64;
    let mut from_bytes = 0u64;

    let reason = {
        let to_dest = async {
            loop {
                match queue.next().await {
                    Some(Inbound::Data(chunk)) => {
                        // A write the destination never takes is abandoned when the bastion
                        // closes the channel (hard cap, connection end).
                        let write = async {
                            tokio::select! {
                                r = wr.write_all(&chunk) => r,
                                _ = queue.closed() => Err(std::io::Error::other(
                                    queue.close_reason().unwrap_or_else(|| "channel closed".into()),
                                )),
                            }
                        };
                        tokio::pin!(write);
                        let grace = flow.limits().stall_grace.min(stall);
                        let written = match tokio::time::timeout(grace, &mut write).await {
                            Ok(r) => Ok(r),
                            Err(_) => {
                                // Not moving: stop holding the connection's other tunnels.
                                queue.set_stalled(true);
                                let r = tokio::time::timeout(stall - grace, &mut write).await;
                                queue.set_stalled(false);
                                r
                            }
                        };
                        match written {
                            Ok(Ok(())) => {
                                queue.consumed(chunk.len());
                                to_bytes += chunk.len() as u64;
                            }
                            Ok(Err(e)) => {
                                return ToDest::Failed(CloseReason::DestinationError(e.to_string()))
                            }
                            Err(_) => {
                                return ToDest::Failed(CloseReason::DestinationStalled(stall))
                            }
                        }
                    }
                    Some(Inbound::Eof) => {
                        let _ = wr.shutdown().await;
                        return ToDest::ClientEof;
                    }
                    None => {
                        return match queue.close_reason() {
                            Some(why) => ToDest::Failed(CloseReason::ChannelGone(why)),
                            None => ToDest::ClientClosed,
                        }
                    }
                }
            }
        };
        let from_dest = async {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                buf.reserve(64 * 1024);
                match rd.read_buf(&mut buf).await {
                    Ok(0) => {
                        let _ = writer.eof().await;
                        return FromDest::DestEof;
                    }
                    Ok(n) => {
                        let chunk = buf.split().freeze();
                        let send = writer.data_bytes(chunk);
                        tokio::pin!(send);
                        let sent = match tokio::time::timeout(starve_after, &mut send).await {
                            Ok(r) => r,
                            Err(_) => {
                                // Waiting for the client's window: let client reads resume so
                                // its window adjusts can arrive (see `flow`).
                                let _starving = flow.starving();
                                send.await
                            }
                        };
                        if let Err(e) = sent {
                            return FromDest::Failed(CloseReason::ChannelGone(format!(
                                "SSH channel closed: {e}"
                            )));
                        }
                        from_bytes += n as u64;
                    }
                    Err(e) => {
                        return FromDest::Failed(CloseReason::DestinationError(e.to_string()))
                    }
                }
            }
        };
        tokio::pin!(to_dest);
        tokio::pin!(from_dest);
        let mut client_eof = false;
        let mut dest_eof = false;
        loop {
            tokio::select! {
                r = &mut to_dest, if !client_eof => match r {
                    ToDest::ClientEof => client_eof = true,
                    ToDest::ClientClosed => break CloseReason::Normal,
                    ToDest::Failed(reason) => break reason,
                },
                r = &mut from_dest, if !dest_eof => match r {
                    FromDest::DestEof => dest_eof = true,
                    FromDest::Failed(reason) => break reason,
                },
            }
            if client_eof && dest_eof {
                break CloseReason::Normal;
            }
        }
    };
    if reason == CloseReason::Normal && flow.is_draining() {
        // Shutting down and both sides sent EOF: the disconnect that follows this tunnel
        // would make the client drop output it has not written to its socket yet. OpenSSH
        // `-L` clients close the channel once they have written everything: wait for that
        // (bounded; `-W` clients wait for our close instead, and the grace period ends it).
        let _ = tokio::time::timeout(stall, queue.client_closed()).await;
    }
    queue.close();
    let _ = writer.close().await;
    TunnelReport {
        bytes_to_destination: to_bytes,
        bytes_from_destination: from_bytes,
        reason,
    }
}

/// Run a tunnel to its end and write its audit event.
pub async fn run_and_audit(
    conn: Arc<ConnInfo>,
    channel: Channel<Msg>,
    stream: TcpStream,
    queue: Arc<ChannelQueue>,
    flow: Arc<Flow>,
    destination: String,
    resolved: SocketAddr,
) {
    let started = Instant::now();
    let channel_id = u32::from(channel.id());
    let report = pump(channel, stream, queue, flow).await;
    crate::audit::tunnel_closed(
        &conn,
        channel_id,
        &destination,
        resolved,
        &report,
        started.elapsed(),
    );
}
