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
//! - [`discover`]: the public address: explicit, EC2 `DescribeNetworkInterfaces`, or an echo URL.
//! - [`prune`]: which values of the name are this cluster's and stale, and their removal.
//! - [`reconcile`]: the periodic prune every running sidecar does (DNS_RECONCILE_INTERVAL).
//! - [`insync`]: follows a change that was not INSYNC within DNS_TIMEOUT, in the background.
//! - [`health`]: the loopback status port and the `dns-sidecar healthcheck` probe.
//! - [`keys`]: key sync, the bastion's authorized_keys and revoked_keys files kept in step
//!   with Secrets Manager and SSM Parameter Store (alongside the record, or alone).
//! - [`lifecycle`]: the whole run: publish, watch, wait for the stop signal, clean up.
//! - [`error`]: the sidecar's error type, whose message says what failed and what to do (the
//!   exit code follows from it).
//!
//! The Route 53 side is the `dns-sidecar-route53` crate (`dns-sidecar/route53/`; see its
//! Cargo.toml for why it is a crate of its own), used under its own name
//! `dns_sidecar_route53`: `address` (which addresses may be published: globally routable, one
//! per family), `retry` (deadline-bounded backoff; what is worth retrying), `record` (the
//! records we own, as change batches and `--dry-run` JSON) and `route53` (UPSERT, wait for
//! `INSYNC`, read back, delete-if-still-ours). Its errors convert into [`error::Error`].
#![forbid(unsafe_code)]

pub mod config;
pub mod discover;
pub mod error;
pub mod health;
pub mod insync;
pub mod keys;
pub mod lifecycle;
pub mod logging;
pub mod metadata;
pub mod prune;
pub mod reconcile;
pub mod template;
