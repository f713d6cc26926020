//! Subprocesses: a guard that runs a child in its own process group and kills the group when
//! dropped (also on panic), run-to-completion with a timeout, and reading a child's JSON log
//! events and peak memory.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::capture::{tail, Capture};
use crate::sync::poll_until;
use crate::INSTALL_HINT;

/// What a spawned child reads on standard input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// `/dev/null`.
    Null,
    /// A pipe the test writes to (and may close).
    Piped,
}

/// A running subprocess in its own process group, with stdout and stderr captured. Dropping the
/// guard kills the whole group (SIGKILL) and reaps the child, so nothing outlives its test, also
/// when the test panics; on a panic it also prints the child's stderr tail for diagnosis.
pub struct ChildGuard {
    child: Child,
    name: String,
    stdin: Option<ChildStdin>,
    stdout: Capture,
    stderr: Capture,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` in a new process group with piped stdout/stderr.
    pub fn spawn(cmd: &mut Command, name: &str, input: Input) -> ChildGuard {
        cmd.stdin(match input {
            Input::Null => Stdio::null(),
            Input::Piped => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
                "cannot start {name} ({:?}): not found: {INSTALL_HINT}",
                cmd.get_program()
            ),
            Err(e) => panic!("cannot start {name} ({:?}): {e}", cmd.get_program()),
        };
        let stdin = child.stdin.take();
        let stdout = Capture::spawn_reader(
            child.stdout.take().expect("stdout was piped"),
            format!("{name} stdout"),
        );
        let stderr = Capture::spawn_reader(
            child.stderr.take().expect("stderr was piped"),
            format!("{name} stderr"),
        );
        ChildGuard {
            child,
            name: name.to_string(),
            stdin,
            stdout,
            stderr,
            status: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> &Capture {
        &self.stdout
    }

    pub fn stderr(&self) -> &Capture {
        &self.stderr
    }

    /// The child's standard input (spawned with [`Input::Piped`]).
    pub fn stdin(&mut self) -> &mut ChildStdin {
        let name = &self.name;
        self.stdin.as_mut().unwrap_or_else(|| {
            panic!("{name} was not spawned with a piped stdin (or it was closed)")
        })
    }

    /// Closes the child's standard input (the child sees EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(status) => self.status = status,
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        }
        self.status
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, Duration::from_millis(10), || self.try_status())
    }

    /// Waits up to `timeout` for the child to exit and for its output pipes to close; panics
    /// (with its stderr) if it does not.
    pub fn expect_exit(&mut self, timeout: Duration, what: &str) -> ExitStatus {
        let started = Instant::now();
        match self.wait_timeout(timeout) {
            Some(status) => {
                // Give the reader threads a moment to collect the last bytes.
                let rest = timeout.saturating_sub(started.elapsed()) + Duration::from_secs(2);
                self.stdout.wait_eof(rest);
                self.stderr.wait_eof(rest);
                status
            }
            None => panic!(
                "{}: {} did not exit within {timeout:?}; stderr so far:\n{}",
                what,
                self.name,
                tail(&self.stderr.text(), 40)
            ),
        }
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`, ...) to the child itself with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .stdin(Stdio::null())
            .status()
            .expect("running kill(1)");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    fn kill_group(&mut self) {
        // The child leads its own process group (ssh's ProxyJump helper and sftp/scp's ssh live
        // there too); kill the group by its id, then the child itself, and reap it.
        if self.try_status().is_none() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg("--")
                .arg(format!("-{}", self.pid()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.status = Some(status);
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill_group();
        if thread::panicking() {
            eprintln!(
                "----- {} (pid {}) stderr, last lines -----\n{}\n-----",
                self.name,
                self.child.id(),
                tail(&self.stderr.text(), 60)
            );
        }
    }
}

/// Runs a command to completion with a timeout (killing it on expiry) and returns its output.
pub fn run_command(cmd: &mut Command, name: &str, timeout: Duration) -> Finished {
    let mut guard = ChildGuard::spawn(cmd, name, Input::Null);
    let status = guard.expect_exit(timeout, &format!("running {name}"));
    Finished {
        status,
        stdout: guard.stdout().text(),
        stderr: guard.stderr().text(),
    }
}

/// The result of a finished subprocess.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Panics with the full output unless the process exited 0.
    pub fn expect_success(&self, what: &str) -> &Self {
        assert!(
            self.status.success(),
            "{what}: exited with {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// JSON objects among the lines of a log.
pub fn parse_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .filter(Value::is_object)
        .collect()
}

/// `VmHWM` (peak resident set size) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

/// `VmRSS` (resident set size now) of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} line in /proc/{pid}/status"))
}
