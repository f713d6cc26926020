//! Loopback test servers the tunnels lead to: echo, exchange, half-close, never-reading and
//! fixed-reply, one thread per connection, stopped when dropped.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::data::{read_to_end_digest, sha256_hex, Pattern};
use crate::ssh::host_in_spec;
use crate::sync::lock_ignoring_poison;

/// What an exchange server saw on one connection.
#[derive(Clone, Debug)]
pub struct Received {
    pub len: u64,
    pub digest: String,
}

type Handler = Arc<dyn Fn(TcpStream, usize) + Send + Sync>;

/// A TCP server on a loopback port 0 with one thread per connection. Dropping it stops accepting
/// and closes the connections it holds open.
pub struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn spawn(bind: IpAddr, held_open: bool, handler: Handler) -> TestServer {
        let listener = TcpListener::bind(SocketAddr::new(bind, 0))
            .unwrap_or_else(|e| panic!("binding a test server on {bind} port 0: {e}"));
        let addr = listener.local_addr().expect("reading a test server's port");
        listener
            .set_nonblocking(true)
            .expect("making a test listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (stop2, accepted2, held2) = (stop.clone(), accepted.clone(), held.clone());
        let accept_thread = thread::Builder::new()
            .name(format!("test server {addr}"))
            .spawn(move || {
                while !stop2.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let index = accepted2.fetch_add(1, Ordering::SeqCst);
                            let _ = stream.set_nonblocking(false);
                            if held_open {
                                if let Ok(clone) = stream.try_clone() {
                                    lock_ignoring_poison(&held2).push(clone);
                                }
                            }
                            let handler = handler.clone();
                            let _ = thread::Builder::new()
                                .name(format!("test conn {addr} #{index}"))
                                .spawn(move || handler(stream, index));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
            .expect("spawning a test server thread");
        TestServer {
            addr,
            stop,
            accepted,
            held,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `host:port` as an ssh forward destination (`[::1]:port` for IPv6).
    pub fn spec(&self) -> String {
        format!("{}:{}", host_in_spec(self.addr.ip()), self.port())
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Echoes every byte back; on EOF from the client, closes its write side.
    pub fn echo(bind: IpAddr) -> TestServer {
        TestServer::spawn(
            bind,
            false,
            Arc::new(|mut stream: TcpStream, _| {
                let _ = stream.set_nodelay(true);
                let mut read_half = match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => return,
                };
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match read_half.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            }),
        )
    }

    /// An echo server on 127.0.0.1.
    pub fn echo_v4() -> TestServer {
        TestServer::echo(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// On each connection, at once: sends `send_len` bytes of `Pattern::new(send_seed)` then
    /// closes its write side, and reads everything the client sends until EOF, reporting the
    /// count and digest on the returned channel.
    pub fn exchange(send_seed: u64, send_len: u64) -> (TestServer, mpsc::Receiver<Received>) {
        let (tx, rx) = mpsc::channel();
        let tx = Arc::new(Mutex::new(tx));
        let pattern = Pattern::new(send_seed);
        let server = TestServer::spawn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            false,
            Arc::new(move |stream: TcpStream, _| {
                let _ = stream.set_nodelay(true);
                let mut writer = match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => return,
                };
                let pattern = pattern.clone();
                let sender = thread::spawn(move || {
                    let _ = pattern.write_to(&mut writer, send_len);
                    let _ = writer.shutdown(Shutdown::Write);
                });
                let mut reader = stream;
                if let Ok((len, digest)) = read_to_end_digest(&mut reader) {
                    let _ = lock_ignoring_poison(&tx).send(Received { len, digest });
                }
                let _ = sender.join();
            }),
        );
        (server, rx)
    }

    /// Reads the request to EOF, then replies with `half_close_reply(request)` and closes.
    pub fn half_close() -> TestServer {
        TestServer::spawn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            false,
            Arc::new(|mut stream: TcpStream, _| {
                let mut request = Vec::new();
                if stream.read_to_end(&mut request).is_err() {
                    return;
                }
                let _ = stream.write_all(&half_close_reply(&request));
                let _ = stream.shutdown(Shutdown::Write);
            }),
        )
    }

    /// Accepts connections and never reads from them (they stay open until the server drops).
    pub fn never_reads() -> TestServer {
        TestServer::spawn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            true,
            Arc::new(|_stream: TcpStream, _| {
                // The accept loop keeps a clone of the stream open; this thread just ends.
            }),
        )
    }

    /// On each connection, writes without end (until a write fails or blocks for 60 s) and
    /// never reads: a destination whose replies fill the client's window while the data sent
    /// to it piles up in the bastion.
    pub fn floods_never_reads() -> TestServer {
        TestServer::spawn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            true,
            Arc::new(|mut stream: TcpStream, _| {
                let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
                let chunk = [b'r'; 65536];
                while stream.write_all(&chunk).is_ok() {}
            }),
        )
    }

    /// Writes `reply` on each connection and closes it (e.g. a non-SSH banner).
    pub fn fixed_reply(reply: &'static [u8]) -> TestServer {
        TestServer::spawn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            false,
            Arc::new(move |mut stream: TcpStream, _| {
                let _ = stream.write_all(reply);
                let _ = stream.shutdown(Shutdown::Write);
                thread::sleep(Duration::from_millis(200));
            }),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for stream in lock_ignoring_poison(&self.held).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
    }
}

/// The half-close server's reply to a request: a header naming its size and digest, then 1 MiB
/// derived from it, so a truncated reply is detectable.
pub fn half_close_reply(request: &[u8]) -> Vec<u8> {
    let digest = sha256_hex(request);
    let mut reply = format!("got {} bytes sha256 {digest}\n", request.len()).into_bytes();
    let pattern = Pattern::new(request.len() as u64);
    reply.extend_from_slice(pattern.chunk(0, 1024 * 1024));
    reply
}
