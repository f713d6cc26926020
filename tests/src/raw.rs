//! Raw TCP clients from a chosen loopback source address (`127.0.0.0/8` is all local), for
//! tests of per-source limits: connect from an address, see whether the server says anything
//! (its SSH identification) or closes before a byte, and hold silent or banner-only
//! connections the way squatters do.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// A TCP connection to `to` from `from` (port 0).
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .expect("creating a TCP socket");
    socket
        .bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .unwrap_or_else(|e| panic!("binding {from}:0: {e}"));
    socket
        .connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting {from} -> {to}: {e}"));
    socket.into()
}

/// What the server did with a fresh connection within `wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// It sent its identification line (admitted).
    Banner(String),
    /// It closed (or reset) the connection before sending a byte (refused at accept).
    ClosedSilently,
    /// Nothing at all within the wait.
    Nothing,
}

/// Read the first bytes the server sends on `stream`.
pub fn greeting(stream: &mut TcpStream, wait: Duration) -> Greeting {
    stream
        .set_read_timeout(Some(wait))
        .expect("setting a read timeout");
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => Greeting::ClosedSilently,
        Ok(n) => Greeting::Banner(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Greeting::Nothing
        }
        Err(_) => Greeting::ClosedSilently,
    }
}

/// Connect from `from` and report the greeting.
pub fn probe(from: Ipv4Addr, to: SocketAddr) -> Greeting {
    let mut stream = connect_from(from, to);
    greeting(&mut stream, Duration::from_secs(3))
}

/// A squatter: connects from `from`, reads the server's banner, sends an SSH identification
/// (when `banner`), then holds the connection without another byte.
pub fn squatter(from: Ipv4Addr, to: SocketAddr, banner: bool) -> TcpStream {
    let mut stream = connect_from(from, to);
    if banner {
        let _ = stream.write_all(b"SSH-2.0-squatter\r\n");
    }
    stream
}

/// Wait until the server closes `stream` (EOF or reset), reading and dropping what it sends;
/// returns how long that took, or `None` if it was still open after `limit`.
pub fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        let left = limit
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(10));
        stream.set_read_timeout(Some(left)).ok()?;
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}
