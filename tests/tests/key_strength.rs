//! What a key and its signature must be, whatever line authorizes it:
//!
//! - an RSA key signs with SHA-2: a patched paramiko signing with SHA-1 `ssh-rsa`, or
//!   presenting a certificate as `ssh-rsa-cert-v01@openssh.com`, is refused; the same key or
//!   certificate with `rsa-sha2-256` gets in;
//! - no RSA key below `BASTION_MIN_RSA_BITS` (2048 by default, 1024 at the lowest): a 1024-bit
//!   user key, certificate key or CA key is refused by default (its authorized_keys line is
//!   rejected at load, naming the line and the size) and accepted with the setting at 1024; a
//!   1024-bit host key, or a setting of 512, stops the start with a message.
//!
//! - a security key (`sk-ssh-ed25519@openssh.com`) logs in only where a touch is waived: the
//!   bastion cannot see the user-presence flag of its signature, so a plain or
//!   `touch-required` line refuses it (even touched), warning at load that it can never log
//!   in, and a `no-touch-required` line accepts it touched or not; a certificate of a
//!   security key needs `no-touch-required` on the `cert-authority` line and in the
//!   certificate. The security key is `auth_peer.py`'s, signing as an authenticator would.
//!
//! Each refusal at login is an `auth` audit event whose detail tells the operator why.
//!
//! The peers are the stock OpenSSH client and `tests/peers/auth_peer.py` (paramiko) for the
//! signatures OpenSSH will not make.

use std::time::Duration;

use serde_json::Value;

use e2e::*;

/// The next `auth` event after the first `seen` ones (the bastion's decision on a login).
fn next_auth_event(bastion: &Bastion, seen: usize) -> Value {
    poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        bastion.events_named("auth").into_iter().nth(seen)
    })
    .unwrap_or_else(|| {
        panic!(
            "no `auth` event #{seen}; stderr:\n{}",
            bastion.stderr_text()
        )
    })
}

/// One `auth_peer.py` login (`mode` and its arguments after host and port): the peer signed
/// with `algorithm` and got in exactly when `accepted`. Returns the bastion's `auth` event.
fn peer_login(
    bastion: &Bastion,
    mode: &str,
    args: &[&str],
    algorithm: &str,
    accepted: bool,
) -> Value {
    let seen = bastion.events_named("auth").len();
    let report = auth_peer_login(bastion.addr(), mode, args);
    assert_eq!(report["algorithm"], algorithm, "{mode} {args:?}: {report}");
    assert_eq!(
        report["authenticated"], accepted,
        "{mode} {args:?}: logged in should be {accepted}: {report}"
    );
    let event = next_auth_event(bastion, seen);
    let result = if accepted { "accepted" } else { "rejected" };
    assert_eq!(event["result"], result, "{event}");
    event
}

fn detail(event: &Value) -> &str {
    event["detail"].as_str().unwrap_or_default()
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn sha1_rsa_signatures_are_refused_and_sha2_ones_accepted() {
    let dir = TestDir::new();
    let rsa = generate_key_of_type(dir.path(), "id_rsa", "rsa");
    let bastion = BastionBuilder::new(&rsa.public_line).start();
    let key = path_str(&rsa.private);
    let refused = peer_login(&bastion, "rsa", &[key, "ssh-rsa"], "ssh-rsa", false);
    assert!(
        detail(&refused).contains("ssh-rsa (RSA with SHA-1) is refused")
            && detail(&refused).contains("rsa-sha2-512"),
        "{refused}"
    );
    assert_eq!(
        refused["fingerprint"].as_str(),
        Some(rsa.fingerprint().as_str())
    );
    let sha2 = "rsa-sha2-256";
    peer_login(&bastion, "rsa", &[key, sha2], sha2, true);
}

#[test]
fn sha1_rsa_certificate_signatures_are_refused() {
    let dir = TestDir::new();
    let ca = generate_key(dir.path(), "ca");
    let rsa = generate_key_of_type(dir.path(), "id_rsa", "rsa");
    let cert = sign_certificate(
        dir.path(),
        &ca,
        &rsa,
        "user",
        &["-I", "e2e", "-n", "tunnel"],
    );
    let bastion = BastionBuilder::new(&format!("cert-authority {}\n", ca.public_line)).start();
    let args = |algorithm| [path_str(&rsa.private), algorithm, path_str(&cert)];
    let sha1 = "ssh-rsa-cert-v01@openssh.com";
    let refused = peer_login(&bastion, "rsa", &args("ssh-rsa"), sha1, false);
    assert!(detail(&refused).contains("RSA with SHA-1"), "{refused}");
    let sha2 = "rsa-sha2-256-cert-v01@openssh.com";
    let accepted = peer_login(&bastion, "rsa", &args("rsa-sha2-256"), sha2, true);
    assert!(detail(&accepted).contains("certificate id"), "{accepted}");
}

/// Runs a bastion that must refuse its configuration: exit status 2, no `listening` event, and
/// every needle in its stderr.
fn refuses_to_start(builder: BastionBuilder, needles: &[&str]) {
    let out = builder.run_to_exit(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", out.stderr);
    assert!(!out.stderr.contains("\"listening\""), "{}", out.stderr);
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "stderr does not mention {needle:?}:\n{}",
            out.stderr
        );
    }
}

/// The `key_line_rejected` event of line `line`.
fn line_rejected(bastion: &Bastion, line: u64) -> Value {
    bastion
        .wait_event(Duration::from_secs(5), |e| {
            e["event"] == "key_line_rejected" && e["line"] == line
        })
        .unwrap_or_else(|| {
            panic!(
                "no key_line_rejected event for line {line}:\n{}",
                bastion.stderr_text()
            )
        })
}

/// `ssh -W echo` with `client`: did it get through? Returns the `auth` events of its logins
/// (ssh may try a certificate and then its plain key; when it gets in, the last is accepted).
fn ssh_login(bastion: &Bastion, client: Ssh, echo: &TestServer, accepted: bool) -> Vec<Value> {
    let seen = bastion.events_named("auth").len();
    let run = attempt(client, &echo.spec(), "through the bastion\n");
    if accepted {
        expect_moves_bytes(&run, "ssh -W");
    } else {
        expect_login_refused(&run, "ssh -W");
    }
    let events: Vec<Value> = bastion
        .events_named("auth")
        .into_iter()
        .skip(seen)
        .collect();
    let results: Vec<&Value> = events.iter().map(|e| &e["result"]).collect();
    let expected = if accepted {
        results.last().is_some_and(|r| *r == "accepted")
    } else {
        !events.is_empty() && results.iter().all(|r| *r == "rejected")
    };
    assert!(
        expected,
        "auth events of a login that got in: {accepted}: {events:?}"
    );
    events
}

/// One of the `auth` events has a detail starting with `prefix`.
fn assert_any_detail(events: &[Value], prefix: &str) {
    assert!(
        events.iter().any(|e| detail(e).starts_with(prefix)),
        "no auth event detail starts with {prefix:?}: {events:?}"
    );
}

#[test]
fn a_1024_bit_rsa_user_key_is_refused_by_default_and_accepted_at_1024() {
    let dir = TestDir::new();
    let small = generate_rsa_key(dir.path(), "id_rsa1024", 1024);
    let echo = TestServer::echo_v4();
    let keys = format!("{}\n{}\n", dir.key.public_line, small.public_line);
    let start = |min: Option<&str>| {
        let builder = BastionBuilder::new(&keys).permit_open(echo.spec());
        match min {
            Some(bits) => builder.env("BASTION_MIN_RSA_BITS", bits),
            None => builder,
        }
        .start()
    };
    let bastion = start(None);
    let refused = ssh_login(&bastion, bastion.ssh(&small.private), &echo, false);
    assert_any_detail(
        &refused,
        "RSA key of 1024 bits is below the minimum of 2048 bits",
    );
    let rejected = line_rejected(&bastion, 2);
    let error = rejected["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("RSA key of 1024 bits is below the minimum of 2048 bits")
            && error.contains("BASTION_MIN_RSA_BITS"),
        "{rejected}"
    );
    ssh_login(&bastion, bastion.ssh(&dir.key.private), &echo, true);
    let lowered = start(Some("1024"));
    ssh_login(&lowered, lowered.ssh(&small.private), &echo, true);
    assert!(lowered.events_named("key_line_rejected").is_empty());
}

#[test]
fn certificates_with_a_1024_bit_rsa_key_or_ca_are_refused_by_default() {
    let dir = TestDir::new();
    let ca = generate_key(dir.path(), "ca");
    let small_ca = generate_rsa_key(dir.path(), "ca_rsa1024", 1024);
    let small_user = generate_rsa_key(dir.path(), "user_rsa1024", 1024);
    let principal = ["-I", "e2e", "-n", "tunnel"];
    // A 1024-bit key certified by a strong CA, and a strong key certified by a 1024-bit CA.
    let small_key_cert = sign_certificate(dir.path(), &ca, &small_user, "small_key", &principal);
    let small_ca_cert = sign_certificate(dir.path(), &small_ca, &dir.key, "small_ca", &principal);
    let echo = TestServer::echo_v4();
    let keys = format!(
        "cert-authority {}\ncert-authority {}\n",
        ca.public_line, small_ca.public_line
    );
    let start = |bits: &str| {
        BastionBuilder::new(&keys)
            .permit_open(echo.spec())
            .env("BASTION_MIN_RSA_BITS", bits)
            .env("BASTION_PER_SOURCE_PENALTIES", "no")
            .start()
    };
    let with_cert = |bastion: &Bastion, key: &KeyPair, cert: &std::path::Path| {
        bastion
            .ssh(&key.private)
            .option("CertificateFile", path_str(cert))
    };
    let bastion = start("2048");
    let client = with_cert(&bastion, &small_user, &small_key_cert);
    let refused = ssh_login(&bastion, client, &echo, false);
    assert_any_detail(&refused, "RSA certificate key of 1024 bits");
    let client = with_cert(&bastion, &dir.key, &small_ca_cert);
    let refused = ssh_login(&bastion, client, &echo, false);
    assert_any_detail(&refused, "RSA CA key of 1024 bits");
    let rejected = line_rejected(&bastion, 2);
    let error = rejected["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("RSA cert-authority key of 1024 bits"),
        "{rejected}"
    );
    let lowered = start("1024");
    for (key, cert) in [(&small_user, &small_key_cert), (&dir.key, &small_ca_cert)] {
        let accepted = ssh_login(&lowered, with_cert(&lowered, key, cert), &echo, true);
        let last = accepted.last().cloned().unwrap_or_default();
        assert!(detail(&last).contains("certificate id"), "{last}");
    }
}

#[test]
fn a_1024_bit_rsa_host_key_stops_the_start_unless_allowed() {
    let dir = TestDir::new();
    let host = generate_rsa_key(dir.path(), "host_rsa1024", 1024);
    let builder = dir
        .bastion()
        .env("BASTION_HOST_KEY_FILE", path_str(&host.private));
    refuses_to_start(
        builder.clone(),
        &[
            "BASTION_HOST_KEY_FILE",
            "RSA host key of 1024 bits is below the minimum of 2048 bits",
            "BASTION_MIN_RSA_BITS",
        ],
    );
    let bastion = builder.env("BASTION_MIN_RSA_BITS", "1024").start();
    assert_eq!(
        scan_host_key_fingerprints(bastion.addr().ip(), bastion.port()),
        vec![host.fingerprint()]
    );
}

#[test]
fn the_minimum_cannot_be_set_below_1024() {
    let dir = TestDir::new();
    refuses_to_start(
        dir.bastion().env("BASTION_MIN_RSA_BITS", "512"),
        &["BASTION_MIN_RSA_BITS: 512 is below 1024"],
    );
}

/// The Ed25519 seed of `auth_peer.py`'s security key.
const SK_SEED: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const SK_ED25519: &str = "sk-ssh-ed25519@openssh.com";
/// What the refusal of a security key tells the operator.
const SK_REFUSED: &str = "this server cannot check the security key's user-presence flag";

/// A bastion authorizing these lines (penalties off: the tests fail logins on purpose).
fn start_with_lines(lines: &str) -> Bastion {
    BastionBuilder::new(lines)
        .env("BASTION_PER_SOURCE_PENALTIES", "no")
        .start()
}

/// The security key logs in, signing with user-presence `flags` (and `cert`, if given).
fn sk_login(bastion: &Bastion, flags: &str, cert: Option<&str>, accepted: bool) -> Value {
    let mut args = vec![SK_SEED, flags];
    args.extend(cert);
    let algorithm = match cert {
        Some(_) => "sk-ssh-ed25519-cert-v01@openssh.com",
        None => SK_ED25519,
    };
    peer_login(bastion, "sk", &args, algorithm, accepted)
}

#[test]
fn a_security_key_logs_in_only_on_a_no_touch_required_line() {
    let sk = sk_public_line(SK_SEED);
    for options in ["", "touch-required ", "no-touch-required,touch-required "] {
        let bastion = start_with_lines(&format!("{options}{sk}\n"));
        let refused = sk_login(&bastion, "0", None, false);
        assert!(
            detail(&refused).contains(SK_REFUSED)
                && detail(&refused).contains("add no-touch-required to its authorized_keys line"),
            "{options:?}: {refused}"
        );
        // Touched or not: the bastion cannot tell, so it cannot accept either.
        sk_login(&bastion, "1", None, false);
        let warning = bastion
            .wait_event(Duration::from_secs(5), |e| {
                e["event"] == "key_option_note" && e["level"] == "WARN"
            })
            .unwrap_or_else(|| panic!("{options:?}: no warning at load"));
        let note = warning["note"].as_str().unwrap_or_default();
        assert!(
            note.starts_with("this line can never log in") && note.contains(SK_REFUSED),
            "{warning}"
        );
    }
    let bastion = start_with_lines(&format!(
        "restrict,port-forwarding,no-touch-required {sk}\n"
    ));
    sk_login(&bastion, "0", None, true);
    sk_login(&bastion, "1", None, true);
    assert!(bastion
        .events_named("key_option_note")
        .iter()
        .all(|e| e["level"] != "WARN"));
}

#[test]
fn a_security_key_certificate_needs_no_touch_required_from_the_ca_line_and_itself() {
    let dir = TestDir::new();
    let ca = generate_key(dir.path(), "ca");
    let sk_pub = dir.join("sk.pub");
    std::fs::write(&sk_pub, format!("{}\n", sk_public_line(SK_SEED))).expect("writing sk.pub");
    let sk = KeyPair {
        private: dir.join("sk"),
        public: sk_pub,
        public_line: String::new(),
    };
    let principal = ["-I", "e2e", "-n", "tunnel"];
    let plain = sign_certificate(dir.path(), &ca, &sk, "plain", &principal);
    let waived = sign_certificate(
        dir.path(),
        &ca,
        &sk,
        "waived",
        &["-I", "e2e", "-n", "tunnel", "-O", "no-touch-required"],
    );
    let (plain, waived) = (path_str(&plain), path_str(&waived));
    let strict = start_with_lines(&format!("cert-authority {}\n", ca.public_line));
    for cert in [plain, waived] {
        let refused = sk_login(&strict, "0", Some(cert), false);
        assert!(detail(&refused).contains(SK_REFUSED), "{refused}");
        assert!(
            detail(&refused).contains("add no-touch-required to the cert-authority line"),
            "{refused}"
        );
    }
    let lenient = start_with_lines(&format!(
        "cert-authority,no-touch-required {}\n",
        ca.public_line
    ));
    let refused = sk_login(&lenient, "0", Some(plain), false);
    assert!(
        detail(&refused).contains("re-issue the certificate with the no-touch-required extension"),
        "{refused}"
    );
    sk_login(&lenient, "0", Some(waived), true);
    sk_login(&lenient, "1", Some(waived), true);
}
