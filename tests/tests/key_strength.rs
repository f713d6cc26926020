//! What a user key and its signature must be to log in, whatever line authorizes it: an RSA
//! key signs with SHA-2 (a patched paramiko signing with SHA-1 `ssh-rsa`, or presenting a
//! certificate as `ssh-rsa-cert-v01@openssh.com`, is refused; the same key or certificate with
//! `rsa-sha2-256` gets in). Each refusal is an `auth` audit event whose detail tells the
//! operator why.
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
