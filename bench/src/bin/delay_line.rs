//! `delay-line --to ADDR --rtt-ms MS`: a TCP relay that plays a WAN link. It listens on
//! 127.0.0.1 (a kernel-picked port, printed as `{"listening": "127.0.0.1:PORT"}`), connects each
//! accepted connection to ADDR, and in each direction reads large chunks as fast as they come,
//! stamps each with its arrival time and writes it at arrival + RTT/2. The queue between reader
//! and writer has no bound: only the peers' own windows (here, SSH's) limit the bytes in
//! flight, as on a real long link, so the relay itself is never the limit. End of file is
//! delayed like data. Runs until standard input closes or SIGTERM.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use bench_tools::{report, runtime, stop};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes read at most per chunk: large, so a fast stream costs few wake-ups.
const CHUNK: usize = 1 << 20;

/// The resolution of tokio's timer.
const TIMER_GRAIN: Duration = Duration::from_millis(1);

#[derive(Parser)]
#[command(about = "TCP relay that delays each direction by half a round trip")]
struct Args {
    /// Where each accepted connection goes (host:port).
    #[arg(long)]
    to: String,
    /// Round-trip time to add, in milliseconds (half in each direction).
    #[arg(long)]
    rtt_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    runtime::block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => return report::fail(&format!("bind 127.0.0.1:0: {e}")),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return report::fail(&format!("local address: {e}")),
    };
    report::line(&serde_json::json!({ "listening": addr.to_string() }));
    let half = Duration::from_micros(args.rtt_ms * 500);
    let accept = async {
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(relay(client, args.to.clone(), half));
                }
                Err(e) => eprintln!("delay-line: accept: {e}"),
            }
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = stop::stopped() => {}
    }
    ExitCode::SUCCESS
}

/// Connect to the far end and delay both directions until both have ended.
async fn relay(client: TcpStream, to: String, half: Duration) {
    let server = match TcpStream::connect(&to).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("delay-line: connect {to}: {e}");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(one_way(client_read, server_write, half));
    let down = tokio::spawn(one_way(server_read, client_write, half));
    let _ = tokio::join!(up, down);
}

/// Read chunks as they arrive and write each `half` after its arrival; `None` is end of file.
async fn one_way(mut from: OwnedReadHalf, to: OwnedWriteHalf, half: Duration) {
    let (queue, pending) = mpsc::unbounded_channel::<(Instant, Option<Bytes>)>();
    let writer = tokio::spawn(write_delayed(pending, to, half));
    let mut buf = BytesMut::with_capacity(CHUNK);
    loop {
        buf.reserve(CHUNK);
        let chunk = match from.read_buf(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(buf.split().freeze()),
        };
        let end = chunk.is_none();
        if queue.send((Instant::now(), chunk)).is_err() || end {
            break;
        }
    }
    drop(queue);
    let _ = writer.await;
}

async fn write_delayed(
    mut pending: mpsc::UnboundedReceiver<(Instant, Option<Bytes>)>,
    mut to: OwnedWriteHalf,
    half: Duration,
) {
    while let Some((arrived, chunk)) = pending.recv().await {
        sleep_precisely_until(arrived + half).await;
        match chunk {
            Some(bytes) => {
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            None => {
                let _ = to.shutdown().await;
                return;
            }
        }
    }
}

/// tokio's timer rounds a deadline up to the next millisecond, which would add up to 1 ms per
/// direction; so sleep on it to within a millisecond, then the rest on the thread (the kernel's
/// high-resolution timer, some 50 µs late at most).
async fn sleep_precisely_until(deadline: Instant) {
    let coarse = deadline.checked_sub(TIMER_GRAIN).unwrap_or(deadline);
    tokio::time::sleep_until(coarse).await;
    let rest = deadline.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        std::thread::sleep(rest);
    }
}
