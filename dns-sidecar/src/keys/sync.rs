//! The sync loop: read every source (first at once, then every `KEYS_INTERVAL`), assemble the
//! two files, replace those whose text changed, and keep the health state and the log in step.
//!
//! A failed read or write changes no file: the bastion keeps the last good set. Each distinct
//! failure is logged once (`keys_sync_failed`, with the source and a hint), the end of a
//! failing streak once (`keys_sync_recovered`). A source that reads fine but holds no key is
//! honoured: the file says so on purpose and nobody can log in (`keys_empty`).

use std::path::PathBuf;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use crate::keys::content::{self, Assembled};
use crate::keys::failure::SourceError;
use crate::keys::files::{self, AUTHORIZED, REVOKED};
use crate::keys::parameters::ParameterSource;
use crate::keys::secret::SecretSource;
use crate::keys::settings::KeySettings;
use crate::keys::status::KeyStatus;

/// The sources, read in turn.
pub struct Sources {
    pub secret: Option<SecretSource>,
    pub revoked: Option<SecretSource>,
    pub parameters: Option<ParameterSource>,
}

impl Sources {
    pub fn new(settings: &KeySettings, conf: &aws_config::SdkConfig) -> Sources {
        let sm = aws_sdk_secretsmanager::Client::new(conf);
        Sources {
            secret: settings
                .secret_id
                .as_deref()
                .map(|id| SecretSource::new(sm.clone(), id)),
            revoked: settings
                .revoked_secret_id
                .as_deref()
                .map(|id| SecretSource::new(sm.clone(), id)),
            parameters: settings
                .parameter_path
                .as_deref()
                .map(|p| ParameterSource::new(aws_sdk_ssm::Client::new(conf), p)),
        }
    }

    /// Both files' text, or the first source that failed.
    pub async fn read(&mut self) -> Result<(Assembled, Assembled), SourceError> {
        let secret = match &mut self.secret {
            Some(s) => Some(s.read().await?),
            None => None,
        };
        let revoked = match &mut self.revoked {
            Some(s) => Some(s.read().await?),
            None => None,
        };
        let parameters = match &self.parameters {
            Some(p) => Some(p.read().await?),
            None => None,
        };
        Ok((
            content::authorized(secret.as_ref(), parameters.as_deref()),
            content::revoked(revoked.as_ref()),
        ))
    }
}

/// A failing streak.
#[derive(Debug)]
struct Failing {
    /// The last distinct failure logged.
    error: String,
    since: SystemTime,
    started: Instant,
    count: u64,
}

/// Turns each read into files, log events and the health state.
pub struct Tracker {
    dir: PathBuf,
    status: watch::Sender<KeyStatus>,
    failing: Option<Failing>,
    /// The written authorized_keys holds no key.
    empty: bool,
    summary: Option<String>,
}

impl Tracker {
    pub fn new(dir: PathBuf, status: watch::Sender<KeyStatus>) -> Tracker {
        Tracker {
            dir,
            status,
            failing: None,
            empty: false,
            summary: None,
        }
    }

    /// One sync's outcome: write the files, or keep them and report the failure.
    pub fn record(&mut self, read: Result<(Assembled, Assembled), SourceError>) {
        let written = match read {
            Ok((keys, revoked)) => self.write(&keys, &revoked).map(|()| keys),
            Err(e) => {
                if self
                    .failing
                    .as_ref()
                    .is_none_or(|f| f.error != e.to_string())
                {
                    warn!(event = "keys_sync_failed", source = %e.source, call = e.call,
                          code = e.code.as_deref().unwrap_or(""), error = %e.message,
                          hint = %e.hint, "a key source could not be read; the files keep the \
                          last good keys; retrying every interval");
                }
                Err(e.to_string())
            }
        };
        match written {
            Ok(keys) => self.succeeded(&keys),
            Err(error) => self.failed(error),
        }
    }

    fn write(&mut self, keys: &Assembled, revoked: &Assembled) -> Result<(), String> {
        // The revocations first: a key both re-added and revoked is never let in between.
        for (name, file) in [(REVOKED, revoked), (AUTHORIZED, keys)] {
            let changed = files::replace_if_changed(&self.dir, name, &file.text).map_err(|e| {
                let path = self.dir.join(name);
                let error = format!("writing {}: {e}", path.display());
                if self.failing.as_ref().is_none_or(|f| f.error != error) {
                    warn!(event = "keys_sync_failed", source = "KEYS_DIR", error = %error,
                          hint = "the volume must be writable and not full",
                          "cannot write the key file; the bastion keeps the last good keys");
                }
                error
            })?;
            if changed {
                log_written(name, file);
            }
        }
        Ok(())
    }

    fn succeeded(&mut self, keys: &Assembled) {
        if let Some(f) = self.failing.take() {
            info!(
                event = "keys_sync_recovered",
                failures = f.count,
                stale_seconds = f.started.elapsed().as_secs(),
                "the key sources read again"
            );
        }
        if keys.keys == 0 && !self.empty {
            warn!(event = "keys_empty", sources = %keys.summary(),
                  "the key sources hold no key: nobody can log in");
        }
        self.empty = keys.keys == 0;
        // Short: the health line is read up to 1 KiB; the log has the detail.
        let summary = format!("{} keys from {} sources", keys.keys, keys.counts.len());
        self.summary = Some(summary.clone());
        self.status.send_replace(KeyStatus::Current { summary });
    }

    fn failed(&mut self, error: String) {
        let failing = self.failing.get_or_insert_with(|| Failing {
            error: String::new(),
            since: SystemTime::now(),
            started: Instant::now(),
            count: 0,
        });
        failing.count += 1;
        failing.error = error.clone();
        let status = match &self.summary {
            None => KeyStatus::NeverSynced { error },
            Some(summary) => KeyStatus::Stale {
                since: failing.since,
                error,
                summary: summary.clone(),
            },
        };
        self.status.send_replace(status);
    }
}

fn log_written(name: &str, file: &Assembled) {
    info!(event = "keys_written", file = name, keys = file.keys, dropped = file.dropped.len(),
          sources = %file.summary(), "key file replaced");
    for d in &file.dropped {
        warn!(event = "keys_line_dropped", file = name, source = %d.source, line = d.line,
              reason = %d.reason, "a key line the bastion could not load was left out");
    }
}

/// Sync now, then every interval, until the task is dropped (the run aborts it at stop; a
/// file replacement has no await point, so it is never cut in half).
pub async fn run(settings: KeySettings, mut sources: Sources, mut tracker: Tracker) {
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let read = sources.read().await;
        tracker.record(read);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::secret::SecretText;

    const ALICE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILePIUXBLdMITv0JAjfkXKJiywwJl/AIAVavBrVHDR/p alice";

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keys-sync-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn good(text: &str) -> Result<(Assembled, Assembled), SourceError> {
        let s = SecretText {
            id: "jumpbox/keys".into(),
            version: "v1".into(),
            text: text.into(),
        };
        Ok((content::authorized(Some(&s), None), content::revoked(None)))
    }

    fn failure() -> Result<(Assembled, Assembled), SourceError> {
        Err(SourceError::content(
            "secretsmanager:jumpbox/keys",
            "secretsmanager:DescribeSecret",
            "gone".into(),
            "secret not found",
        ))
    }

    #[test]
    fn a_failed_read_keeps_the_last_good_files_and_says_stale() {
        let dir = tempdir("stale");
        let (tx, rx) = watch::channel(KeyStatus::Starting);
        let mut t = Tracker::new(dir.clone(), tx);
        t.record(failure());
        assert!(matches!(&*rx.borrow(), KeyStatus::NeverSynced { .. }));
        assert!(
            !dir.join(AUTHORIZED).exists(),
            "nothing written before a good read"
        );
        t.record(good(ALICE));
        assert!(rx.borrow().healthy());
        let before = std::fs::read_to_string(dir.join(AUTHORIZED)).unwrap();
        assert!(before.contains(ALICE));
        assert!(std::fs::read_to_string(dir.join(REVOKED))
            .unwrap()
            .starts_with('#'));
        t.record(failure());
        t.record(failure());
        let status = rx.borrow().clone();
        assert!(status.healthy(), "stale keys still serve: {status:?}");
        assert!(
            status.describe().starts_with("keys stale since "),
            "{}",
            status.describe()
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(AUTHORIZED)).unwrap(),
            before
        );
        t.record(good(""));
        assert!(
            matches!(&*rx.borrow(), KeyStatus::Current { summary } if summary.starts_with("0 keys"))
        );
        let empty = std::fs::read_to_string(dir.join(AUTHORIZED)).unwrap();
        assert!(empty.contains(content::EMPTY_ON_PURPOSE), "{empty}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
