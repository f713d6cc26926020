//! Everything that is not a `direct-tcpip` tunnel is refused, visibly to the client, without
//! side effects and without breaking the connection's tunnels: commands (`ssh host cmd`),
//! `sftp`, `scp` (SFTP and legacy modes), `-R`, agent forwarding, X11, `-L` to a server-side Unix
//! socket; an interactive shell shows a notice (listing where the key may tunnel), ignores typed
//! commands and closes on Ctrl-C or Ctrl-D; `ssh -L` without `-N` keeps its tunnel.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::*;

const READY: Duration = Duration::from_secs(20);
const NOTICE: &str = "only forwards ports";

/// stderr without ssh's own "Permanently added ... to the list of known hosts" warning.
fn server_messages(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| !line.starts_with("Warning: Permanently added"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn start_with_echo(dir: &TestDir) -> (Bastion, TestServer) {
    let echo = TestServer::echo_v4();
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    (bastion, echo)
}

fn assert_not_created(path: &Path, what: &str) {
    assert!(
        !path.exists(),
        "{what}: {} was created on the bastion's machine",
        path.display()
    );
}

#[test]
fn a_remote_command_is_refused_and_not_run() {
    let dir = TestDir::new();
    let (bastion, _echo) = start_with_echo(&dir);
    let marker = dir.join("marker");
    let out = bastion
        .ssh(&dir.key.private)
        .remote("touch")
        .remote(marker.to_str().expect("UTF-8 temp path"))
        .run(SSH_TIMEOUT);
    assert!(!out.status.success(), "ssh host touch succeeded: {out:?}");
    assert!(
        !server_messages(&out.stderr).trim().is_empty(),
        "a refused command printed no message on stderr: {out:?}"
    );
    // `true` exits 0 wherever it runs: a non-zero status means it did not run.
    let out = bastion
        .ssh(&dir.key.private)
        .remote("true")
        .run(SSH_TIMEOUT);
    assert!(!out.status.success(), "ssh host true exited 0: {out:?}");
    assert_not_created(&marker, "ssh host touch");
}

#[test]
fn sftp_is_refused() {
    let dir = TestDir::new();
    let (bastion, _echo) = start_with_echo(&dir);
    let target = dir.join("uploaded-by-sftp");
    let batch = dir.join("batch");
    std::fs::write(
        &batch,
        format!("put {} {}\n", dir.key.public.display(), target.display()),
    )
    .expect("writing the sftp batch file");
    let client = bastion.ssh(&dir.key.private);
    let mut cmd = Command::new(require_tool("sftp"));
    cmd.args(client.client_args())
        .arg("-b")
        .arg(&batch)
        .arg(client.host());
    let out = run_command(&mut cmd, "sftp", SSH_TIMEOUT);
    assert!(!out.status.success(), "sftp succeeded: {out:?}");
    assert_not_created(&target, "sftp put");
}

#[test]
fn scp_is_refused_in_both_protocols() {
    let dir = TestDir::new();
    let (bastion, _echo) = start_with_echo(&dir);
    let client = bastion.ssh(&dir.key.private);
    for (mode, extra) in [
        ("scp (SFTP protocol)", None),
        ("scp -O (legacy)", Some("-O")),
    ] {
        let target = dir.join(&format!("uploaded-by-scp{}", extra.unwrap_or("")));
        let mut cmd = Command::new(require_tool("scp"));
        cmd.args(extra)
            .args(client.client_args())
            .arg(&dir.key.public)
            .arg(format!("{}:{}", client.host(), target.display()));
        let out = run_command(&mut cmd, "scp", SSH_TIMEOUT);
        assert!(!out.status.success(), "{mode} succeeded: {out:?}");
        assert_not_created(&target, mode);
    }
}

#[test]
fn remote_forwarding_is_refused() {
    let dir = TestDir::new();
    let (bastion, echo) = start_with_echo(&dir);
    let port = free_local_port();
    let out = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .arg("-R")
        .arg(format!("127.0.0.1:{port}:{}", echo.spec()))
        .run(SSH_TIMEOUT);
    assert!(!out.status.success(), "ssh -R succeeded: {out:?}");
    assert!(
        out.stderr.contains("remote port forwarding failed"),
        "ssh did not report the refused -R: {}",
        out.stderr
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on the -R port {port}"
    );
}

#[test]
fn remote_forwarding_refusal_leaves_local_tunnels_working() {
    let dir = TestDir::new();
    let (bastion, echo) = start_with_echo(&dir);
    let sock = dir.socket("l.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .option("ExitOnForwardFailure", "no")
        .arg("-N")
        .arg("-R")
        .arg(format!("127.0.0.1:{}:{}", free_local_port(), echo.spec()))
        .forward(&sock, &echo.spec())
        .spawn("ssh -N -R -L", Input::Null);
    assert!(
        ssh.wait_stderr("remote port forwarding failed", Duration::from_secs(20)),
        "ssh did not report the refused -R: {}",
        ssh.stderr()
    );
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    echo_round_trip(
        &mut stream,
        b"after a refused -R",
        "tunnel after a refused -R",
    );
}

#[test]
fn agent_forwarding_is_refused_and_tunnels_still_work() {
    let dir = TestDir::new();
    let (bastion, echo) = start_with_echo(&dir);
    let agent_sock = dir.join("agent.sock");
    let mut agent_cmd = Command::new(require_tool("ssh-agent"));
    agent_cmd.arg("-D").arg("-a").arg(&agent_sock);
    let _agent = ChildGuard::spawn(&mut agent_cmd, "ssh-agent", Input::Null);
    assert!(
        poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
            agent_sock.exists().then_some(())
        })
        .is_some(),
        "ssh-agent did not create its socket"
    );
    let mut add = Command::new(require_tool("ssh-add"));
    add.env("SSH_AUTH_SOCK", &agent_sock).arg(&dir.key.private);
    run_command(&mut add, "ssh-add", Duration::from_secs(20)).expect_success("ssh-add");

    // A session (here: a shell with a pty) carries the agent request; -N would send none.
    let sock = dir.socket("l.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        // IdentityAgent=none would unset SSH_AUTH_SOCK and leave nothing to forward.
        .without_option("IdentityAgent")
        .env("SSH_AUTH_SOCK", &agent_sock)
        .arg("-A")
        .arg("-tt")
        .forward(&sock, &echo.spec())
        .spawn("ssh -A -tt -L", Input::Piped);
    assert!(
        ssh.proc
            .stdout()
            .wait_for_text(NOTICE, Duration::from_secs(20)),
        "no session notice; stdout {:?}, stderr {}",
        ssh.proc.stdout().text(),
        ssh.stderr()
    );
    // The client cannot see this refusal (OpenSSH asks for no reply), so check the audit log.
    let refused = bastion.wait_event(Duration::from_secs(10), |e| {
        e["event"] == "request_refused" && e["kind"] == "agent"
    });
    assert!(
        refused.is_some(),
        "no request_refused kind=agent logged; events: {:?}",
        bastion.events_named("request_refused")
    );
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    echo_round_trip(
        &mut stream,
        b"with -A",
        "tunnel after a refused agent request",
    );
}

#[test]
fn x11_forwarding_is_refused() {
    let dir = TestDir::new();
    let (bastion, echo) = start_with_echo(&dir);
    let sock = dir.socket("l.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .env("DISPLAY", ":99")
        .arg("-X")
        .arg("-tt")
        .forward(&sock, &echo.spec())
        .spawn("ssh -X -tt", Input::Piped);
    assert!(
        ssh.wait_stderr("X11 forwarding request failed", Duration::from_secs(20)),
        "ssh did not report a refused X11 request; stderr: {}",
        ssh.stderr()
    );
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    echo_round_trip(
        &mut stream,
        b"with -X",
        "tunnel after a refused X11 request",
    );
}

#[test]
fn forwarding_to_a_server_side_unix_socket_is_refused() {
    let dir = TestDir::new();
    let (bastion, echo) = start_with_echo(&dir);
    // A real Unix socket on the bastion's machine: it must never see a connection.
    let remote_path = dir.join("server-side.sock");
    let remote = UnixListener::bind(&remote_path).expect("binding the server-side Unix socket");
    remote
        .set_nonblocking(true)
        .expect("making the server-side socket non-blocking");
    let local = dir.socket("l2.sock");
    let good = dir.socket("good.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&local, remote_path.to_str().expect("UTF-8 temp path"))
        .forward(&good, &echo.spec())
        .spawn("ssh -N -L to a unix socket", Input::Null);
    let mut stream = ssh.connect_unix(local.as_ref(), READY);
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("setting a read timeout");
    let _ = stream.write_all(b"hello?");
    let mut buf = [0u8; 64];
    let got = stream.read(&mut buf);
    assert!(
        matches!(got, Ok(0) | Err(_))
            && !matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the streamlocal forward was not closed: {got:?}"
    );
    assert!(
        ssh.wait_stderr("open failed", Duration::from_secs(10)),
        "ssh did not report the refused channel: {}",
        ssh.stderr()
    );
    assert!(
        remote.accept().is_err(),
        "the server-side Unix socket received a connection"
    );
    let mut stream = ssh.connect_unix(good.as_ref(), READY);
    echo_round_trip(&mut stream, b"good", "tunnel after a refused streamlocal");
}

/// Starts `ssh -tt` (a pty and a shell, stdin from a pipe) and waits for the notice.
fn interactive_session(bastion: &Bastion, dir: &TestDir) -> SshProcess {
    let ssh = bastion
        .ssh(&dir.key.private)
        .arg("-tt")
        .spawn("ssh -tt", Input::Piped);
    assert!(
        ssh.proc
            .stdout()
            .wait_for_text(NOTICE, Duration::from_secs(20)),
        "the session did not show a notice containing {NOTICE:?}; stdout {:?}; stderr {}",
        ssh.proc.stdout().text(),
        ssh.stderr()
    );
    ssh
}

#[test]
fn the_shell_ignores_typed_commands_and_closes_on_ctrl_c() {
    let dir = TestDir::new();
    let (bastion, _echo) = start_with_echo(&dir);
    let mut ssh = interactive_session(&bastion, &dir);
    let pwned = dir.join("pwned");
    let typed = format!(
        "echo $((6*7))XYZ\nid\necho PWNED > {}\nexit\n",
        pwned.display()
    );
    ssh.proc
        .stdin()
        .write_all(typed.as_bytes())
        .expect("typing into the session");
    ssh.proc.stdin().flush().expect("flushing the typed text");
    std::thread::sleep(Duration::from_millis(1500));
    let out = ssh.proc.stdout().text();
    assert!(!out.contains("42XYZ"), "a typed command ran: {out:?}");
    assert!(!out.contains("uid="), "`id` ran: {out:?}");
    assert_not_created(&pwned, "typed echo > file");
    assert!(
        ssh.proc.try_status().is_none(),
        "the session ended on typed text (including `exit`) instead of waiting: {out:?}"
    );
    ssh.proc.stdin().write_all(&[0x03]).expect("sending Ctrl-C");
    ssh.proc.stdin().flush().expect("flushing Ctrl-C");
    assert!(
        ssh.proc.wait_timeout(Duration::from_secs(5)).is_some(),
        "ssh -tt did not exit within 5 s of Ctrl-C; stdout {:?}",
        ssh.proc.stdout().text()
    );
}

#[test]
fn the_shell_closes_on_ctrl_d() {
    let dir = TestDir::new();
    let (bastion, _echo) = start_with_echo(&dir);
    let mut ssh = interactive_session(&bastion, &dir);
    ssh.proc.stdin().write_all(&[0x04]).expect("sending Ctrl-D");
    ssh.proc.stdin().flush().expect("flushing Ctrl-D");
    assert!(
        ssh.proc.wait_timeout(Duration::from_secs(5)).is_some(),
        "ssh -tt did not exit within 5 s of Ctrl-D"
    );
}

#[test]
fn ssh_l_without_n_keeps_its_tunnel() {
    let dir = TestDir::new();
    let (bastion, echo) = start_with_echo(&dir);
    let sock = dir.socket("l.sock");
    // No -N and no command: ssh asks for a shell; stdin stays open (a pipe we never close).
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .forward(&sock, &echo.spec())
        .spawn("ssh -L (no -N)", Input::Piped);
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    echo_round_trip(&mut stream, b"first", "tunnel of ssh -L without -N");
    assert!(
        ssh.proc
            .stdout()
            .wait_for_text(NOTICE, Duration::from_secs(10)),
        "no notice on the session; stdout {:?}",
        ssh.proc.stdout().text()
    );
    // The notice lists what this key may open: here the server's one rule.
    let rule = format!("127.0.0.1 port {}", echo.port());
    assert!(
        ssh.proc
            .stdout()
            .wait_for_text(&rule, Duration::from_secs(5)),
        "the notice does not list {rule:?}; stdout {:?}",
        ssh.proc.stdout().text()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        ssh.proc.try_status().is_none(),
        "ssh -L without -N exited: {}",
        ssh.stderr()
    );
    let payload = Pattern::new(20).chunk(0, 256 * 1024).to_vec();
    echo_round_trip(&mut stream, &payload, "same tunnel 2 s later");
    let mut second = ssh.connect_unix(sock.as_ref(), READY);
    echo_round_trip(&mut second, &payload, "a second tunnel on the same session");
}

#[test]
fn a_refused_tunnel_does_not_break_the_connection() {
    let dir = TestDir::new();
    let echo = TestServer::echo_v4();
    let other = TestServer::echo_v4();
    // Only the echo server's port is permitted; the other loopback port stays denied.
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .start();
    let good = dir.socket("good.sock");
    let bad = dir.socket("bad.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .arg("-N")
        .forward(&good, &echo.spec())
        .forward(&bad, &other.spec())
        .spawn("ssh -N -L good -L bad", Input::Null);
    let mut kept = ssh.connect_unix(good.as_ref(), READY);
    echo_round_trip(&mut kept, b"before", "tunnel before the refusal");

    let mut refused = ssh.connect_unix(bad.as_ref(), READY);
    refused
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("setting a read timeout");
    let mut buf = [0u8; 16];
    let got = refused.read(&mut buf);
    assert!(
        matches!(got, Ok(0))
            || matches!(&got, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock),
        "the refused tunnel was not closed: {got:?}"
    );
    assert!(
        ssh.wait_stderr("administratively prohibited", Duration::from_secs(10)),
        "ssh did not report the policy refusal: {}",
        ssh.stderr()
    );
    assert_eq!(other.accepted(), 0, "the refused destination was reached");

    echo_round_trip(&mut kept, b"after", "the open tunnel after a refusal");
    let mut fresh = ssh.connect_unix(good.as_ref(), READY);
    echo_round_trip(&mut fresh, b"fresh", "a new tunnel after a refusal");
}

#[test]
fn environment_requests_are_refused_and_the_session_keeps_its_tunnel() {
    let dir = TestDir::new();
    let (bastion, echo) = start_with_echo(&dir);
    let sock = dir.socket("l.sock");
    let mut ssh = bastion
        .ssh(&dir.key.private)
        .option("SetEnv", "LD_PRELOAD=/tmp/evil.so")
        .forward(&sock, &echo.spec())
        .spawn("ssh -o SetEnv -L", Input::Piped);
    let mut stream = ssh.connect_unix(sock.as_ref(), READY);
    echo_round_trip(
        &mut stream,
        b"with SetEnv",
        "tunnel after a refused env request",
    );
    // `env` asks for no reply, so the client cannot see the refusal: check the audit log.
    let refused = bastion.wait_event(Duration::from_secs(10), |e| {
        e["event"] == "request_refused" && e["kind"] == "env"
    });
    assert!(
        refused.is_some(),
        "no request_refused kind=env logged; events: {:?}",
        bastion.events_named("request_refused")
    );
    let text = bastion.stderr_text();
    assert!(
        !text.contains("/tmp/evil.so"),
        "the environment value was logged (values must never be logged)"
    );
}
