//! Name lookups of tunnel destinations when a DNS server never answers (issue 13, finding 3):
//! a few authenticated connections open hundreds of tunnels to names only that silent server
//! could answer, and meanwhile another user's tunnels, to an IP literal, to a name in
//! `/etc/hosts` and to a name the DNS server does answer, must each open within a couple of
//! seconds; the attacker's tunnels are refused with a reason once the lookup deadline passes,
//! and the bastion's thread count stays small.
//!
//! Before the bounded resolver, each lookup held a thread of tokio's blocking pool for glibc's
//! whole retry time (here `timeout:10 attempts:2`, longer than the test, as a server that
//! never answers makes it), the 3 s deadline abandoned only the future, the bastion grew to
//! 512 threads, and the other user's name lookups queued behind the attacker's until they
//! timed out. Now the deadline, not resolv.conf's retry time, ends a lookup.
//!
//! The bastion runs in its own mount namespace with a test `resolv.conf` (the silent server
//! on 127.0.0.53) and `hosts` bind-mounted over `/etc`: root only, as `scripts/test.sh` runs.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use e2e::*;

/// Attacking connections, rounds of channel opens each, opens per round (the default
/// `BASTION_CHANNEL_OPEN_RATE` burst).
const ATTACKERS: usize = 4;
const ROUNDS: usize = 4;
const BURST: usize = 50;
/// `BASTION_CONNECT_TIMEOUT` in this test: the deadline of a lookup, slot wait included.
const DEADLINE: &str = "3s";
/// How long each of the other user's tunnels may take to carry its bytes.
const OTHER_USER_BUDGET: Duration = Duration::from_secs(2);
/// The bastion's threads: tokio's workers and a few blocking-pool threads for file reads.
const THREAD_BUDGET: u64 = 32;
/// When the other user tries, counted from the first round: the third round is under way and
/// the first round's lookups (had they held threads) would still be running.
const OTHER_USER_AFTER: Duration = Duration::from_secs(7);

const DNS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);

#[test]
fn a_dns_server_that_never_answers_cannot_stall_other_users_tunnels() {
    require_root("the name-lookup tests (mount namespace, bind mounts, port 53)");
    require_loopback_only_netns();
    let dir = TestDir::new();
    let other = generate_key(dir.path(), "other_user");
    let echo = TestServer::echo_v4();
    let dns = DnsServer::start(DNS_IP, &[("answered.test", Ipv4Addr::LOCALHOST)]);
    let keys = format!("{}\n{}\n", dir.key.public_line, other.public_line);
    let bastion = with_resolver_files(
        BastionBuilder::new(&keys),
        dir.path(),
        &format!("nameserver {}\noptions timeout:10 attempts:2\n", dns.ip()),
        "127.0.0.1 localhost\n127.0.0.1 hosts-file.test\n",
    )
    .permit_open(format!("127.0.0.1:{}", echo.port()))
    .env("BASTION_CONNECT_TIMEOUT", DEADLINE)
    .start();
    let pid = bastion.pid();
    let baseline = (threads(pid), open_fds(pid));
    let mut peers = attackers(&bastion, &dir);
    let sampler = Sampler::start(pid);
    let started = Instant::now();
    for peer in &mut peers {
        for _ in 0..ROUNDS {
            peer.send(&format!("open direct-tcpip {BURST}"));
        }
    }
    thread::sleep(OTHER_USER_AFTER);
    let during = (threads(pid), open_fds(pid));
    let tries = other_user_tunnels(&bastion, &other, echo.port());
    let rounds = attack_results(&mut peers);
    let attack_took = started.elapsed();
    let peak = sampler.stop();
    thread::sleep(Duration::from_millis(500));
    let after = (threads(pid), open_fds(pid));
    println!(
        "bastion threads/fds: {baseline:?} before, {during:?} during the attack, peaks {peak:?}, \
         {after:?} after; attack of {} lookups took {attack_took:?}; the silent server got {} \
         queries, answered {}",
        ATTACKERS * ROUNDS * BURST,
        dns.queries(),
        dns.answered()
    );
    for (destination, took, run) in &tries {
        println!("other user's tunnel to {destination}: {took:?}, {run:?}");
    }
    check_other_user(&tries);
    check_attack(&bastion, &rounds);
    assert!(
        peak.0 <= THREAD_BUDGET,
        "the bastion grew to {} threads during the attack (budget {THREAD_BUDGET})",
        peak.0
    );
    // 8 lookups per connection, each up to 6 UDP sockets (A and AAAA, sent up to 3 times),
    // plus the connections themselves.
    let socket_budget = baseline.1 as u64 + (ATTACKERS * 8 * 6) as u64 + 32;
    assert!(
        peak.1 <= socket_budget,
        "the bastion held {} file descriptors during the attack (budget {socket_budget})",
        peak.1
    );
    assert!(
        after.1 <= baseline.1 + 16,
        "the lookups' sockets were not freed: {} fds after the attack, {} before",
        after.1,
        baseline.1
    );
}

/// The attacking paramiko peers, logged in, each channel aimed at its own silent name.
fn attackers(bastion: &Bastion, dir: &TestDir) -> Vec<Peer> {
    let mut peers: Vec<Peer> = (0..ATTACKERS)
        .map(|i| {
            // A name per channel: identical queries in flight would share one lookup.
            let dest = format!("c{{n}}.a{i}.silent.test:80");
            Peer::spawn(
                bastion.addr(),
                &dir.key.private,
                "channels",
                &["--dest", &dest, "--reply-timeout", "60"],
                &format!("attacker {i}"),
            )
        })
        .collect();
    for peer in &mut peers {
        peer.expect_event("ready", Duration::from_secs(30));
    }
    peers
}

/// The other user's `ssh -W` to the echo server by IP literal, by `/etc/hosts` name and by a
/// name the DNS server answers: how long each took and what it achieved.
fn other_user_tunnels(
    bastion: &Bastion,
    other: &KeyPair,
    port: u16,
) -> Vec<(String, Duration, Attempt)> {
    ["127.0.0.1", "hosts-file.test", "answered.test"]
        .iter()
        .map(|host| {
            let destination = format!("{host}:{port}");
            let started = Instant::now();
            let run = attempt(bastion.ssh(&other.private), &destination, "other user\n");
            (destination, started.elapsed(), run)
        })
        .collect()
}

fn check_other_user(tries: &[(String, Duration, Attempt)]) {
    for (destination, took, run) in tries {
        expect_moves_bytes(run, &format!("the other user's tunnel to {destination}"));
        assert!(
            *took < OTHER_USER_BUDGET,
            "the other user's tunnel to {destination} took {took:?} (budget \
             {OTHER_USER_BUDGET:?})"
        );
    }
}

/// Every round's `opened` report, per attacker.
fn attack_results(peers: &mut [Peer]) -> Vec<Value> {
    let mut rounds = Vec::new();
    for peer in peers {
        for _ in 0..ROUNDS {
            rounds.push(peer.expect_event("opened", Duration::from_secs(120)));
        }
    }
    rounds
}

/// Every attacking open was refused (none left unanswered), each with a lookup reason.
fn check_attack(bastion: &Bastion, rounds: &[Value]) {
    for round in rounds {
        assert_eq!(round["accepted"], 0, "an attacker's tunnel opened: {round}");
        assert_eq!(
            round["unanswered"], 0,
            "attacker opens left unanswered: {round}"
        );
        assert_eq!(
            round["refused"], BURST,
            "attacker opens not refused: {round}"
        );
    }
    let reasons: Vec<String> = bastion
        .events_named("tunnel_refused")
        .iter()
        .filter(|e| {
            e["destination"]
                .as_str()
                .is_some_and(|d| d.ends_with(".silent.test:80"))
        })
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    let no_answer = reasons
        .iter()
        .filter(|r| r.contains(&format!("no answer within {DEADLINE}")))
        .count();
    let no_slot = reasons
        .iter()
        .filter(|r| r.contains(&format!("no lookup slot free within {DEADLINE}")))
        .count();
    println!(
        "attacker refusals: {} logged, {no_answer} \"no answer within {DEADLINE}\", {no_slot} \
         \"no lookup slot free\"; e.g. {:?}",
        reasons.len(),
        reasons.iter().find(|r| r.contains("slot"))
    );
    assert_eq!(reasons.len(), ATTACKERS * ROUNDS * BURST, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|r| r.starts_with("cannot resolve c") && r.contains(".silent.test: ")),
        "a refusal without its lookup reason: {reasons:?}"
    );
    assert!(
        no_answer > 0 && no_answer + no_slot == reasons.len(),
        "{reasons:?}"
    );
}

/// Samples the bastion's thread and file descriptor counts every 20 ms and keeps the peaks.
struct Sampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<[AtomicU64; 2]>,
    thread: thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let (s, p) = (stop.clone(), peaks.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p[0].fetch_max(threads(pid), Ordering::SeqCst);
                p[1].fetch_max(open_fds(pid) as u64, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler {
            stop,
            peaks,
            thread,
        }
    }

    /// The peak thread and file descriptor counts.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        (
            self.peaks[0].load(Ordering::SeqCst),
            self.peaks[1].load(Ordering::SeqCst),
        )
    }
}

/// `Threads:` of /proc/PID/status.
fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process (its sockets included).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}
