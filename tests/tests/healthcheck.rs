//! `bastion healthcheck`: exit 0 while a bastion serves on the configured port (also when the
//! configured address is unspecified, 0.0.0.0), non-zero when nothing listens there or when
//! what listens is not an SSH server.

use std::time::{Duration, Instant};

use e2e::*;

const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(30);

fn healthcheck(bastion: &Bastion, listen: &str) -> Finished {
    let mut cmd = bastion.healthcheck_command(listen);
    run_command(&mut cmd, "bastion healthcheck", HEALTHCHECK_TIMEOUT)
}

/// A healthcheck with only `BASTION_LISTEN` set (and JSON logs).
fn bare_healthcheck(listen: &str) -> (Finished, Duration) {
    let mut env = BastionBuilder::bare().env_map().clone();
    env.insert("BASTION_LISTEN".to_string(), listen.to_string());
    let mut cmd = bastion_command(&env, &["healthcheck".to_string()]);
    let started = Instant::now();
    let out = run_command(&mut cmd, "bastion healthcheck", HEALTHCHECK_TIMEOUT);
    (out, started.elapsed())
}

#[test]
fn healthy_while_serving_unhealthy_after() {
    let dir = TestDir::new();
    let bastion = dir.bastion().start();
    let port = bastion.port();
    healthcheck(&bastion, &format!("127.0.0.1:{port}"))
        .expect_success("healthcheck against a serving bastion");
    healthcheck(&bastion, &format!("0.0.0.0:{port}"))
        .expect_success("healthcheck with the unspecified address 0.0.0.0");
    let (out, _) = bare_healthcheck(&format!("127.0.0.1:{port}"));
    out.expect_success("healthcheck with only BASTION_LISTEN set");

    let mut stopped = bastion;
    stopped.process().signal("KILL");
    assert!(
        stopped.wait_exit(Duration::from_secs(10)).is_some(),
        "the bastion did not die on SIGKILL"
    );
    let out = healthcheck(&stopped, &format!("127.0.0.1:{port}"));
    assert!(
        !out.status.success(),
        "healthcheck succeeded with nothing listening: {out:?}"
    );
}

#[test]
fn unhealthy_when_nothing_listens() {
    let port = free_local_port();
    let (out, took) = bare_healthcheck(&format!("127.0.0.1:{port}"));
    assert!(!out.status.success(), "healthcheck of a free port: {out:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn unhealthy_when_the_listener_is_not_ssh() {
    let http = TestServer::fixed_reply(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    let (out, _) = bare_healthcheck(&format!("127.0.0.1:{}", http.port()));
    assert!(
        !out.status.success(),
        "healthcheck accepted an HTTP server: {out:?}"
    );
}

#[test]
fn unhealthy_when_the_listener_never_answers() {
    let silent = TestServer::never_reads();
    let (out, took) = bare_healthcheck(&format!("127.0.0.1:{}", silent.port()));
    println!("healthcheck against a silent listener gave up after {took:?}");
    assert!(
        !out.status.success(),
        "healthcheck accepted a listener that sends nothing: {out:?}"
    );
}

#[test]
fn healthy_behind_a_required_proxy_protocol_and_a_client_allow_list() {
    // As in the NLB task: PROXY headers required from the VPC only, and only the allowed
    // clients admitted. The in-task probe comes from loopback with a PROXY v2 LOCAL header.
    let dir = TestDir::new();
    let bastion = dir
        .bastion()
        .env("BASTION_PROXY_PROTOCOL", "required")
        .env("BASTION_PROXY_TRUSTED", "10.0.0.0/8")
        .env("BASTION_ALLOW_CLIENTS", "10.0.0.0/8,127.0.0.1/32")
        .env("BASTION_DENY_CLIENTS", "0.0.0.0/0")
        .start();
    let listen = format!("127.0.0.1:{}", bastion.port());
    let out = healthcheck(&bastion, &listen);
    out.expect_success("healthcheck with BASTION_PROXY_PROTOCOL=required");
    assert!(out.stdout.contains("SSH-2.0-"), "{out:?}");
    // A plain connection from loopback (no header) is still refused in required mode:
    // the probe passes because of its LOCAL header, not because loopback is exempt.
    let mut plain = bastion_command(bastion.env(), &["healthcheck".to_string()]);
    plain.env("BASTION_PROXY_PROTOCOL", "off");
    let out = run_command(
        &mut plain,
        "healthcheck without a header",
        HEALTHCHECK_TIMEOUT,
    );
    assert!(!out.status.success(), "a header-less probe passed: {out:?}");
}
