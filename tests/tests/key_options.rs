//! `authorized_keys` options enforced end to end with the stock `ssh`: `permitopen` narrows a key
//! to its destinations (another destination on the same connection is "administratively
//! prohibited"), `from=` admits only matching client addresses (the client binds 127.0.0.5 with
//! `ssh -b` to appear from there; a negated pattern denies), `expiry-time` in the past locks a
//! key out, `restrict` stops a key from moving any byte unless `port-forwarding` follows it, and
//! a line with an unknown option is rejected alone (`key_line_rejected` names it) while the
//! other lines keep working.

use std::io::{Read, Write};
use std::time::Duration;

use e2e::*;

const READY: Duration = Duration::from_secs(20);
const PROHIBITED: &str = "administratively prohibited";
/// A second loopback address: `ssh -b` makes the client appear from it.
const OTHER_LOOPBACK: &str = "127.0.0.5";

/// `auth` events about this key with this result.
fn auth_events(bastion: &Bastion, key: &KeyPair, result: &str) -> Vec<serde_json::Value> {
    let fingerprint = key.fingerprint();
    bastion
        .events_named("auth")
        .into_iter()
        .filter(|e| e["result"] == result && e["fingerprint"] == fingerprint.as_str())
        .collect()
}

/// Waits for a rejected `auth` event about `key` whose detail contains `needle`.
fn expect_rejection_logged(bastion: &Bastion, key: &KeyPair, needle: &str, what: &str) {
    let fingerprint = key.fingerprint();
    let found = bastion.wait_event(Duration::from_secs(5), |e| {
        e["event"] == "auth"
            && e["result"] == "rejected"
            && e["fingerprint"] == fingerprint.as_str()
            && e["detail"].as_str().is_some_and(|d| d.contains(needle))
    });
    assert!(
        found.is_some(),
        "{what}: no rejected auth event for {fingerprint} mentioning {needle:?}; auth events: \
         {:?}",
        bastion.events_named("auth")
    );
}

/// A key whose line carries `permitopen="127.0.0.1:A"` tunnels to A and is refused B on the same
/// connection, although the server-wide policy allows both; another key without the option
/// reaches B through the same bastion, so the option is what refused it.
#[test]
fn permitopen_narrows_a_key_to_its_destinations() {
    let dir = TestDir::new();
    let a = TestServer::echo_v4();
    let b = TestServer::echo_v4();
    let narrow = generate_key(dir.path(), "narrow");
    let wide = generate_key(dir.path(), "wide");
    let keys = format!(
        "permitopen=\"127.0.0.1:{}\" {}\n{}\n",
        a.port(),
        narrow.public_line,
        wide.public_line
    );
    let bastion = BastionBuilder::new(&keys)
        .permit_open(format!("127.0.0.1:{},127.0.0.1:{}", a.port(), b.port()))
        .start();

    let sock_a = dir.socket("a.sock");
    let sock_b = dir.socket("b.sock");
    let mut ssh = bastion
        .ssh(&narrow.private)
        .arg("-N")
        .forward(&sock_a, &a.spec())
        .forward(&sock_b, &b.spec())
        .spawn("ssh -N -L a -L b (permitopen key)", Input::Null);
    let mut to_a = ssh.connect_unix(sock_a.as_ref(), READY);
    echo_round_trip(&mut to_a, b"permitted by permitopen", "tunnel to A");

    let mut to_b = ssh.connect_unix(sock_b.as_ref(), READY);
    to_b.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("setting a read timeout");
    let _ = to_b.write_all(b"must not arrive");
    let mut buf = [0u8; 64];
    let got = to_b.read(&mut buf);
    assert!(
        matches!(got, Ok(0))
            || matches!(&got, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock),
        "the tunnel to B (not in permitopen) stayed open: {got:?}"
    );
    assert!(
        ssh.wait_stderr(&format!("open failed: {PROHIBITED}"), READY),
        "ssh did not report {PROHIBITED:?} for B; stderr:\n{}",
        ssh.stderr()
    );
    assert_eq!(
        b.accepted(),
        0,
        "destination B was reached by the permitopen key"
    );
    let refused = bastion.wait_event(Duration::from_secs(5), |e| {
        e["event"] == "tunnel_refused"
            && e["destination"] == format!("127.0.0.1:{}", b.port()).as_str()
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("permitopen"))
    });
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "no tunnel_refused event naming permitopen for B; events: {:?}",
            bastion.events_named("tunnel_refused")
        )
    });
    assert_eq!(
        refused["fingerprint"].as_str(),
        Some(narrow.fingerprint().as_str()),
        "the refusal names the permitopen key"
    );

    // The connection survived the refusal: A still echoes on a fresh tunnel.
    let mut again = ssh.connect_unix(sock_a.as_ref(), READY);
    echo_round_trip(
        &mut again,
        b"A after the refusal",
        "tunnel to A after B was refused",
    );

    // Control: a key without the option reaches B through the same bastion.
    expect_moves_bytes(
        &attempt(bastion.ssh(&wide.private), &b.spec(), "wide key to B\n"),
        "key without permitopen to B",
    );
    assert_eq!(
        b.accepted(),
        1,
        "B was reached once, by the key without permitopen"
    );
}

/// `from=` is matched against the client's address: the client appears from 127.0.0.5
/// (`ssh -b`) or 127.0.0.1. An exact address admits only itself, a range elsewhere admits
/// nobody here, and a negation inside an allowed range denies just that address.
#[test]
fn from_admits_only_matching_client_addresses() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let exact = generate_key(dir.path(), "from-exact");
    let elsewhere = generate_key(dir.path(), "from-elsewhere");
    let negated = generate_key(dir.path(), "from-negated");
    let keys = format!(
        "from=\"{OTHER_LOOPBACK}\" {}\nfrom=\"10.0.0.0/8\" {}\n\
         from=\"127.0.0.0/8,!{OTHER_LOOPBACK}\" {}\n",
        exact.public_line, elsewhere.public_line, negated.public_line
    );
    let bastion = BastionBuilder::new(&keys)
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    let from_other = |key: &KeyPair| bastion.ssh(&key.private).arg("-b").arg(OTHER_LOOPBACK);

    // From 127.0.0.5.
    expect_moves_bytes(
        &attempt(from_other(&exact), &echo.spec(), "exact from .5\n"),
        "from=\"127.0.0.5\" key from 127.0.0.5",
    );
    let accepted = auth_events(&bastion, &exact, "accepted");
    assert!(
        accepted.iter().any(|e| e["client"]
            .as_str()
            .is_some_and(|c| c.starts_with(&format!("{OTHER_LOOPBACK}:")))),
        "the bastion did not see the client at {OTHER_LOOPBACK} (is `ssh -b` effective?): \
         {accepted:?}"
    );
    expect_login_refused(
        &attempt(from_other(&elsewhere), &echo.spec(), "elsewhere from .5\n"),
        "from=\"10.0.0.0/8\" key from 127.0.0.5",
    );
    expect_rejection_logged(&bastion, &elsewhere, "not allowed by from=", "10/8 from .5");
    expect_login_refused(
        &attempt(from_other(&negated), &echo.spec(), "negated from .5\n"),
        "from=\"127.0.0.0/8,!127.0.0.5\" key from 127.0.0.5",
    );
    expect_rejection_logged(
        &bastion,
        &negated,
        &format!("matches \"!{OTHER_LOOPBACK}\""),
        "negated from .5",
    );

    // From 127.0.0.1: the negated range admits it, the exact address does not.
    expect_moves_bytes(
        &attempt(
            bastion.ssh(&negated.private),
            &echo.spec(),
            "negated from .1\n",
        ),
        "from=\"127.0.0.0/8,!127.0.0.5\" key from 127.0.0.1",
    );
    expect_login_refused(
        &attempt(bastion.ssh(&exact.private), &echo.spec(), "exact from .1\n"),
        "from=\"127.0.0.5\" key from 127.0.0.1",
    );
    expect_rejection_logged(
        &bastion,
        &exact,
        "client 127.0.0.1 not allowed",
        "exact from .1",
    );
    assert_eq!(
        echo.accepted(),
        2,
        "only the two admitted logins reached the destination"
    );
}

/// `expiry-time` in the past refuses the key; one in the future does not.
#[test]
fn an_expired_key_is_refused_and_a_future_expiry_is_accepted() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let expired = generate_key(dir.path(), "expired");
    let current = generate_key(dir.path(), "current");
    let keys = format!(
        "expiry-time=\"20200101\" {}\nexpiry-time=\"20991231\" {}\n",
        expired.public_line, current.public_line
    );
    let bastion = BastionBuilder::new(&keys)
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    expect_login_refused(
        &attempt(bastion.ssh(&expired.private), &echo.spec(), "expired\n"),
        "key with expiry-time=\"20200101\"",
    );
    expect_rejection_logged(&bastion, &expired, "expired", "expiry-time 2020");
    assert_eq!(
        echo.accepted(),
        0,
        "the expired key reached the destination"
    );
    expect_moves_bytes(
        &attempt(bastion.ssh(&current.private), &echo.spec(), "current\n"),
        "key with expiry-time=\"20991231\"",
    );
    assert!(
        !auth_events(&bastion, &current, "accepted").is_empty(),
        "no accepted auth event for the unexpired key"
    );
}

/// `restrict` (and `port-forwarding,restrict`, since options apply left to right) leaves a key
/// unable to move a byte: the login or the tunnel is refused. `restrict,port-forwarding`
/// re-enables tunnels.
#[test]
fn restrict_blocks_tunnels_unless_port_forwarding_follows() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let restricted = generate_key(dir.path(), "restricted");
    let reversed = generate_key(dir.path(), "reversed");
    let reenabled = generate_key(dir.path(), "reenabled");
    let keys = format!(
        "restrict {}\nport-forwarding,restrict {}\nrestrict,port-forwarding {}\n",
        restricted.public_line, reversed.public_line, reenabled.public_line
    );
    let bastion = BastionBuilder::new(&keys)
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    for (key, what) in [
        (&restricted, "restrict"),
        (&reversed, "port-forwarding,restrict"),
    ] {
        let tried = attempt(bastion.ssh(&key.private), &echo.spec(), "restricted\n");
        assert!(!tried.echoed, "{what}: bytes moved: {tried:?}");
        assert!(
            !tried.status.success(),
            "{what}: ssh -W exited 0: {tried:?}"
        );
        let login_refused = tried.stderr.contains(DENIED);
        let tunnel_refused = tried.stderr.contains(PROHIBITED);
        println!(
            "{what}: login refused: {login_refused}, tunnel refused: {tunnel_refused}; ssh said: \
             {}",
            tried.stderr.trim()
        );
        assert!(
            login_refused || tunnel_refused,
            "{what}: neither the login nor the tunnel was refused visibly: {tried:?}"
        );
        let fingerprint = key.fingerprint();
        let logged = bastion.wait_event(Duration::from_secs(5), |e| {
            e["fingerprint"] == fingerprint.as_str()
                && ((e["event"] == "auth" && e["result"] == "rejected")
                    || e["event"] == "tunnel_refused")
        });
        assert!(
            logged.is_some(),
            "{what}: the bastion logged no refusal for {fingerprint}"
        );
    }
    assert_eq!(
        echo.accepted(),
        0,
        "a restricted key reached the destination"
    );
    expect_moves_bytes(
        &attempt(bastion.ssh(&reenabled.private), &echo.spec(), "reenabled\n"),
        "restrict,port-forwarding",
    );
    assert_eq!(echo.accepted(), 1);
}

/// A line with an unknown option is rejected on its own: `key_line_rejected` names its line and
/// the option, its key cannot log in, and the keys on the lines around it still work.
#[test]
fn a_line_with_an_unknown_option_is_rejected_alone() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let before = generate_key(dir.path(), "before");
    let bogus = generate_key(dir.path(), "bogus");
    let after = generate_key(dir.path(), "after");
    // Line 3 is the bad one (line 1 is a comment).
    let keys = format!(
        "# team keys\n{}\nno-such-option,permitopen=\"127.0.0.1:{}\" {}\n{}\n",
        before.public_line,
        echo.port(),
        bogus.public_line,
        after.public_line
    );
    let bastion = BastionBuilder::new(&keys)
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    let rejected = bastion.events_named("key_line_rejected");
    assert_eq!(
        rejected.len(),
        1,
        "expected exactly one key_line_rejected event at start: {rejected:?}"
    );
    assert_eq!(
        rejected[0]["line"], 3,
        "the event names line 3: {}",
        rejected[0]
    );
    assert!(
        rejected[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-option")),
        "the event names the unknown option: {}",
        rejected[0]
    );
    expect_moves_bytes(
        &attempt(bastion.ssh(&before.private), &echo.spec(), "line 2\n"),
        "the key on the line before the rejected one",
    );
    expect_moves_bytes(
        &attempt(bastion.ssh(&after.private), &echo.spec(), "line 4\n"),
        "the key on the line after the rejected one",
    );
    expect_login_refused(
        &attempt(bastion.ssh(&bogus.private), &echo.spec(), "line 3\n"),
        "the key of the rejected line",
    );
    assert_eq!(
        echo.accepted(),
        2,
        "only the two good keys reached the destination"
    );
}

/// The lines of `text` that list a destination (indented by two spaces), trimmed.
fn listed(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(|l| l.trim_end().to_owned())
        .collect()
}

/// A held session tells each key what it may open: the key with `permitopen="127.0.0.1:A"`
/// sees exactly that destination, in the shell notice (`ssh -tt`) and on the stderr of a refused
/// command (`ssh host somecommand`), and none of the server's wider rules; a key without options
/// on the same bastion sees the server's rules.
#[test]
fn the_session_lists_what_this_key_may_open() {
    let dir = TestDir::new();
    let a = TestServer::echo_v4();
    let narrow = generate_key(dir.path(), "narrow");
    let wide = generate_key(dir.path(), "wide");
    let keys = format!(
        "permitopen=\"127.0.0.1:{}\" {}\n{}\n",
        a.port(),
        narrow.public_line,
        wide.public_line
    );
    let bastion = BastionBuilder::new(&keys)
        .permit_open(format!(
            "127.0.0.1:{},10.0.0.0/8:5432,*.db.internal:*",
            a.port()
        ))
        .start();
    let own = format!("127.0.0.1:{}", a.port());

    let shell = shell_notice(&bastion, &narrow.private);
    assert_eq!(listed(&shell), vec![own.as_str()], "shell notice:\n{shell}");
    assert!(
        shell.contains(&format!(":{own} <user>@<this host>")),
        "{shell}"
    );
    let command = refused_command_stderr(&bastion, &narrow.private);
    assert_eq!(
        listed(&command),
        vec![own.as_str()],
        "command refusal:\n{command}"
    );
    for text in [&shell, &command] {
        assert!(
            !text.contains("10.0.0.0/8") && !text.contains("db.internal"),
            "the narrow key was shown the server's wider rules:\n{text}"
        );
    }

    let rules = [
        format!("127.0.0.1 port {}", a.port()),
        "10.0.0.0/8 port 5432".to_owned(),
        "*.db.internal any port".to_owned(),
    ];
    let shell = shell_notice(&bastion, &wide.private);
    assert_eq!(listed(&shell), rules, "shell notice:\n{shell}");
    let command = refused_command_stderr(&bastion, &wide.private);
    assert_eq!(listed(&command), rules, "command refusal:\n{command}");
}

/// `ssh -tt` (a pty and a shell): the notice, until Ctrl-C ends the session.
fn shell_notice(bastion: &Bastion, key: &std::path::Path) -> String {
    let mut ssh = bastion.ssh(key).arg("-tt").spawn("ssh -tt", Input::Piped);
    assert!(
        ssh.proc
            .stdout()
            .wait_for_text("add -N", Duration::from_secs(20)),
        "no session notice; stdout {:?}; stderr {}",
        ssh.proc.stdout().text(),
        ssh.stderr()
    );
    let text = ssh.proc.stdout().text();
    ssh.proc.stdin().write_all(&[0x03]).expect("sending Ctrl-C");
    ssh.proc.stdin().flush().expect("flushing Ctrl-C");
    ssh.proc
        .expect_exit(Duration::from_secs(5), "ssh -tt after Ctrl-C");
    text
}

/// `ssh host somecommand`: refused with status 1; its stderr.
fn refused_command_stderr(bastion: &Bastion, key: &std::path::Path) -> String {
    let out = bastion.ssh(key).remote("somecommand").run(SSH_TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "ssh host somecommand: {out:?}");
    out.stderr
}
