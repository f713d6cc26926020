//! Live reload of the client allow/deny files (issue 3): `BASTION_HOSTS_ALLOW_FILE` and
//! `BASTION_HOSTS_DENY_FILE` in TCP wrappers syntax, with the PROXY protocol off and the stock
//! `ssh` client bound to different loopback addresses (`ssh -b 127.0.0.X`) to vary the client.
//!
//! What is asserted: an edit of either file changes who may connect next (found by the 2 s
//! poll, within a 10 s deadline) while an open `ssh -N -L` tunnel of a client the edit now
//! denies keeps moving data across the edit and is not closed; a malformed edit keeps the
//! previous policy, logs `client_policy_reload_failed` once, naming the file, the line and the
//! token, and a later good edit is applied; SIGHUP reloads at once (`trigger` SIGHUP) and does
//! not stop the bastion. Files are replaced atomically (write, then rename), so the poll never
//! sees a half-written file.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use e2e::*;
use serde_json::Value;

const READY: Duration = Duration::from_secs(20);

/// How long a file edit may take to be picked up (the bastion polls every 2 s).
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

/// How long an audit event may take to show up in the bastion's log.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// The bastion's poll interval for the files.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

const CLIENT_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
const CLIENT_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

/// A bastion with PROXY protocol off, both hosts files, and a tunnel permit for `echo`.
struct Setup {
    dir: TestDir,
    echo: TestServer,
    allow: PathBuf,
    deny: PathBuf,
    bastion: Bastion,
}

impl Setup {
    fn start(allow: &str, deny: &str) -> Setup {
        let dir = TestDir::new();
        let echo = TestServer::echo_v4();
        let allow_path = dir.join("hosts.allow");
        let deny_path = dir.join("hosts.deny");
        replace_file(&allow_path, allow);
        replace_file(&deny_path, deny);
        let bastion = dir
            .bastion()
            .permit_open(format!("127.0.0.1:{}", echo.port()))
            .env("BASTION_PROXY_PROTOCOL", "off")
            .env("BASTION_HOSTS_ALLOW_FILE", path_str(&allow_path))
            .env("BASTION_HOSTS_DENY_FILE", path_str(&deny_path))
            .start();
        Setup {
            dir,
            echo,
            allow: allow_path,
            deny: deny_path,
            bastion,
        }
    }

    /// An ssh client connecting from `from`.
    fn ssh(&self, from: Ipv4Addr) -> Ssh {
        self.bastion
            .ssh(&self.dir.key.private)
            .arg("-b")
            .arg(from.to_string())
    }

    /// `<path> line <n>`, the label of a hosts file rule.
    fn rule(path: &Path, line: usize) -> String {
        format!("{} line {line}", path.display())
    }

    /// `from` can open a tunnel now (ssh -W through the echo server, payload intact), and its
    /// connection is logged.
    fn assert_admitted(&self, from: Ipv4Addr, what: &str) {
        let before = self.events_for("connection", from).len();
        let payload = Pattern::new(u64::from(from.octets()[3]))
            .chunk(0, 32 * 1024)
            .to_vec();
        let run = ssh_w(self.ssh(from), &self.echo, &payload, what);
        assert!(
            run.status.success(),
            "{what}: ssh -W from {from} exited with {}; stderr:\n{}\nbastion log:\n{}",
            run.status,
            run.stderr,
            self.bastion.stderr_text()
        );
        assert!(
            run.stdout == payload,
            "{what}: the echo through the tunnel differs ({} of {} bytes back)",
            run.stdout.len(),
            payload.len()
        );
        let logged = poll_until(EVENT_WAIT, Duration::from_millis(20), || {
            (self.events_for("connection", from).len() > before).then_some(())
        });
        assert!(logged.is_some(), "{what}: no `connection` event for {from}");
    }

    /// `from` is refused before SSH starts, with a `client_refused` event naming `rule`.
    fn assert_refused(&self, from: Ipv4Addr, rule: &str, what: &str) {
        let refused_before = self.events_for("client_refused", from).len();
        let connections_before = self.events_for("connection", from).len();
        let run = ssh_w(self.ssh(from), &self.echo, b"must not arrive\n", what);
        assert!(
            !run.status.success(),
            "{what}: ssh -W from {from} succeeded but should have been refused; bastion \
             log:\n{}",
            self.bastion.stderr_text()
        );
        assert!(
            run.stdout.is_empty(),
            "{what}: the refused ssh printed tunnel output {:?}",
            String::from_utf8_lossy(&run.stdout)
        );
        let event = poll_until(EVENT_WAIT, Duration::from_millis(20), || {
            self.events_for("client_refused", from)
                .into_iter()
                .nth(refused_before)
        })
        .unwrap_or_else(|| {
            panic!(
                "{what}: no new `client_refused` event for {from}; ssh said:\n{}\nbastion \
                 log:\n{}",
                run.stderr,
                self.bastion.stderr_text()
            )
        });
        assert_eq!(event["rule"], rule, "{what}: the deciding rule: {event}");
        // With the PROXY protocol off the sender is the client itself.
        assert_eq!(
            field_ip(&event, "sender"),
            Some(IpAddr::V4(from)),
            "{event}"
        );
        assert_eq!(
            self.events_for("connection", from).len(),
            connections_before,
            "{what}: a refused client got a `connection` event"
        );
    }

    /// Events named `name` whose `client` is `from`.
    fn events_for(&self, name: &str, from: Ipv4Addr) -> Vec<Value> {
        self.bastion
            .events_named(name)
            .into_iter()
            .filter(|e| field_ip(e, "client") == Some(IpAddr::V4(from)))
            .collect()
    }

    /// Waits for reload number `n` (1-based) and returns its event; panics if more than
    /// `failures` reloads have failed.
    fn wait_reload(&self, n: usize, failures: usize, what: &str) -> Value {
        let started = Instant::now();
        let event = poll_until(RELOAD_DEADLINE, Duration::from_millis(20), || {
            let failed = self.bastion.events_named("client_policy_reload_failed");
            assert!(
                failed.len() <= failures,
                "{what}: the reload failed: {failed:?}"
            );
            self.bastion
                .events_named("client_policy_reloaded")
                .into_iter()
                .nth(n - 1)
        })
        .unwrap_or_else(|| {
            panic!(
                "{what}: no `client_policy_reloaded` event within {RELOAD_DEADLINE:?}; bastion \
                 log:\n{}",
                self.bastion.stderr_text()
            )
        });
        println!("{what}: reloaded after {:?}: {event}", started.elapsed());
        event
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Replaces a file's content atomically (a new file renamed over the old one).
fn replace_file(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("renaming {} to {}: {e}", tmp.display(), path.display()));
}

/// The IP of an event field holding `ip:port`.
fn field_ip(event: &Value, field: &str) -> Option<IpAddr> {
    event[field]
        .as_str()?
        .parse::<SocketAddr>()
        .ok()
        .map(|a| a.ip())
}

/// Echo round trips through an open tunnel on a background thread, counted, until stopped.
struct Traffic {
    rounds: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Result<UnixStream, String>>>,
}

impl Traffic {
    fn start(mut stream: UnixStream) -> Traffic {
        let rounds = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (rounds2, stop2) = (rounds.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let pattern = Pattern::new(5);
            let mut back = vec![0u8; 16 * 1024];
            let mut round = 0u64;
            while !stop2.load(Ordering::SeqCst) {
                let payload = pattern.chunk(round * 7919, back.len());
                stream
                    .write_all(payload)
                    .map_err(|e| format!("round {round}: writing: {e}"))?;
                stream
                    .read_exact(&mut back[..payload.len()])
                    .map_err(|e| format!("round {round}: reading the echo: {e}"))?;
                if back[..payload.len()] != *payload {
                    return Err(format!("round {round}: the echo differs"));
                }
                round += 1;
                rounds2.store(round, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(10));
            }
            Ok(stream)
        });
        Traffic {
            rounds,
            stop,
            thread: Some(thread),
        }
    }

    fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::SeqCst)
    }

    /// Waits until more than `after` round trips are done; panics if traffic stalls.
    fn wait_past(&mut self, after: u64, what: &str) {
        let moved = poll_until(Duration::from_secs(10), Duration::from_millis(10), || {
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let result = self.thread.take().map(|t| t.join());
                panic!("{what}: the open tunnel's traffic stopped: {result:?}");
            }
            (self.rounds() > after).then_some(())
        });
        assert!(
            moved.is_some(),
            "{what}: no echo round trip through the open tunnel for 10 s (stuck at {})",
            self.rounds()
        );
    }

    /// Stops the thread and returns the tunnel stream (panics if traffic failed).
    fn finish(mut self) -> UnixStream {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().expect("traffic already finished");
        match thread.join() {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => panic!("traffic through the open tunnel failed: {e}"),
            Err(_) => panic!("the traffic thread panicked"),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Edits of hosts.deny and then hosts.allow change who may connect next, while client A's
/// open `ssh -N -L` tunnel keeps echoing data across both edits although the first one denies A.
#[test]
fn editing_the_hosts_files_changes_who_connects_next_and_spares_open_tunnels() {
    let setup = Setup::start("# nobody listed yet\n", &format!("bastion: {CLIENT_B}\n"));

    // A opens a tunnel and keeps data flowing through it.
    let sock = setup.dir.socket("a.sock");
    let mut tunnel = setup
        .ssh(CLIENT_A)
        .arg("-N")
        .forward(&sock, &setup.echo.spec())
        .spawn("ssh -N -L from 127.0.0.5", Input::Null);
    let stream = tunnel.connect_unix(sock.as_ref(), READY);
    let mut traffic = Traffic::start(stream);
    traffic.wait_past(0, "the tunnel before any edit");
    let tunnel_conn = setup
        .events_for("connection", CLIENT_A)
        .first()
        .map(|e| e["conn"].clone())
        .expect("the tunnel's connection event");

    setup.assert_refused(
        CLIENT_B,
        &Setup::rule(&setup.deny, 1),
        "B, listed in hosts.deny",
    );

    // Edit 1: hosts.deny now lists A instead of B.
    let before_edit = traffic.rounds();
    replace_file(&setup.deny, &format!("# edited\nbastion: {CLIENT_A}\n"));
    let reload = setup.wait_reload(1, 0, "hosts.deny edit");
    assert_eq!(reload["trigger"], "poll", "{reload}");
    traffic.wait_past(before_edit, "the open tunnel across the hosts.deny edit");
    setup.assert_refused(
        CLIENT_A,
        &Setup::rule(&setup.deny, 2),
        "A, now in hosts.deny",
    );
    setup.assert_admitted(CLIENT_B, "B, no longer in hosts.deny");

    // Edit 2: hosts.allow lists A, and allow rules win over deny rules.
    let before_edit = traffic.rounds();
    replace_file(&setup.allow, &format!("bastion: {CLIENT_A}\n"));
    let reload = setup.wait_reload(2, 0, "hosts.allow edit");
    assert_eq!(reload["trigger"], "poll", "{reload}");
    traffic.wait_past(before_edit, "the open tunnel across the hosts.allow edit");
    setup.assert_admitted(CLIENT_A, "A, now in hosts.allow");
    setup.assert_admitted(CLIENT_B, "B, still allowed");

    // The tunnel opened before both edits still works and was never closed.
    let mut stream = traffic.finish();
    echo_round_trip(
        &mut stream,
        Pattern::new(99).chunk(0, 64 * 1024),
        "the open tunnel after both edits",
    );
    assert!(
        tunnel.proc.try_status().is_none(),
        "the tunnel's ssh exited: {}",
        tunnel.stderr()
    );
    let closed: Vec<Value> = setup
        .bastion
        .events_named("connection_closed")
        .into_iter()
        .filter(|e| e["conn"] == tunnel_conn)
        .collect();
    assert!(
        closed.is_empty(),
        "the open tunnel's connection was closed by a reload: {closed:?}"
    );
}

/// A hosts.deny edit with an unsupported pattern (`@netgroup`) is not applied at all: the
/// previous policy stays, `client_policy_reload_failed` names the file, line and token (once,
/// although the file is polled again), and fixing the file applies the new policy.
#[test]
fn a_malformed_edit_keeps_the_previous_policy() {
    let setup = Setup::start("", &format!("bastion: {CLIENT_A}\n"));
    setup.assert_refused(CLIENT_A, &Setup::rule(&setup.deny, 1), "A before the edit");

    // Line 1 alone would swap A and B; line 2 is unsupported, so nothing may change.
    replace_file(
        &setup.deny,
        &format!("bastion: {CLIENT_B}\nbastion: @netgroup\n"),
    );
    let failed = setup
        .bastion
        .wait_event(RELOAD_DEADLINE, |e| {
            e["event"] == "client_policy_reload_failed"
        })
        .unwrap_or_else(|| {
            panic!(
                "no `client_policy_reload_failed` within {RELOAD_DEADLINE:?}; bastion log:\n{}",
                setup.bastion.stderr_text()
            )
        });
    let failed_at = Instant::now();
    println!("{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    for needle in [
        "BASTION_HOSTS_DENY_FILE",
        &Setup::rule(&setup.deny, 2),
        "@netgroup",
    ] {
        assert!(
            error.contains(needle),
            "the reload error should name {needle:?}: {failed}"
        );
    }
    assert_eq!(failed["level"], "ERROR", "{failed}");
    assert_eq!(failed["trigger"], "poll", "{failed}");

    setup.assert_refused(
        CLIENT_A,
        &Setup::rule(&setup.deny, 1),
        "A after the malformed edit (previous policy)",
    );
    setup.assert_admitted(CLIENT_B, "B after the malformed edit (previous policy)");
    let reloaded = setup.bastion.events_named("client_policy_reloaded");
    assert!(
        reloaded.is_empty(),
        "a malformed file was (partly) applied: {reloaded:?}"
    );

    // Let the watcher poll the broken file again: the same error is not logged twice.
    let since = failed_at.elapsed();
    if since < POLL_INTERVAL + Duration::from_millis(500) {
        thread::sleep(POLL_INTERVAL + Duration::from_millis(500) - since);
    }
    let failures = setup.bastion.events_named("client_policy_reload_failed");
    assert_eq!(
        failures.len(),
        1,
        "an unchanged broken file should be reported once: {failures:?}"
    );

    // Fixing the file applies it.
    replace_file(&setup.deny, &format!("bastion: {CLIENT_B}\n"));
    setup.wait_reload(1, 1, "the fixed hosts.deny");
    setup.assert_admitted(CLIENT_A, "A after the fix");
    setup.assert_refused(CLIENT_B, &Setup::rule(&setup.deny, 1), "B after the fix");
}

/// SIGHUP re-reads the files at once (the reload event says `trigger: SIGHUP`) and leaves the
/// bastion running; without a change it reports the files unchanged.
#[test]
fn sighup_reloads_the_hosts_files() {
    let mut setup = Setup::start("", &format!("bastion: {CLIENT_A}\n"));
    setup.assert_refused(CLIENT_A, &Setup::rule(&setup.deny, 1), "A before SIGHUP");

    setup.bastion.signal("HUP");
    let unchanged = setup
        .bastion
        .wait_event(EVENT_WAIT, |e| {
            e["event"] == "client_policy_unchanged" && e["trigger"] == "SIGHUP"
        })
        .unwrap_or_else(|| {
            panic!(
                "SIGHUP without an edit logged no `client_policy_unchanged`; bastion log:\n{}",
                setup.bastion.stderr_text()
            )
        });
    println!("{unchanged}");

    // Edit and signal at once. The 2 s poll could, rarely, see the edit first: then the SIGHUP
    // finds nothing new, so try again with another edit.
    let mut reloads = 0;
    let mut by_signal = None;
    for attempt in 1..=5 {
        replace_file(
            &setup.deny,
            &format!("# attempt {attempt}\nbastion: {CLIENT_B}\n"),
        );
        setup.bastion.signal("HUP");
        reloads += 1;
        let event = setup.wait_reload(reloads, 0, &format!("SIGHUP attempt {attempt}"));
        if event["trigger"] == "SIGHUP" {
            by_signal = Some(event);
            break;
        }
    }
    let event = by_signal.unwrap_or_else(|| {
        panic!(
            "five edits followed at once by SIGHUP were all reloaded by the poll instead; \
             bastion log:\n{}",
            setup.bastion.stderr_text()
        )
    });
    println!("{event}");
    assert!(
        setup.bastion.process().try_status().is_none(),
        "the bastion exited after SIGHUP"
    );
    setup.assert_admitted(CLIENT_A, "A after the SIGHUP reload");
    setup.assert_refused(
        CLIENT_B,
        &Setup::rule(&setup.deny, 2),
        "B after the SIGHUP reload",
    );
}
