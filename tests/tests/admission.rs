//! Admission under floods, with the stock OpenSSH client as the user and raw sockets from
//! other loopback addresses as the attackers: at `BASTION_MAX_STARTUPS` a login evicts a
//! squatter instead of being refused; each per-source limit refuses its source at accept
//! (before any SSH byte) while other sources connect; penalties refuse a source that failed,
//! spare exempt and allow-listed clients, and decay; the banner deadline closes silent
//! connections. Each test fails when its limit is removed.

use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use e2e::*;

const EVENT_WAIT: Duration = Duration::from_secs(10);
const USER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

fn addr(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 3, last)
}

/// A bastion permitting tunnels to `echo`, penalties off unless a test turns them on.
fn bastion_with(dir: &TestDir, echo: &TestServer, env: &[(&str, &str)]) -> Bastion {
    let mut builder = dir
        .bastion()
        .permit_open(echo.spec())
        .env("BASTION_PER_SOURCE_PENALTIES", "no");
    for (k, v) in env {
        builder = builder.env(k, *v);
    }
    builder.start()
}

/// `ssh -W` to the echo from `from`, with `key`.
fn login_from(
    bastion: &Bastion,
    key: &std::path::Path,
    echo: &TestServer,
    from: Ipv4Addr,
) -> Attempt {
    let ssh = bastion.ssh(key).arg("-b").arg(from.to_string());
    attempt(ssh, &echo.spec(), "admission-payload\n")
}

fn expect_dropped(bastion: &Bastion, limit: &str, client: &str) {
    let seen = bastion.wait_event(EVENT_WAIT, |e| {
        e["event"] == "connection_dropped"
            && e["limit"] == limit
            && e["client"].as_str().is_some_and(|c| c.starts_with(client))
    });
    assert!(
        seen.is_some(),
        "no connection_dropped event for {limit} from {client}; events: {:?}",
        bastion.events_named("connection_dropped")
    );
}

#[test]
fn squatters_filling_max_startups_do_not_lock_out_a_user() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = bastion_with(&dir, &echo, &[("BASTION_MAX_STARTUPS", "8")]);
    // Eight squatters from two addresses hold every slot: half silent, half banner-only.
    let mut squatters: Vec<TcpStream> = (0..8)
        .map(|n| squatter(addr(1 + (n % 2) as u8), bastion.addr(), n % 2 == 0))
        .collect();
    // Past 1 s of silence, a silent squatter ranks below a banner-only one (before that, both
    // are ranked by age alone).
    std::thread::sleep(Duration::from_millis(1200));
    for round in 0..3 {
        if round > 0 {
            // The last login freed its slot: a new squatter takes it, so the cap is full again.
            squatters.push(squatter(addr(3), bastion.addr(), false));
            std::thread::sleep(Duration::from_millis(300));
        }
        let login = login_from(&bastion, &dir.key.private, &echo, USER);
        expect_moves_bytes(
            &login,
            &format!("login {round} with every slot held by squatters"),
        );
    }
    // The evicted squatters are closed, silent ones first.
    let closed = squatters
        .iter_mut()
        .filter_map(|s| closed_within(s, Duration::from_millis(300)))
        .count();
    assert!(
        closed >= 3,
        "three logins should have evicted three squatters, saw {closed} closed"
    );
    let evicted = bastion
        .events_named("connection_closed")
        .into_iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("evicted (no SSH identification"))
        })
        .count();
    assert!(
        evicted >= 3,
        "closes with an eviction reason: {:?}",
        bastion.events_named("connection_closed")
    );
}

#[test]
fn a_source_at_its_unauthenticated_limit_is_refused_before_any_byte() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let mut bastion = bastion_with(&dir, &echo, &[("BASTION_PER_SOURCE_MAX_STARTUPS", "3")]);
    let _held: Vec<TcpStream> = (0..3)
        .map(|_| squatter(addr(1), bastion.addr(), true))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(probe(addr(1), bastion.addr()), Greeting::ClosedSilently);
    assert!(
        matches!(probe(addr(2), bastion.addr()), Greeting::Banner(_)),
        "another source is served"
    );
    expect_dropped(&bastion, "BASTION_PER_SOURCE_MAX_STARTUPS", "127.0.3.1");
    // A login from the squatters' own address still works once a slot is free.
    drop(_held);
    std::thread::sleep(Duration::from_millis(300));
    expect_moves_bytes(
        &login_from(&bastion, &dir.key.private, &echo, addr(1)),
        "after the squatters left",
    );
    // Every refusal is counted in the `limits` event (once a minute, and at shutdown).
    bastion.signal("TERM");
    assert!(
        bastion.wait_exit(Duration::from_secs(30)).is_some(),
        "no exit after SIGTERM"
    );
    let limits = bastion.events_named("limits");
    let last = limits.last().expect("a limits event at shutdown");
    assert!(last["source_startups"].as_u64() >= Some(1), "{last}");
    assert_eq!(last["evicted"], 0, "{last}");
}

#[test]
fn a_source_at_its_connection_limit_is_refused_while_others_log_in() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = bastion_with(&dir, &echo, &[("BASTION_PER_SOURCE_MAX_CONNECTIONS", "2")]);
    let held: Vec<SshProcess> = (0..2)
        .map(|n| {
            let p = bastion
                .ssh(&dir.key.private)
                .arg("-b")
                .arg(addr(5).to_string())
                .arg("-N")
                .spawn(&format!("held ssh -N {n}"), Input::Null);
            let logged_in = poll_until(EVENT_WAIT, Duration::from_millis(50), || {
                let auth = bastion.events_named("auth");
                (auth.iter().filter(|a| a["result"] == "accepted").count() > n).then_some(())
            });
            assert!(
                logged_in.is_some(),
                "held login {n} did not authenticate: {}",
                p.proc.stderr().text()
            );
            p
        })
        .collect();
    let third = login_from(&bastion, &dir.key.private, &echo, addr(5));
    assert!(
        !third.echoed && !third.status.success(),
        "a third connection from the source: {third:?}"
    );
    expect_dropped(&bastion, "BASTION_PER_SOURCE_MAX_CONNECTIONS", "127.0.3.5");
    expect_moves_bytes(
        &login_from(&bastion, &dir.key.private, &echo, addr(6)),
        "another source",
    );
    drop(held);
}

#[test]
fn new_connections_per_second_per_source_are_limited() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = bastion_with(&dir, &echo, &[("BASTION_PER_SOURCE_CONNECTION_RATE", "5")]);
    let started = Instant::now();
    let mut held = Vec::new();
    let mut greeted = 0;
    for _ in 0..20 {
        let mut s = connect_from(addr(7), bastion.addr());
        if matches!(
            greeting(&mut s, Duration::from_secs(2)),
            Greeting::Banner(_)
        ) {
            greeted += 1;
        }
        held.push(s);
    }
    let burst_took = started.elapsed();
    assert!(
        (5..=7).contains(&greeted),
        "5 per second: {greeted} of 20 connections in {burst_took:?} were served"
    );
    assert!(
        matches!(probe(addr(8), bastion.addr()), Greeting::Banner(_)),
        "another source is served"
    );
    expect_dropped(&bastion, "BASTION_PER_SOURCE_CONNECTION_RATE", "127.0.3.7");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        matches!(probe(addr(7), bastion.addr()), Greeting::Banner(_)),
        "the rate refills"
    );
}

#[test]
fn failed_logins_penalise_their_source_at_accept_and_the_penalty_decays() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let stranger = generate_key(dir.path(), "stranger");
    let bastion = bastion_with(
        &dir,
        &echo,
        &[
            ("BASTION_PER_SOURCE_PENALTIES", "authfail:3s,min:4s,max:6s"),
            ("BASTION_PER_SOURCE_PENALTY_EXEMPT", "127.0.3.20,allowed"),
            ("BASTION_ALLOW_CLIENTS", "127.0.3.21/32"),
        ],
    );
    for from in [addr(10), addr(20), addr(21)] {
        for n in 0..2 {
            let failed = login_from(&bastion, &stranger.private, &echo, from);
            expect_login_refused(&failed, &format!("unknown key {n} from {from}"));
        }
    }
    let penalty = bastion.wait_event(EVENT_WAIT, |e| e["event"] == "penalty");
    // Two failures in quick succession: 6 s of penalty (3 s each, less what decayed between
    // them), over the 4 s minimum.
    let penalty = penalty.expect("a penalty event after two failed logins");
    assert_eq!(penalty["client"], "127.0.3.10", "{penalty}");
    assert_eq!(penalty["offence"], "authfail", "{penalty}");
    let penalised_at = Instant::now();
    // The penalised source is refused before any SSH byte, even with the right key...
    assert_eq!(probe(addr(10), bastion.addr()), Greeting::ClosedSilently);
    let refused = login_from(&bastion, &dir.key.private, &echo, addr(10));
    assert!(
        !refused.echoed && !refused.stderr.contains(DENIED),
        "{refused:?}"
    );
    expect_dropped(&bastion, "BASTION_PER_SOURCE_PENALTIES", "127.0.3.10");
    // ...while other sources, the exempt one and the allow-listed one log in.
    for from in [addr(11), addr(20), addr(21)] {
        expect_moves_bytes(
            &login_from(&bastion, &dir.key.private, &echo, from),
            &format!("from {from}"),
        );
    }
    assert_eq!(
        bastion.events_named("penalty").len(),
        1,
        "only 127.0.3.10 was penalised"
    );
    // 4 s of penalty (capped at 5 s): it runs out.
    let wait =
        Duration::from_secs(5).saturating_sub(penalised_at.elapsed()) + Duration::from_millis(300);
    std::thread::sleep(wait);
    expect_moves_bytes(
        &login_from(&bastion, &dir.key.private, &echo, addr(10)),
        "after the penalty ran out",
    );
}

#[test]
fn squatting_sources_earn_penalties_from_evictions_and_timeouts() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = bastion_with(
        &dir,
        &echo,
        &[
            ("BASTION_PER_SOURCE_PENALTIES", "noauth:1s,min:3s,max:30s"),
            ("BASTION_BANNER_TIMEOUT", "500ms"),
        ],
    );
    // Silent connections are closed at the banner deadline; each costs its source 1 s.
    let mut silent: Vec<TcpStream> = (0..4)
        .map(|_| squatter(addr(30), bastion.addr(), false))
        .collect();
    for s in silent.iter_mut() {
        assert!(
            closed_within(s, Duration::from_secs(5)).is_some(),
            "a silent connection outlived the banner deadline"
        );
    }
    let penalty = bastion.wait_event(EVENT_WAIT, |e| e["event"] == "penalty");
    assert_eq!(
        penalty.expect("a penalty for the silent source")["offence"],
        "noauth"
    );
    assert_eq!(probe(addr(30), bastion.addr()), Greeting::ClosedSilently);
    expect_moves_bytes(
        &login_from(&bastion, &dir.key.private, &echo, USER),
        "the user",
    );
}

#[test]
fn the_banner_deadline_closes_silent_connections_only() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = bastion_with(&dir, &echo, &[("BASTION_BANNER_TIMEOUT", "1s")]);
    let mut silent = squatter(addr(40), bastion.addr(), false);
    let mut talker = squatter(addr(41), bastion.addr(), true);
    let closed = closed_within(&mut silent, Duration::from_secs(4));
    let closed = closed.expect("a silent connection outlived BASTION_BANNER_TIMEOUT=1s by 3 s");
    assert!(
        closed >= Duration::from_millis(800),
        "closed too early: {closed:?}"
    );
    assert!(
        closed_within(&mut talker, Duration::from_secs(2)).is_none(),
        "a connection that sent its identification was closed by the banner deadline"
    );
    let event = bastion.wait_event(EVENT_WAIT, |e| e["event"] == "banner_timeout");
    assert!(event.is_some(), "no banner_timeout event");
    assert_eq!(bastion.events_named("banner_timeout").len(), 1);
}
