//! `dest`: the tunnels' destinations, one process, each on its own kernel-picked port of
//! 127.0.0.1, announced as `{"echo": P, "sink": P, "hold": P}`:
//!
//! - **echo** writes back what it reads (connect-to-first-byte);
//! - **sink** reads to end of file, then answers the byte count as a decimal line and closes
//!   (uploads: the sender checks that every byte arrived);
//! - **hold** accepts and never reads (idle tunnels: one task per socket costs a few hundred
//!   bytes, so 10,000 are cheap; head-of-line: a destination that is stuck). It closes a socket
//!   whose peer closed without sending, so idle tunnels do not pile up from one level to the
//!   next; one that received data is held until the process ends.
//!
//! Runs until standard input closes or SIGTERM.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use bench_tools::{report, runtime, stop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> ExitCode {
    runtime::block_on(run())
}

async fn run() -> ExitCode {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => listeners.push(l),
            Err(e) => return report::fail(&format!("bind 127.0.0.1:0: {e}")),
        }
    }
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or(0);
    report::line(&serde_json::json!({
        "echo": port(&listeners[0]), "sink": port(&listeners[1]), "hold": port(&listeners[2]),
    }));
    let hold = listeners.pop();
    let sink = listeners.pop();
    let echo = listeners.pop();
    let (Some(echo), Some(sink), Some(hold)) = (echo, sink, hold) else {
        return report::fail("listeners missing");
    };
    tokio::select! {
        _ = serve(echo, echo_one) => {}
        _ = serve(sink, sink_one) => {}
        _ = serve(hold, hold_one) => {}
        _ = stop::stopped() => {}
    }
    ExitCode::SUCCESS
}

/// Accept for ever, one task per connection.
async fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream));
            }
            Err(e) => {
                // Out of descriptors or similar: say so and retry after a pause.
                eprintln!("dest: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn echo_one(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let _ = tokio::io::copy(&mut read, &mut write).await;
    let _ = write.shutdown().await;
}

async fn sink_one(mut stream: TcpStream) {
    let mut buf = vec![0u8; 1 << 18];
    let mut count: u64 = 0;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => count += n as u64,
            Err(_) => return,
        }
    }
    let _ = stream.write_all(format!("{count}\n").as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn hold_one(stream: TcpStream) {
    // `peek` waits for data or end of file without consuming anything.
    let mut probe = [0u8; 1];
    if let Ok(n) = stream.peek(&mut probe).await {
        if n > 0 {
            // Data waits and is never read: stuck for as long as the process lives.
            std::future::pending::<()>().await;
        }
    }
    drop(stream);
}
