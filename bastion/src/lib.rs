//! A forward-only SSH jumpbox: `ssh -L`, `ssh -W` and `ProxyJump` tunnels to private
//! destinations, public-key authentication, and nothing else (no shell, no commands, no file
//! transfer, no agent, X11 or remote forwarding).
//!
//! # Layout
//! Data moves one way: a connection is accepted (`server`), authenticated against the key list
//! (`authorized_keys`, in `session`), then each `direct-tcpip` channel is checked against the
//! destination rules (`destination_policy`), connected and pumped (`tunnel`) with bounded
//! buffering (`flow`). Every decision is an audit event (`audit`).
//!
//! - [`config`]: every flag and `BASTION_*` variable, defaults and validation.
//! - [`host_key`]: the host key from a secret or file, or an ephemeral one.
//! - [`authorized_keys`]: OpenSSH `authorized_keys` parsing and key lookup.
//! - [`destination_policy`]: where a tunnel may go; built-in denials; resolve-once.
//! - [`session`]: the russh `Handler`: the whole channel and auth policy.
//! - [`tunnel`]: connecting and copying bytes both ways with half-close.
//! - [`flow`]: deadlock-free, memory-bounded buffering between channels and destinations.
//! - [`audit`]: logging setup and structured events.
//! - [`server`]: accept loop, login deadline, connection caps, graceful shutdown.
//! - [`healthcheck`]: the `bastion healthcheck` probe for container health checks.
#![forbid(unsafe_code)]

pub mod audit;
pub mod authorized_keys;
pub mod certificates;
pub mod client_policy;
pub mod config;
pub mod destination_policy;
pub mod flow;
pub mod healthcheck;
pub mod host_key;
pub mod key_options;
pub mod net;
pub mod proxy_header;
pub mod server;
pub mod session;
pub mod tunnel;
