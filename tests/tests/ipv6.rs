//! IPv6: a bastion listening on `[::1]:0` serves a tunnel to an IPv6 destination permitted by a
//! `[::1]:PORT` rule, and its healthcheck works with the unspecified address `[::]`.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use e2e::*;

#[test]
fn a_bastion_on_ipv6_loopback_serves_a_tunnel() {
    let dir = TestDir::new();
    let echo = TestServer::echo(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let bastion = dir
        .bastion()
        .env("BASTION_LISTEN", "[::1]:0")
        .permit_open(format!("[::1]:{}", echo.port()))
        .start();
    assert_eq!(
        bastion.addr().ip(),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        "the listening address"
    );
    let sock = dir.socket("v6.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&sock, &echo.spec())
        .spawn("ssh -N -L over ::1", Input::Null);
    let mut stream = ssh.connect_unix(sock.as_ref(), Duration::from_secs(20));
    let payload = Pattern::new(40).chunk(0, 1024 * 1024).to_vec();
    echo_round_trip(&mut stream, &payload, "echo over IPv6");
    let auth = bastion
        .wait_event(Duration::from_secs(5), |e| e["event"] == "auth")
        .expect("an auth event");
    assert!(
        auth["client"].as_str().is_some_and(|c| c.contains("::1")),
        "the client address is IPv6 loopback: {auth}"
    );

    let mut cmd = bastion.healthcheck_command(&format!("[::]:{}", bastion.port()));
    run_command(&mut cmd, "bastion healthcheck", Duration::from_secs(30))
        .expect_success("healthcheck with [::] while serving on [::1]");
}
