//! russh's own attack surface, against the real static bastion: a global-request flood and a
//! channel-open flood from an authenticated paramiko peer, a key re-exchange that never
//! completes, and one regression check per published russh advisory that can be reached over
//! the wire (strict kex, oversized packet and field lengths, pre-banner input, bad X25519
//! values, weak negotiations, window-adjust overflow, a zero maximum packet size).
//!
//! What every test checks is what a user would notice: the bastion stays up with bounded
//! memory, another user's tunnel opened during the attack works within seconds, and the
//! attacking connection is refused or closed as documented. The attackers are the Python peers
//! in `tests/peers/` (paramiko, or raw protocol bytes); the victim is the stock OpenSSH client.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use e2e::*;

/// How much a flood may grow the bastion's resident memory.
const MEMORY_BUDGET_KIB: u64 = 48 * 1024;
const PEER_TIMEOUT: Duration = Duration::from_secs(120);

/// A bastion permitting one echo destination, with the attacker and an innocent other user.
type Setup = Attack;

fn start(settings: &[(&str, &str)]) -> Setup {
    Attack::start(&[], settings)
}

/// The bastion is still running, nothing panicked, and its peak memory grew by less than
/// [`MEMORY_BUDGET_KIB`].
trait Bounded {
    fn bounded(&mut self, what: &str) -> u64;
}

impl Bounded for Attack {
    fn bounded(&mut self, what: &str) -> u64 {
        let status = self.bastion.process().try_status();
        assert!(
            status.is_none(),
            "{what}: the bastion exited ({status:?}); stderr:\n{}",
            self.bastion.stderr_text()
        );
        let grown = self.peak_growth_kib(what);
        assert!(
            grown < MEMORY_BUDGET_KIB,
            "{what}: the bastion's peak RSS grew by {grown} KiB (budget {MEMORY_BUDGET_KIB} KiB)"
        );
        let panics = self.bastion.stderr_text().matches("panicked").count();
        assert_eq!(panics, 0, "{what}: a task of the bastion panicked");
        grown
    }
}

fn count(event: &Value, field: &str) -> u64 {
    event[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {field:?} in {event}"))
}

// ----- floods --------------------------------------------------------------------------------

/// 50,000 global requests with want-reply, half of them unknown names (russh answers those
/// itself with REQUEST_FAILURE; no handler of ours is called, so the bastion cannot count or
/// log them) and half `tcpip-forward` (refused by the bastion; only the first 20 refusals of a
/// connection are logged, so the flood does not become a log flood). Every one is answered,
/// memory stays bounded, another user's tunnel works meanwhile.
#[test]
fn a_global_request_flood_is_answered_with_bounded_memory() {
    let mut setup = start(&[]);
    let mut peer = setup.peer("global-flood", &["--count", "50000"]);
    peer.expect_event("ready", Duration::from_secs(30));
    peer.expect_event("flooding", Duration::from_secs(30));
    let took = setup.other_user_tunnel_works("a global-request flood");
    let done = peer.expect_event("done", PEER_TIMEOUT);
    println!("global-request flood: {done}; other user's tunnel took {took:?}");
    assert_eq!(
        count(&done, "answered"),
        50_000,
        "unanswered requests: {done}"
    );
    assert_eq!(
        count(&done, "failure"),
        50_000,
        "a request succeeded: {done}"
    );
    assert_eq!(done["active"], true, "the flooding connection died: {done}");
    setup.bounded("global-request flood");
    let logged = setup
        .bastion
        .events_named("request_refused")
        .iter()
        .filter(|e| e["kind"] == "tcpip-forward")
        .count();
    println!("global-request flood: {logged} request_refused events for tcpip-forward");
    assert!(
        (1..=20).contains(&logged),
        "refusals are logged, but at most 20 per connection: {logged}"
    );
}

/// `BASTION_MAX_CHANNELS=20`: twenty channels (session and tunnels together) open at once, the
/// twenty-first of either kind is refused with an SSH open failure, and closing one lets a new
/// one open. The connection and its tunnels keep working throughout.
#[test]
fn channels_beyond_bastion_max_channels_are_refused_until_one_closes() {
    let mut setup = start(&[("BASTION_MAX_CHANNELS", "20")]);
    let dest = setup.echo.spec();
    let mut peer = setup.peer("channels", &["--dest", &dest, "--reply-timeout", "30"]);
    peer.expect_event("ready", Duration::from_secs(30));
    let t = Duration::from_secs(60);
    let first = peer.command("open mixed 20", t);
    assert_eq!(
        count(&first, "accepted"),
        20,
        "20 channels at once: {first}"
    );
    let session = peer.command("open session 1", t);
    assert_eq!(
        (count(&session, "accepted"), count(&session, "refused")),
        (0, 1),
        "a 21st (session) channel: {session}"
    );
    let tunnel = peer.command("open direct-tcpip 1", t);
    assert_eq!(
        (count(&tunnel, "accepted"), count(&tunnel, "refused")),
        (0, 1),
        "a 21st (tunnel) channel: {tunnel}"
    );
    let echoed = peer.command("echo", t);
    assert_eq!(
        echoed["ok"], true,
        "a held tunnel after the refusals: {echoed}"
    );
    peer.command("close 1", t);
    let again = peer.command("open session 1", t);
    assert_eq!(
        count(&again, "accepted"),
        1,
        "a channel after one was closed: {again}"
    );
    assert_eq!(again["active"], true, "the connection died: {again}");
    setup.other_user_tunnel_works("a connection at its channel cap");
    setup.bounded("channel cap");
}

/// `BASTION_MAX_SESSIONS` (default 10, sshd's `MaxSessions`): ten session channels open at
/// once, the eleventh is refused with an SSH open failure (logged once, naming the setting)
/// while tunnels still open on the same connection, and closing one lets a new one open. With
/// `BASTION_MAX_CONNECTIONS`, this bounds the idle session channels of the whole bastion.
#[test]
fn session_channels_beyond_bastion_max_sessions_are_refused() {
    let mut setup = start(&[]);
    let dest = setup.echo.spec();
    let mut peer = setup.peer("channels", &["--dest", &dest, "--reply-timeout", "30"]);
    peer.expect_event("ready", Duration::from_secs(30));
    let t = Duration::from_secs(60);
    let sessions = peer.command("open session 15", t);
    println!("15 session channels asked: {sessions}");
    assert_eq!(
        (count(&sessions, "accepted"), count(&sessions, "refused")),
        (10, 5),
        "session channels beyond the default BASTION_MAX_SESSIONS=10: {sessions}"
    );
    let tunnel = peer.command("open direct-tcpip 1", t);
    assert_eq!(
        count(&tunnel, "accepted"),
        1,
        "a tunnel beside them: {tunnel}"
    );
    peer.command("close 1", t);
    let again = peer.command("open session 1", t);
    assert_eq!(count(&again, "accepted"), 1, "after one closed: {again}");
    let logged: Vec<_> = setup
        .bastion
        .events_named("tunnel_refused")
        .into_iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("BASTION_MAX_SESSIONS"))
        })
        .collect();
    assert_eq!(logged.len(), 1, "logged once per connection: {logged:?}");
    setup.bounded("session cap");
}

/// `BASTION_CHANNEL_OPEN_RATE=10`: a burst of 100 opens gets about the bucket's 10 accepted and
/// the rest refused; a second later about 10 more are accepted. (`BASTION_MAX_SESSIONS` is
/// raised so that only the rate refuses these session channels.)
#[test]
fn channel_opens_beyond_bastion_channel_open_rate_are_refused() {
    let mut setup = start(&[
        ("BASTION_CHANNEL_OPEN_RATE", "10"),
        ("BASTION_MAX_SESSIONS", "256"),
    ]);
    let dest = setup.echo.spec();
    let mut peer = setup.peer("channels", &["--dest", &dest, "--reply-timeout", "30"]);
    peer.expect_event("ready", Duration::from_secs(30));
    let t = Duration::from_secs(60);
    let burst = peer.command("open session 100", t);
    println!("burst of 100 at 10/s: {burst}");
    let accepted = count(&burst, "accepted");
    assert!(
        (8..=14).contains(&accepted),
        "a burst of 100 opens at BASTION_CHANNEL_OPEN_RATE=10 had {accepted} accepted: {burst}"
    );
    assert_eq!(
        count(&burst, "refused"),
        100 - accepted,
        "every other open must be refused, not left unanswered: {burst}"
    );
    thread::sleep(Duration::from_millis(1100));
    let later = peer.command("open session 20", t);
    println!("20 more a second later: {later}");
    let accepted = count(&later, "accepted");
    assert!(
        (7..=14).contains(&accepted),
        "a second later, 20 opens had {accepted} accepted: {later}"
    );
    assert_eq!(later["active"], true, "the connection died: {later}");
    setup.bounded("channel open rate");
}

/// 5,000 channel opens (sessions and tunnels to a permitted echo destination) as fast as the
/// peer can send them, none closed, with the default limits (256 channels, 50 opens/s):
/// no more than the caps are accepted, the rest are refused (not left unanswered), memory stays
/// bounded, the attacker's own tunnel still echoes and another user's tunnel works meanwhile.
#[test]
fn a_channel_open_flood_is_capped_with_bounded_memory() {
    let mut setup = start(&[]);
    let dest = setup.echo.spec();
    let mut peer = setup.peer("channels", &["--dest", &dest, "--reply-timeout", "60"]);
    peer.expect_event("ready", Duration::from_secs(30));
    peer.command("open direct-tcpip 1", Duration::from_secs(30));
    peer.send("open mixed 5000");
    thread::sleep(Duration::from_millis(300));
    let took = setup.other_user_tunnel_works("a channel-open flood");
    let flood = peer.expect_event("opened", PEER_TIMEOUT);
    println!("channel-open flood: {flood}; other user's tunnel took {took:?}");
    let accepted = count(&flood, "accepted");
    let seconds = flood["seconds"].as_f64().unwrap_or(0.0);
    assert_eq!(count(&flood, "unanswered"), 0, "unanswered opens: {flood}");
    assert_eq!(
        accepted + count(&flood, "refused"),
        5000,
        "opens neither accepted nor refused: {flood}"
    );
    assert!(
        accepted < 256,
        "{accepted} channels accepted at once (BASTION_MAX_CHANNELS default 256, one already \
         open): {flood}"
    );
    let rate_allows = 50 + (50.0 * seconds.ceil()) as u64;
    assert!(
        accepted <= rate_allows,
        "{accepted} opens accepted in {seconds} s (BASTION_CHANNEL_OPEN_RATE default 50/s allows \
         {rate_allows}): {flood}"
    );
    assert_eq!(
        flood["active"], true,
        "the flooding connection died: {flood}"
    );
    let echoed = peer.command("echo", Duration::from_secs(30));
    assert_eq!(
        echoed["ok"], true,
        "the attacker's own tunnel after the flood: {echoed}"
    );
    setup.bounded("channel-open flood");
}

// ----- a key re-exchange that never completes ------------------------------------------------

/// With a tunnel open, the peer sends KEXINIT and never the key exchange's next message, and
/// then says nothing. russh's keepalive counter runs during a key exchange: with
/// `BASTION_KEEPALIVE_INTERVAL=1s` the connection is closed after 4 unanswered intervals
/// (keepalive_max 3), ~4 s; at the default 30 s that is ~2 minutes. Meanwhile others are fine.
#[test]
fn a_rekey_that_never_completes_is_closed_by_keepalives() {
    let mut setup = start(&[("BASTION_KEEPALIVE_INTERVAL", "1s")]);
    let dest = setup.echo.spec();
    let mut peer = setup.peer("stall-rekey", &["--dest", &dest, "--hold", "30"]);
    let tunnel = peer.expect_event("tunnel", Duration::from_secs(30));
    assert_eq!(tunnel["ok"], true, "the tunnel before the stall: {tunnel}");
    let stalled = peer.expect_event("stalled", Duration::from_secs(30));
    assert_eq!(
        stalled["server_kexinit"], true,
        "the bastion did not answer the KEXINIT: {stalled}"
    );
    setup.other_user_tunnel_works("a stalled rekey");
    let result = peer.expect_event("result", Duration::from_secs(60));
    println!("silent stalled rekey: {result}");
    assert_eq!(
        result["closed"], true,
        "the stalled connection was never closed: {result}"
    );
    let seconds = result["seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(
        seconds <= 8.0,
        "the stalled connection was closed after {seconds} s (expected ~4 s: 4 keepalive \
         intervals of 1 s)"
    );
    let closed = setup.bastion.wait_event(Duration::from_secs(5), |e| {
        e["event"] == "connection_closed"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("keepalive"))
    });
    assert!(
        closed.is_some(),
        "no connection_closed event naming keepalives; events: {:?}",
        setup.bastion.events_named("connection_closed")
    );
    setup.bounded("stalled rekey");
}

/// The same stall, but the peer sends SSH_MSG_IGNORE every 0.5 s (legal during a key
/// exchange). russh counts any received packet as a keepalive answer and has no deadline of its
/// own for a key exchange, so the connection is held for as long as the peer keeps it up (a
/// finding, see the closing note: no worse than an idle authenticated connection, but it never
/// ends by itself). What must hold: memory stays bounded, other users are unaffected, and a
/// SIGTERM still ends it within BASTION_SHUTDOWN_GRACE.
#[test]
fn a_stalled_rekey_fed_with_ignore_messages_stays_bounded_and_ends_at_shutdown() {
    let mut setup = start(&[
        ("BASTION_KEEPALIVE_INTERVAL", "1s"),
        ("BASTION_SHUTDOWN_GRACE", "2s"),
    ]);
    let dest = setup.echo.spec();
    let mut peer = setup.peer(
        "stall-rekey",
        &["--dest", &dest, "--hold", "60", "--trickle", "0.5"],
    );
    let tunnel = peer.expect_event("tunnel", Duration::from_secs(30));
    assert_eq!(tunnel["ok"], true, "the tunnel before the stall: {tunnel}");
    peer.expect_event("stalled", Duration::from_secs(30));
    // Past the ~4 s a silent stall gets.
    thread::sleep(Duration::from_secs(8));
    let held = setup.bastion.events_named("connection_closed").is_empty();
    println!("stall fed with IGNORE: still open after 8 s: {held}");
    setup.other_user_tunnel_works("a stalled rekey fed with IGNORE");
    setup.bounded("stalled rekey fed with IGNORE");
    let started = Instant::now();
    setup.bastion.signal("TERM");
    let status = setup.bastion.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "the bastion did not exit 0 within 10 s of SIGTERM (grace 2 s): {status:?}"
    );
    let result = peer.expect_event("result", Duration::from_secs(30));
    println!(
        "stall fed with IGNORE: {result}; bastion exited {:?} after SIGTERM",
        started.elapsed()
    );
    assert_eq!(
        result["closed"], true,
        "the peer was not disconnected: {result}"
    );
}

/// A CHANNEL_OPEN flood in the middle of a stalled rekey (the peer's KEXINIT sent, the
/// exchange never finished): 20,000 opens that a server must not act on (RFC 4253 section 7.1)
/// nor queue without bound. No tunnel opens during the exchange, memory stays bounded, other
/// users are unaffected, and the connection is closed (keepalives at 1 s, or russh refusing the
/// out-of-place messages) without a panic.
#[test]
fn a_channel_open_flood_during_a_stalled_rekey_opens_nothing_and_stays_bounded() {
    let mut setup = start(&[("BASTION_KEEPALIVE_INTERVAL", "1s")]);
    let dest = setup.echo.spec();
    let args = ["--dest", &dest, "--hold", "30", "--flood-opens", "20000"];
    let mut peer = setup.peer("stall-rekey", &args);
    let tunnel = peer.expect_event("tunnel", Duration::from_secs(30));
    assert_eq!(tunnel["ok"], true, "the tunnel before the stall: {tunnel}");
    peer.expect_event("stalled", Duration::from_secs(30));
    setup.other_user_tunnel_works("a channel-open flood during a stalled rekey");
    let result = peer.expect_event("result", Duration::from_secs(60));
    println!("channel-open flood during a stalled rekey: {result}");
    assert_eq!(
        result["closed"], true,
        "the connection flooding opens during a stalled rekey was never closed: {result}"
    );
    let attacker_tunnels = setup
        .bastion
        .events_named("tunnel_open")
        .iter()
        .filter(|e| e["conn"] == 1)
        .count();
    assert_eq!(
        attacker_tunnels, 1,
        "tunnels opened on the attacker's connection (1 before the stall expected)"
    );
    setup.bounded("channel-open flood during a stalled rekey");
}

// ----- advisories ----------------------------------------------------------------------------

/// A fresh bastion and the report of one `raw_preauth.py` mode run against it.
fn preauth(mode: &str) -> (Setup, Value) {
    let setup = start(&[]);
    let report = raw_preauth(setup.bastion.addr(), mode, PEER_TIMEOUT);
    println!("{mode}: {report}");
    (setup, report)
}

/// GHSA-45x7-px36-x8w8 / CVE-2023-48795 (Terrapin, fixed in russh 0.40.2): the server offers
/// `kex-strict-s-v00@openssh.com`, and under strict kex an IGNORE during the initial key
/// exchange ends the connection (a vulnerable server accepts it), while the same exchange
/// without it is still waiting.
#[test]
fn terrapin_strict_kex_is_offered_and_enforced() {
    let (mut setup, report) = preauth("strict-kex");
    assert_eq!(report["banner"], "SSH-2.0-bastion", "{report}");
    assert_eq!(report["strict_advertised"], true, "{report}");
    assert_eq!(report["closed_after_ignore"], true, "{report}");
    assert_eq!(report["control_closed"], false, "{report}");
    setup.bounded("strict kex");
}

/// CVE-2024-43410 / GHSA-vgvv-x7xg-6cqg (fixed in 0.44.1): a packet length of ~4 GiB before
/// authentication, on 8 connections at once. Each is closed; nothing is allocated for it.
#[test]
fn a_4_gib_packet_length_before_authentication_allocates_nothing() {
    let (mut setup, report) = preauth("huge-packet");
    assert_eq!(count(&report, "closed"), 8, "{report}");
    setup.bounded("4 GiB packet length");
    setup.other_user_tunnel_works("after oversized packets");
}

/// CVE-2026-48110 / GHSA-4r3c-5hpg-58qr (fixed in 0.61.0): a small KEXINIT whose first
/// name-list claims 0xFFFFFF00 bytes. Refused without allocating (an allocation that size would
/// abort the whole process).
#[test]
fn a_name_list_claiming_4_gib_allocates_nothing() {
    let (mut setup, report) = preauth("huge-name-list");
    assert_eq!(count(&report, "closed"), 8, "{report}");
    setup.bounded("4 GiB name-list");
    setup.other_user_tunnel_works("after oversized name-lists");
}

/// CVE-2026-48108 / GHSA-76r6-x97p-67vr (fixed in 0.61.0): endless lines before the banner, and
/// one endless line. Both connections are cut off long before 8 MiB.
#[test]
fn endless_input_before_the_banner_is_cut_off() {
    let (mut setup, report) = preauth("pre-banner");
    assert_eq!(report["lines_closed"], true, "{report}");
    assert_eq!(report["long_line_closed"], true, "{report}");
    assert!(count(&report, "lines_bytes_sent") < 8 * MIB, "{report}");
    assert!(count(&report, "long_line_bytes_sent") < 8 * MIB, "{report}");
    setup.bounded("pre-banner input");
}

/// GHSA-cqvm-j2r2-hwpg (weak key-exchange values, fixed in 0.36.2/0.37.1) and
/// GHSA-g9hv-x236-4qp3 (wrong-length X25519 panic, client side): a valid X25519 value gets a
/// KEX_ECDH_REPLY; an all-zero one (a zero shared secret) and a 31-byte one end the connection
/// without a reply, and nothing panics.
#[test]
fn bad_x25519_values_end_the_key_exchange() {
    let (mut setup, report) = preauth("bad-x25519");
    assert_eq!(report["valid"]["replied"], true, "{report}");
    for case in ["all_zero", "short"] {
        assert_eq!(report[case]["replied"], false, "{case}: {report}");
        assert_eq!(report[case]["closed"], true, "{case}: {report}");
    }
    setup.bounded("bad X25519 values");
}

/// GHSA-p8qx-h547-fjw9 (a MAC-requiring cipher negotiated without a MAC panicked, fixed in
/// 0.63.1) and RUSTSEC-2026-0493 (zlib bomb, fixed in 0.61.1; the bastion builds russh without
/// flate2): the server offers no `none` MAC and only `none` compression, and a client offering
/// only `none` or an unknown MAC, or only zlib, is disconnected without a panic.
#[test]
fn weak_negotiations_are_refused() {
    let (mut setup, report) = preauth("negotiation");
    let macs = report["server_mac"].as_array().cloned().unwrap_or_default();
    assert!(
        !macs.is_empty() && !macs.iter().any(|m| m == "none"),
        "{report}"
    );
    assert_eq!(
        report["server_compression"],
        serde_json::json!(["none"]),
        "{report}"
    );
    for case in ["mac_none_closed", "mac_unknown_closed", "zlib_only_closed"] {
        assert_eq!(report[case], true, "{case}: {report}");
    }
    setup.bounded("weak negotiations");
}

/// CVE-2025-54804 (window-adjust overflow panic, fixed in 0.54.1): two window adjusts of
/// 2^32-1 on a tunnel leave the connection and that tunnel working. CVE-2026-116774 /
/// GHSA-fw5c-8223-6h42 (zero maximum packet size stalls writes for good, fixed in 0.65.0): a
/// tunnel opened with maximum packet size 0 is not accepted.
#[test]
fn window_overflow_and_zero_packet_size_do_not_strand_tunnels() {
    let mut setup = start(&[]);
    let dest = setup.echo.spec();
    let mut peer = setup.peer("channels", &["--dest", &dest, "--reply-timeout", "20"]);
    peer.expect_event("ready", Duration::from_secs(30));
    let t = Duration::from_secs(60);
    let opened = peer.command("open direct-tcpip 1", t);
    assert_eq!(count(&opened, "accepted"), 1, "{opened}");
    let adjusted = peer.command("adjust", t);
    assert_eq!(
        adjusted["active"], true,
        "window adjusts of 2^32-1: {adjusted}"
    );
    let echoed = peer.command("echo", t);
    assert_eq!(
        echoed["ok"], true,
        "the tunnel after the window adjusts: {echoed}"
    );
    let zero = peer.command("open direct-tcpip 1 0", t);
    println!("maximum packet size 0: {zero}");
    assert_eq!(
        count(&zero, "accepted"),
        0,
        "a tunnel with maximum packet size 0 was accepted: {zero}"
    );
    setup.other_user_tunnel_works("after a zero maximum packet size");
    setup.bounded("window overflow and zero packet size");
}
