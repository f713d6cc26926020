//! `idle-tunnels --server ADDR --key PATH --dest HOST:PORT --count N`: opens N SSH connections
//! with the russh client, each authenticated with the (Ed25519) key and holding one open
//! `direct-tcpip` channel to DEST, then holds them all idle until standard input closes or
//! SIGTERM. At most `--concurrency` handshakes run at once, each within `--timeout`; connection
//! i binds source address 127.77.(i / 250).(i % 250 + 1) before connecting, so 10,000 connections
//! never run out of ephemeral ports. Prints `{"progress": OK, "failed": F}` about once a second,
//! then `{"ready": OK, "failed": F, "errors": [first few]}`. The server's keepalives are
//! answered by russh.
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bench_tools::{report, runtime, stop};
use clap::Parser;
use russh::client::{self, Handle, Msg};
use russh::keys::{load_secret_key, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::Channel;
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, Semaphore};

#[derive(Parser)]
#[command(about = "Hold N authenticated SSH connections, one open tunnel each")]
struct Args {
    /// The SSH server (host:port).
    #[arg(long)]
    server: SocketAddr,
    /// Private key file (OpenSSH format, no passphrase).
    #[arg(long)]
    key: std::path::PathBuf,
    /// User name to log in as.
    #[arg(long, default_value = "root")]
    user: String,
    /// Where each connection's tunnel goes (host:port).
    #[arg(long)]
    dest: SocketAddrV4,
    /// Connections to open.
    #[arg(long)]
    count: usize,
    /// Handshakes at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds one connection may take to be ready.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

/// A held connection: dropping it closes the channel and the connection.
type Held = (Handle<Trusting>, Channel<Msg>);

struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    runtime::block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let key = match load_secret_key(&args.key, None) {
        Ok(k) => Arc::new(k),
        Err(e) => return report::fail(&format!("key {}: {e}", args.key.display())),
    };
    let args = Arc::new(args);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Held, String>>();
    let slots = Arc::new(Semaphore::new(args.concurrency.max(1)));
    for i in 0..args.count {
        let (args, key, slots, done) = (args.clone(), key.clone(), slots.clone(), done_tx.clone());
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            let limit = Duration::from_secs_f64(args.timeout);
            let result = match tokio::time::timeout(limit, open(&args, key, i)).await {
                Ok(r) => r,
                Err(_) => Err(format!("not ready within {} s", args.timeout)),
            };
            let _ = done.send(result);
        });
    }
    drop(done_tx);
    let held = collect(&mut done_rx, args.count).await;
    tokio::select! {
        _ = stop::stopped() => {}
        // Keep answering the server while held (russh runs each session in its own task).
        _ = std::future::pending::<()>() => {}
    }
    drop(held);
    ExitCode::SUCCESS
}

/// Gather the results, print progress, then the ready line; returns the held connections.
async fn collect(
    done: &mut mpsc::UnboundedReceiver<Result<Held, String>>,
    count: usize,
) -> Vec<Held> {
    let mut held = Vec::with_capacity(count);
    let (mut failed, mut errors) = (0usize, Vec::new());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while held.len() + failed < count {
        tokio::select! {
            result = done.recv() => match result {
                Some(Ok(h)) => held.push(h),
                Some(Err(e)) => {
                    failed += 1;
                    if errors.len() < 5 {
                        errors.push(e);
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                report::line(&serde_json::json!({ "progress": held.len(), "failed": failed }));
            }
        }
    }
    report::line(&serde_json::json!({ "ready": held.len(), "failed": failed, "errors": errors }));
    held
}

/// One connection: bind a source address, SSH handshake, public key login, open the tunnel.
async fn open(args: &Args, key: Arc<russh::keys::PrivateKey>, i: usize) -> Result<Held, String> {
    let source = Ipv4Addr::new(127, 77, (i / 250) as u8, (i % 250 + 1) as u8);
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket
        .connect(args.server)
        .await
        .map_err(|e| format!("connect {}: {e}", args.server))?;
    let config = Arc::new(client::Config::default());
    let mut handle = client::connect_stream(config, stream, Trusting)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let login = handle
        .authenticate_publickey(args.user.clone(), PrivateKeyWithHashAlg::new(key, None))
        .await
        .map_err(|e| format!("login: {e}"))?;
    if !login.success() {
        return Err("the key was refused".to_string());
    }
    let channel = handle
        .channel_open_direct_tcpip(
            args.dest.ip().to_string(),
            u32::from(args.dest.port()),
            source.to_string(),
            40000,
        )
        .await
        .map_err(|e| format!("tunnel to {}: {e}", args.dest))?;
    Ok((handle, channel))
}
