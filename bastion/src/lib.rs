//! A forward-only SSH jumpbox: `ssh -L`, `ssh -W` and `ProxyJump` tunnels to private
//! destinations, public-key and certificate authentication, and nothing else (no shell, no
//! commands, no file transfer, no agent, X11 or remote forwarding).
//!
//! # Layout
//! Data moves one way: accept → PROXY header → client policy → SSH → authentication →
//! destination policy → tunnel/flow → audit. No module reaches back up this chain;
//! `ARCHITECTURE.md` at the repository root draws it.
//!
//! Configuration, loaded once at start:
//! - [`config`]: every flag and `BASTION_*` variable, defaults and validation into `Settings`.
//! - [`host_key`]: the host key from a secret or file, or an ephemeral one.
//! - [`host_certificate`]: the OpenSSH host certificate presented with it, checked at start.
//! - [`net`]: IP and CIDR parsing and canonical forms, shared by every address rule.
//! - [`authorized_keys`]: OpenSSH `authorized_keys` and revocation list parsing.
//! - [`key_options`]: the options of a key line (`from=`, `permitopen=`, `expiry-time=`, …).
//! - [`certificates`]: OpenSSH user certificate checks.
//! - [`key_strength`]: what a key and its signature must be (no SHA-1 RSA signatures, no
//!   RSA key below `BASTION_MIN_RSA_BITS`, no security key whose touch is required).
//! - [`key_store`]: the live key set, re-read on change and published to subscribers.
//! - [`key_wait`]: `BASTION_WAIT_FOR_KEYS`, the bounded wait at start for key files a
//!   sidecar writes.
//! - [`reload`]: the one watcher of reloadable files (poll, SIGHUP, keep the last good one).
//! - [`fd_limit`]: the open file limit raised to the hard limit, the caps fitted into it.
//!
//! A connection's path:
//! - [`server`]: accept loop, login deadline, wiring; `serve(listener, settings, shutdown)`.
//! - [`admission`]: per-source limits and the cap on unauthenticated connections, with
//!   eviction of the least-progressed squatter; [`progress`] tells how far a connection got.
//! - [`penalties`]: per-source penalties that refuse misbehaving sources at accept;
//!   [`source`] groups client addresses into sources, [`rate_limit`] meters rates.
//! - [`limit_counters`]: how often each limit bit; rate-limited refusal logging.
//! - [`proxy_header`]: PROXY v1/v2 before SSH; settles the real client address.
//! - [`client_policy`]: allow/deny of client addresses, hosts.allow/hosts.deny files.
//! - [`session`]: the russh `Handler`, a thin adapter to the modules below.
//! - [`auth`]: the authentication decision, revocation, attempt counting.
//! - [`channel_budget`]: channels per connection (open at once, sessions, per second) and
//!   tunnels server-wide.
//! - [`session_channels`]: held `session` channels: the notice, refused commands.
//! - [`reachable`]: what a login may reach (its `permitopen` within the server's rules), as
//!   the notice and the refusal of commands list it.
//! - [`destination_policy`]: where a tunnel may go; built-in denials; resolve-once.
//! - [`resolver`]: the name lookups of destinations: `/etc/hosts`, then DNS, bounded per
//!   connection, in total and in time.
//! - [`off_limits`]: link-local and EC2 metadata ranges no rule opens, in every spelling.
//! - [`own_listener`]: the bastion's own listening sockets, never a tunnel's destination.
//! - [`tunnel`]: opening a tunnel and copying bytes both ways with half-close.
//! - [`flow`]: deadlock-free, memory-bounded buffering between channels and destinations.
//! - [`connections`]: live connections: revocation after reload, draining at shutdown.
//! - [`audit`]: logging setup and the catalogue of structured events.
//! - [`shutdown`]: SIGTERM/SIGINT as the future `serve` stops on.
//! - [`healthcheck`]: the `bastion healthcheck` probe for container health checks.
#![forbid(unsafe_code)]

pub mod admission;
pub mod audit;
pub mod auth;
pub mod authorized_keys;
pub mod certificates;
pub mod channel_budget;
pub mod client_policy;
pub mod config;
pub mod connections;
pub mod destination_policy;
pub mod fd_limit;
pub mod flow;
pub mod healthcheck;
pub mod host_certificate;
pub mod host_key;
pub mod key_options;
pub mod key_store;
pub mod key_strength;
pub mod key_wait;
pub mod limit_counters;
pub mod net;
pub mod off_limits;
pub mod own_listener;
pub mod penalties;
pub mod progress;
pub mod proxy_header;
pub mod rate_limit;
pub mod reachable;
pub mod reload;
pub mod resolver;
pub mod server;
pub mod session;
pub mod session_channels;
pub mod shutdown;
pub mod source;
pub mod tunnel;

#[cfg(test)]
pub(crate) mod testkit;
