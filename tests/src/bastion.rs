//! The bastion under test: its configuration (environment and arguments) as a builder, and the
//! running process with its log events.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use serde_json::Value;

use crate::locate::{bastion_bin, require_tool};
use crate::process::{
    parse_events, peak_rss_kib, rss_kib, run_command, ChildGuard, Finished, Input,
};
use crate::ssh::Ssh;
use crate::START_TIMEOUT;

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

    /// Start the bastion with the open file limit `soft`:`hard`, through `prlimit` (util-linux),
    /// which sets it and then executes the bastion (same process, same pid).
    pub fn nofile(self, soft: u64, hard: u64) -> BastionBuilder {
        let prlimit = require_tool("prlimit");
        let wrapper = vec![
            prlimit.into(),
            format!("--nofile={soft}:{hard}").into(),
            "--".into(),
        ];
        self.wrapped_in(wrapper, bastion_bin())
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
                    bastion.proc.name(),
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
        let status = self.proc.wait_timeout(timeout)?;
        // The process is gone, but its last log lines may still be in the pipe: read them
        // before anyone looks for an event (the stderr reader runs on its own thread).
        self.proc.stderr().wait_eof(Duration::from_secs(2));
        Some(status)
    }

    /// The bastion's peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.pid())
    }

    /// The bastion's resident set size now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// `bastion healthcheck` with the same settings, except `BASTION_LISTEN` = `listen`.
    pub fn healthcheck_command(&self, listen: &str) -> Command {
        let mut env = self.env.clone();
        env.insert("BASTION_LISTEN".to_string(), listen.to_string());
        bastion_command(&env, &["healthcheck".to_string()])
    }
}
