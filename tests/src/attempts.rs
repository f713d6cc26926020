//! One `ssh -W` run with a payload on stdin, and the checks on what it achieved (bytes moved,
//! login refused).

use std::io::Write;
use std::process::ExitStatus;

use crate::process::Input;
use crate::servers::TestServer;
use crate::ssh::Ssh;
use crate::SSH_TIMEOUT;

/// What one `ssh -W` attempt achieved.
#[derive(Debug)]
pub struct Attempt {
    /// The payload came back through the echo destination.
    pub echoed: bool,
    pub status: ExitStatus,
    pub stderr: String,
}

/// `ssh -W destination` with `payload` on stdin: did the echo come back on stdout?
pub fn attempt(client: Ssh, destination: &str, payload: &str) -> Attempt {
    let mut ssh = client
        .arg("-W")
        .arg(destination)
        .spawn("ssh -W", Input::Piped);
    // A refused ssh may be gone already (EPIPE): what matters is what comes back.
    let _ = ssh.proc.stdin().write_all(payload.as_bytes());
    let _ = ssh.proc.stdin().flush();
    ssh.proc.stdout().wait_until(SSH_TIMEOUT, |bytes, eof| {
        eof || String::from_utf8_lossy(bytes).contains(payload)
    });
    let echoed = ssh.proc.stdout().text().contains(payload);
    ssh.proc.close_stdin();
    let status = ssh.proc.expect_exit(SSH_TIMEOUT, "ssh -W attempt");
    Attempt {
        echoed,
        status,
        stderr: ssh.proc.stderr().text(),
    }
}

/// What OpenSSH prints when the server refuses every key.
pub const DENIED: &str = "Permission denied (publickey)";

/// The attempt carried bytes through the tunnel and ssh exited 0.
pub fn expect_moves_bytes(attempt: &Attempt, what: &str) {
    assert!(
        attempt.echoed,
        "{what}: the echo did not come back through the tunnel: {attempt:?}"
    );
    assert!(
        attempt.status.success(),
        "{what}: ssh -W did not exit 0: {attempt:?}"
    );
}

/// The login was refused: no bytes moved, ssh failed with `Permission denied (publickey)`.
pub fn expect_login_refused(attempt: &Attempt, what: &str) {
    assert!(
        !attempt.echoed,
        "{what}: bytes moved through the tunnel: {attempt:?}"
    );
    assert!(
        !attempt.status.success(),
        "{what}: ssh exited 0: {attempt:?}"
    );
    assert!(
        attempt.stderr.contains(DENIED),
        "{what}: expected {DENIED:?}: {attempt:?}"
    );
}

/// The result of one `ssh -W` run with a payload on stdin.
pub struct WRun {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `ssh -W echo` with `payload` on stdin (then EOF) and collects what comes back.
pub fn ssh_w(ssh: Ssh, echo: &TestServer, payload: &[u8], name: &str) -> WRun {
    let mut proc = ssh.arg("-W").arg(echo.spec()).spawn(name, Input::Piped);
    // The payload is small enough for the pipe buffer, so this does not wait for ssh.
    proc.proc
        .stdin()
        .write_all(payload)
        .unwrap_or_else(|e| panic!("{name}: writing stdin: {e}"));
    proc.proc.close_stdin();
    let status = proc.proc.expect_exit(SSH_TIMEOUT, name);
    WRun {
        status,
        stdout: proc.proc.stdout().bytes(),
        stderr: proc.proc.stderr().text(),
    }
}
