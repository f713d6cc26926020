//! End-to-end test harness: starts the real `bastion` binary and the stock OpenSSH client as
//! subprocesses, with guards that kill them when a test ends (also on panic), plus the loopback
//! test servers (echo, exchange, half-close, never-reading, fixed reply), deterministic data
//! streams with SHA-256 digests, and helpers for deadlines, ports, keys and the network namespace.
//!
//! Nothing here depends on the `bastion` crate: the binary is found through `BASTION_BIN` or in
//! the workspace's target directory (building it is `scripts/test.sh`'s job).
//!
//! # Layout
//! Every module's public items are re-exported here, so a test file needs only `use e2e::*;`
//! (the dns-sidecar harness stays under its own name, `e2e::sidecar`).
//!
//! - [`locate`]: the workspace root, the binaries under test, required external tools.
//! - [`netns`]: the loopback-only network namespace check, free loopback ports.
//! - [`sync`]: polling with a deadline, poison-tolerant locks, the heavy-test lock.
//! - [`capture`]: a subprocess's captured stdout or stderr, with bounded waits.
//! - [`process`]: [`ChildGuard`] (kills the process group when dropped), [`run_command`],
//!   log events and peak memory of a process.
//! - [`keys`]: `ssh-keygen` key pairs and host key fingerprints.
//! - [`bastion`]: [`BastionBuilder`] and the running [`Bastion`].
//! - [`ssh`]: the OpenSSH client: options, the [`Ssh`] command, the running [`SshProcess`].
//! - [`testdir`]: [`TestDir`], a temporary directory with an authorized client key.
//! - [`data`]: deterministic [`Pattern`] streams, SHA-256 digests, echo round trips.
//! - [`servers`]: [`TestServer`], the loopback destinations the tunnels lead to.
//! - [`dns`]: [`DnsServer`], a DNS server that answers some names and ignores the rest, and
//!   the wrapper that shows the bastion a test `resolv.conf` and `hosts`.
//! - [`attempts`]: one `ssh -W` run and the checks on what it achieved.
//! - [`peers`]: the non-OpenSSH attacking peers (paramiko, raw protocol) under `tests/peers/`.
//! - [`attack`]: [`Attack`], one attacker and one innocent user against a fresh bastion.
//! - [`sidecar`]: the dns-sidecar harness (moto, the ECS endpoints, the sidecar process).
//! - [`registry`]: the container registry behind moto's ECR, for `scripts/deploy`'s push
//!   (under its own name, `e2e::registry`).

use std::time::Duration;

pub mod attack;
pub mod attempts;
pub mod bastion;
pub mod capture;
pub mod data;
pub mod dns;
pub mod keys;
pub mod locate;
pub mod netns;
pub mod peers;
pub mod process;
pub mod raw;
pub mod registry;
pub mod servers;
pub mod sidecar;
pub mod ssh;
pub mod sync;
pub mod testdir;

pub use attack::*;
pub use attempts::*;
pub use bastion::*;
pub use capture::*;
pub use data::*;
pub use dns::*;
pub use keys::*;
pub use locate::*;
pub use netns::*;
pub use peers::*;
pub use process::*;
pub use raw::*;
pub use servers::*;
pub use ssh::*;
pub use sync::*;
pub use testdir::*;

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
