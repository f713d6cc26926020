//! File descriptors and the server-wide caps, against the real static bastion: the soft open
//! file limit is raised to the hard one at start; under a small limit, authenticated users
//! opening tunnels until the budget is spent never starve `accept` (a new user still logs in
//! and is told why a tunnel is refused, and gets one as soon as one closes);
//! `BASTION_MAX_CONNECTIONS` refuses at accept, before any SSH byte, while the connections it
//! holds keep working, and a squatter at that cap gives way to a login.
//!
//! The bastion runs under `prlimit --nofile=SOFT:HARD` (util-linux). The tunnel users are the
//! paramiko peer (`tests/peers/russh_peer.py`, `channels` mode); the new user is the stock
//! OpenSSH client; squatters are raw TCP connections from other loopback addresses.

use std::net::{Ipv4Addr, TcpStream};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use e2e::*;

const EVENT_WAIT: Duration = Duration::from_secs(10);
const PEER_WAIT: Duration = Duration::from_secs(60);

fn addr(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 5, last)
}

/// The open file limits of process `pid` (soft, hard), from `/proc/PID/limits`.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/limits: {e}"));
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no `Max open files` in /proc/{pid}/limits:\n{text}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// Descriptors process `pid` holds now.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn number(event: &Value, field: &str) -> u64 {
    event[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {field:?} in {event}"))
}

/// Stop the bastion (SIGTERM) and return its last `limits` event (logged at shutdown).
fn limits_at_exit(bastion: &mut Bastion) -> Value {
    bastion.signal("TERM");
    assert!(
        bastion.wait_exit(Duration::from_secs(40)).is_some(),
        "no exit after SIGTERM"
    );
    bastion
        .events_named("limits")
        .pop()
        .expect("a limits event at shutdown")
}

/// The bastion's `fd_limit` event (logged at start).
fn fd_limit_event(bastion: &Bastion) -> Value {
    bastion
        .wait_event(EVENT_WAIT, |e| e["event"] == "fd_limit")
        .unwrap_or_else(|| {
            panic!(
                "no fd_limit event at start; stderr:\n{}",
                bastion.stderr_text()
            )
        })
}

/// A bastion permitting the echo destination to two users: the tunnel user (`dir.key`) and a
/// new user, under `nofile` = (soft, hard) when given.
fn start(
    dir: &TestDir,
    other: &KeyPair,
    echo: &TestServer,
    nofile: Option<(u64, u64)>,
    env: &[(&str, &str)],
) -> Bastion {
    let keys = format!("{}\n{}\n", dir.key.public_line, other.public_line);
    let mut builder = BastionBuilder::new(&keys)
        .permit_open(echo.spec())
        .env("BASTION_PER_SOURCE_PENALTIES", "no");
    for (key, value) in env {
        builder = builder.env(key, *value);
    }
    if let Some((soft, hard)) = nofile {
        builder = builder.nofile(soft, hard);
    }
    builder.start()
}

/// In the loopback-only namespace: a test directory (with the tunnel user's key), the new
/// user's key and the echo destination.
fn parts() -> (TestDir, KeyPair, TestServer) {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let other = generate_key(dir.path(), "new_user");
    (dir, other, TestServer::echo_v4())
}

fn peer(bastion: &Bastion, dir: &TestDir, echo: &TestServer, name: &str) -> Peer {
    let dest = echo.spec();
    let mut peer = Peer::spawn(
        bastion.addr(),
        &dir.key.private,
        "channels",
        &["--dest", &dest, "--reply-timeout", "30"],
        name,
    );
    peer.expect_event("ready", PEER_WAIT);
    peer
}

/// The soft limit is raised to the hard one, the `fd_limit` event says so, and the default
/// caps, which do not fit in 4096 descriptors with the reserve, are lowered to fit, at warn
/// level.
#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let dir = TestDir::new();
    let bastion = dir.bastion().nofile(256, 4096).start();
    let limits = open_file_limits(bastion.pid());
    println!("started with nofile 256:4096; /proc limits now {limits:?}");
    assert_eq!(limits, (4096, 4096), "the soft limit was not raised");
    let event = fd_limit_event(&bastion);
    println!("fd_limit: {event}");
    assert_eq!(
        (
            number(&event, "soft_before"),
            number(&event, "limit"),
            number(&event, "hard")
        ),
        (256, 4096, 4096),
        "{event}"
    );
    let needed = number(&event, "max_connections")
        + number(&event, "max_tunnels")
        + number(&event, "reserve");
    assert!(needed <= 4096, "the caps do not fit the limit: {event}");
    assert_eq!(
        event["level"], "WARN",
        "lowered caps are a warning: {event}"
    );
    let message = event["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("BASTION_MAX_CONNECTIONS=1024") && message.contains("lowered"),
        "the warning names the settings and what became of them: {event}"
    );
}

/// Under `nofile` 128:128, three authenticated connections ask for 120 tunnels, more than the
/// descriptors allow. The tunnels beyond `BASTION_MAX_TUNNELS` (lowered to fit) are refused
/// with an SSH open failure naming it; a new user still logs in (also through a flood of
/// squatters) and is told why its tunnel is refused; once five tunnels close, its tunnel works.
/// The bastion never runs out of descriptors (no `accept_error`, no "Too many open files").
#[test]
fn a_small_open_file_limit_never_starves_accept() {
    let (dir, other, echo) = parts();
    let env = [("BASTION_CHANNEL_OPEN_RATE", "0")];
    let mut bastion = start(&dir, &other, &echo, Some((128, 128)), &env);
    let mut peers: Vec<Peer> = (0..3)
        .map(|i| peer(&bastion, &dir, &echo, &format!("tunnel user {i}")))
        .collect();
    let (mut accepted, mut refused, mut unanswered) = (0, 0, 0);
    let mut holders = Vec::new();
    for (i, peer) in peers.iter_mut().enumerate() {
        let opened = peer.command("open direct-tcpip 40", PEER_WAIT);
        println!("40 tunnels asked: {opened}");
        if number(&opened, "accepted") > 0 {
            holders.push(i);
        }
        accepted += number(&opened, "accepted");
        refused += number(&opened, "refused");
        unanswered += number(&opened, "unanswered");
    }
    let fds = open_fds(bastion.pid());
    println!(
        "120 asked: {accepted} accepted, {refused} refused, {unanswered} unanswered; {fds} fds"
    );
    assert_eq!(unanswered, 0, "every open is answered");

    let refused_tunnel = |what: &str| {
        let run = attempt(bastion.ssh(&other.private), &echo.spec(), "new user\n");
        println!("{what}: {run:?}");
        assert!(
            run.stderr.contains("open failed") && run.stderr.contains("BASTION_MAX_TUNNELS"),
            "{what}: the new user should log in and be told BASTION_MAX_TUNNELS refused its \
             tunnel: {run:?}"
        );
    };
    refused_tunnel("a new user at the tunnel cap");
    let limits = fd_limit_event(&bastion);
    println!("fd_limit under 128:128: {limits}");
    assert_eq!(
        accepted,
        number(&limits, "max_tunnels"),
        "tunnels up to BASTION_MAX_TUNNELS"
    );
    // Twenty squatters from four addresses: at BASTION_MAX_CONNECTIONS each takes the place
    // of an older one; a second later the new user's login takes one's place in turn.
    let _squatters: Vec<TcpStream> = (0..20)
        .map(|n| squatter(addr(1 + (n % 4) as u8), bastion.addr(), false))
        .collect();
    thread::sleep(Duration::from_millis(1200));
    let fds = open_fds(bastion.pid());
    println!("with 20 squatters: {fds} fds");
    assert!(fds < 128, "{fds} descriptors open");
    refused_tunnel("a new user at the tunnel cap, with squatters");
    peers[0].command("close 5", PEER_WAIT);
    let run = attempt(bastion.ssh(&other.private), &echo.spec(), "new user\n");
    expect_moves_bytes(&run, "a new user's tunnel once five closed");
    for i in holders {
        let echoed = peers[i].command("echo", PEER_WAIT);
        assert_eq!(echoed["ok"], true, "a held tunnel still echoes: {echoed}");
    }
    let stderr = bastion.stderr_text();
    assert!(
        !stderr.contains("Too many open files") && bastion.events_named("accept_error").is_empty(),
        "the bastion ran out of descriptors:\n{stderr}"
    );
    let last = limits_at_exit(&mut bastion);
    println!("limits at exit: {last}");
    assert!(number(&last, "tunnels_full") >= refused, "{last}");
}

/// `BASTION_MAX_CONNECTIONS=3`: with three connections held, a fourth is closed at accept
/// before any SSH byte, with a `connection_dropped` event naming the setting, while the three
/// keep tunnelling; once one leaves, a new login works.
#[test]
fn bastion_max_connections_refuses_at_accept_while_the_others_keep_working() {
    let (dir, other, echo) = parts();
    let mut bastion = start(
        &dir,
        &other,
        &echo,
        None,
        &[("BASTION_MAX_CONNECTIONS", "3")],
    );
    let mut peers: Vec<Peer> = (0..3)
        .map(|i| peer(&bastion, &dir, &echo, &format!("holder {i}")))
        .collect();
    for peer in &mut peers {
        let opened = peer.command("open direct-tcpip 1", PEER_WAIT);
        assert_eq!(number(&opened, "accepted"), 1, "{opened}");
    }
    assert_eq!(probe(addr(9), bastion.addr()), Greeting::ClosedSilently);
    let run = attempt(bastion.ssh(&other.private), &echo.spec(), "fourth\n");
    println!("a fourth connection: {run:?}");
    assert!(!run.echoed && !run.status.success(), "{run:?}");
    let dropped = bastion.wait_event(EVENT_WAIT, |e| {
        e["event"] == "connection_dropped" && e["limit"] == "BASTION_MAX_CONNECTIONS"
    });
    println!("{dropped:?}");
    assert!(
        dropped.is_some(),
        "no connection_dropped for BASTION_MAX_CONNECTIONS"
    );
    for peer in &mut peers {
        let echoed = peer.command("echo", PEER_WAIT);
        assert_eq!(echoed["ok"], true, "a held connection's tunnel: {echoed}");
    }
    peers[0].send("quit");
    peers[0].expect_event("bye", PEER_WAIT);
    bastion
        .wait_event(EVENT_WAIT, |e| e["event"] == "connection_closed")
        .expect("the holder's connection closes");
    let run = attempt(bastion.ssh(&other.private), &echo.spec(), "fourth\n");
    expect_moves_bytes(&run, "a login once a connection left");
    let last = limits_at_exit(&mut bastion);
    assert!(number(&last, "connections_full") >= 2, "{last}");
}

/// `BASTION_MAX_CONNECTIONS=3` held by two logged-in users and a silent squatter: a login
/// takes the squatter's place (it is closed at once), as at `BASTION_MAX_STARTUPS`.
#[test]
fn a_squatter_at_bastion_max_connections_gives_way_to_a_login() {
    let (dir, other, echo) = parts();
    let bastion = start(
        &dir,
        &other,
        &echo,
        None,
        &[("BASTION_MAX_CONNECTIONS", "3")],
    );
    let _peers: Vec<Peer> = (0..2)
        .map(|i| peer(&bastion, &dir, &echo, &format!("holder {i}")))
        .collect();
    let mut squatter = squatter(addr(7), bastion.addr(), false);
    thread::sleep(Duration::from_millis(1200));
    let run = attempt(bastion.ssh(&other.private), &echo.spec(), "login\n");
    expect_moves_bytes(&run, "a login with a squatter in the last connection slot");
    let closed = closed_within(&mut squatter, Duration::from_millis(500));
    assert!(closed.is_some(), "the squatter was not evicted");
    let evicted = bastion.wait_event(EVENT_WAIT, |e| {
        e["event"] == "connection_closed"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("evicted"))
    });
    assert!(evicted.is_some(), "no eviction logged");
}
