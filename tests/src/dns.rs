//! DNS for the name-lookup tests: a server on a loopback address, port 53, that answers the
//! names it was given (one A record each) and never answers any other (it reads the query and
//! drops it; a TCP connection is read and never written), and the wrapper that shows the
//! bastion a test `resolv.conf` and `hosts` in place of `/etc/resolv.conf` and `/etc/hosts`
//! (its own mount namespace, bind mounts; root only), so no production setting is needed to
//! point the bastion at a test server.

use std::ffi::OsString;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::bastion::BastionBuilder;
use crate::locate::{bastion_bin, require_tool};

/// How often the server threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// A DNS server on `ip`:53 (UDP and TCP), stopped when dropped.
pub struct DnsServer {
    ip: Ipv4Addr,
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Answers each of `names` (lower case, no trailing dot) with its address: an A record for
    /// an A query, no record (NOERROR) for any other type. Any other name gets no answer.
    pub fn start(ip: Ipv4Addr, names: &[(&str, Ipv4Addr)]) -> DnsServer {
        let addr = SocketAddr::from((ip, 53));
        let udp = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("binding UDP {addr}: {e}"));
        udp.set_read_timeout(Some(POLL)).expect("UDP read timeout");
        let tcp = TcpListener::bind(addr).unwrap_or_else(|e| panic!("binding TCP {addr}: {e}"));
        tcp.set_nonblocking(true)
            .expect("non-blocking TCP listener");
        let names: Vec<(String, Ipv4Addr)> =
            names.iter().map(|(n, a)| (n.to_string(), *a)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let (s, q, a) = (stop.clone(), queries.clone(), answered.clone());
        let udp_thread = thread::spawn(move || serve_udp(&udp, &names, &s, &q, &a));
        let (s, q) = (stop.clone(), queries.clone());
        let tcp_thread = thread::spawn(move || hold_tcp(&tcp, &s, &q));
        DnsServer {
            ip,
            stop,
            queries,
            answered,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Queries received so far (UDP datagrams and TCP connections).
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// Queries answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn serve_udp(
    socket: &UdpSocket,
    names: &[(String, Ipv4Addr)],
    stop: &AtomicBool,
    queries: &AtomicUsize,
    answered: &AtomicUsize,
) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        if let Some(reply) = answer(&buf[..len], names) {
            if socket.send_to(&reply, from).is_ok() {
                answered.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Accepts TCP connections and reads them without ever writing, until stopped.
fn hold_tcp(listener: &TcpListener, stop: &Arc<AtomicBool>, queries: &AtomicUsize) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                queries.fetch_add(1, Ordering::SeqCst);
                let stop = stop.clone();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(POLL));
                    let mut sink = [0u8; 512];
                    while !stop.load(Ordering::SeqCst) {
                        match stream.read(&mut sink) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) if is_timeout(&e) => {}
                            Err(_) => break,
                        }
                    }
                });
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The reply to a query for one of `names`, or `None` (malformed, or a name to ignore).
fn answer(query: &[u8], names: &[(String, Ipv4Addr)]) -> Option<Vec<u8>> {
    let (name, end) = question(query)?;
    let qtype = u16::from_be_bytes([query[end], query[end + 1]]);
    let (_, addr) = names.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name))?;
    let with_record = qtype == 1;
    let mut reply = Vec::with_capacity(end + 4 + 16);
    reply.extend_from_slice(&query[..2]); // id
    reply.extend_from_slice(&[0x80 | (query[2] & 0x01), 0x80]); // QR, RD copied; RA; NOERROR
    reply.extend_from_slice(&[0, 1, 0, u8::from(with_record), 0, 0, 0, 0]);
    reply.extend_from_slice(&query[12..end + 4]); // the question
    if with_record {
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&addr.octets());
    }
    Some(reply)
}

/// The question's name (dotted, no trailing dot) and the offset of its type, if the query
/// holds exactly one well-formed question.
fn question(query: &[u8]) -> Option<(String, usize)> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at + 1..at + 1 + len)?).into_owned());
        at += 1 + len;
    }
    let end = at + 1;
    (query.len() >= end + 4).then(|| (labels.join("."), end))
}

/// `builder` run in its own mount namespace where `resolv_conf` and `hosts` (written to files
/// in `dir`) are `/etc/resolv.conf` and `/etc/hosts`. The bastion keeps the wrapper's process
/// id (`unshare` and `sh` exec), so `Bastion::pid` is the bastion's.
pub fn with_resolver_files(
    builder: BastionBuilder,
    dir: &Path,
    resolv_conf: &str,
    hosts: &str,
) -> BastionBuilder {
    let conf_path = dir.join("resolv.conf");
    let hosts_path = dir.join("hosts");
    std::fs::write(&conf_path, resolv_conf).expect("writing the test resolv.conf");
    std::fs::write(&hosts_path, hosts).expect("writing the test hosts file");
    let script = "mount --bind \"$0\" /etc/resolv.conf && mount --bind \"$1\" /etc/hosts \
                  && shift && exec \"$@\"";
    let wrapper: Vec<OsString> = vec![
        require_tool("unshare").into(),
        "--mount".into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        script.into(),
        conf_path.into(),
        hosts_path.into(),
    ];
    builder.wrapped_in(wrapper, bastion_bin())
}
