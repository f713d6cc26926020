//! The jumpbox's DNS sidecar: finds the ECS task's public address, publishes it in Route 53
//! under a per-region name (`jumpbox.eu-west-1.example.com`), keeps checking that the record is
//! still ours, and deletes it (only if still ours) when the task stops.
//!
//! # Layout
//! Start-up runs top to bottom: configuration, task metadata, address discovery, the Route 53
//! change, then the idle wait for SIGTERM and the clean-up.
//!
//! - [`config`]: every flag and `DNS_*` variable, defaults and validation.
//! - [`template`]: `{region}`/`{task_id}`/… name templates and DNS name rules.
//! - [`metadata`]: the ECS task metadata endpoint v4 (`/task`).
//! - [`address`]: which addresses may be published (globally routable, one per family).
//! - [`discover`]: the public address: explicit, EC2 `DescribeNetworkInterfaces`, or an echo URL.
//! - [`retry`]: deadline-bounded exponential backoff with jitter; what is worth retrying.
//! - [`record`]: the records we own, as Route 53 change batches and as `--dry-run` JSON.
//! - [`route53`]: UPSERT, wait for `INSYNC`, read back, delete-if-still-ours.
//! - [`prune`]: removes multivalue records left behind by tasks that no longer run.
//! - [`health`]: the loopback status port and the `dns-sidecar healthcheck` probe.
//! - [`lifecycle`]: the whole run: publish, watch, wait for the stop signal, clean up.
//! - [`error`]: one error type whose message says what failed and what to do.
//!
//! [`error`], [`address`], [`retry`], [`record`] and [`route53`] come from the
//! `dns-sidecar-route53` crate (`dns-sidecar/route53/`).
#![forbid(unsafe_code)]

// The Route 53 side lives in its own crate (see its Cargo.toml for why); re-exported here so
// the sidecar and its users name it `dns_sidecar::route53` and so on.
pub use dns_sidecar_route53::{address, error, record, retry, route53};

pub mod config;
pub mod discover;
pub mod health;
pub mod lifecycle;
pub mod logging;
pub mod metadata;
pub mod prune;
pub mod template;
