//! Tunnels that must work: bulk data both ways through `ssh -N -L` (Unix-socket and TCP local
//! sides), a 1 GiB full-duplex echo with the bastion's peak memory, half-close, a destination
//! that never reads (closed after the stall timeout while another tunnel keeps working), `ssh -W`
//! and `ProxyJump` through one bastion to a second.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use e2e::*;

const READY: Duration = Duration::from_secs(20);

/// 64 MiB each way at once through one `-L` tunnel, both digests compared.
#[test]
fn ssh_l_moves_64_mib_each_way_intact() {
    let dir = TestDir::new();
    let len = 64 * MIB;
    let (server, received) = TestServer::exchange(1, len);
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", server.port()))
        .start();
    let sock = dir.socket("l.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&sock, &server.spec())
        .spawn("ssh -N -L", Input::Null);
    let _heavy = heavy_test_lock();
    let stream = ssh.connect_unix(sock.as_ref(), READY);
    let started = Instant::now();
    let mut writer = stream.try_clone().expect("cloning the tunnel socket");
    let upload = thread::spawn(move || {
        let digest = Pattern::new(2)
            .write_to(&mut writer, len)
            .expect("uploading 64 MiB through the tunnel");
        writer
            .shutdown(Shutdown::Write)
            .expect("half-closing the upload");
        digest
    });
    let mut reader = stream;
    let (down_len, down_digest) =
        read_to_end_digest(&mut reader).expect("downloading 64 MiB through the tunnel");
    let up_digest = upload.join().expect("upload thread panicked");
    let elapsed = started.elapsed();
    let server_saw = received
        .recv_timeout(Duration::from_secs(60))
        .expect("the destination never reported what it received");
    println!(
        "64 MiB each way through ssh -L: {:.2} s, {:.1} MiB/s per direction",
        elapsed.as_secs_f64(),
        mib_per_sec(len, elapsed)
    );
    assert_eq!(down_len, len, "bytes received from the destination");
    assert_eq!(
        down_digest,
        Pattern::new(1).digest(len),
        "digest of the download"
    );
    assert_eq!(server_saw.len, len, "bytes the destination received");
    assert_eq!(server_saw.digest, up_digest, "digest of the upload");
}

/// 1 GiB through an echo destination with both directions at once; the bastion's peak RSS must
/// stay bounded.
#[test]
fn one_gib_full_duplex_echo_with_bounded_memory() {
    let dir = TestDir::new();
    let len = 1024 * MIB;
    let echo = TestServer::echo_v4();
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    let sock = dir.socket("echo.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&sock, &echo.spec())
        .spawn("ssh -N -L", Input::Null);
    let _heavy = heavy_test_lock();
    let stream = ssh.connect_unix(sock.as_ref(), READY);
    let started = Instant::now();
    let mut writer = stream.try_clone().expect("cloning the tunnel socket");
    let upload = thread::spawn(move || {
        let digest = Pattern::new(3)
            .write_to(&mut writer, len)
            .expect("writing 1 GiB into the echo tunnel");
        writer
            .shutdown(Shutdown::Write)
            .expect("half-closing the echo upload");
        digest
    });
    let mut reader = stream;
    let (echoed_len, echoed_digest) =
        read_to_end_digest(&mut reader).expect("reading the 1 GiB echo back");
    let sent_digest = upload.join().expect("echo upload thread panicked");
    let elapsed = started.elapsed();
    let peak_kib = bastion.peak_rss_kib();
    println!(
        "1 GiB full-duplex echo through ssh -L: {:.2} s ({:.1} MiB/s each way); bastion peak RSS \
         {:.1} MiB",
        elapsed.as_secs_f64(),
        mib_per_sec(len, elapsed),
        peak_kib as f64 / 1024.0
    );
    assert_eq!(echoed_len, len, "bytes echoed back");
    assert_eq!(echoed_digest, sent_digest, "digest of the echo");
    assert!(
        peak_kib < 200 * 1024,
        "bastion peak RSS {peak_kib} KiB is over 200 MiB"
    );
}

/// A real TCP local port (`-L 127.0.0.1:PORT:dest`), retried if the picked port gets taken.
#[test]
fn ssh_l_with_a_tcp_local_port() {
    let dir = TestDir::new();
    let len = 8 * MIB;
    let (server, received) = TestServer::exchange(4, len);
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", server.port()))
        .start();
    let mut attempt = 0;
    let (_ssh, stream) = loop {
        attempt += 1;
        let port = free_local_port();
        let mut ssh = bastion
            .ssh(&dir.key.private)
            .arg("-N")
            .forward(&format!("127.0.0.1:{port}"), &server.spec())
            .spawn("ssh -N -L tcp", Input::Null);
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // ssh exits at once if the port was taken meanwhile (ExitOnForwardFailure).
        let ready = poll_until(READY, Duration::from_millis(20), || {
            if ssh.proc.try_status().is_some() {
                return Some(None);
            }
            std::net::TcpStream::connect(local).ok().map(Some)
        });
        match ready {
            Some(Some(stream)) => break (ssh, stream),
            Some(None) if attempt < 5 && ssh.stderr().contains("Address already in use") => {
                continue
            }
            other => panic!(
                "ssh -L on TCP port {port} did not come up (ready: {}); stderr:\n{}",
                other.is_some(),
                ssh.stderr()
            ),
        }
    };
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("setting a read timeout");
    let mut writer = stream.try_clone().expect("cloning the TCP tunnel socket");
    let upload = thread::spawn(move || {
        let digest = Pattern::new(5)
            .write_to(&mut writer, len)
            .expect("uploading through the TCP tunnel");
        writer.shutdown(Shutdown::Write).expect("half-closing");
        digest
    });
    let mut reader = stream;
    let (down_len, down_digest) =
        read_to_end_digest(&mut reader).expect("downloading through the TCP tunnel");
    let up_digest = upload.join().expect("upload thread panicked");
    let saw = received
        .recv_timeout(Duration::from_secs(60))
        .expect("the destination never reported what it received");
    assert_eq!((down_len, down_digest), (len, Pattern::new(4).digest(len)));
    assert_eq!((saw.len, saw.digest), (len, up_digest));
}

/// The client sends a request and shuts down its write side; the destination reads to EOF and
/// only then replies; the client must still get the whole reply.
#[test]
fn half_close_delivers_the_reply() {
    let dir = TestDir::new();
    let server = TestServer::half_close();
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", server.port()))
        .start();
    let sock = dir.socket("hc.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&sock, &server.spec())
        .spawn("ssh -N -L", Input::Null);
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    let request: Vec<u8> = Pattern::new(6).chunk(0, 300_000).to_vec();
    stream.write_all(&request).expect("sending the request");
    stream
        .shutdown(Shutdown::Write)
        .expect("shutting down the client's write side");
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .expect("reading the reply after the half-close");
    let expected = half_close_reply(&request);
    assert_eq!(
        reply.len(),
        expected.len(),
        "reply length after half-close (first bytes: {:?})",
        String::from_utf8_lossy(&reply[..reply.len().min(80)])
    );
    assert!(
        reply == expected,
        "the reply differs from what the destination sent"
    );
}

/// Watches a tunnel socket until it reports EOF or an error; returns when that happened.
fn watch_for_close(stream: UnixStream, limit: Duration) -> thread::JoinHandle<Option<Instant>> {
    stream
        .set_read_timeout(Some(limit))
        .expect("setting the watcher's read timeout");
    thread::spawn(move || {
        let mut stream = stream;
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
    })
}

/// Writes the pattern into `stream` until `limit` bytes or an error (the tunnel closed).
fn write_until_closed(stream: UnixStream, limit: u64) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut stream = stream;
        let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
        let pattern = Pattern::new(7);
        let mut sent = 0u64;
        while sent < limit {
            let chunk = pattern.chunk(sent, 64 * 1024);
            match stream.write(chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sent += n as u64,
            }
        }
        sent
    })
}

/// A destination that never reads: the client keeps writing; the tunnel must be closed within
/// the stall timeout (plus margin), while another tunnel on the same connection keeps echoing
/// throughout and afterwards.
#[test]
fn never_reading_destination_is_closed_while_other_tunnels_work() {
    let dir = TestDir::new();
    let stall = Duration::from_secs(3);
    let sink = TestServer::never_reads();
    let echo = TestServer::echo_v4();
    let bastion = dir
        .bastion()
        .permit_open(format!(
            "127.0.0.1:{},127.0.0.1:{}",
            sink.port(),
            echo.port()
        ))
        .env("BASTION_TUNNEL_STALL_TIMEOUT", "3s")
        .start();
    let stall_sock = dir.socket("stall.sock");
    let echo_sock = dir.socket("echo.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&stall_sock, &sink.spec())
        .forward(&echo_sock, &echo.spec())
        .spawn("ssh -N -L x2", Input::Null);
    let mut echo_stream = ssh.connect_unix(echo_sock.as_ref(), READY);
    echo_round_trip(
        &mut echo_stream,
        b"before the stall",
        "echo before the stall",
    );

    let stalled = ssh.connect_unix(stall_sock.as_ref(), READY);
    let started = Instant::now();
    let margin = Duration::from_secs(15);
    let watcher = watch_for_close(
        stalled.try_clone().expect("cloning the stalled socket"),
        stall + margin,
    );
    let writer = write_until_closed(stalled, 512 * MIB);

    // While the stalled tunnel fills up, the echo tunnel must keep answering promptly.
    let payload = Pattern::new(8).chunk(0, 64 * 1024).to_vec();
    let mut rounds = 0;
    let mut slowest = Duration::ZERO;
    while !watcher.is_finished() && started.elapsed() < stall + margin {
        let t = Instant::now();
        echo_round_trip(&mut echo_stream, &payload, "echo during the stall");
        slowest = slowest.max(t.elapsed());
        rounds += 1;
        thread::sleep(Duration::from_millis(200));
    }
    let closed_at = watcher.join().expect("watcher thread panicked");
    let closed_after = closed_at.map(|at| at.duration_since(started));
    let sent = writer.join().expect("writer thread panicked");
    println!(
        "never-reading destination: tunnel closed after {closed_after:?} ({} MiB written by the \
         client); {rounds} echo round trips meanwhile, slowest {slowest:?}",
        sent / MIB
    );
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!("the never-reading destination's tunnel was still open after {stall:?} + {margin:?}")
    });
    assert!(closed_after <= stall + margin);
    assert!(rounds > 0, "no echo round trip completed during the stall");
    assert!(
        slowest < Duration::from_secs(5),
        "an echo round trip on the other tunnel took {slowest:?} during the stall"
    );
    assert_eq!(
        sink.accepted(),
        1,
        "the never-reading destination was reached once"
    );

    // Afterwards: the same echo tunnel and a new one both work.
    let big = Pattern::new(9).chunk(0, 1024 * 1024).to_vec();
    echo_round_trip(
        &mut echo_stream,
        &big,
        "echo after the stalled tunnel closed",
    );
    let mut again = ssh.connect_unix(echo_sock.as_ref(), READY);
    echo_round_trip(&mut again, &big, "a new echo tunnel after the stall");
}

/// A bounded amount of data that the destination never reads (well under any per-channel cap):
/// only the stall timeout can close it, so it closes no earlier than the stall timeout and not
/// much later.
#[test]
fn stall_timeout_closes_a_tunnel_with_data_waiting() {
    let dir = TestDir::new();
    let stall = Duration::from_secs(3);
    let sink = TestServer::never_reads();
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", sink.port()))
        .env("BASTION_TUNNEL_STALL_TIMEOUT", "3s")
        .start();
    let sock = dir.socket("stall.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&sock, &sink.spec())
        .spawn("ssh -N -L", Input::Null);
    let stalled = ssh.connect_unix(sock.as_ref(), READY);
    let started = Instant::now();
    let margin = Duration::from_secs(15);
    let watcher = watch_for_close(
        stalled.try_clone().expect("cloning the stalled socket"),
        stall + margin,
    );
    // More than the kernel buffers between bastion and destination can hold, so data waits
    // in the bastion; far less than a per-channel memory cap.
    let writer = write_until_closed(stalled, 16 * MIB);
    let closed_at = watcher.join().expect("watcher thread panicked");
    let sent = writer.join().expect("writer thread panicked");
    let closed_after = closed_at
        .map(|at| at.duration_since(started))
        .unwrap_or_else(|| panic!("tunnel still open after {stall:?} + {margin:?}"));
    println!(
        "stall timeout 3s: tunnel closed after {closed_after:?} ({} MiB written)",
        sent / MIB
    );
    assert!(
        closed_after >= stall - Duration::from_millis(300),
        "closed after {closed_after:?}, before the {stall:?} stall timeout"
    );
    assert!(closed_after <= stall + margin);
    // The ssh connection itself survives the closed tunnel.
    thread::sleep(Duration::from_millis(300));
    assert!(
        ssh.proc.try_status().is_none(),
        "ssh exited when one tunnel was closed: {}",
        ssh.stderr()
    );
}

/// `ssh -W host:port`: stdin and stdout carry the tunnel.
#[test]
fn ssh_w_carries_stdin_and_stdout() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-W")
        .arg(echo.spec())
        .spawn("ssh -W", Input::Piped);
    let payload = Pattern::new(10).chunk(0, 1024 * 1024).to_vec();
    ssh.proc
        .stdin()
        .write_all(&payload)
        .expect("writing to ssh -W's stdin");
    ssh.proc.close_stdin();
    let status = ssh.proc.expect_exit(SSH_TIMEOUT, "ssh -W after stdin EOF");
    let out = ssh.proc.stdout().bytes();
    assert_eq!(out.len(), payload.len(), "bytes echoed through ssh -W");
    assert!(out == payload, "ssh -W echoed different bytes");
    assert!(
        status.success(),
        "ssh -W exited with {status}: {}",
        ssh.stderr()
    );
}

/// `ProxyJump` through one bastion to a second: the second's banner arrives through `-W`, and a
/// `-N -L` tunnel through the jump reaches a destination behind the second bastion.
#[test]
fn proxyjump_through_the_bastion_reaches_a_second_bastion() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let inner = dir
        .bastion()
        .name("inner bastion")
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    let outer = dir
        .bastion()
        .name("outer bastion")
        .permit_open(format!("127.0.0.1:{}", inner.port()))
        .start();

    // The inner bastion's banner through the outer one.
    let banner = outer
        .ssh(&dir.key.private)
        .arg("-W")
        .arg(format!("127.0.0.1:{}", inner.port()))
        .spawn("ssh -W to the inner bastion", Input::Piped);
    assert!(
        banner
            .proc
            .stdout()
            .wait_for_text("SSH-2.0-", Duration::from_secs(20)),
        "no SSH banner from the inner bastion through ssh -W; got {:?}; stderr: {}",
        banner.proc.stdout().text(),
        banner.stderr()
    );
    drop(banner);

    // ssh -J spawns its own ssh for the jump, which reads only a config file (-F), not our -o.
    let client = inner.ssh(&dir.key.private);
    let config = dir.join("ssh_config");
    std::fs::write(
        &config,
        client_config_file(&dir.key.private, &default_client_options(inner.port())),
    )
    .expect("writing the ssh config for ProxyJump");
    let sock = dir.socket("jump.sock");
    let mut cmd = std::process::Command::new(require_tool("ssh"));
    cmd.arg("-F")
        .arg(&config)
        .arg("-J")
        .arg(format!("tunnel@127.0.0.1:{}", outer.port()))
        .arg("-p")
        .arg(inner.port().to_string())
        .arg("-N")
        .arg("-L")
        .arg(format!("{sock}:{}", echo.spec()))
        .arg(client.host());
    let mut ssh = SshProcess {
        proc: ChildGuard::spawn(&mut cmd, "ssh -J", Input::Null),
    };
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    let payload = Pattern::new(11).chunk(0, 512 * 1024).to_vec();
    echo_round_trip(&mut stream, &payload, "echo through ProxyJump");
    assert!(
        outer
            .wait_event(Duration::from_secs(5), |e| e["event"] == "tunnel_open"
                && e["destination"]
                    .as_str()
                    .is_some_and(|d| d.ends_with(&format!(":{}", inner.port()))))
            .is_some(),
        "the outer bastion logged no tunnel_open to the inner bastion"
    );
}
