//! What the accept loop does when `accept` fails, so that it can neither spin nor flood the
//! log, and never gives up its listener. An error that belongs to one pending connection (it
//! was reset or aborted before it could be accepted) is retried at once: the next one may be
//! fine. Anything else (`EMFILE`/`ENFILE` when descriptors run out, `ENOBUFS`, `ENOMEM`) is
//! retried after [`PAUSE`]; tokio keeps the listener's readiness on such an error, so the
//! retry needs no new wake-up and the backlog is served as soon as descriptors free up. The
//! `accept_error` event is logged once per [`LOG_PERIOD`], carrying how many were not logged.

#[cfg(test)]
mod tests;

use std::io;
use std::time::{Duration, Instant};

use crate::audit;
use crate::limit_counters::LOG_PERIOD;

/// The wait before retrying after an error that is not one connection's own.
pub(super) const PAUSE: Duration = Duration::from_millis(100);

/// The accept loop's error state.
#[derive(Debug, Default)]
pub(super) struct AcceptErrors {
    last_logged: Option<Instant>,
    /// Errors since the last logged one.
    suppressed: u64,
}

/// Errors `accept` reports for one pending connection only.
fn connection_only(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

impl AcceptErrors {
    /// Record `e` (logging it if this period has not logged one yet) and return how long to
    /// wait before accepting again.
    pub fn failed(&mut self, e: &io::Error, now: Instant) -> Duration {
        if self.should_log(now) {
            audit::accept_error(e, self.suppressed);
            self.suppressed = 0;
            self.last_logged = Some(now);
        } else {
            self.suppressed += 1;
        }
        if connection_only(e) {
            Duration::ZERO
        } else {
            PAUSE
        }
    }

    fn should_log(&self, now: Instant) -> bool {
        self.last_logged
            .is_none_or(|at| now.saturating_duration_since(at) >= LOG_PERIOD)
    }
}
