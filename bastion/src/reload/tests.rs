//! The watcher polls, reloads on request, and keeps the last good version of a broken file.
//! Driven with the real client policy (hosts files) as the reloadable.

use std::io::Write as _;
use std::net::IpAddr;

use super::*;
use crate::client_policy::LivePolicy;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn hosts_files(dir: &tempfile::TempDir) -> (std::path::PathBuf, Arc<LivePolicy>) {
    let allow = dir.path().join("hosts.allow");
    let deny = dir.path().join("hosts.deny");
    std::fs::write(&allow, "bastion: 10.0.0.0/8\n").unwrap();
    std::fs::write(&deny, "ALL: ALL\n").unwrap();
    let live = LivePolicy::load(
        String::new(),
        String::new(),
        Some(allow.clone()),
        Some(deny),
    )
    .unwrap();
    (allow, live)
}

#[tokio::test]
async fn watcher_polls_and_reloads_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (allow, live) = hosts_files(&dir);
    let watcher = Watcher::spawn(
        vec![live.clone() as Arc<dyn Reloadable>],
        Duration::from_millis(50),
    );
    assert!(!live.check(ip("192.0.2.1")).is_allowed());

    let mut f = std::fs::File::create(&allow).unwrap();
    f.write_all(b"bastion: 10.0.0.0/8, 192.0.2.0/24\n").unwrap();
    drop(f);
    wait_until("poll did not reload", || {
        live.check(ip("192.0.2.1")).is_allowed()
    })
    .await;
    // Broken file: the good policy stays through several polls.
    std::fs::write(&allow, "bastion: 10.0.0.0/8 : spawn\n").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(live.check(ip("192.0.2.1")).is_allowed());
    drop(watcher);

    // With a long interval, only a request reloads.
    let watcher = Watcher::spawn(
        vec![live.clone() as Arc<dyn Reloadable>],
        Duration::from_secs(3600),
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(&allow, "bastion: 10.0.0.0/8\n").unwrap();
    watcher.request_reload();
    wait_until("request did not reload", || {
        !live.check(ip("192.0.2.1")).is_allowed()
    })
    .await;
}

/// Counts what the watcher reports, to check the one rule.
#[derive(Default)]
struct Probe {
    results: std::sync::Mutex<Vec<Result<bool, String>>>,
    announced: std::sync::atomic::AtomicUsize,
}

impl Reloadable for Probe {
    fn what(&self) -> &'static str {
        "probe"
    }
    fn unchanged_event(&self) -> &'static EventSpec {
        &crate::audit::events::KEYS_UNCHANGED
    }
    fn failed_event(&self) -> &'static EventSpec {
        &crate::audit::events::KEYS_RELOAD_FAILED
    }
    fn reload_now(&self) -> Result<bool, String> {
        let mut results = self.results.lock().unwrap();
        if results.is_empty() {
            Ok(false)
        } else {
            results.remove(0)
        }
    }
    fn announce(&self, _trigger: Trigger) {
        self.announced
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn only_a_successful_change_is_announced() {
    let probe = Probe::default();
    let mut last = None;
    apply_rule(&probe, Trigger::Poll, Err("broken".into()), &mut last);
    assert_eq!(last.as_deref(), Some("broken"), "the error is remembered");
    apply_rule(&probe, Trigger::Poll, Ok(false), &mut last);
    assert_eq!(last, None, "an unchanged read ends the failure run");
    assert_eq!(probe.announced.load(std::sync::atomic::Ordering::SeqCst), 0);
    apply_rule(&probe, Trigger::Hangup, Ok(true), &mut last);
    assert_eq!(probe.announced.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_reloadable_is_read_on_each_trigger() {
    let a = Arc::new(Probe::default());
    let b = Arc::new(Probe::default());
    a.results.lock().unwrap().push(Ok(true));
    b.results.lock().unwrap().push(Ok(true));
    let watcher = Watcher::spawn(
        vec![a.clone() as Arc<dyn Reloadable>, b.clone()],
        Duration::from_secs(3600),
    );
    watcher.request_reload();
    let count = |p: &Probe| p.announced.load(std::sync::atomic::Ordering::SeqCst);
    wait_until("a request reaches every file", || {
        count(&a) == 1 && count(&b) == 1
    })
    .await;
}
