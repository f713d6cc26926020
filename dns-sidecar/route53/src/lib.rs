//! The dns-sidecar's Route 53 side, in a crate of its own so its `aws-smithy-mocks` tests do
//! not recompile the EC2 and ECS SDKs: which records the sidecar owns, how they become change
//! batches, the retry policy for every AWS call, and the UPSERT / wait / delete-if-still-ours
//! calls. The `dns-sidecar` crate uses it as `dns_sidecar_route53`.
//!
//! - [`error`]: this crate's error type, whose message says what failed and what to do
//!   (the sidecar's own error type converts from it).
//! - [`address`]: which addresses may be published (globally routable, one per family).
//! - [`retry`]: deadline-bounded exponential backoff with jitter; what is worth retrying.
//! - [`record`]: the records we own, as Route 53 change batches and as `--dry-run` JSON.
//! - [`route53`]: UPSERT, wait for `INSYNC`, read back, delete-if-still-ours.
#![forbid(unsafe_code)]

pub mod address;
pub mod error;
pub mod record;
pub mod retry;
pub mod route53;
