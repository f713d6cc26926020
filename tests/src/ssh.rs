//! The stock OpenSSH client: the options every invocation gets, an `ssh` command built up
//! argument by argument, and a running client with its forwarded sockets.

use std::ffi::OsString;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::locate::require_tool;
use crate::process::{run_command, ChildGuard, Finished, Input};
use crate::IO_TIMEOUT;

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

/// Waits until a forwarded socket reports EOF or an error (its tunnel was closed): the instant
/// it did, or `None` after `limit`.
pub fn wait_closed(stream: &mut UnixStream, limit: Duration) -> Option<Instant> {
    stream
        .set_read_timeout(Some(limit))
        .expect("setting a read timeout");
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
}

pub(crate) fn configure_tcp(stream: &TcpStream) {
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("setting a read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("setting a write timeout");
    let _ = stream.set_nodelay(true);
}
