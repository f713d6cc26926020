//! The transport algorithms a client can negotiate, as the stock OpenSSH client sees them (what
//! ssh-audit would flag): only encrypt-then-MAC MACs are offered, so `ssh -m hmac-sha2-256`
//! with a CTR cipher cannot connect while `-m hmac-sha2-256-etm@openssh.com` can; and the key
//! exchange offered first is the post-quantum hybrid `mlkem768x25519-sha256`, which a client
//! that knows it negotiates by default (an older client, such as OpenSSH 9.2 without ML-KEM,
//! falls back to `curve25519-sha256`: the test then checks the server's offer and that
//! fallback).

use std::process::Command;
use std::time::Duration;

use e2e::*;

/// The MACs the bastion offers, best first.
const SERVER_MACS: &str = "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com";
const MLKEM: &str = "mlkem768x25519-sha256";

fn setup() -> (TestDir, TestServer, Bastion) {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    (dir, echo, bastion)
}

/// `ssh -vv -W echo` with stdin `/dev/null` and `extra` options: its exit status and output.
fn probe(bastion: &Bastion, dir: &TestDir, echo: &TestServer, extra: &[&str]) -> Finished {
    bastion
        .ssh(&dir.key.private)
        .arg("-vv")
        .args(extra.iter().copied())
        .arg("-W")
        .arg(echo.spec())
        .run(SSH_TIMEOUT)
}

/// The value of a `debug2: NAME: ...` line of the server's KEXINIT proposal, as `ssh -vv`
/// prints it after `peer server KEXINIT proposal`.
fn server_proposal(stderr: &str, name: &str) -> String {
    let proposal = stderr
        .split("peer server KEXINIT proposal")
        .nth(1)
        .unwrap_or_else(|| panic!("ssh -vv printed no server KEXINIT proposal:\n{stderr}"));
    let prefix = format!("debug2: {name}: ");
    proposal
        .lines()
        .find_map(|l| l.trim_end().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in the server proposal:\n{proposal}"))
        .to_string()
}

/// Does this OpenSSH client know the ML-KEM hybrid key exchange (`ssh -Q kex`)?
fn client_knows_mlkem() -> bool {
    let mut cmd = Command::new(require_tool("ssh"));
    cmd.args(["-Q", "kex"]);
    let out = run_command(&mut cmd, "ssh -Q kex", Duration::from_secs(10));
    out.expect_success("ssh -Q kex");
    out.stdout.lines().any(|l| l.trim() == MLKEM)
}

#[test]
fn only_encrypt_then_mac_macs_are_offered() {
    let (dir, echo, bastion) = setup();
    for plain in ["hmac-sha2-256", "hmac-sha2-512"] {
        let out = probe(&bastion, &dir, &echo, &["-c", "aes128-ctr", "-m", plain]);
        assert!(
            !out.status.success(),
            "ssh -m {plain} connected: the bastion offers a MAC that is not encrypt-then-MAC\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("no matching MAC found"),
            "ssh -m {plain}: expected \"no matching MAC found\":\n{}",
            out.stderr
        );
    }
    for etm in [
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
    ] {
        let out = probe(&bastion, &dir, &echo, &["-c", "aes128-ctr", "-m", etm]);
        out.expect_success(&format!("ssh -c aes128-ctr -m {etm}"));
        assert!(
            out.stderr.contains(&format!("MAC: {etm}")),
            "ssh -m {etm} did not negotiate it:\n{}",
            out.stderr
        );
    }
    let out = probe(&bastion, &dir, &echo, &[]);
    out.expect_success("ssh with the client's default algorithms");
    assert_eq!(server_proposal(&out.stderr, "MACs ctos"), SERVER_MACS);
    assert_eq!(server_proposal(&out.stderr, "MACs stoc"), SERVER_MACS);
}

#[test]
fn the_hybrid_post_quantum_key_exchange_is_preferred() {
    let (dir, echo, bastion) = setup();
    let out = probe(&bastion, &dir, &echo, &[]);
    out.expect_success("ssh with the client's default algorithms");
    let offered = server_proposal(&out.stderr, "KEX algorithms");
    let names: Vec<&str> = offered.split(',').collect();
    assert_eq!(
        names.first().copied(),
        Some(MLKEM),
        "the server does not offer {MLKEM} first: {offered}"
    );
    assert_eq!(
        names.get(1).copied(),
        Some("curve25519-sha256"),
        "the server's second key exchange is not curve25519-sha256: {offered}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("diffie-hellman")
            || n.starts_with("ecdh-sha2")
            || n.starts_with("sntrup")),
        "the server offers a key exchange it should not: {offered}"
    );
    let expected = if client_knows_mlkem() {
        MLKEM
    } else {
        // This client (OpenSSH before 9.9) has no ML-KEM; its own first choice,
        // sntrup761x25519-sha512, is not offered by the bastion, so curve25519-sha256 it is.
        println!("this ssh has no {MLKEM}: checking the curve25519-sha256 fallback instead");
        "curve25519-sha256"
    };
    let chosen = format!("kex: algorithm: {expected}");
    assert!(
        out.stderr.lines().any(|l| l.trim_end().ends_with(&chosen)),
        "ssh with default settings did not negotiate {expected}:\n{}",
        out.stderr
    );
}
