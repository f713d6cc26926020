//! A change Route 53 accepted but did not report `INSYNC` within DNS_TIMEOUT: the record is
//! published (`INSYNC` only says every Route 53 name server has it), so the sidecar reports
//! healthy and this follower keeps polling `GetChange` in the background, logging `insync`
//! with the time it took when it arrives. A slow Route 53 control plane thus costs a warning,
//! not a crash loop in every region.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use dns_sidecar_route53::route53::{Insync, Zone};

/// How long the follower keeps asking before it gives up (with a warning).
const FOLLOW_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Poll `change` until `INSYNC`; `since` is when the UPSERT was accepted.
pub async fn follow(zone: Zone, change: String, since: Instant) {
    let deadline = Instant::now() + FOLLOW_LIMIT;
    match zone.poll_insync(&change, deadline).await {
        Ok(Insync::Done(_)) => {
            info!(event = "insync", change_id = %change,
                  insync_ms = since.elapsed().as_millis() as u64,
                  "Route 53 reports the change INSYNC at last")
        }
        Ok(Insync::NotYet { status, .. }) => {
            warn!(event = "insync_given_up", change_id = %change, status = %status,
                  "the change is still not INSYNC after a day; no longer checking")
        }
        Err(e) => {
            warn!(event = "insync_check_failed", change_id = %change, error = %e,
                  "cannot follow the change any more; the record stays published")
        }
    }
}
