//! `push --size N --to ADDR[,ADDR...]`: uploads N bytes to every address at the same moment
//! (connections are made first, then all start together), closes each for writing and reads
//! the sink's answer, which must equal N. Prints
//! `{"size": N, "elapsed": S, "times": [S, ...]}` (seconds from the common start to each
//! sink's answer, in the order of the addresses) or fails with exit status 1 when any upload
//! errs, is short or passes `--timeout`.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bench_tools::{report, runtime, size::parse_size};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::time::Instant;

/// Bytes per write.
const CHUNK: usize = 1 << 18;

#[derive(Parser)]
#[command(about = "Upload N bytes to several sinks at once and time each")]
struct Args {
    /// Bytes per address (16M, 1G, ...).
    #[arg(long, value_parser = parse_size)]
    size: u64,
    /// Comma-separated host:port list.
    #[arg(long, value_delimiter = ',', required = true)]
    to: Vec<String>,
    /// Seconds the whole push may take.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    runtime::block_on(async {
        let limit = Duration::from_secs_f64(args.timeout);
        match tokio::time::timeout(limit, run(&args)).await {
            Ok(Ok(times)) => {
                let elapsed = times.iter().cloned().fold(0.0, f64::max);
                report::line(&serde_json::json!({
                    "size": args.size, "elapsed": elapsed, "times": times,
                }));
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => report::fail(&e),
            Err(_) => report::fail(&format!("not done within {} s", args.timeout)),
        }
    })
}

async fn run(args: &Args) -> Result<Vec<f64>, String> {
    let mut streams = Vec::with_capacity(args.to.len());
    for addr in &args.to {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        streams.push(stream);
    }
    // Bytes that do not compress, in case a path compresses.
    let payload: Arc<Vec<u8>> = Arc::new(
        (0..CHUNK as u64)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect(),
    );
    let barrier = Arc::new(Barrier::new(streams.len() + 1));
    let mut tasks = Vec::with_capacity(streams.len());
    for (stream, addr) in streams.into_iter().zip(&args.to) {
        let (payload, barrier) = (payload.clone(), barrier.clone());
        let (size, addr) = (args.size, addr.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            upload(stream, size, &payload)
                .await
                .map_err(|e| format!("{addr}: {e}"))
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut times = Vec::with_capacity(tasks.len());
    for task in tasks {
        let done = task.await.map_err(|e| format!("upload task: {e}"))??;
        times.push(done.duration_since(start).as_secs_f64());
    }
    Ok(times)
}

/// Send `size` bytes, half-close, and check the sink's count; returns when the answer came.
async fn upload(mut stream: TcpStream, size: u64, payload: &[u8]) -> Result<Instant, String> {
    let mut left = size;
    while left > 0 {
        let n = left.min(payload.len() as u64) as usize;
        stream
            .write_all(&payload[..n])
            .await
            .map_err(|e| format!("write after {} bytes: {e}", size - left))?;
        left -= n as u64;
    }
    stream
        .shutdown()
        .await
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| format!("reading the sink's count: {e}"))?;
    let done = Instant::now();
    match answer.trim().parse::<u64>() {
        Ok(n) if n == size => Ok(done),
        Ok(n) => Err(format!("the sink counted {n} bytes of {size}")),
        Err(_) => Err(format!("no count from the sink (got {answer:?})")),
    }
}
