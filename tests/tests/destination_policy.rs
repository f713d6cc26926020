//! Where tunnels may go, as the client sees it. Instance metadata (169.254.169.254), the ECS
//! credentials endpoint (169.254.170.2), loopback by address or by name, public addresses and the
//! other built-in denials are refused with "administratively prohibited"; wildcard and name rules
//! do not lift a denial; an explicit `127.0.0.1:PORT` rule opens exactly that address and port;
//! without rules private ranges are allowed (an unreachable one says "connect failed").
//!
//! The link-local ranges and `fd00:ec2::/32` are refused in every spelling even under rules that
//! open every address, and a key whose `permitopen` names them is rejected.
//!
//! Every test that names an off-machine address first checks that it runs in a network namespace
//! with only loopback (`scripts/test.sh` arranges that), so a bug cannot send a packet anywhere.

use std::io::Read;
use std::time::Duration;

use e2e::*;

const READY: Duration = Duration::from_secs(20);
const PROHIBITED: &str = "administratively prohibited";

/// An `ssh -N` with one `-L` Unix socket per destination.
struct Forwards {
    ssh: SshProcess,
    sockets: Vec<(String, String)>,
}

fn forwards(dir: &TestDir, bastion: &Bastion, destinations: &[String]) -> Forwards {
    let mut client = bastion.ssh(&dir.key.private).arg("-N");
    let mut sockets = Vec::new();
    for (i, destination) in destinations.iter().enumerate() {
        let sock = dir.socket(&format!("f{i}.sock"));
        client = client.forward(&sock, destination);
        sockets.push((destination.clone(), sock));
    }
    Forwards {
        ssh: client.spawn("ssh -N -L ...", Input::Null),
        sockets,
    }
}

impl Forwards {
    /// Opens the tunnel for `destination`; returns once the client socket is closed (refused or
    /// failed) and the ssh stderr line that reported it.
    fn expect_closed(&mut self, destination: &str, expected: &str) -> String {
        let sock = self
            .sockets
            .iter()
            .find(|(d, _)| d == destination)
            .map(|(_, s)| s.clone())
            .expect("a destination that was forwarded");
        let before = self.ssh.stderr().matches("open failed").count();
        let mut stream = self.ssh.connect_unix(sock.as_ref(), READY);
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("setting a read timeout");
        let mut buf = [0u8; 64];
        let got = stream.read(&mut buf);
        assert!(
            matches!(got, Ok(0))
                || matches!(&got, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock),
            "the tunnel to {destination} was not closed: {got:?}"
        );
        let reported = self.ssh.proc.stderr().wait_until(READY, |bytes, _| {
            String::from_utf8_lossy(bytes)
                .matches("open failed")
                .count()
                > before
        });
        assert!(
            reported,
            "ssh reported no failure for {destination}; stderr:\n{}",
            self.ssh.stderr()
        );
        let line = self
            .ssh
            .stderr()
            .lines()
            .filter(|l| l.contains("open failed"))
            .nth(before)
            .unwrap_or_default()
            .to_string();
        assert!(
            line.contains(expected),
            "the tunnel to {destination} failed, but not with {expected:?}: {line}"
        );
        line
    }

    fn expect_echo(&mut self, destination: &str) {
        let sock = self
            .sockets
            .iter()
            .find(|(d, _)| d == destination)
            .map(|(_, s)| s.clone())
            .expect("a destination that was forwarded");
        let mut stream = self.ssh.connect_unix(sock.as_ref(), READY);
        echo_round_trip(
            &mut stream,
            b"permitted",
            &format!("tunnel to {destination}"),
        );
    }
}

#[test]
fn default_policy_refuses_metadata_credentials_loopback_and_public_addresses() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = dir.bastion().start();
    let e = echo.port();
    let destinations: Vec<String> = [
        "169.254.169.254:80".to_string(),
        "169.254.170.2:80".to_string(),
        "127.0.0.1:22".to_string(),
        "localhost:22".to_string(),
        format!("127.0.0.1:{e}"),
        format!("localhost:{e}"),
        format!("[::ffff:127.0.0.1]:{e}"),
        format!("0.0.0.0:{e}"),
        "[::1]:22".to_string(),
        "[fd00:ec2::254]:80".to_string(),
        "[fe80::1]:80".to_string(),
        "224.0.0.1:80".to_string(),
        "255.255.255.255:80".to_string(),
        "192.0.2.10:443".to_string(),
        "[2001:db8::10]:443".to_string(),
    ]
    .to_vec();
    let mut tunnels = forwards(&dir, &bastion, &destinations);
    for destination in &destinations {
        let line = tunnels.expect_closed(destination, PROHIBITED);
        println!("{destination}: {line}");
    }
    assert_eq!(echo.accepted(), 0, "a loopback destination was reached");
    assert!(
        tunnels.ssh.proc.try_status().is_none(),
        "refusals ended the ssh connection: {}",
        tunnels.ssh.stderr()
    );
}

#[test]
fn wildcard_and_name_rules_do_not_lift_the_built_in_denials() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let e = echo.port();
    let bastion = dir
        .bastion()
        .permit_open(format!(
            "0.0.0.0/0:*,[::/0]:*,localhost:{e},*.localhost:*,169.254.169.254.nip.io:80"
        ))
        .start();
    let destinations = vec![
        format!("127.0.0.1:{e}"),
        format!("localhost:{e}"),
        "169.254.169.254:80".to_string(),
        "169.254.170.2:80".to_string(),
        format!("[::ffff:127.0.0.1]:{e}"),
        "[::1]:22".to_string(),
    ];
    let mut tunnels = forwards(&dir, &bastion, &destinations);
    for destination in &destinations {
        tunnels.expect_closed(destination, PROHIBITED);
    }
    assert_eq!(echo.accepted(), 0, "a loopback destination was reached");
}

/// The ECS credentials endpoint (169.254.170.2) in every spelling the bastion knows (plain,
/// IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 and NAT64 local-use, 6to4, Teredo,
/// ISATAP), link-local `fe80::1` and EC2's `fd00:ec2::254`.
const OFF_LIMITS: [&str; 15] = [
    "169.254.170.2:80",
    "[::ffff:169.254.170.2]:80",
    "[::ffff:a9fe:aa02]:80",
    "[::a9fe:aa02]:80",
    "[::ffff:0:a9fe:aa02]:80",
    "[64:ff9b::a9fe:aa02]:80",
    "[64:ff9b:1::a9fe:aa02]:80",
    "[64:ff9b:1:a9fe:aa:200::]:80",
    "[2002:a9fe:aa02::1]:80",
    "[2001:0:a9fe:aa02::1]:80",
    "[2001:0:4136:e378:8000:63bf:5601:55fd]:80",
    "[2001:db8::5efe:a9fe:aa02]:80",
    "[fe80::1]:80",
    "[fd00:ec2::254]:80",
    "[fd00:ec2::23]:53",
];

/// Under the broadest rules the bastion accepts (every IPv4 and IPv6 address), each spelling is
/// refused before any connect ("administratively prohibited", not "connect failed"), and the
/// `tunnel_refused` event says why.
#[test]
fn off_limits_addresses_in_any_spelling_are_refused_under_the_broadest_rules() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let bastion = dir
        .bastion()
        .permit_open("0.0.0.0/0:*,[::/0]:*")
        .env("BASTION_CONNECT_TIMEOUT", "3s")
        .start();
    let destinations: Vec<String> = OFF_LIMITS.iter().map(|d| d.to_string()).collect();
    let mut tunnels = forwards(&dir, &bastion, &destinations);
    let mut through = Vec::new();
    for destination in &destinations {
        let line = tunnels.expect_closed(destination, "open failed");
        println!("{destination}: {line}");
        if !(line.contains(PROHIBITED) && line.contains("never forwards to it")) {
            through.push(format!("{destination}: {line}"));
        }
    }
    assert!(
        through.is_empty(),
        "spellings not refused by policy (they got as far as a connect):\n{}",
        through.join("\n")
    );
    let refused = bastion.events_named("tunnel_refused");
    for destination in &destinations {
        let asked = destination.replace(['[', ']'], "");
        let event = refused.iter().find(|e| e["destination"] == asked.as_str());
        let reason = event.and_then(|e| e["reason"].as_str()).unwrap_or_default();
        assert!(
            reason.contains("never forwards")
                && (reason.contains("link-local") || reason.contains("fd00:ec2::/32")),
            "{destination}: no tunnel_refused event saying why: {event:?}"
        );
    }
}

/// A key whose `permitopen` names the credentials endpoint (spelled in NAT64 here) is rejected
/// like a line with a malformed option (`key_line_rejected` says why) and cannot log in; the
/// other key of the file still works.
#[test]
fn a_key_permitopen_naming_an_off_limits_address_rejects_its_line() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bad = generate_key(dir.path(), "bad");
    let keys = format!(
        "permitopen=\"[64:ff9b::a9fe:aa02]:80\" {}\n{}\n",
        bad.public_line, dir.key.public_line
    );
    let bastion = BastionBuilder::new(&keys)
        .permit_open(format!("127.0.0.1:{},0.0.0.0/0:*", echo.port()))
        .start();
    let rejected = bastion.events_named("key_line_rejected");
    assert!(
        rejected.iter().any(|e| e["line"] == 1
            && e["error"]
                .as_str()
                .is_some_and(|m| m.contains("never forwards"))),
        "no key_line_rejected event for line 1 saying why: {rejected:?}"
    );
    let refused = attempt(bastion.ssh(&bad.private), &echo.spec(), "must not arrive\n");
    expect_login_refused(&refused, "the key whose permitopen names 169.254.170.2");
    let ok = attempt(bastion.ssh(&dir.key.private), &echo.spec(), "arrives\n");
    expect_moves_bytes(&ok, "the other key");
}

#[test]
fn an_explicit_rule_opens_exactly_that_address_and_port() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let allowed = TestServer::echo_v4();
    let other = TestServer::echo_v4();
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", allowed.port()))
        .start();
    let open = format!("127.0.0.1:{}", allowed.port());
    let other_port = format!("127.0.0.1:{}", other.port());
    let other_addr = format!("127.0.0.2:{}", allowed.port());
    let metadata = "169.254.169.254:80".to_string();
    let destinations = vec![
        open.clone(),
        other_port.clone(),
        other_addr.clone(),
        metadata.clone(),
    ];
    let mut tunnels = forwards(&dir, &bastion, &destinations);
    tunnels.expect_echo(&open);
    tunnels.expect_closed(&other_port, PROHIBITED);
    tunnels.expect_closed(&other_addr, PROHIBITED);
    tunnels.expect_closed(&metadata, PROHIBITED);
    tunnels.expect_echo(&open);
    assert_eq!(other.accepted(), 0, "the unlisted port was reached");
    assert_eq!(allowed.accepted(), 2, "the permitted destination");
}

#[test]
fn a_range_inside_loopback_lifts_the_loopback_denial_only() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = dir.bastion().permit_open("127.0.0.0/8:*").start();
    let open = format!("127.0.0.1:{}", echo.port());
    let destinations = vec![
        open.clone(),
        "169.254.170.2:80".to_string(),
        "10.1.2.3:5432".to_string(),
    ];
    let mut tunnels = forwards(&dir, &bastion, &destinations);
    tunnels.expect_echo(&open);
    tunnels.expect_closed("169.254.170.2:80", PROHIBITED);
    // With rules given, the default private ranges are no longer open.
    tunnels.expect_closed("10.1.2.3:5432", PROHIBITED);
}

#[test]
fn without_rules_private_ranges_are_allowed() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let bastion = dir.bastion().env("BASTION_CONNECT_TIMEOUT", "3s").start();
    // Nothing routes there in this namespace: the policy lets it through, the connect fails.
    let destinations = vec![
        "10.0.0.1:5432".to_string(),
        "172.16.5.4:6379".to_string(),
        "192.168.1.1:22".to_string(),
    ];
    let mut tunnels = forwards(&dir, &bastion, &destinations);
    for destination in &destinations {
        let line = tunnels.expect_closed(destination, "open failed");
        assert!(
            !line.contains(PROHIBITED),
            "{destination} is private and should be allowed by default: {line}"
        );
    }
}

#[test]
fn an_unreachable_permitted_destination_reports_connect_failed() {
    let dir = TestDir::new();
    let port = free_local_port();
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{port}"))
        .start();
    let destination = format!("127.0.0.1:{port}");
    let mut tunnels = forwards(&dir, &bastion, std::slice::from_ref(&destination));
    tunnels.expect_closed(&destination, "connect failed");
}
