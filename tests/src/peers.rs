//! The attacking peers that are not OpenSSH: the Python scripts under `tests/peers/`
//! (`russh_peer.py` drives paramiko, an independent SSH implementation, past what a polite
//! client does; `auth_peer.py` logs in with signatures OpenSSH will not make (SHA-1 RSA, a
//! security key without a touch); `raw_preauth.py` speaks the cleartext start of the protocol
//! byte by byte). They
//! run with the test venv's Python, report one JSON object per line on stdout, and are killed
//! with their process group when the test ends.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::capture::tail;
use crate::locate::workspace_root;
use crate::process::{parse_events, run_command, ChildGuard, Input};
use crate::sidecar::venv_bin;

/// A script under `tests/peers/`.
pub fn peer_script(name: &str) -> PathBuf {
    let path = workspace_root().join("tests/peers").join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// A running `russh_peer.py` (paramiko), logged in with `key` (killed when dropped).
pub struct Peer {
    pub proc: ChildGuard,
    seen: usize,
}

impl Peer {
    /// `russh_peer.py HOST PORT KEY MODE ARGS...`, stdin piped (the `channels` mode reads
    /// commands there).
    pub fn spawn(addr: SocketAddr, key: &Path, mode: &str, args: &[&str], name: &str) -> Peer {
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(peer_script("russh_peer.py"))
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(key)
            .arg(mode)
            .args(args);
        Peer {
            proc: ChildGuard::spawn(&mut cmd, name, Input::Piped),
            seen: 0,
        }
    }

    /// The next JSON event on stdout; panics (with the peer's stderr) if none comes within
    /// `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Value {
        let seen = self.seen;
        let mut found = None;
        self.proc.stdout().wait_until(timeout, |bytes, eof| {
            found = parse_events(&String::from_utf8_lossy(bytes))
                .into_iter()
                .nth(seen);
            found.is_some() || eof
        });
        match found {
            Some(event) => {
                self.seen += 1;
                event
            }
            None => {
                let status = self.proc.try_status();
                panic!(
                "{}: no event #{seen} within {timeout:?} (exit status {status:?}); stdout:\n{}\nstderr:\n{}",
                self.proc.name(),
                self.proc.stdout().text(),
                tail(&self.proc.stderr().text(), 40)
            )
            }
        }
    }

    /// Skips events until one named `name` (its `event` field) arrives within `timeout`.
    pub fn expect_event(&mut self, name: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self.next_event(left);
            if event["event"] == name {
                return event;
            }
        }
    }

    /// Sends one command line (the `channels` mode) without waiting for its reply.
    pub fn send(&mut self, line: &str) {
        let name = self.proc.name().to_string();
        let stdin = self.proc.stdin();
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{name}: sending {line:?}: {e}"));
    }

    /// Sends one command line (the `channels` mode) and returns its reply event.
    pub fn command(&mut self, line: &str, timeout: Duration) -> Value {
        self.send(line);
        self.next_event(timeout)
    }
}

/// Runs `raw_preauth.py HOST PORT MODE` to completion and returns its JSON report.
pub fn raw_preauth(addr: SocketAddr, mode: &str, timeout: Duration) -> Value {
    let mut cmd = Command::new(venv_bin("python"));
    cmd.arg(peer_script("raw_preauth.py"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(mode);
    let out = run_command(&mut cmd, &format!("raw_preauth.py {mode}"), timeout);
    out.expect_success(&format!("raw_preauth.py {mode}"));
    parse_events(&out.stdout)
        .pop()
        .unwrap_or_else(|| panic!("raw_preauth.py {mode} printed no JSON: {out:?}"))
}

/// How long one `auth_peer.py` run may take (connect, key exchange, one login).
const AUTH_PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `auth_peer.py ARGS...` to completion; its stdout.
fn auth_peer(args: &[&str]) -> String {
    let mut cmd = Command::new(venv_bin("python"));
    cmd.arg(peer_script("auth_peer.py")).args(args);
    let what = format!("auth_peer.py {}", args.join(" "));
    let out = run_command(&mut cmd, &what, AUTH_PEER_TIMEOUT);
    out.expect_success(&what);
    out.stdout
}

/// One login by `auth_peer.py MODE HOST PORT ARGS...` (`rsa KEY ALGORITHM` or
/// `sk SEED FLAGS [APPLICATION]`): its report, `{"authenticated": bool, "algorithm", "error"}`.
pub fn auth_peer_login(addr: SocketAddr, mode: &str, args: &[&str]) -> Value {
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    let mut all = vec![mode, host.as_str(), port.as_str()];
    all.extend_from_slice(args);
    let stdout = auth_peer(&all);
    parse_events(&stdout)
        .pop()
        .unwrap_or_else(|| panic!("auth_peer.py {mode} printed no JSON: {stdout}"))
}

/// The authorized_keys line of `auth_peer.py`'s `sk-ssh-ed25519@openssh.com` key made from
/// `seed` (64 hex digits), application `ssh:`.
pub fn sk_public_line(seed: &str) -> String {
    auth_peer(&["sk-line", seed]).trim().to_string()
}
