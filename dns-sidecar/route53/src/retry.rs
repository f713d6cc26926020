//! Deadline-bounded exponential backoff with full jitter, and the one place that decides
//! which AWS errors are worth another attempt.
//!
//! Retried: throttling (`Throttling`, `RequestLimitExceeded`, ...), `PriorRequestNotComplete`,
//! HTTP 5xx and 429, timeouts and network failures. Everything else (`InvalidChangeBatch`,
//! access denied, unknown zone, bad input) fails at once: waiting would not change the answer.
//! The SDK's own retries are switched off so this loop alone decides, and logs each retry.

use std::future::Future;
use std::time::Duration;

use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use rand::RngExt;
use tokio::time::Instant;
use tracing::warn;

/// Exponential backoff (`base`, doubling, capped at `max`) with full jitter, never sleeping
/// past `deadline`.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    deadline: Instant,
    attempts: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration, deadline: Instant) -> Self {
        Backoff {
            base,
            max,
            deadline,
            attempts: 1,
        }
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The time one attempt may take: `cap`, or less when the deadline is nearer.
    pub fn attempt_timeout(&self, cap: Duration) -> Duration {
        cap.min(self.deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1))
    }

    /// The next delay: uniform in [ceiling/2, ceiling], ceiling = base * 2^(attempts-1) capped
    /// at max. Half-jitter keeps a floor so a tight loop cannot hammer the API.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.attempts.saturating_sub(1).min(16);
        let ceiling = self.base.saturating_mul(1 << exp).min(self.max);
        let lo = ceiling / 2;
        let spread = ceiling.saturating_sub(lo).as_micros() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            rand::rng().random_range(0..=spread)
        };
        lo + Duration::from_micros(jitter)
    }

    /// Sleep before the next attempt. Returns false (without sleeping) when the deadline
    /// leaves no room for the delay plus a moment for the attempt itself.
    pub async fn wait(&mut self) -> bool {
        let delay = self.next_delay();
        let now = Instant::now();
        if now + delay + Duration::from_millis(50) > self.deadline {
            return false;
        }
        tokio::time::sleep(delay).await;
        self.attempts += 1;
        true
    }
}

/// An AWS call that failed for good.
#[derive(Debug, Clone)]
pub struct AwsFailure {
    /// The service's error code (`AccessDenied`, `InvalidChangeBatch`, ...), if any.
    pub code: Option<String>,
    /// The full error, sources included, on one line.
    pub detail: String,
    /// True when a retryable error outlasted the deadline.
    pub gave_up: bool,
    pub attempts: u32,
}

impl AwsFailure {
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    pub fn is_access_denied(&self) -> bool {
        matches!(
            self.code(),
            "AccessDenied"
                | "AccessDeniedException"
                | "UnauthorizedOperation"
                | "UnauthorizedAccess"
        )
    }
}

/// Whether an error deserves another attempt.
pub fn retryable<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            status >= 500
                || status == 429
                || matches!(
                    code,
                    "Throttling"
                        | "ThrottlingException"
                        | "ThrottledException"
                        | "RequestThrottled"
                        | "RequestThrottledException"
                        | "RequestLimitExceeded"
                        | "TooManyRequestsException"
                        | "PriorRequestNotComplete"
                        | "ServiceUnavailable"
                        | "InternalError"
                        | "InternalFailure"
                )
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    }
}

/// Run `op` until it succeeds, fails for good, or the backoff's deadline passes. `what` names
/// the call in retry log lines.
pub async fn call<T, E, F, Fut>(
    what: &str,
    backoff: &mut Backoff,
    mut op: F,
) -> Result<T, AwsFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    loop {
        let remaining = backoff.attempt_timeout(Duration::from_secs(30));
        let e = match tokio::time::timeout(remaining, op()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => {
                return Err(AwsFailure {
                    code: None,
                    detail: format!(
                        "no answer within the deadline ({} attempts)",
                        backoff.attempts()
                    ),
                    gave_up: true,
                    attempts: backoff.attempts(),
                })
            }
        };
        let code = match &e {
            SdkError::ServiceError(se) => se.err().code().map(str::to_string),
            _ => None,
        };
        let detail = DisplayErrorContext(&e).to_string();
        if !retryable(&e) {
            return Err(AwsFailure {
                code,
                detail,
                gave_up: false,
                attempts: backoff.attempts(),
            });
        }
        let attempt = backoff.attempts();
        if !backoff.wait().await {
            return Err(AwsFailure {
                code,
                detail,
                gave_up: true,
                attempts: attempt,
            });
        }
        warn!(event = "retry", call = what, attempt, code = code.as_deref().unwrap_or(""),
              error = %detail, "retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_grow_are_jittered_and_respect_the_deadline() {
        let start = Instant::now();
        let mut b = Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(100),
            start + Duration::from_millis(300),
        );
        let mut slept = Vec::new();
        loop {
            let before = Instant::now();
            if !b.wait().await {
                break;
            }
            slept.push(Instant::now() - before);
        }
        // Sleeps never run past the deadline (timer slack aside).
        assert!(Instant::now() <= start + Duration::from_millis(320));
        assert!(slept.len() >= 4, "{slept:?}");
        assert!(slept[0] >= Duration::from_millis(5), "{slept:?}");
        // The fourth delay's floor is 10ms * 2^3 / 2 = 40ms: it grew.
        assert!(slept[3] >= Duration::from_millis(40), "{slept:?}");
        let capped = b.next_delay();
        assert!(capped <= Duration::from_millis(100), "{capped:?}");
    }

    #[test]
    fn attempt_timeout_shrinks_near_the_deadline() {
        let b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
            Instant::now() + Duration::from_secs(2),
        );
        assert!(b.attempt_timeout(Duration::from_secs(30)) <= Duration::from_secs(2));
        assert_eq!(
            b.attempt_timeout(Duration::from_millis(10)),
            Duration::from_millis(10)
        );
    }
}
