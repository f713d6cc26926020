//! Authentication as a client sees it: an unknown key is refused with `Permission denied
//! (publickey)`, password and keyboard-interactive are never offered nor accepted (even with a
//! password ready to send), and a connection may try only `BASTION_MAX_AUTH_TRIES` keys: an
//! authorized key offered after that many unauthorized ones does not get in.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use e2e::*;

/// `ssh -W` to an echo server with stdin `/dev/null`: exits 0 at once when authentication works.
fn probe(client: Ssh, echo: &TestServer) -> Finished {
    client.arg("-W").arg(echo.spec()).run(SSH_TIMEOUT)
}

fn setup(dir: &TestDir, extra: &[(&str, &str)]) -> (Bastion, TestServer) {
    let echo = TestServer::echo_v4();
    let mut builder = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", echo.port()));
    for (k, v) in extra {
        builder = builder.env(k, *v);
    }
    (builder.start(), echo)
}

#[test]
fn the_authorized_key_gets_in() {
    let dir = TestDir::new();
    let (bastion, echo) = setup(&dir, &[]);
    let out = probe(bastion.ssh(&dir.key.private), &echo);
    out.expect_success("ssh -W with the authorized key");
    let accepted = bastion.wait_event(Duration::from_secs(5), |e| {
        e["event"] == "auth" && e["result"] == "accepted"
    });
    let accepted = accepted.expect("no auth accepted event");
    assert_eq!(
        accepted["fingerprint"].as_str(),
        Some(dir.key.fingerprint().as_str()),
        "the auth event names the client key's fingerprint"
    );
}

#[test]
fn an_unknown_key_is_refused() {
    let dir = TestDir::new();
    let (bastion, echo) = setup(&dir, &[]);
    let stranger = generate_key(dir.path(), "stranger");
    let out = probe(bastion.ssh(&stranger.private), &echo);
    assert!(!out.status.success(), "an unknown key got in: {out:?}");
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "expected `Permission denied (publickey)`: {}",
        out.stderr
    );
    assert_eq!(echo.accepted(), 0, "the destination was reached");
}

#[test]
fn password_and_keyboard_interactive_are_refused_even_when_offered() {
    let dir = TestDir::new();
    let (bastion, echo) = setup(&dir, &[]);
    // A client that would happily send a password: askpass answers without a terminal.
    let askpass = dir.join("askpass.sh");
    let asked = dir.join("askpass-was-called");
    std::fs::write(
        &askpass,
        format!("#!/bin/sh\ntouch '{}'\necho hunter2\n", asked.display()),
    )
    .expect("writing the askpass script");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755))
        .expect("making the askpass script executable");
    let client = bastion
        .ssh(&dir.key.private)
        .option("BatchMode", "no")
        .option("PreferredAuthentications", "password,keyboard-interactive")
        .option("PasswordAuthentication", "yes")
        .option("KbdInteractiveAuthentication", "yes")
        .option("NumberOfPasswordPrompts", "1")
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0");
    let out = probe(client, &echo);
    assert!(!out.status.success(), "password login succeeded: {out:?}");
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "the server must offer publickey only: {}",
        out.stderr
    );
    assert!(
        !asked.exists(),
        "the client was asked for a password, so the server offered password or \
         keyboard-interactive"
    );

    // The same with BatchMode (no prompting at all): still refused.
    let out = probe(
        bastion
            .ssh(&dir.key.private)
            .option("PreferredAuthentications", "password")
            .option("PasswordAuthentication", "yes"),
        &echo,
    );
    assert!(
        !out.status.success(),
        "password-only login succeeded: {out:?}"
    );
    assert_eq!(echo.accepted(), 0, "the destination was reached");
}

#[test]
fn authentication_attempts_are_capped() {
    let dir = TestDir::new();
    let max_tries = 3;
    let strangers: Vec<KeyPair> = (0..7)
        .map(|i| generate_key(dir.path(), &format!("stranger{i}")))
        .collect();
    // Seven unauthorized keys, then the authorized one.
    let with_keys = |bastion: &Bastion| {
        let mut client = bastion.ssh(&strangers[0].private).arg("-v");
        for key in strangers.iter().skip(1).chain([&dir.key]) {
            client = client.arg("-i").arg(&key.private);
        }
        client
    };

    let capped = max_tries.to_string();
    let (bastion, echo) = setup(&dir, &[("BASTION_MAX_AUTH_TRIES", &capped)]);
    let out = probe(with_keys(&bastion), &echo);
    let offers = out.stderr.matches("Offering public key").count();
    println!("MAX_AUTH_TRIES={max_tries}: the client offered {offers} keys before the end");
    assert!(
        !out.status.success(),
        "the authorized key (8th) got in although only {max_tries} tries are allowed: {}",
        out.stderr
    );
    assert!(
        offers <= max_tries + 1,
        "the client could offer {offers} keys with BASTION_MAX_AUTH_TRIES={max_tries}"
    );
    assert!(
        out.stderr.contains("Too many authentication failures")
            || out.stderr.contains("Connection closed")
            || out.stderr.contains("Disconnected")
            || out.stderr.contains("Permission denied"),
        "no sign that the server ended the connection: {}",
        out.stderr
    );
    assert_eq!(echo.accepted(), 0, "the destination was reached");

    // Control: with enough tries the same client gets in, so the cap is what stopped it.
    let (bastion, echo) = setup(&dir, &[("BASTION_MAX_AUTH_TRIES", "20")]);
    probe(with_keys(&bastion), &echo)
        .expect_success("the same keys with BASTION_MAX_AUTH_TRIES=20");
}

#[test]
fn an_idle_unauthenticated_connection_is_closed_after_the_login_grace_time() {
    let dir = TestDir::new();
    let (bastion, _echo) = setup(&dir, &[("BASTION_LOGIN_GRACE_TIME", "2s")]);
    let mut idle = std::net::TcpStream::connect(bastion.addr()).expect("connecting to the bastion");
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("setting a read timeout");
    let started = std::time::Instant::now();
    // Read the banner, then send nothing: the bastion must hang up on its own.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match std::io::Read::read(&mut idle, &mut buf) {
            Ok(0) => break true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    let after = started.elapsed();
    println!("idle pre-auth connection closed after {after:?}");
    assert!(
        String::from_utf8_lossy(&seen).starts_with("SSH-2.0-"),
        "no SSH banner: {:?}",
        String::from_utf8_lossy(&seen)
    );
    assert!(
        closed,
        "an idle unauthenticated connection stayed open for 20 s"
    );
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(10),
        "closed after {after:?} with BASTION_LOGIN_GRACE_TIME=2s"
    );
}
