//! A token bucket: at most `rate` events in any burst, refilled at `rate` per second. It meters
//! new connections per source (`admission`) and channel opens per connection (`session`). A
//! rate of 0 means no limit.

#[cfg(test)]
mod tests;

use std::time::Instant;

/// One meter; the rate is passed in, so one setting serves many buckets.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: a burst of `rate` events is allowed at once.
    pub fn full(rate: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(rate),
            last: now,
        }
    }

    fn refill(&mut self, rate: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(rate));
        self.last = now;
    }

    /// Take one event's token; `false` when the rate is exceeded (rate 0: always `true`).
    pub fn try_take(&mut self, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely (it then carries no state worth keeping).
    pub fn is_full(&mut self, rate: u32, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= f64::from(rate)
    }
}
