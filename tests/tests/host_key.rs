//! The host key clients see: a key given as text (`BASTION_HOST_KEY`) or as a file
//! (`BASTION_HOST_KEY_FILE`) is presented identically across restarts and matches
//! `ssh-keygen -lf key.pub`; without one, an ephemeral key is generated, announced by a WARN
//! `host_key` event naming the fingerprint clients see, and different on every start. A client
//! with strict host key checking connects with the right known_hosts entry and refuses a wrong one.

use std::time::Duration;

use e2e::*;

fn host_key_event(bastion: &Bastion) -> serde_json::Value {
    bastion
        .wait_event(Duration::from_secs(5), |e| e["event"] == "host_key")
        .unwrap_or_else(|| panic!("no host_key event; stderr:\n{}", bastion.stderr_text()))
}

fn scanned(bastion: &Bastion) -> Vec<String> {
    scan_host_key_fingerprints(bastion.addr().ip(), bastion.port())
}

#[test]
fn host_key_from_env_text_is_stable_across_restarts() {
    let dir = TestDir::new();
    let host = generate_key(dir.path(), "host_key");
    let expected = host.fingerprint();
    for run in 1..=2 {
        let bastion = dir
            .bastion()
            .env("BASTION_HOST_KEY", host.private_text())
            .start();
        assert_eq!(
            scanned(&bastion),
            vec![expected.clone()],
            "run {run}: the presented host key is not the configured one"
        );
        let event = host_key_event(&bastion);
        assert_eq!(
            event["fingerprint"].as_str(),
            Some(expected.as_str()),
            "{event}"
        );
        assert_eq!(event["source"], "env", "{event}");
    }
}

#[test]
fn host_key_from_file_is_stable_across_restarts() {
    let dir = TestDir::new();
    let host = generate_key(dir.path(), "host_key");
    let expected = host.fingerprint();
    let path = host.private.to_str().expect("UTF-8 temp path").to_string();
    for run in 1..=2 {
        let bastion = dir
            .bastion()
            .env("BASTION_HOST_KEY_FILE", path.as_str())
            .start();
        assert_eq!(
            scanned(&bastion),
            vec![expected.clone()],
            "run {run}: the presented host key is not the key file's"
        );
        let event = host_key_event(&bastion);
        assert_eq!(
            event["fingerprint"].as_str(),
            Some(expected.as_str()),
            "{event}"
        );
        assert_eq!(event["source"], "file", "{event}");
    }
}

#[test]
fn an_rsa_host_key_file_works() {
    let dir = TestDir::new();
    let host = generate_key_of_type(dir.path(), "host_rsa", "rsa");
    let echo = TestServer::echo_v4();
    let bastion = dir
        .bastion()
        .env(
            "BASTION_HOST_KEY_FILE",
            host.private.to_str().expect("UTF-8 temp path"),
        )
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    assert_eq!(scanned(&bastion), vec![host.fingerprint()]);
    // A full login with an RSA host key (rsa-sha2-* signatures).
    bastion
        .ssh(&dir.key.private)
        .option("HostKeyAlgorithms", "rsa-sha2-512,rsa-sha2-256")
        .arg("-W")
        .arg(echo.spec())
        .run(SSH_TIMEOUT)
        .expect_success("ssh -W to a bastion with an RSA host key");
}

#[test]
fn without_a_host_key_an_ephemeral_key_is_announced_and_changes() {
    let dir = TestDir::new();
    let first = dir.bastion().start();
    let event = host_key_event(&first);
    assert_eq!(event["level"], "WARN", "{event}");
    assert_eq!(event["source"], "generated", "{event}");
    let announced = event["fingerprint"]
        .as_str()
        .unwrap_or_else(|| panic!("host_key event without a fingerprint: {event}"))
        .to_string();
    assert!(announced.starts_with("SHA256:"), "{announced}");
    assert_eq!(
        scanned(&first),
        vec![announced.clone()],
        "the announced fingerprint is not the presented key's"
    );
    let second = dir.bastion().start();
    let second_fp = scanned(&second);
    assert_ne!(
        second_fp,
        vec![announced],
        "two starts without a host key presented the same key"
    );
}

#[test]
fn strict_host_key_checking_accepts_the_right_key_and_rejects_another() {
    let dir = TestDir::new();
    let host = generate_key(dir.path(), "host_key");
    let echo = TestServer::echo_v4();
    let bastion = dir
        .bastion()
        .env("BASTION_HOST_KEY", host.private_text())
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    let key_fields: Vec<&str> = host.public_line.split_whitespace().take(2).collect();
    let entry = |fields: &[&str]| format!("[127.0.0.1]:{} {}\n", bastion.port(), fields.join(" "));
    let known = dir.join("known_hosts");
    std::fs::write(&known, entry(&key_fields)).expect("writing known_hosts");
    bastion
        .ssh(&dir.key.private)
        .option("StrictHostKeyChecking", "yes")
        .option(
            "UserKnownHostsFile",
            known.to_str().expect("UTF-8 temp path"),
        )
        .arg("-W")
        .arg(echo.spec())
        .run(SSH_TIMEOUT)
        .expect_success("ssh with the bastion's key in known_hosts");

    let impostor = generate_key(dir.path(), "other_host_key");
    let other_fields: Vec<&str> = impostor.public_line.split_whitespace().take(2).collect();
    let wrong = dir.join("known_hosts_wrong");
    std::fs::write(&wrong, entry(&other_fields)).expect("writing a wrong known_hosts");
    let out = bastion
        .ssh(&dir.key.private)
        .option("StrictHostKeyChecking", "yes")
        .option(
            "UserKnownHostsFile",
            wrong.to_str().expect("UTF-8 temp path"),
        )
        .arg("-W")
        .arg(echo.spec())
        .run(SSH_TIMEOUT);
    assert!(
        !out.status.success(),
        "ssh accepted a changed host key: {out:?}"
    );
    assert!(
        out.stderr.contains("Host key verification failed"),
        "{}",
        out.stderr
    );
}
