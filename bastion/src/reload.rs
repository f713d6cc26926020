//! Reloadable files: the one watcher for every file the bastion re-reads while it runs (the
//! authorized keys and revocation files, the hosts.allow/hosts.deny files).
//!
//! One poll loop (every [`POLL_INTERVAL`]), one SIGHUP handler for the whole process (installed
//! when the watcher starts, so a SIGHUP never terminates the bastion), and one rule: a new
//! version that fails to load is not used; the last good version stays in force and the reason
//! is logged, once per distinct error while polling and every time on SIGHUP or request. A
//! re-read that finds the files unchanged is logged only when it was asked for (SIGHUP,
//! request) or ends a run of failures.
//!
//! What each kind of file holds, and what happens when it changes, is its own business: it
//! implements [`Reloadable`]. Those who must act on a new version (the server closing the
//! tunnels of a removed key) subscribe to the holder, not to the watcher.

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::audit::{self, events::EventSpec};

/// How often the files are polled for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What made the watcher re-read the files (the `trigger` field of the reload events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Poll,
    Request,
    Hangup,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Poll => "poll",
            Trigger::Request => "request",
            Trigger::Hangup => "SIGHUP",
        }
    }
}

/// A holder of something loaded from files, which the watcher re-reads.
pub trait Reloadable: Send + Sync + 'static {
    /// What it holds, for messages ("authorized keys", "client policy").
    fn what(&self) -> &'static str;
    /// The audit event of a re-read that found the files unchanged.
    fn unchanged_event(&self) -> &'static EventSpec;
    /// The audit event of a re-read that failed (the last good version stays).
    fn failed_event(&self) -> &'static EventSpec;
    /// Re-read the files (blocking I/O; runs on the blocking pool). `Ok(true)`: a new version
    /// is in force; `Ok(false)`: the files are unchanged; `Err`: the previous version stays.
    fn reload_now(&self) -> Result<bool, String>;
    /// Report the new version now in force (its own audit event).
    fn announce(&self, trigger: Trigger);
}

/// The running watcher; dropping it stops polling (SIGHUP stays handled and ignored).
pub struct Watcher {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Start watching `files` (possibly none: SIGHUP is then handled and ignored).
    pub fn spawn(files: Vec<Arc<dyn Reloadable>>, every: Duration) -> Watcher {
        let wake = Arc::new(Notify::new());
        let hangup = Hangup::install();
        let task = tokio::spawn(watch(files, every, hangup, wake.clone()));
        Watcher { wake, task }
    }

    /// Re-read every file now (as SIGHUP does).
    pub fn request_reload(&self) {
        self.wake.notify_one();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch(
    files: Vec<Arc<dyn Reloadable>>,
    every: Duration,
    mut hangup: Hangup,
    wake: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; everything was just loaded
    let mut last_errors: Vec<Option<String>> = vec![None; files.len()];
    loop {
        let trigger = tokio::select! {
            _ = tick.tick() => Trigger::Poll,
            () = wake.notified() => Trigger::Request,
            () = hangup.recv() => Trigger::Hangup,
        };
        for (file, last_error) in files.iter().zip(last_errors.iter_mut()) {
            let worker = Arc::clone(file);
            let result = match tokio::task::spawn_blocking(move || worker.reload_now()).await {
                Ok(r) => r,
                Err(join) => Err(format!("reload task failed: {join}")),
            };
            apply_rule(file.as_ref(), trigger, result, last_error);
        }
    }
}

/// The one rule: keep the last good version, and say why, without repeating while polling.
fn apply_rule(
    file: &dyn Reloadable,
    trigger: Trigger,
    result: Result<bool, String>,
    last_error: &mut Option<String>,
) {
    let asked = trigger != Trigger::Poll;
    match result {
        Ok(true) => {
            *last_error = None;
            file.announce(trigger);
        }
        Ok(false) => {
            if last_error.take().is_some() || asked {
                audit::reload_unchanged(file.unchanged_event(), trigger.as_str(), file.what());
            }
        }
        Err(e) => {
            if asked || last_error.as_deref() != Some(e.as_str()) {
                audit::reload_failed(file.failed_event(), trigger.as_str(), &e, file.what());
            }
            *last_error = Some(e);
        }
    }
}

/// SIGHUP as an awaitable; never fires where it cannot be installed.
struct Hangup(Option<tokio::signal::unix::Signal>);

impl Hangup {
    fn install() -> Hangup {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(s) => Hangup(Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; files are still polled");
                Hangup(None)
            }
        }
    }

    async fn recv(&mut self) {
        if let Some(signal) = self.0.as_mut() {
            if signal.recv().await.is_some() {
                return;
            }
            self.0 = None;
        }
        std::future::pending::<()>().await
    }
}
