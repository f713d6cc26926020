//! The periodic reconcile: every running sidecar removes its own cluster's stale values of the
//! name (see [`crate::prune`] for which values are judged and when one is stale) every
//! DNS_RECONCILE_INTERVAL, jittered ±20 % so a service's tasks do not call Route 53 and ECS in
//! step. A task killed without a clean stop thus loses its value within one period, even though
//! its own sidecar never ran its clean-up. A failed run is logged (once per distinct error) and
//! retried in the next period; it never stops the sidecar.

use std::time::Duration;

use rand::RngExt;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::prune::{self, Scope};
use crate::template::{Template, Vars};
use dns_sidecar_route53::address::RecordType;
use dns_sidecar_route53::route53::Zone;

/// The share of the interval a period may be shorter or longer by.
pub const JITTER: f64 = 0.2;

/// The longest one run may take (its AWS calls retry until then).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// `interval` stretched by a factor in [1 - JITTER, 1 + JITTER]; `unit` is uniform in [0, 1].
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    interval.mul_f64(factor)
}

/// A number uniform in [0, 1) (`rand`, which the Route 53 retries already use for theirs).
fn random_unit() -> f64 {
    rand::rng().random::<f64>()
}

/// Everything one sidecar needs to reconcile its name, owned so it can run on its own task.
pub struct Reconciler {
    pub zone: Zone,
    pub ecs: aws_sdk_ecs::Client,
    pub name: String,
    pub types: Vec<RecordType>,
    pub template: Template,
    pub vars: Vars,
    pub cluster: String,
    pub own_task: String,
    pub interval: Duration,
}

impl Reconciler {
    /// Reconcile every (jittered) interval, until the task running this is aborted.
    pub async fn run(self) {
        info!(event = "reconcile_on", interval_ms = self.interval.as_millis() as u64,
              cluster = %self.cluster, name = %self.name,
              "removing this cluster's values of tasks that no longer run, every interval ±20 %");
        let mut last_error: Option<String> = None;
        loop {
            tokio::time::sleep(jittered(self.interval, random_unit())).await;
            let deadline =
                Instant::now() + RUN_LIMIT.min(self.interval.max(Duration::from_secs(10)));
            let scope = Scope {
                zone: &self.zone,
                ecs: &self.ecs,
                name: &self.name,
                types: &self.types,
                template: &self.template,
                vars: &self.vars,
                cluster: &self.cluster,
                own_task: &self.own_task,
            };
            match prune::prune(&scope, deadline).await {
                Ok(done) => {
                    if last_error.take().is_some() {
                        info!(event = "reconcile_recovered", "reconcile works again");
                    }
                    // Every run, for the stack's "fewer jumpboxes than DesiredCount" alarm
                    // (a metric filter on `published`; each running sidecar reports it).
                    info!(event = "reconcile_count", cluster = %self.cluster,
                          running = done.running, published = done.published,
                          "this cluster's running tasks, and those with a value under the name");
                    if done.deleted.is_empty() {
                        debug!(event = "reconcile", checked = done.checked, deleted = 0);
                    } else {
                        info!(event = "reconcile", name = %self.name, checked = done.checked,
                              deleted = done.deleted.len(), set_identifiers = ?done.deleted,
                              "deleted values of tasks that no longer run in this cluster");
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    if last_error.as_deref() != Some(message.as_str()) {
                        warn!(event = "reconcile_failed", error = %message,
                              "reconcile failed; retrying in the next period (logged once \
                               until the error changes)");
                    }
                    last_error = Some(message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let i = Duration::from_secs(300);
        assert_eq!(jittered(i, 0.0), Duration::from_secs(240));
        assert_eq!(jittered(i, 1.0), Duration::from_secs(360));
        assert_eq!(jittered(i, 0.5), i);
        assert_eq!(jittered(i, 7.0), Duration::from_secs(360));
        let draws: Vec<f64> = (0..1000).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        // Spread over the range, not stuck (1000 draws: each tenth gets some).
        for tenth in 0..10 {
            let lo = f64::from(tenth) / 10.0;
            assert!(
                draws.iter().any(|u| (lo..lo + 0.1).contains(u)),
                "no draw in [{lo}, {})",
                lo + 0.1
            );
        }
    }
}
