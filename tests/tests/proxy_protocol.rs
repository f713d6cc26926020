//! The PROXY protocol in front of the bastion (issue 3), against real peers only: a Debian
//! `haproxy` in TCP mode sending v2 (`send-proxy-v2`) and v1 (`send-proxy`) headers, the stock
//! `ssh` client bound to its own loopback address (`ssh -b 127.0.0.5`) so the client address
//! the header carries differs from haproxy's own (127.0.0.1), and raw sockets writing headers
//! built by hand (well-formed, truncated, oversized, wrong signature, from an untrusted sender,
//! a v2 LOCAL health-check probe, and a header sent in the same write as the SSH banner).
//!
//! What is asserted: tunnels through haproxy work and every audit event names the client haproxy
//! saw, with haproxy as the `sender`; client allow/deny rules match the PROXY source, never the
//! socket peer; a bad or missing header closes the connection before any server byte, with a
//! `proxy_rejected` event naming the exact connection (its source port) and the reason; a
//! truncated header is closed at the deadline; a valid header is consumed exactly (the SSH key
//! exchange starts, so no banner byte was lost); the server still serves tunnels afterwards; and a
//! user cannot tunnel back into the bastion's own listener to send a PROXY header of their own.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use e2e::*;
use serde_json::Value;

const READY: Duration = Duration::from_secs(20);

/// `BASTION_PROXY_TIMEOUT` of every bastion here (kept short: the deadline cases wait for it).
const PROXY_TIMEOUT: Duration = Duration::from_secs(1);
const PROXY_TIMEOUT_SETTING: &str = "1s";

/// Slack on top of the header deadline before a still-open connection counts as a failure.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// How long an audit event may take to show up in the bastion's log.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Where haproxy listens (its connections to the bastion come from 127.0.0.1).
const HAPROXY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The address haproxy connects to the bastion from.
const HAPROXY_SOURCE: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// The SSH client (`ssh -b`), as the PROXY header names it.
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// A second client address.
const OTHER_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

/// The PROXY protocol v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const V2_PROXY: u8 = 0x21;
/// Version 2, command LOCAL (load-balancer health checks).
const V2_LOCAL: u8 = 0x20;
/// AF_INET, STREAM.
const V2_TCP4: u8 = 0x11;

/// What a test client sends as its SSH identification.
const CLIENT_BANNER: &[u8] = b"SSH-2.0-test\r\n";
/// SSH_MSG_KEXINIT.
const MSG_KEXINIT: u8 = 20;

// ---------------------------------------------------------------------------------------------
// haproxy

#[derive(Clone, Copy, Debug)]
enum SendProxy {
    V1,
    V2,
}

impl SendProxy {
    fn keyword(self) -> &'static str {
        match self {
            SendProxy::V1 => "send-proxy",
            SendProxy::V2 => "send-proxy-v2",
        }
    }
}

/// A real haproxy in TCP mode on `HAPROXY_IP`, forwarding to one bastion with a PROXY header.
struct Haproxy {
    proc: ChildGuard,
    addr: SocketAddr,
}

impl Haproxy {
    /// Starts haproxy in the foreground on a free port of `HAPROXY_IP` and waits until it
    /// listens. haproxy cannot bind port 0, so a port is picked and the start retried if it was
    /// taken meanwhile; `noreuseport` makes such a clash a bind error (with SO_REUSEPORT two
    /// haproxies of parallel tests could share a port), and readiness is a listening socket
    /// owned by this haproxy process, not merely one on that port.
    fn start(dir: &TestDir, backend: SocketAddr, send: SendProxy) -> Haproxy {
        let bin = require_tool("haproxy");
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port_on(HAPROXY_IP);
            let config = format!(
                "global\n\
                 \x20   noreuseport\n\
                 \x20   nbthread 1\n\
                 \x20   maxconn 64\n\
                 defaults\n\
                 \x20   mode tcp\n\
                 \x20   timeout connect 5s\n\
                 \x20   timeout client 60s\n\
                 \x20   timeout server 60s\n\
                 frontend ssh_in\n\
                 \x20   bind {HAPROXY_IP}:{port}\n\
                 \x20   default_backend bastion\n\
                 backend bastion\n\
                 \x20   server bastion {backend} {}\n",
                send.keyword()
            );
            let path = dir.join(&format!("haproxy-{attempt}.cfg"));
            std::fs::write(&path, config).expect("writing the haproxy configuration");
            let mut cmd = Command::new(&bin);
            cmd.arg("-db").arg("-f").arg(&path);
            let mut proc = ChildGuard::spawn(&mut cmd, "haproxy", Input::Null);
            let pid = proc.pid();
            let ready = poll_until(READY, Duration::from_millis(20), || {
                if listens_on(pid, HAPROXY_IP, port) {
                    return Some(true);
                }
                proc.try_status().map(|_| false)
            });
            match ready {
                Some(true) => {
                    return Haproxy {
                        proc,
                        addr: SocketAddr::from((HAPROXY_IP, port)),
                    }
                }
                Some(false) => {
                    proc.stderr().wait_eof(Duration::from_secs(2));
                    let stderr = proc.stderr().text();
                    if attempt < ATTEMPTS && stderr.contains("cannot bind") {
                        continue;
                    }
                    panic!(
                        "haproxy exited at start ({:?}); its stderr:\n{stderr}",
                        proc.try_status()
                    );
                }
                None => panic!(
                    "haproxy did not listen on {HAPROXY_IP}:{port} within {READY:?}; its \
                     stderr:\n{}",
                    proc.stderr().text()
                ),
            }
        }
        unreachable!("the loop either returns or panics")
    }

    /// An ssh client that reaches the bastion through haproxy, from `from` (`ssh -b`).
    fn ssh(&self, key: &Path, from: Ipv4Addr) -> Ssh {
        Ssh::new(key, self.addr.ip(), self.addr.port())
            .arg("-b")
            .arg(from.to_string())
    }

    /// Panics (with haproxy's stderr) if haproxy has died.
    fn assert_alive(&mut self) {
        if let Some(status) = self.proc.try_status() {
            panic!(
                "haproxy exited with {status}; its stderr:\n{}",
                self.proc.stderr().text()
            );
        }
    }
}

/// A TCP port that was free on `ip` a moment ago (`free_local_port` checks 127.0.0.1 only,
/// and haproxy listens on another loopback address).
fn free_port_on(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("binding {ip}:0 to find a free port: {e}"))
        .port()
}

/// Does process `pid` hold a TCP socket listening on `ip:port` (IPv4, this network namespace)?
fn listens_on(pid: u32, ip: Ipv4Addr, port: u16) -> bool {
    // /proc/net/tcp prints the address as the in-memory (network order) u32 in hex; field 9
    // is the socket's inode, which /proc/PID/fd links name as `socket:[INODE]`.
    let want = format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip.octets()));
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(1) == Some(&want.as_str()) && fields.get(3) == Some(&"0A");
            let inode = fields.get(9).filter(|_| listening)?;
            Some(format!("socket:[{inode}]"))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|link| {
            inodes
                .iter()
                .any(|inode| link.as_os_str() == inode.as_str())
        })
}

// ---------------------------------------------------------------------------------------------
// Bastions, tunnels and events

/// A bastion in `mode` trusting `trusted` as PROXY senders, permitting tunnels to `echo`.
fn proxied_bastion(dir: &TestDir, echo: &TestServer, mode: &str, trusted: &str) -> BastionBuilder {
    dir.bastion()
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .env("BASTION_PROXY_PROTOCOL", mode)
        .env("BASTION_PROXY_TRUSTED", trusted)
        .env("BASTION_PROXY_TIMEOUT", PROXY_TIMEOUT_SETTING)
}

/// `ssh -W` to the echo server must succeed and echo `payload` intact.
fn assert_tunnel_works(ssh: Ssh, echo: &TestServer, what: &str) {
    let payload = Pattern::new(11).chunk(0, 32 * 1024).to_vec();
    let run = ssh_w(ssh, echo, &payload, what);
    assert!(
        run.status.success(),
        "{what}: ssh -W exited with {}; stderr:\n{}",
        run.status,
        run.stderr
    );
    assert!(
        run.stdout == payload,
        "{what}: the echo through the tunnel differs ({} bytes back of {}); ssh stderr:\n{}",
        run.stdout.len(),
        payload.len(),
        run.stderr
    );
}

/// `ssh -W` must fail without a byte of tunnel output.
fn assert_ssh_refused(ssh: Ssh, echo: &TestServer, what: &str) -> WRun {
    let run = ssh_w(ssh, echo, b"must not arrive\n", what);
    assert!(
        !run.status.success(),
        "{what}: ssh -W succeeded but should have been refused; stderr:\n{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "{what}: the refused ssh printed tunnel output {:?}",
        String::from_utf8_lossy(&run.stdout)
    );
    assert!(
        !run.stderr.contains("Permission denied") && !run.stderr.contains("open failed"),
        "{what}: ssh got as far as authentication or a tunnel request; stderr:\n{}",
        run.stderr
    );
    run
}

/// The IP of an event field holding `ip:port`.
fn field_ip(event: &Value, field: &str) -> Option<IpAddr> {
    event[field]
        .as_str()?
        .parse::<SocketAddr>()
        .ok()
        .map(|a| a.ip())
}

/// Waits for an event named `name` matching `pred`; panics with the log if none comes.
fn expect_event(bastion: &Bastion, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    bastion
        .wait_event(EVENT_WAIT, |e| e["event"] == name && pred(e))
        .unwrap_or_else(|| {
            panic!(
                "{what}: no `{name}` event within {EVENT_WAIT:?}; the bastion's log:\n{}",
                bastion.stderr_text()
            )
        })
}

/// The `connection` event of the (one) connection from `client`: asserts it names `client` and,
/// when proxied, haproxy's address as the sender.
fn expect_connection_from(bastion: &Bastion, client: Ipv4Addr, sender: Option<Ipv4Addr>) -> Value {
    let what = format!("connection from {client}");
    let event = expect_event(bastion, "connection", &what, |e| {
        field_ip(e, "client") == Some(IpAddr::V4(client))
    });
    assert_eq!(event["level"], "INFO", "{what}: {event}");
    match sender {
        Some(sender) => assert_eq!(
            field_ip(&event, "sender"),
            Some(IpAddr::V4(sender)),
            "{what}: the `sender` must be the proxy's address: {event}"
        ),
        None => assert!(
            event["sender"].is_null(),
            "{what}: a connection without a PROXY header has no `sender`: {event}"
        ),
    }
    event
}

/// The `client_refused` event for `client`, which must name `sender` and `rule`; and no
/// `connection` event for that client.
fn expect_refused(bastion: &Bastion, client: Ipv4Addr, sender: Ipv4Addr, rule: &str) -> Value {
    let what = format!("refusal of {client}");
    let event = expect_event(bastion, "client_refused", &what, |e| {
        field_ip(e, "client") == Some(IpAddr::V4(client))
    });
    assert_eq!(
        field_ip(&event, "sender"),
        Some(IpAddr::V4(sender)),
        "{what}: the `sender` must be the socket peer: {event}"
    );
    assert_eq!(event["rule"], rule, "{what}: the deciding rule: {event}");
    let connections: Vec<Value> = bastion
        .events_named("connection")
        .into_iter()
        .filter(|e| field_ip(e, "client") == Some(IpAddr::V4(client)))
        .collect();
    assert!(
        connections.is_empty(),
        "{what}: a refused client got a `connection` event: {connections:?}"
    );
    event
}

// ---------------------------------------------------------------------------------------------
// Acceptance 1: tunnels through a real haproxy

fn tunnel_through_haproxy_names_the_real_client(send: SendProxy) {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "required", "127.0.0.1/32").start();
    let mut haproxy = Haproxy::start(&dir, bastion.addr(), send);

    let sock = dir.socket("l.sock");
    let mut ssh = haproxy
        .ssh(&dir.key.private, CLIENT)
        .arg("-N")
        .forward(&sock, &echo.spec())
        .spawn("ssh -N -L through haproxy", Input::Null);
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    for round in 0..4u64 {
        let payload = Pattern::new(round).chunk(round * 1000, 64 * 1024).to_vec();
        echo_round_trip(
            &mut stream,
            &payload,
            &format!("ssh -L through haproxy {send:?}, round {round}"),
        );
    }

    let connection = expect_connection_from(&bastion, CLIENT, Some(HAPROXY_SOURCE));
    println!("{send:?}: {connection}");
    let tunnel = expect_event(&bastion, "tunnel_open", "the -L tunnel", |_| true);
    assert_eq!(
        field_ip(&tunnel, "client"),
        Some(IpAddr::V4(CLIENT)),
        "the tunnel event must name the real client: {tunnel}"
    );
    assert_eq!(tunnel["conn"], connection["conn"], "{tunnel}");
    // Nothing in the log names haproxy's address as a client.
    for event in bastion.events() {
        if let Some(ip) = field_ip(&event, "client") {
            assert_eq!(
                ip,
                IpAddr::V4(CLIENT),
                "an event names {ip} as the client instead of the PROXY source: {event}"
            );
        }
    }
    haproxy.assert_alive();
}

#[test]
fn haproxy_send_proxy_v2_tunnel_sees_the_real_client() {
    tunnel_through_haproxy_names_the_real_client(SendProxy::V2);
}

#[test]
fn haproxy_send_proxy_v1_tunnel_sees_the_real_client() {
    tunnel_through_haproxy_names_the_real_client(SendProxy::V1);
}

// ---------------------------------------------------------------------------------------------
// Acceptance 2: client policy on the PROXY source, behind haproxy

/// `BASTION_DENY_CLIENTS=127.0.0.5/32`: that client is refused through haproxy while another
/// client through the same haproxy (the same socket peer) is served.
#[test]
fn a_deny_rule_for_the_real_client_refuses_it_behind_haproxy() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "required", "127.0.0.1/32")
        .env("BASTION_DENY_CLIENTS", format!("{CLIENT}/32"))
        .start();
    let haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V2);

    let run = assert_ssh_refused(
        haproxy.ssh(&dir.key.private, CLIENT),
        &echo,
        "denied client through haproxy",
    );
    println!("refused ssh said: {}", run.stderr.trim());
    expect_refused(
        &bastion,
        CLIENT,
        HAPROXY_SOURCE,
        &format!("BASTION_DENY_CLIENTS {CLIENT}/32"),
    );

    assert_tunnel_works(
        haproxy.ssh(&dir.key.private, OTHER_CLIENT),
        &echo,
        "another client through the same haproxy",
    );
    expect_connection_from(&bastion, OTHER_CLIENT, Some(HAPROXY_SOURCE));
}

/// Two failed logins from `CLIENT` through haproxy penalise `CLIENT`, not haproxy's address:
/// `CLIENT` is then refused before SSH, even with the right key, while `OTHER_CLIENT` through
/// the same haproxy (the same socket peer) logs in.
#[test]
fn penalties_apply_to_the_real_client_behind_haproxy() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let stranger = generate_key(dir.path(), "stranger");
    let bastion = proxied_bastion(&dir, &echo, "required", "127.0.0.1/32")
        .env("BASTION_PER_SOURCE_PENALTIES", "authfail:3s,min:4s,max:30s")
        .start();
    let haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V2);
    for n in 0..2 {
        let what = format!("unknown key {n} through haproxy");
        let run = ssh_w(haproxy.ssh(&stranger.private, CLIENT), &echo, b"x\n", &what);
        assert!(run.stderr.contains(DENIED), "{what}: {}", run.stderr);
    }
    let penalty = expect_event(&bastion, "penalty", "two failed logins", |_| true);
    assert_eq!(penalty["client"], CLIENT.to_string(), "{penalty}");
    assert_ssh_refused(
        haproxy.ssh(&dir.key.private, CLIENT),
        &echo,
        "the penalised client through haproxy",
    );
    expect_event(
        &bastion,
        "connection_dropped",
        "the penalised client",
        |e| e["limit"] == "BASTION_PER_SOURCE_PENALTIES" && e["client"] == CLIENT.to_string(),
    );
    assert_tunnel_works(
        haproxy.ssh(&dir.key.private, OTHER_CLIENT),
        &echo,
        "another client through the same haproxy",
    );
}

/// `BASTION_PER_SOURCE_MAX_CONNECTIONS=1` counts real clients: `CLIENT` holding one connection
/// through haproxy is refused a second, while `OTHER_CLIENT` through the same haproxy is served.
#[test]
fn per_source_limits_apply_to_the_real_client_behind_haproxy() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "required", "127.0.0.1/32")
        .env("BASTION_PER_SOURCE_MAX_CONNECTIONS", "1")
        .start();
    let haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V2);
    let _held = haproxy
        .ssh(&dir.key.private, CLIENT)
        .arg("-N")
        .spawn("held ssh -N through haproxy", Input::Null);
    expect_event(&bastion, "auth", "the held login", |e| {
        e["result"] == "accepted"
    });
    assert_ssh_refused(
        haproxy.ssh(&dir.key.private, CLIENT),
        &echo,
        "a second connection of the client through haproxy",
    );
    expect_event(
        &bastion,
        "connection_dropped",
        "the second connection",
        |e| e["limit"] == "BASTION_PER_SOURCE_MAX_CONNECTIONS",
    );
    assert_tunnel_works(
        haproxy.ssh(&dir.key.private, OTHER_CLIENT),
        &echo,
        "another client through the same haproxy",
    );
}

/// A trusted sender's connections that never send their PROXY header belong to no client and
/// are evicted first: 32 of them against `BASTION_MAX_STARTUPS=4` (and a long header deadline,
/// so they do not simply time out) do not stop a proxied login.
#[test]
fn silent_connections_from_a_trusted_sender_do_not_block_a_proxied_login() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "required", "127.0.0.1/32")
        .env("BASTION_MAX_STARTUPS", "4")
        .env("BASTION_PROXY_TIMEOUT", "60s")
        .start();
    let haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V2);
    let mut silent: Vec<TcpStream> = (0..32)
        .map(|_| connect_from(HAPROXY_SOURCE, bastion.addr()))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..3 {
        assert_tunnel_works(
            haproxy.ssh(&dir.key.private, CLIENT),
            &echo,
            &format!("proxied login {round} while silent connections fill the slots"),
        );
        silent.push(connect_from(HAPROXY_SOURCE, bastion.addr()));
    }
    let closed = silent
        .iter_mut()
        .filter_map(|s| closed_within(s, Duration::from_millis(100)))
        .count();
    assert!(
        closed >= 28,
        "evicted silent connections: {closed} of {}",
        silent.len()
    );
}

/// hosts.allow `bastion: 127.0.0.5` and hosts.deny `ALL: ALL` behind haproxy (v1 headers): only
/// that client gets in, although every socket peer is haproxy's 127.0.0.1.
#[test]
fn hosts_files_allow_one_client_and_deny_all_behind_haproxy() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let allow = dir.join("hosts.allow");
    let deny = dir.join("hosts.deny");
    std::fs::write(&allow, format!("# the only client\nbastion: {CLIENT}\n")).unwrap();
    std::fs::write(&deny, "ALL: ALL\n").unwrap();
    let bastion = proxied_bastion(&dir, &echo, "required", "127.0.0.1/32")
        .env("BASTION_HOSTS_ALLOW_FILE", allow.to_str().unwrap())
        .env("BASTION_HOSTS_DENY_FILE", deny.to_str().unwrap())
        .start();
    let haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V1);

    assert_tunnel_works(
        haproxy.ssh(&dir.key.private, CLIENT),
        &echo,
        "the allowed client through haproxy",
    );
    expect_connection_from(&bastion, CLIENT, Some(HAPROXY_SOURCE));

    assert_ssh_refused(
        haproxy.ssh(&dir.key.private, OTHER_CLIENT),
        &echo,
        "a client hosts.deny ALL: ALL refuses",
    );
    expect_refused(
        &bastion,
        OTHER_CLIENT,
        HAPROXY_SOURCE,
        &format!("{} line 1", deny.display()),
    );
}

/// `BASTION_ALLOW_CLIENTS=127.0.0.5/32` with `BASTION_DENY_CLIENTS=0.0.0.0/0`: the socket peer
/// (127.0.0.1) is inside the deny-all, yet the proxied 127.0.0.5 is served and 127.0.0.6 is not.
#[test]
fn env_allow_list_with_deny_all_matches_the_proxy_source() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "required", "127.0.0.1/32")
        .env("BASTION_ALLOW_CLIENTS", format!("{CLIENT}/32"))
        .env("BASTION_DENY_CLIENTS", "0.0.0.0/0")
        .start();
    let haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V2);

    assert_tunnel_works(
        haproxy.ssh(&dir.key.private, CLIENT),
        &echo,
        "the allow-listed client through haproxy",
    );
    expect_connection_from(&bastion, CLIENT, Some(HAPROXY_SOURCE));

    assert_ssh_refused(
        haproxy.ssh(&dir.key.private, OTHER_CLIENT),
        &echo,
        "a client outside the allow list",
    );
    expect_refused(
        &bastion,
        OTHER_CLIENT,
        HAPROXY_SOURCE,
        "BASTION_DENY_CLIENTS 0.0.0.0/0",
    );
}

/// Denying haproxy's own address (127.0.0.1/32) does not lock out proxied clients; a client
/// whose PROXY source is 127.0.0.1 is refused.
#[test]
fn denying_the_proxy_address_does_not_refuse_proxied_clients() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "required", "127.0.0.1/32")
        .env("BASTION_DENY_CLIENTS", "127.0.0.1/32")
        .start();
    let haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V2);

    assert_tunnel_works(
        haproxy.ssh(&dir.key.private, CLIENT),
        &echo,
        "a proxied client while the proxy's address is denied",
    );
    expect_connection_from(&bastion, CLIENT, Some(HAPROXY_SOURCE));

    assert_ssh_refused(
        haproxy.ssh(&dir.key.private, Ipv4Addr::LOCALHOST),
        &echo,
        "a client whose PROXY source is 127.0.0.1",
    );
    expect_refused(
        &bastion,
        Ipv4Addr::LOCALHOST,
        HAPROXY_SOURCE,
        "BASTION_DENY_CLIENTS 127.0.0.1/32",
    );
}

// ---------------------------------------------------------------------------------------------
// Acceptance 3: raw sockets

/// A v2 header with IPv4 addresses.
fn v2_header(command: u8, source: SocketAddrV4, destination: SocketAddrV4) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(command);
    header.push(V2_TCP4);
    header.extend_from_slice(&12u16.to_be_bytes());
    header.extend_from_slice(&source.ip().octets());
    header.extend_from_slice(&destination.ip().octets());
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

/// A v1 TCP4 header.
fn v1_header(source: SocketAddrV4, destination: SocketAddrV4) -> Vec<u8> {
    format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// The address a raw header claims the client connected to.
fn header_destination(bastion: &Bastion) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, bastion.port())
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// What the bastion must do with one raw connection.
#[derive(Clone, Debug)]
enum Expect {
    /// Close it without sending a byte, logging `proxy_rejected` for it at `level` with a
    /// reason containing the text.
    Rejected(&'static str, &'static str),
    /// Close it without sending a byte when the header deadline expires.
    Deadline,
    /// Serve SSH: its banner, then (after parsing ours) its KEXINIT.
    Served,
    /// Send the SSH banner (a health check that sends nothing itself).
    Banner,
}

struct Case {
    name: &'static str,
    send: Vec<u8>,
    expect: Expect,
}

/// What one raw connection saw.
#[derive(Debug)]
struct Observed {
    name: &'static str,
    expect: Expect,
    local: SocketAddr,
    received: Vec<u8>,
    closed: bool,
    read_error: Option<String>,
    elapsed: Duration,
}

/// The server's identification line and the message number of its first packet, once both
/// have arrived.
fn ssh_start(received: &[u8]) -> Option<(String, u8)> {
    let end = received.windows(2).position(|w| w == b"\r\n")?;
    let packet = &received[end + 2..];
    // uint32 packet_length, byte padding_length, byte message number.
    let message = *packet.get(5)?;
    Some((
        String::from_utf8_lossy(&received[..end]).into_owned(),
        message,
    ))
}

/// Connects to `addr`, writes `send` in one write, then reads until the server closes, has
/// started SSH (for `Served`), or `wait` passes.
fn observe(addr: SocketAddr, case: Case, wait: Duration) -> Observed {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{}: connecting to the bastion: {e}", case.name));
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().expect("reading the local address");
    if !case.send.is_empty() {
        stream
            .write_all(&case.send)
            .unwrap_or_else(|e| panic!("{}: writing {} bytes: {e}", case.name, case.send.len()));
    }
    let mut received = Vec::new();
    let mut closed = false;
    let mut read_error = None;
    let mut buf = [0u8; 4096];
    let deadline = started + wait;
    loop {
        let enough = match case.expect {
            Expect::Served => ssh_start(&received).is_some(),
            Expect::Banner => received.windows(2).any(|w| w == b"\r\n"),
            Expect::Rejected(..) | Expect::Deadline => false,
        };
        if enough {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        stream
            .set_read_timeout(Some(deadline - now))
            .expect("setting a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // A reset (the server closed with our bytes unread) is a close too.
                closed = matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                );
                read_error = Some(e.to_string());
                break;
            }
        }
    }
    Observed {
        name: case.name,
        expect: case.expect,
        local,
        received,
        closed,
        read_error,
        elapsed: started.elapsed(),
    }
}

/// Runs every case on its own connection, all at once (the deadline cases overlap).
fn observe_all(addr: SocketAddr, cases: Vec<Case>) -> Vec<Observed> {
    thread::scope(|scope| {
        let handles: Vec<_> = cases
            .into_iter()
            .map(|case| {
                let wait = match case.expect {
                    Expect::Deadline => PROXY_TIMEOUT + DEADLINE_MARGIN,
                    Expect::Rejected(..) | Expect::Served | Expect::Banner => {
                        Duration::from_secs(10)
                    }
                };
                scope.spawn(move || observe(addr, case, wait))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a raw-socket case panicked"))
            .collect()
    })
}

/// Checks one observation against its expectation and the bastion's log.
fn check(bastion: &Bastion, seen: &Observed) {
    let name = seen.name;
    let shown = String::from_utf8_lossy(&seen.received);
    println!(
        "{name}: {} bytes back, closed {} ({:?}) after {:?}",
        seen.received.len(),
        seen.closed,
        seen.read_error,
        seen.elapsed
    );
    let rejected_with = |reason: &str, level: &str| {
        assert!(
            seen.closed,
            "{name}: the connection is still open after {:?} ({:?}); got {shown:?}",
            seen.elapsed, seen.read_error
        );
        assert!(
            seen.received.is_empty(),
            "{name}: the bastion sent {shown:?} before closing (nothing, and never an SSH \
             banner, may precede a valid header)"
        );
        let local = seen.local.to_string();
        let event = expect_event(bastion, "proxy_rejected", name, |e| e["sender"] == local);
        assert!(
            event["reason"].as_str().is_some_and(|r| r.contains(reason)),
            "{name}: the rejection reason should contain {reason:?}: {event}"
        );
        assert_eq!(event["level"], level, "{name}: {event}");
    };
    match &seen.expect {
        Expect::Rejected(reason, level) => rejected_with(reason, level),
        Expect::Deadline => {
            rejected_with("not complete before the deadline", "INFO");
            assert!(
                seen.elapsed + Duration::from_millis(50) >= PROXY_TIMEOUT,
                "{name}: closed after {:?}, before the {PROXY_TIMEOUT:?} header deadline",
                seen.elapsed
            );
            assert!(
                seen.elapsed <= PROXY_TIMEOUT + DEADLINE_MARGIN,
                "{name}: closed after {:?}, long after the {PROXY_TIMEOUT:?} deadline",
                seen.elapsed
            );
        }
        Expect::Served => {
            let Some((banner, message)) = ssh_start(&seen.received) else {
                panic!(
                    "{name}: no SSH banner and first packet within 10 s (closed {}, {:?}); got \
                     {shown:?}",
                    seen.closed, seen.read_error
                );
            };
            assert!(
                banner.starts_with("SSH-2.0-"),
                "{name}: the first line is {banner:?}, not an SSH banner"
            );
            // The server sends KEXINIT only after reading our banner: had it lost or kept a
            // byte of it, it would still be waiting for an identification line.
            assert_eq!(
                message, MSG_KEXINIT,
                "{name}: the first packet after the banner is not KEXINIT"
            );
        }
        Expect::Banner => {
            assert!(
                seen.received.starts_with(b"SSH-2.0-")
                    && seen.received.windows(2).any(|w| w == b"\r\n"),
                "{name}: expected the SSH banner line (closed {}, {:?}); got {shown:?}",
                seen.closed,
                seen.read_error
            );
        }
    }
}

/// Rejections both modes share: a broken or over-long header is closed at once with a reason,
/// a truncated one at the deadline.
fn malformed_cases(bastion: &Bastion) -> Vec<Case> {
    let source = SocketAddrV4::new(CLIENT, 40000);
    let destination = header_destination(bastion);
    let good_v2 = v2_header(V2_PROXY, source, destination);
    let good_v1 = v1_header(source, destination);

    let mut bad_signature = good_v2.clone();
    bad_signature[7..11].copy_from_slice(b"QUIX");
    let mut oversized = good_v2.clone();
    oversized[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    // A plausible TCP4 line padded past the 107-byte limit with spaces, then `\r\n`.
    let mut long_v1 = b"PROXY TCP4 127.0.0.5 127.0.0.1 40000 22".to_vec();
    long_v1.resize(118, b' ');
    long_v1.extend_from_slice(b"\r\n");
    assert!(long_v1.len() > 107);

    vec![
        Case {
            name: "truncated v2 header, then silence",
            send: good_v2[..20].to_vec(),
            expect: Expect::Deadline,
        },
        Case {
            name: "truncated v1 header, then silence",
            send: good_v1[..good_v1.len() - 8].to_vec(),
            expect: Expect::Deadline,
        },
        Case {
            name: "v2 header with a bad signature",
            send: concat(&[&bad_signature, CLIENT_BANNER]),
            expect: Expect::Rejected("bad v2 signature", "INFO"),
        },
        Case {
            name: "v2 header announcing 65535 bytes",
            send: concat(&[&oversized, &[0u8; 64]]),
            expect: Expect::Rejected("length 65535 over the limit", "INFO"),
        },
        Case {
            name: "v1 header over 107 bytes",
            send: concat(&[&long_v1, CLIENT_BANNER]),
            expect: Expect::Rejected("longer than 107 bytes", "INFO"),
        },
    ]
}

/// `required` mode from a trusted sender: every way a header can be missing or broken closes
/// the connection before the SSH banner; a LOCAL probe is served without an audit entry; valid
/// v2 and v1 headers in the same write as the SSH banner are consumed exactly; and afterwards a
/// real tunnel through haproxy still works.
#[test]
fn required_mode_raw_headers() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "required", "127.0.0.1/32").start();
    let destination = header_destination(&bastion);
    let v2_source = SocketAddrV4::new(CLIENT, 40001);
    let v1_source = SocketAddrV4::new(CLIENT, 40002);

    let mut cases = malformed_cases(&bastion);
    cases.extend([
        Case {
            name: "no header: the SSH banner first",
            send: CLIENT_BANNER.to_vec(),
            expect: Expect::Rejected("does not start with a PROXY protocol header", "INFO"),
        },
        Case {
            name: "silence",
            send: Vec::new(),
            expect: Expect::Deadline,
        },
        Case {
            name: "v2 LOCAL probe",
            send: v2_header(
                V2_LOCAL,
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                destination,
            ),
            expect: Expect::Banner,
        },
        Case {
            name: "v2 header and SSH banner in one write",
            send: concat(&[&v2_header(V2_PROXY, v2_source, destination), CLIENT_BANNER]),
            expect: Expect::Served,
        },
        Case {
            name: "v1 header and SSH banner in one write",
            send: concat(&[&v1_header(v1_source, destination), CLIENT_BANNER]),
            expect: Expect::Served,
        },
    ]);
    let observed = observe_all(bastion.addr(), cases);
    for seen in &observed {
        check(&bastion, seen);
    }
    let local_of = |name: &str| {
        observed
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.local.to_string())
            .expect("a case by that name")
    };
    for (name, source) in [
        ("v2 header and SSH banner in one write", v2_source),
        ("v1 header and SSH banner in one write", v1_source),
    ] {
        let source = source.to_string();
        let event = expect_event(&bastion, "connection", name, |e| e["client"] == source);
        assert_eq!(
            event["sender"],
            local_of(name),
            "{name}: the sender is the raw socket: {event}"
        );
    }

    // The server still serves: a real tunnel through haproxy.
    let mut haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V2);
    assert_tunnel_works(
        haproxy.ssh(&dir.key.private, CLIENT),
        &echo,
        "a tunnel through haproxy after the raw-socket cases",
    );
    expect_connection_from(&bastion, CLIENT, Some(HAPROXY_SOURCE));
    haproxy.assert_alive();

    // The LOCAL probe got its banner (logged, if at all, before the banner was sent, so before
    // everything awaited since) and left no info-level trace.
    let probe = local_of("v2 LOCAL probe");
    let traces: Vec<Value> = bastion
        .events()
        .into_iter()
        .filter(|e| e["client"] == probe || e["sender"] == probe)
        .collect();
    assert!(
        traces.is_empty(),
        "the LOCAL health-check probe left audit events at info level: {traces:?}"
    );
}

/// `optional` mode (trusted sender; bastion logs at debug for its own events): a connection
/// without a header is plain SSH (its first byte handed back to SSH), a valid header is used,
/// broken headers are refused as in `required` mode, a LOCAL probe is a debug-level
/// `health_check`; afterwards a direct `ssh` tunnel still works.
#[test]
fn optional_mode_raw_headers() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "optional", "127.0.0.1/32")
        .env("RUST_LOG", "info,russh=warn,bastion=debug")
        .start();
    let destination = header_destination(&bastion);
    let v2_source = SocketAddrV4::new(CLIENT, 40003);

    let mut cases = malformed_cases(&bastion);
    cases.extend([
        Case {
            name: "no header: plain SSH",
            send: CLIENT_BANNER.to_vec(),
            expect: Expect::Served,
        },
        Case {
            name: "silence",
            send: Vec::new(),
            expect: Expect::Deadline,
        },
        Case {
            name: "v2 LOCAL probe",
            send: v2_header(
                V2_LOCAL,
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                destination,
            ),
            expect: Expect::Banner,
        },
        Case {
            name: "v2 header and SSH banner in one write",
            send: concat(&[&v2_header(V2_PROXY, v2_source, destination), CLIENT_BANNER]),
            expect: Expect::Served,
        },
    ]);
    let observed = observe_all(bastion.addr(), cases);
    for seen in &observed {
        check(&bastion, seen);
    }
    let local_of = |name: &str| {
        observed
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.local.to_string())
            .expect("a case by that name")
    };

    let plain = local_of("no header: plain SSH");
    let event = expect_event(&bastion, "connection", "plain SSH", |e| {
        e["client"] == plain
    });
    assert!(
        event["sender"].is_null(),
        "no header, so no sender: {event}"
    );
    assert_eq!(event["level"], "INFO", "{event}");

    let proxied = v2_source.to_string();
    let event = expect_event(&bastion, "connection", "v2 header", |e| {
        e["client"] == proxied
    });
    assert_eq!(
        event["sender"],
        local_of("v2 header and SSH banner in one write"),
        "{event}"
    );

    let probe = local_of("v2 LOCAL probe");
    let health = expect_event(&bastion, "health_check", "v2 LOCAL probe", |e| {
        e["sender"] == probe
    });
    assert_eq!(health["level"], "DEBUG", "{health}");
    let event = expect_event(&bastion, "connection", "v2 LOCAL probe", |e| {
        e["client"] == probe
    });
    assert_eq!(
        event["level"], "DEBUG",
        "a health check's connection is not audited at info: {event}"
    );

    // The server still serves: a plain ssh tunnel (no header).
    assert_tunnel_works(
        bastion.ssh(&dir.key.private),
        &echo,
        "a direct tunnel after the raw-socket cases",
    );
}

/// `optional` mode with `BASTION_PROXY_TRUSTED=10.0.0.0/8`: headers with a client address from
/// 127.0.0.1 are spoofing attempts (closed, `proxy_rejected` at WARN) while plain SSH and a LOCAL
/// health-check probe from it still work.
#[test]
fn optional_mode_refuses_headers_from_an_untrusted_sender() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "optional", "10.0.0.0/8").start();
    let destination = header_destination(&bastion);
    let source = SocketAddrV4::new(CLIENT, 40004);
    let untrusted = "not a trusted proxy";
    let observed = observe_all(
        bastion.addr(),
        vec![
            Case {
                name: "v2 header from an untrusted sender",
                send: concat(&[&v2_header(V2_PROXY, source, destination), CLIENT_BANNER]),
                expect: Expect::Rejected(untrusted, "WARN"),
            },
            Case {
                name: "v1 header from an untrusted sender",
                send: concat(&[&v1_header(source, destination), CLIENT_BANNER]),
                expect: Expect::Rejected(untrusted, "WARN"),
            },
            Case {
                // Loopback is the task itself (`bastion healthcheck`): LOCAL, which carries no
                // client address, is answered; the headers above, which do, are not.
                name: "v2 LOCAL probe from loopback, not a trusted proxy",
                send: v2_header(
                    V2_LOCAL,
                    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                    destination,
                ),
                expect: Expect::Banner,
            },
        ],
    );
    for seen in &observed {
        check(&bastion, seen);
    }
    let spoofed: Vec<Value> = bastion
        .events_named("connection")
        .into_iter()
        .filter(|e| field_ip(e, "client") == Some(IpAddr::V4(CLIENT)))
        .collect();
    assert!(
        spoofed.is_empty(),
        "a spoofed PROXY source was accepted: {spoofed:?}"
    );
    assert_tunnel_works(
        bastion.ssh(&dir.key.private),
        &echo,
        "plain ssh from the untrusted address",
    );
    expect_connection_from(&bastion, Ipv4Addr::LOCALHOST, None);
}

/// `required` mode with `BASTION_PROXY_TRUSTED=10.0.0.0/8`: 127.0.0.1 may not connect at all,
/// even with a well-formed header (closed, `proxy_rejected` at WARN); plain `ssh` and haproxy
/// (also 127.0.0.1) are refused too.
#[test]
fn required_mode_refuses_an_untrusted_sender() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = proxied_bastion(&dir, &echo, "required", "10.0.0.0/8").start();
    let destination = header_destination(&bastion);
    let observed = observe_all(
        bastion.addr(),
        vec![Case {
            name: "valid v2 header from an untrusted sender",
            send: concat(&[
                &v2_header(V2_PROXY, SocketAddrV4::new(CLIENT, 40005), destination),
                CLIENT_BANNER,
            ]),
            expect: Expect::Rejected("not a trusted proxy", "WARN"),
        }],
    );
    for seen in &observed {
        check(&bastion, seen);
    }
    let haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V2);
    assert_ssh_refused(
        haproxy.ssh(&dir.key.private, CLIENT),
        &echo,
        "ssh through an untrusted haproxy",
    );
    assert_ssh_refused(
        bastion.ssh(&dir.key.private),
        &echo,
        "plain ssh in required mode",
    );
    let rejected = poll_until(EVENT_WAIT, Duration::from_millis(50), || {
        let rejected = bastion.events_named("proxy_rejected");
        (rejected.len() >= 3).then_some(rejected)
    })
    .unwrap_or_else(|| bastion.events_named("proxy_rejected"));
    assert!(
        rejected.len() >= 3 && rejected.iter().all(|e| e["level"] == "WARN"),
        "expected a WARN `proxy_rejected` per connection: {rejected:?}"
    );
    let connections = bastion.events_named("connection");
    assert!(
        connections.is_empty(),
        "an untrusted sender got a connection: {connections:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Acceptance 4: a tunnel back into the bastion cannot forge a client

/// The client address a nested login claims in the PROXY header it writes itself.
const FORGED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

/// A relay on a free loopback port: its first connection goes to `to`, prefixed with `header`,
/// then bytes are copied both ways (what a user would run in front of an `ssh -L` port).
fn prefixing_relay(to: SocketAddr, header: Vec<u8>) -> SocketAddr {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a relay");
    let addr = listener.local_addr().expect("the relay's address");
    thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else {
            return;
        };
        let Ok(mut upstream) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
            return;
        };
        if upstream.write_all(&header).is_err() {
            return;
        }
        let (Ok(mut back_to), Ok(mut back_from)) = (client.try_clone(), upstream.try_clone())
        else {
            return;
        };
        thread::spawn(move || {
            let _ = io::copy(&mut back_from, &mut back_to);
            let _ = back_to.shutdown(std::net::Shutdown::Write);
        });
        let _ = io::copy(&mut client, &mut upstream);
        let _ = upstream.shutdown(std::net::Shutdown::Write);
    });
    addr
}

/// Behind a load balancer the bastion's own address is a trusted PROXY sender (the NLB's
/// subnets hold the task), and rules opening the VPC open the bastion's own `ip:port`. A user
/// logged in through haproxy forwards a port to the bastion's own listener, writes a PROXY v2
/// header claiming 203.0.113.9 into it, and logs in again over it with a key limited to
/// `from="203.0.113.0/24"`. The tunnel must be refused (`tunnel_refused` naming the bastion's
/// own listener, "administratively prohibited" for the user) and nothing may log in as, or be
/// seen from, 203.0.113.9.
#[test]
fn a_tunnel_back_into_the_bastion_cannot_forge_the_client_address() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let limited = generate_key(dir.path(), "forged_only");
    let keys = format!(
        "{}\nfrom=\"203.0.113.0/24\" {}\n",
        dir.key.public_line, limited.public_line
    );
    let bastion = BastionBuilder::new(&keys)
        .permit_open("127.0.0.0/8:*")
        .env("BASTION_PROXY_PROTOCOL", "required")
        .env("BASTION_PROXY_TRUSTED", "127.0.0.0/8")
        .env("BASTION_PROXY_TIMEOUT", PROXY_TIMEOUT_SETTING)
        .start();
    let haproxy = Haproxy::start(&dir, bastion.addr(), SendProxy::V2);
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, free_local_port()));
    let outer = haproxy
        .ssh(&dir.key.private, CLIENT)
        .arg("-N")
        .forward(&local.to_string(), &bastion.addr().to_string())
        .spawn(
            "ssh -N -L to the bastion itself, through haproxy",
            Input::Null,
        );
    let pid = outer.proc.pid();
    let listening = poll_until(READY, Duration::from_millis(20), || {
        listens_on(pid, Ipv4Addr::LOCALHOST, local.port()).then_some(())
    });
    assert!(
        listening.is_some(),
        "ssh -L did not listen: {}",
        outer.stderr()
    );

    let claimed = SocketAddrV4::new(FORGED, 40009);
    let header = v2_header(V2_PROXY, claimed, header_destination(&bastion));
    let relay = prefixing_relay(local, header);
    let nested = attempt(
        Ssh::new(&limited.private, relay.ip(), relay.port()),
        &echo.spec(),
        "through a forged client address\n",
    );

    let forged: Vec<Value> = bastion
        .events()
        .into_iter()
        .filter(|e| field_ip(e, "client") == Some(IpAddr::V4(FORGED)))
        .collect();
    assert!(
        forged.is_empty() && !nested.echoed,
        "a login through a tunnel to the bastion itself was seen as from {FORGED} (from=, client \
         rules and the audit defeated): {forged:#?}\nnested ssh: {nested:?}"
    );
    let destination = bastion.addr().to_string();
    let refused = expect_event(
        &bastion,
        "tunnel_refused",
        "the tunnel to the bastion",
        |e| e["destination"] == destination.as_str(),
    );
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the bastion's own listener"),
        "the refusal must name the bastion's own listener: {refused}"
    );
    assert_eq!(
        field_ip(&refused, "client"),
        Some(IpAddr::V4(CLIENT)),
        "{refused}"
    );
    assert!(
        outer.wait_stderr("administratively prohibited", EVENT_WAIT),
        "ssh -L did not report the refusal: {}",
        outer.stderr()
    );
}
