//! End-to-end test harness: starts the real `bastion` binary and the stock OpenSSH client as
//! subprocesses, with guards that kill them when a test ends (also on panic), plus the loopback
//! test servers (echo, exchange, half-close, never-reading, fixed reply), deterministic data
//! streams with SHA-256 digests, and helpers for deadlines, ports, keys and the network namespace.
//!
//! Nothing here depends on the `bastion` crate: the binary is found through `BASTION_BIN` or in
//! the workspace's target directory (building it is `scripts/test.sh`'s job).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub mod sidecar;

/// What to tell a developer whose machine lacks a test dependency.
pub const INSTALL_HINT: &str =
    "run scripts/install-test-deps.sh (or scripts/test.sh, which runs it)";

/// The message of a test that needs the loopback-only network namespace but is not in one.
pub const NETNS_HINT: &str =
    "run this test through scripts/test.sh (it needs a loopback-only network namespace)";

/// How long a bastion may take from spawn to its `listening` event.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Generous upper bound for one ssh client run (connect, authenticate, do one thing).
pub const SSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Default read/write timeout on test sockets, so a hang turns into an error, not a stuck test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Locating things

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives inside the workspace")
        .to_path_buf()
}

/// The `bastion` binary under test: `BASTION_BIN` if set, else the newest of
/// `target/{debug,release}/bastion` (under `CARGO_TARGET_DIR` when that is set).
pub fn bastion_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| find_binary("bastion", "BASTION_BIN"))
        .clone()
}

/// A workspace binary: the path in `env_var` if set, else the newest of
/// `target/{debug,release}/name` (under `CARGO_TARGET_DIR` when that is set).
pub fn find_binary(name: &str, env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        let mut path = PathBuf::from(path);
        // cargo runs tests in the crate directory; a relative path is meant from the
        // workspace root (where `cargo test` is usually typed).
        if path.is_relative() && !path.is_file() {
            path = workspace_root().join(path);
        }
        assert!(
            path.is_file(),
            "{env_var}={} does not exist: run `cargo build -p {name}`",
            path.display()
        );
        return path;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                workspace_root().join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    let newest = ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join(name))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).ok()?.modified().ok()?;
            Some((modified, p))
        })
        .max();
    match newest {
        Some((_, path)) => path,
        None => panic!(
            "no {name} binary in {}/{{debug,release}}: run `cargo build -p {name}` \
             (or set {env_var})",
            target.display()
        ),
    }
}

/// Full path of an external tool, or a panic that says how to install it.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` is not installed or not on PATH: {INSTALL_HINT}");
}

/// Checks the OpenSSH client tools every test uses.
pub fn require_ssh_tools() {
    for tool in ["ssh", "ssh-keygen"] {
        require_tool(tool);
    }
}

/// Names of the network interfaces of this process's network namespace (`/proc/net/dev` is
/// per namespace, unlike `/sys/class/net`).
pub fn network_interfaces() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/net/dev").expect("reading /proc/net/dev");
    text.lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Panics unless this process runs in a network namespace whose only interface is `lo`, so a
/// test that asks the bastion to reach a forbidden (off-machine) address can never send a packet
/// off the machine even if the bastion has a bug.
pub fn require_loopback_only_netns() {
    let interfaces = network_interfaces();
    let others: Vec<&String> = interfaces.iter().filter(|name| *name != "lo").collect();
    assert!(
        others.is_empty(),
        "{NETNS_HINT}; this namespace also has {others:?}"
    );
    assert!(
        interfaces.iter().any(|name| name == "lo"),
        "{NETNS_HINT}; this namespace has no loopback interface"
    );
    // Loopback must be up, or nothing below can work; give a clear message rather than a
    // confusing connection error later.
    let probe = TcpListener::bind("127.0.0.1:0");
    assert!(
        probe.is_ok(),
        "{NETNS_HINT}; loopback is down here (`ip link set lo up`): {probe:?}"
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it back, release it).
/// Whoever uses it must retry on a conflict.
pub fn free_local_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 to find a port");
    listener
        .local_addr()
        .expect("reading back the bound port")
        .port()
}

/// Waits until `check` returns `Some`, polling every `step`, for at most `timeout`.
pub fn poll_until<T>(
    timeout: Duration,
    step: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(step);
    }
}

// ---------------------------------------------------------------------------------------------
// Captured output of a subprocess

#[derive(Default)]
struct CaptureState {
    bytes: Vec<u8>,
    eof: bool,
}

/// The bytes a subprocess wrote to one of its pipes, collected by a background thread, with
/// deadline-bounded waits.
#[derive(Clone, Default)]
pub struct Capture {
    inner: Arc<(Mutex<CaptureState>, Condvar)>,
}

impl Capture {
    fn spawn_reader<R: Read + Send + 'static>(mut reader: R, name: String) -> Capture {
        let capture = Capture::default();
        let shared = capture.clone();
        thread::Builder::new()
            .name(format!("capture {name}"))
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let (lock, cv) = &*shared.inner;
                            lock_ignoring_poison(lock)
                                .bytes
                                .extend_from_slice(&buf[..n]);
                            cv.notify_all();
                        }
                    }
                }
                let (lock, cv) = &*shared.inner;
                lock_ignoring_poison(lock).eof = true;
                cv.notify_all();
            })
            .expect("spawning a pipe reader thread");
        capture
    }

    /// Everything captured so far.
    pub fn bytes(&self) -> Vec<u8> {
        lock_ignoring_poison(&self.inner.0).bytes.clone()
    }

    /// Everything captured so far, as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Waits until `done(bytes, eof)` holds; false on timeout.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&[u8], bool) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut state = lock_ignoring_poison(lock);
        loop {
            if done(&state.bytes, state.eof) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match cv.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Waits until the captured text contains `needle`; false on timeout.
    pub fn wait_for_text(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_until(timeout, |bytes, _| {
            String::from_utf8_lossy(bytes).contains(needle)
        })
    }

    /// Waits until the pipe is closed; false on timeout.
    pub fn wait_eof(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |_, eof| eof)
    }
}

fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Subprocess guard

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

// ---------------------------------------------------------------------------------------------
// Keys

/// An OpenSSH key pair made by `ssh-keygen`.
#[derive(Clone, Debug)]
pub struct KeyPair {
    pub private: PathBuf,
    pub public: PathBuf,
    /// The public key line (`ssh-ed25519 AAAA... comment`).
    pub public_line: String,
}

impl KeyPair {
    /// The private key's OpenSSH text.
    pub fn private_text(&self) -> String {
        std::fs::read_to_string(&self.private).expect("reading a private key generated by the test")
    }

    /// `SHA256:...` as `ssh-keygen -lf` reports it for the public key.
    pub fn fingerprint(&self) -> String {
        let mut cmd = Command::new(require_tool("ssh-keygen"));
        cmd.arg("-l")
            .arg("-E")
            .arg("sha256")
            .arg("-f")
            .arg(&self.public);
        let out = run_command(&mut cmd, "ssh-keygen -lf", Duration::from_secs(20));
        out.expect_success("fingerprinting a generated key");
        fingerprints_in(&out.stdout)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no fingerprint in ssh-keygen -lf output: {}", out.stdout))
    }
}

/// Generates a fresh passphrase-less key (`ssh-keygen -t TYPE -N '' -f DIR/NAME`).
pub fn generate_key_of_type(dir: &Path, name: &str, key_type: &str) -> KeyPair {
    let private = dir.join(name);
    let mut cmd = Command::new(require_tool("ssh-keygen"));
    cmd.args(["-q", "-t", key_type, "-N", "", "-C"])
        .arg(format!("e2e-{name}"))
        .arg("-f")
        .arg(&private);
    run_command(&mut cmd, "ssh-keygen", Duration::from_secs(30))
        .expect_success("generating a test key with ssh-keygen");
    let public = dir.join(format!("{name}.pub"));
    let public_line = std::fs::read_to_string(&public)
        .expect("reading the generated public key")
        .trim()
        .to_string();
    KeyPair {
        private,
        public,
        public_line,
    }
}

/// Generates a fresh Ed25519 key.
pub fn generate_key(dir: &Path, name: &str) -> KeyPair {
    generate_key_of_type(dir, name, "ed25519")
}

/// Every `SHA256:...` token in a text (e.g. `ssh-keygen -lf` output).
pub fn fingerprints_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|word| word.starts_with("SHA256:"))
        .map(str::to_string)
        .collect()
}

/// The host key fingerprints a server presents, via `ssh-keyscan | ssh-keygen -lf -`.
pub fn scan_host_key_fingerprints(host: IpAddr, port: u16) -> Vec<String> {
    let mut scan = Command::new(require_tool("ssh-keyscan"));
    scan.args(["-T", "10", "-p", &port.to_string(), &host.to_string()]);
    let scanned = run_command(&mut scan, "ssh-keyscan", Duration::from_secs(30));
    scanned.expect_success("ssh-keyscan of the bastion");
    assert!(
        !scanned.stdout.trim().is_empty(),
        "ssh-keyscan printed no key; stderr: {}",
        scanned.stderr
    );
    let mut keygen = Command::new(require_tool("ssh-keygen"));
    keygen
        .args(["-l", "-E", "sha256", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn(&mut keygen, "ssh-keygen -lf -", Input::Piped);
    guard
        .stdin()
        .write_all(scanned.stdout.as_bytes())
        .expect("feeding ssh-keyscan output to ssh-keygen");
    guard.close_stdin();
    let status = guard.expect_exit(Duration::from_secs(20), "fingerprinting scanned keys");
    let out = guard.stdout().text();
    assert!(
        status.success(),
        "ssh-keygen -lf - failed: {}",
        guard.stderr().text()
    );
    let mut fingerprints = fingerprints_in(&out);
    fingerprints.sort();
    fingerprints.dedup();
    fingerprints
}

// ---------------------------------------------------------------------------------------------
// The bastion

/// A bastion's configuration (environment variables and arguments) before it starts.
#[derive(Clone, Debug)]
pub struct BastionBuilder {
    env: BTreeMap<String, String>,
    args: Vec<String>,
    name: String,
    wrapper: Vec<OsString>,
}

impl BastionBuilder {
    /// A bastion on 127.0.0.1 port 0 with JSON logs, authorizing the given authorized_keys text.
    pub fn new(authorized_keys: &str) -> BastionBuilder {
        BastionBuilder::bare()
            .env("BASTION_LISTEN", "127.0.0.1:0")
            .env("BASTION_AUTHORIZED_KEYS", authorized_keys)
    }

    /// Only `BASTION_LOG_FORMAT=json`; nothing else set.
    pub fn bare() -> BastionBuilder {
        let mut env = BTreeMap::new();
        env.insert("BASTION_LOG_FORMAT".to_string(), "json".to_string());
        BastionBuilder {
            env,
            args: Vec::new(),
            name: "bastion".to_string(),
            wrapper: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> BastionBuilder {
        self.env.insert(key.to_string(), value.into());
        self
    }

    pub fn without(mut self, key: &str) -> BastionBuilder {
        self.env.remove(key);
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> BastionBuilder {
        self.args.push(arg.into());
        self
    }

    pub fn name(mut self, name: &str) -> BastionBuilder {
        self.name = name.to_string();
        self
    }

    /// `BASTION_PERMIT_OPEN`.
    pub fn permit_open(self, rules: impl Into<String>) -> BastionBuilder {
        self.env("BASTION_PERMIT_OPEN", rules)
    }

    pub fn env_map(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// The command, with a clean environment: only PATH and the configured settings.
    /// Run the bastion through `wrapper` (e.g. `unshare ... chroot DIR`), which is given the
    /// binary path `inner` (as seen by the wrapped process) and then the arguments.
    pub fn wrapped_in(
        mut self,
        wrapper: Vec<OsString>,
        inner: impl Into<OsString>,
    ) -> BastionBuilder {
        self.wrapper = wrapper;
        self.wrapper.push(inner.into());
        self
    }

    pub fn command(&self) -> Command {
        match self.wrapper.split_first() {
            None => bastion_command(&self.env, &self.args),
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.env_clear();
                if let Some(path) = std::env::var_os("PATH") {
                    cmd.env("PATH", path);
                }
                cmd.args(rest).envs(&self.env).args(&self.args);
                cmd
            }
        }
    }

    /// Starts the bastion and waits for its `listening` event.
    pub fn start(self) -> Bastion {
        let mut cmd = self.command();
        let proc = ChildGuard::spawn(&mut cmd, &self.name, Input::Null);
        let mut bastion = Bastion {
            proc,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            env: self.env,
        };
        let event = bastion.wait_event(START_TIMEOUT, |e| e["event"] == "listening");
        let event = match event {
            Some(event) => event,
            None => {
                let exited = bastion.proc.try_status();
                panic!(
                    "{} did not log a `listening` event within {START_TIMEOUT:?} (exit status: \
                     {exited:?}); stderr:\n{}",
                    bastion.proc.name,
                    bastion.stderr_text()
                )
            }
        };
        let addr = event["addr"]
            .as_str()
            .unwrap_or_else(|| panic!("`listening` event without a string `addr`: {event}"));
        bastion.addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("`listening` addr {addr:?} is not a socket address: {e}"));
        assert_ne!(
            bastion.addr.port(),
            0,
            "`listening` reported port 0: {event}"
        );
        bastion
    }

    /// Runs the bastion expecting it to exit by itself (bad configuration) within `timeout`.
    pub fn run_to_exit(self, timeout: Duration) -> Finished {
        let mut cmd = self.command();
        run_command(&mut cmd, &self.name, timeout)
    }
}

/// The bastion binary with a clean environment (PATH plus `env`) and `args`.
pub fn bastion_command(env: &BTreeMap<String, String>, args: &[String]) -> Command {
    let mut cmd = Command::new(bastion_bin());
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env).args(args);
    cmd
}

/// A running bastion (killed when dropped).
pub struct Bastion {
    proc: ChildGuard,
    addr: SocketAddr,
    env: BTreeMap<String, String>,
}

impl Bastion {
    /// The address it reported in its `listening` event.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn process(&mut self) -> &mut ChildGuard {
        &mut self.proc
    }

    /// The settings it was started with.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// Its whole stderr so far.
    pub fn stderr_text(&self) -> String {
        self.proc.stderr().text()
    }

    /// Every JSON log line so far (lines that are not JSON objects are skipped).
    pub fn events(&self) -> Vec<Value> {
        parse_events(&self.stderr_text())
    }

    /// Events whose `event` field is `name`.
    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }

    /// Waits up to `timeout` for a log event matching `pred`.
    pub fn wait_event(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let mut found = None;
        self.proc.stderr().wait_until(timeout, |bytes, eof| {
            found = parse_events(&String::from_utf8_lossy(bytes))
                .into_iter()
                .find(|e| pred(e));
            found.is_some() || eof
        });
        found
    }

    /// An ssh client aimed at this bastion.
    pub fn ssh(&self, key: &Path) -> Ssh {
        Ssh::new(key, self.addr.ip(), self.port())
    }

    /// Sends a signal (`TERM`, `INT`) to the bastion.
    pub fn signal(&self, signal: &str) {
        self.proc.signal(signal);
    }

    /// Waits up to `timeout` for the bastion to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_timeout(timeout)
    }

    /// The bastion's peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.pid())
    }

    /// `bastion healthcheck` with the same settings, except `BASTION_LISTEN` = `listen`.
    pub fn healthcheck_command(&self, listen: &str) -> Command {
        let mut env = self.env.clone();
        env.insert("BASTION_LISTEN".to_string(), listen.to_string());
        bastion_command(&env, &["healthcheck".to_string()])
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM line in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------------
// The OpenSSH client

/// `-o` options every client invocation gets: no user config, no known_hosts, only the given
/// key, no agent, never prompt, fail if a forward cannot be set up, bounded connect time.
pub fn default_client_options(port: u16) -> Vec<(String, String)> {
    [
        ("StrictHostKeyChecking", "no".to_string()),
        ("UserKnownHostsFile", "/dev/null".to_string()),
        ("GlobalKnownHostsFile", "/dev/null".to_string()),
        ("UpdateHostKeys", "no".to_string()),
        ("IdentitiesOnly", "yes".to_string()),
        ("IdentityAgent", "none".to_string()),
        ("BatchMode", "yes".to_string()),
        ("ExitOnForwardFailure", "yes".to_string()),
        ("ConnectTimeout", "10".to_string()),
        ("ControlMaster", "no".to_string()),
        ("ControlPath", "none".to_string()),
        ("User", "tunnel".to_string()),
        ("Port", port.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Command-line options for `ssh`, `sftp` or `scp`: `-F /dev/null`, the `-o` options and `-i key`.
pub fn client_options(key: &Path, options: &[(String, String)]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-F".into(), "/dev/null".into()];
    for (name, value) in options {
        args.push("-o".into());
        args.push(format!("{name}={value}").into());
    }
    args.push("-i".into());
    args.push(key.into());
    args
}

/// The same options as an ssh_config file body (`Host *` and one line per option), for tools
/// that spawn their own ssh without our command line (ProxyJump).
pub fn client_config_file(key: &Path, options: &[(String, String)]) -> String {
    let mut text = String::from("Host *\n");
    for (name, value) in options {
        if name != "Port" {
            text.push_str(&format!("  {name} {value}\n"));
        }
    }
    text.push_str(&format!("  IdentityFile {}\n", key.display()));
    text
}

/// How a host is written in ssh's `host:port` forward specs (`[::1]` for IPv6).
pub fn host_in_spec(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// An `ssh` invocation against one server, built up argument by argument.
#[derive(Clone, Debug)]
pub struct Ssh {
    key: PathBuf,
    options: Vec<(String, String)>,
    args: Vec<OsString>,
    host: String,
    remote: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Ssh {
    pub fn new(key: &Path, host: IpAddr, port: u16) -> Ssh {
        Ssh {
            key: key.to_path_buf(),
            options: default_client_options(port),
            args: Vec::new(),
            host: host.to_string(),
            remote: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Adds an ssh option or flag (before the host).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Ssh {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Ssh {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets `-o NAME=VALUE`, replacing a default of the same name (ssh keeps the first value
    /// it sees, so a later `-o` could not override a default).
    pub fn option(mut self, name: &str, value: &str) -> Ssh {
        match self
            .options
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value.to_string(),
            None => self.options.push((name.to_string(), value.to_string())),
        }
        self
    }

    /// Removes a default `-o` option.
    pub fn without_option(mut self, name: &str) -> Ssh {
        self.options.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// The `-F/-o/-i` arguments this client would use (for `sftp`/`scp`).
    pub fn client_args(&self) -> Vec<OsString> {
        client_options(&self.key, &self.options)
    }

    /// The host argument.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A remote command (after the host).
    pub fn remote(mut self, word: impl Into<OsString>) -> Ssh {
        self.remote.push(word.into());
        self
    }

    /// An environment variable for the ssh process.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Ssh {
        self.env.push((key.into(), value.into()));
        self
    }

    /// `-N -L LOCAL:DEST` (the local side may be a Unix socket path or `[addr:]port`).
    pub fn forward(self, local: &str, destination: &str) -> Ssh {
        self.arg("-L").arg(format!("{local}:{destination}"))
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(require_tool("ssh"));
        cmd.args(self.client_args())
            .args(&self.args)
            .arg(&self.host)
            .args(&self.remote);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    pub fn spawn(&self, name: &str, input: Input) -> SshProcess {
        let mut cmd = self.command();
        SshProcess {
            proc: ChildGuard::spawn(&mut cmd, name, input),
        }
    }

    /// Runs to completion (stdin `/dev/null`) with a timeout.
    pub fn run(&self, timeout: Duration) -> Finished {
        let mut cmd = self.command();
        run_command(&mut cmd, "ssh", timeout)
    }
}

/// A running `ssh` client (killed when dropped).
pub struct SshProcess {
    pub proc: ChildGuard,
}

impl SshProcess {
    fn check_alive(&mut self, what: &str) {
        if let Some(status) = self.proc.try_status() {
            self.proc.stderr().wait_eof(Duration::from_secs(2));
            panic!(
                "{what}: ssh exited early with {status}; its stderr:\n{}",
                self.proc.stderr().text()
            );
        }
    }

    /// Connects to a `-L` Unix socket as soon as ssh listens on it (the first connection is the
    /// test's own, so no probe connection reaches the destination). Panics if ssh exits first or
    /// the deadline passes.
    pub fn connect_unix(&mut self, path: &Path, timeout: Duration) -> UnixStream {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive(&format!("waiting for the forward at {}", path.display()));
            if let Ok(stream) = UnixStream::connect(path) {
                stream
                    .set_read_timeout(Some(IO_TIMEOUT))
                    .expect("setting a read timeout");
                stream
                    .set_write_timeout(Some(IO_TIMEOUT))
                    .expect("setting a write timeout");
                return stream;
            }
            assert!(
                Instant::now() < deadline,
                "ssh did not listen on {} within {timeout:?}; its stderr:\n{}",
                path.display(),
                self.proc.stderr().text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Like [`SshProcess::connect_unix`] for a `-L` TCP port.
    pub fn connect_tcp(&mut self, addr: SocketAddr, timeout: Duration) -> TcpStream {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive(&format!("waiting for the forward at {addr}"));
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                configure_tcp(&stream);
                return stream;
            }
            assert!(
                Instant::now() < deadline,
                "ssh did not listen on {addr} within {timeout:?}; its stderr:\n{}",
                self.proc.stderr().text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until ssh prints `needle` on stderr.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> bool {
        self.proc.stderr().wait_for_text(needle, timeout)
    }

    pub fn stderr(&self) -> String {
        self.proc.stderr().text()
    }
}

fn configure_tcp(stream: &TcpStream) {
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("setting a read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("setting a write timeout");
    let _ = stream.set_nodelay(true);
}

// ---------------------------------------------------------------------------------------------
// A per-test workspace

/// A temporary directory with a fresh client key authorized by default.
pub struct TestDir {
    dir: tempfile::TempDir,
    pub key: KeyPair,
}

impl TestDir {
    pub fn new() -> TestDir {
        require_ssh_tools();
        let dir = tempfile::Builder::new()
            .prefix("bastion-e2e-")
            .tempdir()
            .expect("creating a temporary directory");
        let key = generate_key(dir.path(), "id_ed25519");
        TestDir { dir, key }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A bastion builder authorizing this directory's client key.
    pub fn bastion(&self) -> BastionBuilder {
        BastionBuilder::new(&format!("{}\n", self.key.public_line))
    }

    /// A path string for a Unix socket in this directory.
    pub fn socket(&self, name: &str) -> String {
        self.join(name)
            .to_str()
            .expect("temporary paths are UTF-8")
            .to_string()
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic data and digests

const PATTERN_PERIOD: usize = 1024 * 1024 + 61;

/// A deterministic pseudo-random byte stream (one per seed). Its period is not a power of two,
/// so lost, duplicated or reordered blocks change the digest.
#[derive(Clone)]
pub struct Pattern {
    bytes: Arc<Vec<u8>>,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut bytes = Vec::with_capacity(PATTERN_PERIOD + 8);
        while bytes.len() < PATTERN_PERIOD {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            bytes.extend_from_slice(&z.to_le_bytes());
        }
        bytes.truncate(PATTERN_PERIOD);
        Pattern {
            bytes: Arc::new(bytes),
        }
    }

    /// The largest contiguous slice at stream offset `offset`, at most `max` bytes.
    pub fn chunk(&self, offset: u64, max: usize) -> &[u8] {
        let start = (offset % PATTERN_PERIOD as u64) as usize;
        let end = (start + max).min(PATTERN_PERIOD);
        &self.bytes[start..end]
    }

    /// SHA-256 (hex) of the first `len` bytes of the stream.
    pub fn digest(&self, len: u64) -> String {
        let mut hasher = Sha256::new();
        let mut offset = 0;
        while offset < len {
            let chunk = self.chunk(offset, (len - offset).min(1 << 20) as usize);
            hasher.update(chunk);
            offset += chunk.len() as u64;
        }
        hex(&hasher.finalize())
    }

    /// Writes the first `len` bytes of the stream to `w` and returns their SHA-256 (hex).
    pub fn write_to(&self, w: &mut impl Write, len: u64) -> io::Result<String> {
        let mut hasher = Sha256::new();
        let mut offset = 0;
        while offset < len {
            let chunk = self.chunk(offset, (len - offset).min(256 * 1024) as usize);
            w.write_all(chunk)?;
            hasher.update(chunk);
            offset += chunk.len() as u64;
        }
        w.flush()?;
        Ok(hex(&hasher.finalize()))
    }
}

/// Reads `r` to EOF; returns the byte count and SHA-256 (hex).
pub fn read_to_end_digest(r: &mut impl Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

/// SHA-256 (hex) of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MiB per second for `bytes` moved in `elapsed`.
pub fn mib_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Sends `payload` through a bidirectional stream and reads back exactly as many bytes
/// (an echo round trip); panics with `what` on failure or mismatch.
pub fn echo_round_trip<S: Read + Write>(stream: &mut S, payload: &[u8], what: &str) {
    stream
        .write_all(payload)
        .unwrap_or_else(|e| panic!("{what}: writing {} bytes: {e}", payload.len()));
    let mut back = vec![0u8; payload.len()];
    stream
        .read_exact(&mut back)
        .unwrap_or_else(|e| panic!("{what}: reading the echo of {} bytes: {e}", payload.len()));
    assert!(
        back == payload,
        "{what}: the echo differs from what was sent"
    );
}

// ---------------------------------------------------------------------------------------------
// Loopback test servers

/// What an exchange server saw on one connection.
#[derive(Clone, Debug)]
pub struct Received {
    pub len: u64,
    pub digest: String,
}

type Handler = Arc<dyn Fn(TcpStream, usize) + Send + Sync>;

/// A TCP server on a loopback port 0 with one thread per connection. Dropping it stops accepting
/// and closes the connections it holds open.
pub struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn spawn(bind: IpAddr, held_open: bool, handler: Handler) -> TestServer {
        let listener = TcpListener::bind(SocketAddr::new(bind, 0))
            .unwrap_or_else(|e| panic!("binding a test server on {bind} port 0: {e}"));
        let addr = listener.local_addr().expect("reading a test server's port");
        listener
            .set_nonblocking(true)
            .expect("making a test listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (stop2, accepted2, held2) = (stop.clone(), accepted.clone(), held.clone());
        let accept_thread = thread::Builder::new()
            .name(format!("test server {addr}"))
            .spawn(move || {
                while !stop2.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let index = accepted2.fetch_add(1, Ordering::SeqCst);
                            let _ = stream.set_nonblocking(false);
                            if held_open {
                                if let Ok(clone) = stream.try_clone() {
                                    lock_ignoring_poison(&held2).push(clone);
                                }
                            }
                            let handler = handler.clone();
                            let _ = thread::Builder::new()
                                .name(format!("test conn {addr} #{index}"))
                                .spawn(move || handler(stream, index));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
            .expect("spawning a test server thread");
        TestServer {
            addr,
            stop,
            accepted,
            held,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `host:port` as an ssh forward destination (`[::1]:port` for IPv6).
    pub fn spec(&self) -> String {
        format!("{}:{}", host_in_spec(self.addr.ip()), self.port())
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Echoes every byte back; on EOF from the client, closes its write side.
    pub fn echo(bind: IpAddr) -> TestServer {
        TestServer::spawn(
            bind,
            false,
            Arc::new(|mut stream: TcpStream, _| {
                let _ = stream.set_nodelay(true);
                let mut read_half = match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => return,
                };
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match read_half.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            }),
        )
    }

    /// An echo server on 127.0.0.1.
    pub fn echo_v4() -> TestServer {
        TestServer::echo(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// On each connection, at once: sends `send_len` bytes of `Pattern::new(send_seed)` then
    /// closes its write side, and reads everything the client sends until EOF, reporting the
    /// count and digest on the returned channel.
    pub fn exchange(send_seed: u64, send_len: u64) -> (TestServer, mpsc::Receiver<Received>) {
        let (tx, rx) = mpsc::channel();
        let tx = Arc::new(Mutex::new(tx));
        let pattern = Pattern::new(send_seed);
        let server = TestServer::spawn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            false,
            Arc::new(move |stream: TcpStream, _| {
                let _ = stream.set_nodelay(true);
                let mut writer = match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => return,
                };
                let pattern = pattern.clone();
                let sender = thread::spawn(move || {
                    let _ = pattern.write_to(&mut writer, send_len);
                    let _ = writer.shutdown(Shutdown::Write);
                });
                let mut reader = stream;
                if let Ok((len, digest)) = read_to_end_digest(&mut reader) {
                    let _ = lock_ignoring_poison(&tx).send(Received { len, digest });
                }
                let _ = sender.join();
            }),
        );
        (server, rx)
    }

    /// Reads the request to EOF, then replies with `half_close_reply(request)` and closes.
    pub fn half_close() -> TestServer {
        TestServer::spawn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            false,
            Arc::new(|mut stream: TcpStream, _| {
                let mut request = Vec::new();
                if stream.read_to_end(&mut request).is_err() {
                    return;
                }
                let _ = stream.write_all(&half_close_reply(&request));
                let _ = stream.shutdown(Shutdown::Write);
            }),
        )
    }

    /// Accepts connections and never reads from them (they stay open until the server drops).
    pub fn never_reads() -> TestServer {
        TestServer::spawn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            true,
            Arc::new(|_stream: TcpStream, _| {
                // The accept loop keeps a clone of the stream open; this thread just ends.
            }),
        )
    }

    /// Writes `reply` on each connection and closes it (e.g. a non-SSH banner).
    pub fn fixed_reply(reply: &'static [u8]) -> TestServer {
        TestServer::spawn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            false,
            Arc::new(move |mut stream: TcpStream, _| {
                let _ = stream.write_all(reply);
                let _ = stream.shutdown(Shutdown::Write);
                thread::sleep(Duration::from_millis(200));
            }),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for stream in lock_ignoring_poison(&self.held).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
    }
}

/// The half-close server's reply to a request: a header naming its size and digest, then 1 MiB
/// derived from it, so a truncated reply is detectable.
pub fn half_close_reply(request: &[u8]) -> Vec<u8> {
    let digest = sha256_hex(request);
    let mut reply = format!("got {} bytes sha256 {digest}\n", request.len()).into_bytes();
    let pattern = Pattern::new(request.len() as u64);
    reply.extend_from_slice(pattern.chunk(0, 1024 * 1024));
    reply
}

/// Holds a process-wide lock while heavy throughput tests run, so two of them in the same test
/// binary do not compete for the 2 cores (their rates are printed and compared to budgets).
pub fn heavy_test_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    lock_ignoring_poison(&LOCK)
}

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
