//! Waiting and locking: polling for a condition with a deadline, mutexes that survive a
//! panicking test, and the lock that keeps heavy throughput tests from sharing the cores.

use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Waits until `check` returns `Some`, polling every `step`, for at most `timeout`.
pub fn poll_until<T>(
    timeout: Duration,
    step: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(step);
    }
}

pub(crate) fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Holds a process-wide lock while heavy throughput tests run, so two of them in the same test
/// binary do not compete for the 2 cores (their rates are printed and compared to budgets).
pub fn heavy_test_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    lock_ignoring_poison(&LOCK)
}
