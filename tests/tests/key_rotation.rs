//! Live key rotation with the stock `ssh`: the bastion re-reads `BASTION_AUTHORIZED_KEYS_FILE`
//! and `BASTION_REVOKED_KEYS_FILE` while it runs (polled every 2 s, at once on SIGHUP).
//! Removing a key closes that key's open tunnel within 10 s (`access_revoked`) while another
//! key's tunnel on another connection keeps echoing throughout; a malformed edit keeps the
//! previous keys (`keys_reload_failed`) and a later good edit still applies; revoking a key by
//! its `SHA256:` fingerprint refuses its next login and closes its open tunnels, and SIGHUP makes
//! that happen before the next poll; an edit that adds a line with an unknown option loads the
//! other lines and rejects that one alone (`key_line_rejected`); editing a live key's options
//! reaches its open connection (a narrower `permitopen` refuses its next tunnel, `restrict`
//! closes it). With `BASTION_WAIT_FOR_KEYS`, a keys file written after the start is waited for
//! before anything listens, and SIGTERM during that wait stops the bastion at once.
//!
//! Every edit is written to a temporary file and renamed into place, so the bastion never reads
//! a half-written file (which could look like a removed key or a malformed line).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use e2e::*;
use serde_json::Value;

const READY: Duration = Duration::from_secs(20);
/// How long a removed or revoked key's tunnel may stay open (the acceptance bound).
const REVOKE_WITHIN: Duration = Duration::from_secs(10);
/// How long a file edit may take to be noticed (poll interval 2 s, with margin).
const RELOAD_WITHIN: Duration = Duration::from_secs(10);

/// Replaces `path` with `text` atomically (write a sibling, rename it over).
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("renaming {} into place: {e}", path.display()));
}

/// Authorized-keys text with one line per key.
fn lines(keys: &[&KeyPair]) -> String {
    keys.iter()
        .map(|k| format!("{}\n", k.public_line))
        .collect()
}

/// A bastion reading its keys from `keys_file` (not from the environment), tunnelling to `echo`.
fn start_with_keys_file(keys_file: &Path, echo: &TestServer) -> BastionBuilder {
    BastionBuilder::bare()
        .env("BASTION_LISTEN", "127.0.0.1:0")
        .env(
            "BASTION_AUTHORIZED_KEYS_FILE",
            keys_file.to_str().expect("UTF-8 temp path"),
        )
        .permit_open(format!("127.0.0.1:{}", echo.port()))
}

/// An `ssh -N -L socket:echo` for one key.
fn open_tunnel(
    dir: &TestDir,
    bastion: &Bastion,
    key: &KeyPair,
    echo: &TestServer,
    name: &str,
) -> (SshProcess, String) {
    let sock = dir.socket(&format!("{name}.sock"));
    let ssh = bastion
        .ssh(&key.private)
        .arg("-N")
        .forward(&sock, &echo.spec())
        .spawn(&format!("ssh -N -L ({name})"), Input::Null);
    (ssh, sock)
}

/// Waits until the stream reports EOF or an error; the instant it did, or `None` on timeout.
fn wait_closed(stream: &mut UnixStream, limit: Duration) -> Option<Instant> {
    stream
        .set_read_timeout(Some(limit))
        .expect("setting a read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(Instant::now()),
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return None
            }
            Err(_) => return Some(Instant::now()),
        }
    }
}

/// Echo round trips on a tunnel, one every 100 ms, until stopped: when each succeeded, and the
/// first failure.
struct Flowing {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<(UnixStream, Vec<Instant>, Option<String>)>,
}

impl Flowing {
    fn start(mut stream: UnixStream) -> Flowing {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = thread::spawn(move || {
            let mut done = Vec::new();
            let mut error = None;
            let mut round = 0u64;
            while !stop2.load(Ordering::SeqCst) {
                let payload = Pattern::new(round).chunk(round * 977, 1024).to_vec();
                let mut back = vec![0u8; payload.len()];
                let result = stream
                    .write_all(&payload)
                    .and_then(|()| stream.read_exact(&mut back));
                match result {
                    Ok(()) if back == payload => done.push(Instant::now()),
                    Ok(()) => {
                        error = Some(format!("round {round}: the echo differs"));
                        break;
                    }
                    Err(e) => {
                        error = Some(format!("round {round}: {e}"));
                        break;
                    }
                }
                round += 1;
                thread::sleep(Duration::from_millis(100));
            }
            (stream, done, error)
        });
        Flowing { stop, handle }
    }

    fn finish(self) -> (UnixStream, Vec<Instant>, Option<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("the echo thread panicked")
    }
}

/// `ssh -W` to the echo with a payload: did it come back? (`ssh` exit status and stderr too.)
fn try_login(bastion: &Bastion, key: &KeyPair, echo: &TestServer, payload: &str) -> (bool, String) {
    let Attempt {
        echoed,
        status,
        stderr,
    } = attempt(bastion.ssh(&key.private), &echo.spec(), payload);
    assert_eq!(
        echoed,
        status.success(),
        "ssh -W echoed {echoed} but exited with {status}: {stderr}"
    );
    (echoed, stderr)
}

fn expect_login(bastion: &Bastion, key: &KeyPair, echo: &TestServer, what: &str) {
    let (ok, stderr) = try_login(bastion, key, echo, &format!("{what}\n"));
    assert!(ok, "{what}: the key could not tunnel: {stderr}");
}

fn expect_no_login(bastion: &Bastion, key: &KeyPair, echo: &TestServer, what: &str) {
    let (ok, stderr) = try_login(bastion, key, echo, &format!("{what}\n"));
    assert!(!ok, "{what}: the key still tunnels");
    assert!(
        stderr.contains(DENIED),
        "{what}: expected {DENIED:?}: {stderr}"
    );
}

fn events_after(bastion: &Bastion, name: &str, skip: usize) -> Vec<Value> {
    bastion.events_named(name).into_iter().skip(skip).collect()
}

/// Removing key A from the file closes A's open tunnel within 10 s (its `ssh -N -L` exits, its
/// forwarded socket gets EOF, `access_revoked` names A) and refuses A's next login, while key
/// B's tunnel on its own connection echoes every 100 ms throughout and after the reload.
#[test]
fn removing_a_key_closes_its_tunnel_while_another_keeps_flowing() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let leaving = generate_key(dir.path(), "leaving");
    let staying = generate_key(dir.path(), "staying");
    let keys_file = dir.join("authorized_keys");
    write_atomically(&keys_file, &lines(&[&leaving, &staying]));
    let bastion = start_with_keys_file(&keys_file, &echo).start();

    let (mut ssh_a, sock_a) = open_tunnel(&dir, &bastion, &leaving, &echo, "leaving");
    let (mut ssh_b, sock_b) = open_tunnel(&dir, &bastion, &staying, &echo, "staying");
    let mut stream_a = ssh_a.connect_unix(sock_a.as_ref(), READY);
    echo_round_trip(&mut stream_a, b"A before", "A's tunnel before the edit");
    let mut stream_b = ssh_b.connect_unix(sock_b.as_ref(), READY);
    echo_round_trip(&mut stream_b, b"B before", "B's tunnel before the edit");
    let flowing = Flowing::start(stream_b);
    thread::sleep(Duration::from_millis(300));

    let edited = Instant::now();
    write_atomically(&keys_file, &lines(&[&staying]));
    let leaving_fp = leaving.fingerprint();
    let revoked = bastion.wait_event(REVOKE_WITHIN, |e| e["event"] == "access_revoked");
    let revoked_at = Instant::now();
    let revoked = revoked.unwrap_or_else(|| {
        panic!(
            "no access_revoked event within {REVOKE_WITHIN:?} of removing A; bastion log:\n{}",
            bastion.stderr_text()
        )
    });
    assert!(
        revoked["reason"]
            .as_str()
            .is_some_and(|r| r.contains(leaving_fp.as_str()) && r.contains("removed")),
        "access_revoked does not name A's removed key {leaving_fp}: {revoked}"
    );
    let closed = wait_closed(
        &mut stream_a,
        REVOKE_WITHIN.saturating_sub(edited.elapsed()),
    );
    let exited = ssh_a
        .proc
        .wait_timeout(REVOKE_WITHIN.saturating_sub(edited.elapsed()));
    println!(
        "A removed: access_revoked after {:?}, A's socket closed after {:?}, A's ssh exited \
         ({exited:?}) after {:?}",
        revoked_at - edited,
        closed.map(|t| t - edited),
        edited.elapsed()
    );
    assert!(
        closed.is_some(),
        "A's forwarded socket was still open {REVOKE_WITHIN:?} after A was removed"
    );
    assert!(
        exited.is_some(),
        "A's ssh -N -L was still running {REVOKE_WITHIN:?} after A was removed; stderr:\n{}",
        ssh_a.stderr()
    );

    // B keeps flowing after the reload.
    thread::sleep(Duration::from_secs(1));
    let (mut stream_b, rounds, error) = flowing.finish();
    assert!(
        error.is_none(),
        "B's tunnel failed around the reload: {error:?}"
    );
    let after = rounds.iter().filter(|t| **t > revoked_at).count();
    println!(
        "B's tunnel: {} echo round trips, {after} after A's access_revoked",
        rounds.len()
    );
    assert!(
        after >= 3,
        "only {after} of B's round trips completed after the reload"
    );
    echo_round_trip(&mut stream_b, b"B after", "B's tunnel after the reload");
    assert!(
        ssh_b.proc.try_status().is_none(),
        "B's ssh exited; stderr:\n{}",
        ssh_b.stderr()
    );
    let mut fresh_b = ssh_b.connect_unix(sock_b.as_ref(), READY);
    echo_round_trip(
        &mut fresh_b,
        b"B new tunnel",
        "a new tunnel on B's connection",
    );

    let all_revoked = bastion.events_named("access_revoked");
    assert_eq!(
        all_revoked.len(),
        1,
        "only A's connection is revoked: {all_revoked:?}"
    );
    let reloaded = bastion.events_named("keys_reloaded");
    assert!(
        reloaded.iter().any(|e| e["keys"] == 1),
        "no keys_reloaded event with 1 key: {reloaded:?}"
    );
    expect_no_login(&bastion, &leaving, &echo, "A after its removal");
    expect_login(&bastion, &staying, &echo, "B after A's removal");
}

/// A malformed edit (a key line that does not decode, and B removed) is refused as a whole:
/// `keys_reload_failed` names the line, both keys still log in, B's open tunnel stays up and no
/// access is revoked. A later good edit (B removed) still applies.
#[test]
fn a_malformed_edit_keeps_the_previous_keys() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let first = generate_key(dir.path(), "first");
    let second = generate_key(dir.path(), "second");
    let keys_file = dir.join("authorized_keys");
    write_atomically(&keys_file, &lines(&[&first, &second]));
    let bastion = start_with_keys_file(&keys_file, &echo).start();
    let (mut ssh_b, sock_b) = open_tunnel(&dir, &bastion, &second, &echo, "second");
    let mut stream_b = ssh_b.connect_unix(sock_b.as_ref(), READY);
    echo_round_trip(&mut stream_b, b"before", "B's tunnel before the edit");

    write_atomically(
        &keys_file,
        &format!("{}ssh-ed25519 notbase64!!\n", lines(&[&first])),
    );
    let failed = bastion.wait_event(RELOAD_WITHIN, |e| e["event"] == "keys_reload_failed");
    let failed = failed.unwrap_or_else(|| {
        panic!(
            "no keys_reload_failed within {RELOAD_WITHIN:?} of a malformed edit; bastion log:\n{}",
            bastion.stderr_text()
        )
    });
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("line 2")),
        "keys_reload_failed does not name line 2: {failed}"
    );
    expect_login(&bastion, &first, &echo, "A after the malformed edit");
    expect_login(
        &bastion,
        &second,
        &echo,
        "B (removed by the malformed edit)",
    );
    echo_round_trip(
        &mut stream_b,
        b"after",
        "B's tunnel after the malformed edit",
    );
    assert!(
        bastion.events_named("access_revoked").is_empty(),
        "a malformed edit revoked access: {:?}",
        bastion.events_named("access_revoked")
    );
    assert!(
        bastion.events_named("keys_reloaded").is_empty(),
        "a malformed edit was loaded: {:?}",
        bastion.events_named("keys_reloaded")
    );

    // The watcher still works: a good edit removing B applies and closes B's tunnel.
    write_atomically(&keys_file, &lines(&[&first]));
    let reloaded = bastion.wait_event(RELOAD_WITHIN, |e| e["event"] == "keys_reloaded");
    assert!(
        reloaded.is_some_and(|e| e["keys"] == 1),
        "the good edit after the malformed one was not loaded; bastion log:\n{}",
        bastion.stderr_text()
    );
    assert!(
        wait_closed(&mut stream_b, REVOKE_WITHIN).is_some(),
        "B's tunnel stayed open after the good edit removed B"
    );
    expect_no_login(&bastion, &second, &echo, "B after the good edit");
    expect_login(&bastion, &first, &echo, "A after the good edit");
}

/// Revocation by fingerprint, reloaded on SIGHUP. First an unrelated fingerprint is revoked and
/// picked up by the 2 s poll (so the next poll is ~2 s away and nobody's access changes); then
/// A's `SHA256:` fingerprint (as `ssh-keygen -lf` prints it) is added and SIGHUP sent: A's open
/// tunnels close well before the next poll could have noticed, A's next login is refused as
/// revoked, and B's tunnel and logins are unaffected.
#[test]
fn revoking_a_fingerprint_closes_its_tunnels_and_sighup_reloads_at_once() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let revoked_key = generate_key(dir.path(), "to-revoke");
    let kept = generate_key(dir.path(), "kept");
    let unrelated = generate_key(dir.path(), "unrelated");
    let revoked_file = dir.join("revoked_keys");
    write_atomically(&revoked_file, "# revoked keys\n");
    let bastion = BastionBuilder::new(&lines(&[&revoked_key, &kept]))
        .env(
            "BASTION_REVOKED_KEYS_FILE",
            revoked_file.to_str().expect("UTF-8 temp path"),
        )
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();

    let (mut ssh_a, sock_a) = open_tunnel(&dir, &bastion, &revoked_key, &echo, "revoked");
    let (mut ssh_b, sock_b) = open_tunnel(&dir, &bastion, &kept, &echo, "kept");
    let mut a1 = ssh_a.connect_unix(sock_a.as_ref(), READY);
    echo_round_trip(&mut a1, b"A tunnel 1", "A's first tunnel");
    let mut a2 = ssh_a.connect_unix(sock_a.as_ref(), READY);
    echo_round_trip(&mut a2, b"A tunnel 2", "A's second tunnel");
    let mut b = ssh_b.connect_unix(sock_b.as_ref(), READY);
    echo_round_trip(&mut b, b"B tunnel", "B's tunnel");

    // A poll-time reload that changes nobody's access: it also fixes the poll phase.
    let unrelated_fp = unrelated.fingerprint();
    write_atomically(&revoked_file, &format!("# revoked keys\n{unrelated_fp}\n"));
    let marker = bastion.wait_event(RELOAD_WITHIN, |e| {
        e["event"] == "keys_reloaded" && e["revoked"] == 1
    });
    let polled_at = Instant::now();
    assert!(
        marker.is_some(),
        "revoking an unrelated fingerprint was not reloaded within {RELOAD_WITHIN:?}; log:\n{}",
        bastion.stderr_text()
    );
    assert!(
        bastion.events_named("access_revoked").is_empty(),
        "revoking an unrelated key revoked someone's access"
    );

    let revoked_fp = revoked_key.fingerprint();
    write_atomically(
        &revoked_file,
        &format!("# revoked keys\n{unrelated_fp}\n# A, leaving\n{revoked_fp}\n"),
    );
    let hup_at = Instant::now();
    bastion.signal("HUP");
    let event = bastion.wait_event(REVOKE_WITHIN, |e| e["event"] == "access_revoked");
    let seen_at = Instant::now();
    let event = event.unwrap_or_else(|| {
        panic!(
            "no access_revoked within {REVOKE_WITHIN:?} of revoking A; bastion log:\n{}",
            bastion.stderr_text()
        )
    });
    println!(
        "SIGHUP sent {:?} after the poll-time reload; access_revoked {:?} after SIGHUP",
        hup_at - polled_at,
        seen_at - hup_at
    );
    assert!(
        event["reason"]
            .as_str()
            .is_some_and(|r| r.contains(revoked_fp.as_str()) && r.contains("revoked")),
        "access_revoked does not name A's revoked key {revoked_fp}: {event}"
    );
    // The next poll is ~2 s after the marker reload: only SIGHUP can explain an earlier reload.
    assert!(
        seen_at - polled_at < Duration::from_millis(1500),
        "the revocation took effect {:?} after the last poll ({:?} after SIGHUP): SIGHUP did \
         not reload at once",
        seen_at - polled_at,
        seen_at - hup_at
    );
    for (stream, what) in [
        (&mut a1, "A's first tunnel"),
        (&mut a2, "A's second tunnel"),
    ] {
        assert!(
            wait_closed(stream, REVOKE_WITHIN).is_some(),
            "{what} stayed open after A was revoked"
        );
    }
    assert!(
        ssh_a.proc.wait_timeout(REVOKE_WITHIN).is_some(),
        "A's ssh -N -L kept running after A was revoked; stderr:\n{}",
        ssh_a.stderr()
    );

    echo_round_trip(&mut b, b"B after", "B's tunnel after A's revocation");
    assert_eq!(
        bastion.events_named("access_revoked").len(),
        1,
        "only A's connection is revoked: {:?}",
        bastion.events_named("access_revoked")
    );
    expect_no_login(&bastion, &revoked_key, &echo, "A after its revocation");
    let rejected = bastion.wait_event(Duration::from_secs(5), |e| {
        e["event"] == "auth"
            && e["result"] == "rejected"
            && e["fingerprint"] == revoked_fp.as_str()
            && e["detail"].as_str().is_some_and(|d| d.contains("revoked"))
    });
    assert!(
        rejected.is_some(),
        "no rejected auth saying A is revoked: {:?}",
        bastion.events_named("auth")
    );
    expect_login(&bastion, &kept, &echo, "B after A's revocation");
    assert!(
        ssh_b.proc.try_status().is_none(),
        "B's ssh exited; stderr:\n{}",
        ssh_b.stderr()
    );
}

/// An edit that adds a line with an unknown option loads the other lines (a new key included)
/// and rejects that line alone: `key_line_rejected` names its line and the option.
#[test]
fn an_edit_with_an_unknown_option_rejects_that_line_alone() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let old = generate_key(dir.path(), "old");
    let odd = generate_key(dir.path(), "odd");
    let new = generate_key(dir.path(), "new");
    let keys_file = dir.join("authorized_keys");
    write_atomically(&keys_file, &lines(&[&old]));
    let bastion = start_with_keys_file(&keys_file, &echo).start();
    expect_no_login(&bastion, &new, &echo, "the new key before the edit");
    let rejected_before = bastion.events_named("key_line_rejected").len();

    write_atomically(
        &keys_file,
        &format!(
            "{}frobnicate-option {}\n{}",
            lines(&[&old]),
            odd.public_line,
            lines(&[&new])
        ),
    );
    let reloaded = bastion.wait_event(RELOAD_WITHIN, |e| e["event"] == "keys_reloaded");
    let reloaded = reloaded.unwrap_or_else(|| {
        panic!(
            "the edit was not reloaded within {RELOAD_WITHIN:?}; bastion log:\n{}",
            bastion.stderr_text()
        )
    });
    assert_eq!(reloaded["keys"], 2, "two good lines loaded: {reloaded}");
    // key_line_rejected follows keys_reloaded in the log: wait for it rather than race it.
    let rejected_line = bastion.wait_event(Duration::from_secs(5), |e| {
        e["event"] == "key_line_rejected"
    });
    assert!(
        rejected_line.is_some(),
        "no key_line_rejected after the edit; bastion log:\n{}",
        bastion.stderr_text()
    );
    let rejected = events_after(&bastion, "key_line_rejected", rejected_before);
    assert_eq!(
        rejected.len(),
        1,
        "one key_line_rejected for the edit: {rejected:?}"
    );
    assert_eq!(rejected[0]["line"], 2, "names line 2: {}", rejected[0]);
    assert!(
        rejected[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("frobnicate-option")),
        "names the unknown option: {}",
        rejected[0]
    );
    expect_login(&bastion, &old, &echo, "the old key after the edit");
    expect_login(&bastion, &new, &echo, "the new key added by the edit");
    expect_no_login(&bastion, &odd, &echo, "the key of the rejected line");
    assert!(
        bastion.events_named("keys_reload_failed").is_empty(),
        "an unknown option failed the whole reload"
    );
}

/// Waits for the next `keys_reloaded` after `seen` of them, or panics with the log.
fn wait_reload(bastion: &Bastion, seen: usize, what: &str) {
    let deadline = Instant::now() + RELOAD_WITHIN;
    while bastion.events_named("keys_reloaded").len() <= seen {
        assert!(
            Instant::now() < deadline,
            "{what}: no keys_reloaded within {RELOAD_WITHIN:?}; bastion log:\n{}",
            bastion.stderr_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Editing a live key's options reaches its open connection: after a narrower `permitopen`,
/// the connection's next tunnel to a destination the line no longer lists is refused
/// (`tunnel_refused` on that connection) while its other forward and the tunnel already open
/// keep working; after `restrict`, the connection is closed (`access_revoked`) and `ssh` exits.
#[test]
fn editing_a_live_keys_options_reaches_its_open_connection() {
    let dir = TestDir::new();
    let (kept, dropped) = (TestServer::echo_v4(), TestServer::echo_v4());
    let key = generate_key(dir.path(), "edited");
    let keys_file = dir.join("authorized_keys");
    write_atomically(&keys_file, &lines(&[&key]));
    let bastion = start_with_keys_file(&keys_file, &kept)
        .permit_open(format!(
            "127.0.0.1:{},127.0.0.1:{}",
            kept.port(),
            dropped.port()
        ))
        .start();
    let (sock_kept, sock_dropped) = (dir.socket("kept.sock"), dir.socket("dropped.sock"));
    let mut ssh = bastion
        .ssh(&key.private)
        .arg("-N")
        .forward(&sock_kept, &kept.spec())
        .forward(&sock_dropped, &dropped.spec())
        .spawn("ssh -N -L kept -L dropped", Input::Null);
    let mut open_before = ssh.connect_unix(sock_dropped.as_ref(), READY);
    echo_round_trip(
        &mut open_before,
        b"before",
        "the second forward before the edit",
    );
    let conn = bastion.events_named("tunnel_open")[0]["conn"].clone();

    let reloads = bastion.events_named("keys_reloaded").len();
    let narrowed = format!(
        "permitopen=\"127.0.0.1:{}\" {}\n",
        kept.port(),
        key.public_line
    );
    write_atomically(&keys_file, &narrowed);
    wait_reload(&bastion, reloads, "permitopen added");
    let mut refused = ssh.connect_unix(sock_dropped.as_ref(), READY);
    let _ = refused.write_all(b"after\n");
    assert!(
        wait_closed(&mut refused, REVOKE_WITHIN).is_some(),
        "a new tunnel to a destination the edited permitopen no longer lists stayed open"
    );
    let refusal = bastion
        .wait_event(REVOKE_WITHIN, |e| e["event"] == "tunnel_refused")
        .unwrap_or_else(|| panic!("no tunnel_refused; log:\n{}", bastion.stderr_text()));
    assert_eq!(
        refusal["conn"], conn,
        "refused on another connection: {refusal}"
    );
    assert!(
        refusal["reason"]
            .as_str()
            .is_some_and(|r| r.contains("permitopen")),
        "{refusal}"
    );
    let mut allowed = ssh.connect_unix(sock_kept.as_ref(), READY);
    echo_round_trip(
        &mut allowed,
        b"kept",
        "the forward the edited line still lists",
    );
    echo_round_trip(
        &mut open_before,
        b"still",
        "the tunnel opened before the edit",
    );
    assert!(bastion.events_named("access_revoked").is_empty());

    write_atomically(&keys_file, &format!("restrict {}\n", key.public_line));
    let revoked = bastion
        .wait_event(REVOKE_WITHIN, |e| e["event"] == "access_revoked")
        .unwrap_or_else(|| {
            panic!(
                "no access_revoked within {REVOKE_WITHIN:?} of adding restrict; log:\n{}",
                bastion.stderr_text()
            )
        });
    assert_eq!(revoked["conn"], conn, "{revoked}");
    assert!(
        revoked["reason"]
            .as_str()
            .is_some_and(|r| r.contains("restrict")),
        "{revoked}"
    );
    ssh.proc.expect_exit(
        REVOKE_WITHIN,
        "ssh -N -L after its key line became restrict",
    );
}

/// `BASTION_WAIT_FOR_KEYS`: a keys file a sidecar writes (atomically) about a second after the
/// bastion started is waited for; nothing listens before it is loaded (`keys_wait`, then
/// `keys_appeared`, then `listening`), and the stock `ssh` logs in with the key it holds.
#[test]
fn a_keys_file_written_after_start_is_waited_for() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let key = generate_key(dir.path(), "late");
    let keys_file = dir.join("authorized_keys");
    let builder = start_with_keys_file(&keys_file, &echo).env("BASTION_WAIT_FOR_KEYS", "10s");
    let writer = {
        let (path, text) = (keys_file.clone(), lines(&[&key]));
        thread::spawn(move || {
            thread::sleep(Duration::from_secs(1));
            write_atomically(&path, &text);
        })
    };
    let started = Instant::now();
    let bastion = builder.start();
    let listening_after = started.elapsed();
    writer.join().expect("the keys file writer");
    assert!(
        listening_after >= Duration::from_millis(900),
        "listening {listening_after:?} after start, before the keys file was written"
    );
    let order: Vec<String> = bastion
        .events()
        .iter()
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .filter(|name| ["keys_wait", "keys_appeared", "listening"].contains(&name.as_str()))
        .collect();
    assert_eq!(order, ["keys_wait", "keys_appeared", "listening"]);
    let wait = &bastion.events_named("keys_wait")[0];
    assert_eq!(wait["path"], keys_file.to_str().expect("UTF-8 temp path"));
    assert_eq!(wait["limit_s"], 10.0);
    let (mut ssh, sock) = open_tunnel(&dir, &bastion, &key, &echo, "late");
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    echo_round_trip(
        &mut stream,
        b"late keys",
        "tunnel with the key written after start",
    );
}

/// SIGTERM while waiting for a keys file stops the bastion at once, with status 0.
#[test]
fn sigterm_during_the_wait_for_keys_exits_promptly() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let builder = start_with_keys_file(&dir.join("authorized_keys"), &echo)
        .env("BASTION_WAIT_FOR_KEYS", "60s");
    let mut proc = ChildGuard::spawn(&mut builder.command(), "bastion (waiting)", Input::Null);
    assert!(
        proc.stderr()
            .wait_for_text("keys_wait", Duration::from_secs(10)),
        "no keys_wait event; stderr:\n{}",
        proc.stderr().text()
    );
    proc.signal("TERM");
    let status = proc.wait_timeout(Duration::from_secs(2));
    assert!(
        status.is_some_and(|s| s.success()),
        "not stopped with status 0 within 2 s of SIGTERM ({status:?}); stderr:\n{}",
        proc.stderr().text()
    );
    assert!(
        !proc.stderr().text().contains("\"listening\""),
        "it listened without keys"
    );
}
