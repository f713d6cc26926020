//! The captured output of a subprocess: one pipe's bytes, collected by a background thread,
//! with deadline-bounded waits.

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::sync::lock_ignoring_poison;

#[derive(Default)]
struct CaptureState {
    bytes: Vec<u8>,
    eof: bool,
}

/// The bytes a subprocess wrote to one of its pipes, collected by a background thread, with
/// deadline-bounded waits.
#[derive(Clone, Default)]
pub struct Capture {
    inner: Arc<(Mutex<CaptureState>, Condvar)>,
}

impl Capture {
    pub(crate) fn spawn_reader<R: Read + Send + 'static>(mut reader: R, name: String) -> Capture {
        let capture = Capture::default();
        let shared = capture.clone();
        thread::Builder::new()
            .name(format!("capture {name}"))
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let (lock, cv) = &*shared.inner;
                            lock_ignoring_poison(lock)
                                .bytes
                                .extend_from_slice(&buf[..n]);
                            cv.notify_all();
                        }
                    }
                }
                let (lock, cv) = &*shared.inner;
                lock_ignoring_poison(lock).eof = true;
                cv.notify_all();
            })
            .expect("spawning a pipe reader thread");
        capture
    }

    /// Everything captured so far.
    pub fn bytes(&self) -> Vec<u8> {
        lock_ignoring_poison(&self.inner.0).bytes.clone()
    }

    /// Everything captured so far, as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Waits until `done(bytes, eof)` holds; false on timeout.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&[u8], bool) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut state = lock_ignoring_poison(lock);
        loop {
            if done(&state.bytes, state.eof) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match cv.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Waits until the captured text contains `needle`; false on timeout.
    pub fn wait_for_text(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_until(timeout, |bytes, _| {
            String::from_utf8_lossy(bytes).contains(needle)
        })
    }

    /// Waits until the pipe is closed; false on timeout.
    pub fn wait_eof(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |_, eof| eof)
    }
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}
