//! Copying one tunnel's bytes both ways, with half-close, until either side is done.
//!
//! Client-to-destination bytes arrive through the channel's [`ChannelQueue`] (filled by the
//! session without waiting); destination-to-client bytes go out through russh's channel
//! writer, which waits for the client's window. The flow rules (caps, stalls, starvation)
//! live in `flow`; this file only applies them to one tunnel.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use russh::server::Msg;
use russh::{Channel, ChannelWriteHalf};
use tokio::net::TcpStream;

use crate::flow::{ChannelQueue, Flow, Inbound};

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    // Inbound data comes through the queue (the session's `data` callback); dropping the read
    // half makes russh skip its bounded per-channel queue instead of waiting on it.
    let (read_half, writer) = channel.split();
    drop(read_half);
    // One socket, shared: this task reads and writes it, and the queue writes client data
    // straight into it while nothing waits in the queue (see `flow`).
    let stream = Arc::new(stream);
    queue.attach(stream.clone());
    let mut to_bytes = 0u64;
    let mut from_bytes = 0u64;
    let reason = {
        let to_dest = to_destination(&queue, &stream, &flow, &mut to_bytes);
        let from_dest = from_destination(&stream, &writer, &flow, &mut from_bytes);
        both_ways(to_dest, from_dest).await
    };
    to_bytes += queue.direct_bytes();
    if reason == CloseReason::Normal && flow.is_draining() {
        // Shutting down and both sides sent EOF: the disconnect that follows this tunnel
        // would make the client drop output it has not written to its socket yet. OpenSSH
        // `-L` clients close the channel once they have written everything: wait for that
        // (bounded; `-W` clients wait for our close instead, and the grace period ends it).
        let _ = tokio::time::timeout(flow.limits().stall_timeout, queue.client_closed()).await;
    }
    queue.close();
    let _ = writer.close().await;
    TunnelReport {
        bytes_to_destination: to_bytes,
        bytes_from_destination: from_bytes,
        reason,
    }
}

/// Run both directions until both sent EOF or either failed.
async fn both_ways(
    to_dest: impl std::future::Future<Output = ToDest>,
    from_dest: impl std::future::Future<Output = FromDest>,
) -> CloseReason {
    tokio::pin!(to_dest);
    tokio::pin!(from_dest);
    let mut client_eof = false;
    let mut dest_eof = false;
    loop {
        tokio::select! {
            r = &mut to_dest, if !client_eof => match r {
                ToDest::ClientEof => client_eof = true,
                ToDest::ClientClosed => return CloseReason::Normal,
                ToDest::Failed(reason) => return reason,
            },
            r = &mut from_dest, if !dest_eof => match r {
                FromDest::DestEof => dest_eof = true,
                FromDest::Failed(reason) => return reason,
            },
        }
        if client_eof && dest_eof {
            return CloseReason::Normal;
        }
    }
}

/// Client → destination: write each queued chunk, then half-close on the client's EOF.
async fn to_destination(
    queue: &ChannelQueue,
    wr: &TcpStream,
    flow: &Flow,
    written: &mut u64,
) -> ToDest {
    loop {
        match queue.next().await {
            Some(Inbound::Data(chunk)) => {
                if let Err(reason) = write_chunk(queue, wr, flow, &chunk).await {
                    return ToDest::Failed(reason);
                }
                queue.consumed(chunk.len());
                *written += chunk.len() as u64;
            }
            Some(Inbound::Eof) => {
                let _ = socket2::SockRef::from(wr).shutdown(std::net::Shutdown::Write);
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
}

/// One write to the destination. A write that does not move for `stall_grace` marks the
/// channel stalled (it stops holding the connection's other tunnels); one that does not move
/// for `stall_timeout` ends the tunnel; one the bastion abandons (hard cap, connection end)
/// ends it with that reason.
async fn write_chunk(
    queue: &ChannelQueue,
    wr: &TcpStream,
    flow: &Flow,
    chunk: &[u8],
) -> Result<(), CloseReason> {
    let stall = flow.limits().stall_timeout;
    let write = async {
        tokio::select! {
            r = write_all(wr, chunk) => r,
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
            queue.set_stalled(true);
            let r = tokio::time::timeout(stall - grace, &mut write).await;
            queue.set_stalled(false);
            r
        }
    };
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CloseReason::DestinationError(e.to_string())),
        Err(_) => Err(CloseReason::DestinationStalled(stall)),
    }
}

/// `write_all` on a shared socket.
async fn write_all(wr: &TcpStream, mut chunk: &[u8]) -> std::io::Result<()> {
    while !chunk.is_empty() {
        wr.writable().await?;
        match wr.try_write(chunk) {
            Ok(n) => chunk = chunk.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `read_buf` on a shared socket.
async fn read_buf(rd: &TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    loop {
        rd.readable().await?;
        match rd.try_read_buf(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            done => return done,
        }
    }
}

/// Destination → client: read and send, waiting for the client's window.
async fn from_destination(
    rd: &TcpStream,
    writer: &ChannelWriteHalf<Msg>,
    flow: &Arc<Flow>,
    sent: &mut u64,
) -> FromDest {
    let starve_after = flow.limits().starve_after;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        buf.reserve(64 * 1024);
        match read_buf(rd, &mut buf).await {
            Ok(0) => {
                let _ = writer.eof().await;
                return FromDest::DestEof;
            }
            Ok(n) => {
                let send = writer.data_bytes(buf.split().freeze());
                tokio::pin!(send);
                let result = match tokio::time::timeout(starve_after, &mut send).await {
                    Ok(r) => r,
                    Err(_) => {
                        // Waiting for the client's window: let client reads resume so its
                        // window adjusts can arrive (see `flow`).
                        let _starving = flow.starving();
                        send.await
                    }
                };
                if let Err(e) = result {
                    let why = format!("SSH channel closed: {e}");
                    return FromDest::Failed(CloseReason::ChannelGone(why));
                }
                *sent += n as u64;
            }
            Err(e) => return FromDest::Failed(CloseReason::DestinationError(e.to_string())),
        }
    }
}
