//! Tools that `scripts/bench` drives to compare the bastion with OpenSSH sshd on loopback. Each
//! binary listens or connects on 127.0.0.0/8 only, binds port 0 where it listens, prints one JSON
//! object per line on standard output, and stops when its standard input closes or on
//! SIGTERM/SIGINT, so the orchestrator's exit always ends it.
//!
//! - `delay-line`: a TCP relay that delays every chunk by half a round-trip time in each
//!   direction (a WAN without `netem`); it buffers without a bound, so only the SSH windows
//!   limit what is in flight.
//! - `dest`: the destinations of the tunnels, in one process: an echo server, a sink that
//!   answers the byte count it received, and a hold server that accepts and never reads.
//! - `push`: uploads N bytes to each of several addresses at the same moment and reports each
//!   upload's time, checked against the sink's count.
//! - `idle-tunnels`: opens N authenticated SSH connections with the russh client, one
//!   `direct-tcpip` channel each, and holds them.
#![forbid(unsafe_code)]

pub mod report;
pub mod runtime;
pub mod size;
pub mod stop;
