//! Graceful shutdown: on SIGTERM the bastion refuses new connections at once, lets a transfer in
//! flight finish intact and exits 0; a tunnel still open when the grace period ends is closed and
//! the bastion exits 0; SIGINT and SIGTERM without open tunnels exit 0 promptly.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use e2e::*;
use sha2::{Digest, Sha256};

const READY: Duration = Duration::from_secs(20);

/// Polls until a TCP connection to the bastion's port is refused.
fn wait_until_refused(bastion: &Bastion, timeout: Duration) -> bool {
    poll_until(timeout, Duration::from_millis(50), || {
        TcpStream::connect_timeout(&bastion.addr(), Duration::from_secs(1))
            .is_err()
            .then_some(())
    })
    .is_some()
}

#[test]
fn sigterm_refuses_new_connections_and_lets_a_transfer_finish() {
    let dir = TestDir::new();
    let len = 256 * MIB;
    let grace = Duration::from_secs(20);
    let (server, received) = TestServer::exchange(30, len);
    let mut bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", server.port()))
        .env("BASTION_SHUTDOWN_GRACE", "20s")
        .start();
    let sock = dir.socket("l.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&sock, &server.spec())
        .spawn("ssh -N -L", Input::Null);
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    let upload = Pattern::new(31).chunk(0, 1024 * 1024).to_vec();
    stream.write_all(&upload).expect("uploading the request");
    stream
        .shutdown(Shutdown::Write)
        .expect("half-closing the upload");

    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut signalled_at = None;
    // After SIGTERM, read at most ~64 MiB/s so the transfer lasts seconds into the grace period.
    let paced_rate = 64.0 * MIB as f64;
    loop {
        let n = stream.read(&mut buf).expect("reading the download");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        got += n as u64;
        match signalled_at {
            None if got >= 16 * MIB => {
                bastion.signal("TERM");
                let at = Instant::now();
                signalled_at = Some((at, got));
                assert!(
                    wait_until_refused(&bastion, Duration::from_secs(3)),
                    "a new TCP connection was still accepted 3 s after SIGTERM"
                );
                let out = bastion
                    .ssh(&dir.key.private)
                    .arg("-W")
                    .arg(server.spec())
                    .run(SSH_TIMEOUT);
                assert!(
                    !out.status.success(),
                    "a new ssh connection worked after SIGTERM: {out:?}"
                );
            }
            Some((at, from)) => {
                let due = Duration::from_secs_f64((got - from) as f64 / paced_rate);
                if let Some(wait) = due.checked_sub(at.elapsed()) {
                    thread::sleep(wait);
                }
            }
            None => {}
        }
    }
    let (signalled, _) = signalled_at.expect("the transfer ended before SIGTERM was sent");
    let finished_after = signalled.elapsed();
    println!(
        "SIGTERM after 16 MiB of {} MiB; the rest arrived {:.2} s later",
        len / MIB,
        finished_after.as_secs_f64()
    );
    assert_eq!(got, len, "bytes of the transfer in flight at SIGTERM");
    assert_eq!(
        hex(&hasher.finalize()),
        Pattern::new(30).digest(len),
        "digest of the transfer in flight at SIGTERM"
    );
    let saw = received
        .recv_timeout(Duration::from_secs(30))
        .expect("the destination never reported the upload");
    assert_eq!(
        (saw.len, saw.digest),
        (upload.len() as u64, sha256_hex(&upload))
    );
    // The client is done: it closes its end of the tunnel, and nothing is left to wait for.
    drop(stream);
    let client_done = Instant::now();

    // The grace period is a hard limit (plus a little for the process to wind down).
    let limit = grace + Duration::from_secs(3);
    let remaining = limit.saturating_sub(signalled.elapsed());
    let status = bastion.wait_exit(remaining).unwrap_or_else(|| {
        panic!(
            "the bastion did not exit within the {grace:?} grace period (+3 s) after SIGTERM; \
             stderr:\n{}",
            bastion.stderr_text()
        )
    });
    let exit_after_client = client_done.elapsed();
    println!(
        "bastion exited {:.2} s after SIGTERM ({:.2} s after the client closed its finished \
         tunnel) with {status}",
        signalled.elapsed().as_secs_f64(),
        exit_after_client.as_secs_f64()
    );
    assert!(
        exit_after_client < Duration::from_secs(5),
        "the bastion kept running {exit_after_client:?} after its last tunnel was closed; \
         stderr:\n{}",
        bastion.stderr_text()
    );
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(
        !bastion.events_named("shutdown").is_empty(),
        "no shutdown event logged"
    );
}

#[test]
fn a_tunnel_still_open_at_the_end_of_the_grace_period_is_closed() {
    let dir = TestDir::new();
    let grace = Duration::from_secs(3);
    let echo = TestServer::echo_v4();
    let mut bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .env("BASTION_SHUTDOWN_GRACE", "3s")
        .start();
    let sock = dir.socket("l.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&sock, &echo.spec())
        .spawn("ssh -N -L", Input::Null);
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    echo_round_trip(&mut stream, b"before SIGTERM", "echo before SIGTERM");

    bastion.signal("TERM");
    let signalled = Instant::now();
    thread::sleep(Duration::from_secs(1));
    echo_round_trip(
        &mut stream,
        b"during the grace period",
        "an open tunnel during the grace period",
    );
    let status = bastion
        .wait_exit(grace + Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "no exit by grace + 10 s; stderr:\n{}",
                bastion.stderr_text()
            )
        });
    let exited_after = signalled.elapsed();
    println!("idle tunnel, grace 3s: bastion exited {exited_after:?} after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status after the grace period");
    assert!(
        exited_after >= grace - Duration::from_millis(300),
        "exited after {exited_after:?}, before the {grace:?} grace period ended"
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting a read timeout");
    let mut buf = [0u8; 16];
    let got = stream.read(&mut buf);
    assert!(
        matches!(got, Ok(0))
            || matches!(&got, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock),
        "the tunnel was still open after the bastion exited: {got:?}"
    );
    assert!(
        ssh.proc.wait_timeout(Duration::from_secs(10)).is_some(),
        "the ssh client was still connected after the bastion exited"
    );
}

#[test]
fn sigterm_with_an_idle_connection_and_no_tunnels_exits_promptly() {
    let dir = TestDir::new();
    let mut bastion = dir.bastion().env("BASTION_SHUTDOWN_GRACE", "30s").start();
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .spawn("ssh -N", Input::Null);
    assert!(
        bastion
            .wait_event(Duration::from_secs(20), |e| e["event"] == "auth"
                && e["result"] == "accepted")
            .is_some(),
        "the client did not log in; ssh stderr: {}",
        ssh.stderr()
    );
    bastion.signal("TERM");
    let signalled = Instant::now();
    let status = bastion
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "with no open tunnel the bastion did not exit within 5 s of SIGTERM (grace 30s); \
                 stderr:\n{}",
                bastion.stderr_text()
            )
        });
    println!("no tunnels: exited {:?} after SIGTERM", signalled.elapsed());
    assert_eq!(status.code(), Some(0));
    assert!(
        ssh.proc.wait_timeout(Duration::from_secs(10)).is_some(),
        "the ssh client was still connected after the bastion exited"
    );
}

/// A signal that arrives right after the `listening` event (an orchestrator stopping a task that
/// just started) must already get the graceful path: exit status 0, not death by the signal.
#[test]
fn sigint_and_sigterm_right_after_listening_exit_zero() {
    let dir = TestDir::new();
    for (round, signal) in ["INT", "TERM", "INT", "TERM", "INT", "TERM"]
        .iter()
        .enumerate()
    {
        let mut bastion = dir.bastion().start();
        bastion.signal(signal);
        let status = bastion
            .wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "round {round}: no exit within 5 s of SIG{signal}:\n{}",
                    bastion.stderr_text()
                )
            });
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: exit status after SIG{signal} right after `listening` ({status})"
        );
        assert!(
            !bastion.events_named("shutdown").is_empty(),
            "round {round}: no shutdown event logged after SIG{signal}"
        );
    }
}
