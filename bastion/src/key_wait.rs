//! `BASTION_WAIT_FOR_KEYS`: at start, wait a bounded time for key files that do not exist yet.
//! On Fargate a sidecar container may write `BASTION_AUTHORIZED_KEYS_FILE` (and
//! `BASTION_REVOKED_KEYS_FILE`) while the bastion starts; rather than failing the start (and the
//! task), `main` waits here, polling, before the keys are loaded and before anything listens,
//! so the health check stays red meanwhile. It only waits for files that are missing: parsing
//! and every other error stay `authorized_keys`' at load.

#[cfg(test)]
mod tests;

use std::fmt;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::audit;

/// The setting this module reads; named in its errors.
pub const SETTING: &str = "BASTION_WAIT_FOR_KEYS";

/// How often a missing file is looked for.
pub const POLL: Duration = Duration::from_millis(200);

/// A file to wait for, and the setting that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    pub setting: &'static str,
    pub path: PathBuf,
}

/// A file still missing when the wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StillMissing {
    pub file: KeyFile,
    pub limit: Duration,
}

impl fmt::Display for StillMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waited {} for {} ({}) to appear; raise {SETTING} if it is written later than that",
            humantime::format_duration(self.limit),
            self.file.path.display(),
            self.file.setting,
        )
    }
}

/// Wait until every file in `files` exists, polling every [`POLL`], for at most `limit` in
/// all (zero: no wait). Logs `keys_wait` for each file missing at start and `keys_appeared`
/// when it shows up. A file that cannot be checked for another reason (permissions) counts as
/// there: loading it reports the real error.
pub async fn wait_for(files: &[KeyFile], limit: Duration) -> Result<(), StillMissing> {
    if limit.is_zero() {
        return Ok(());
    }
    let started = Instant::now();
    let mut missing: Vec<&KeyFile> = Vec::new();
    for file in files {
        if !exists(file).await {
            audit::keys_wait(file.setting, &file.path, limit);
            missing.push(file);
        }
    }
    while !missing.is_empty() {
        let elapsed = started.elapsed();
        if elapsed >= limit {
            let file = missing[0].clone();
            return Err(StillMissing { file, limit });
        }
        tokio::time::sleep(POLL.min(limit - elapsed)).await;
        let mut still = Vec::with_capacity(missing.len());
        for file in missing {
            if exists(file).await {
                audit::keys_appeared(file.setting, &file.path, started.elapsed());
            } else {
                still.push(file);
            }
        }
        missing = still;
    }
    Ok(())
}

async fn exists(file: &KeyFile) -> bool {
    match tokio::fs::metadata(&file.path).await {
        Ok(_) => true,
        Err(e) => e.kind() != ErrorKind::NotFound,
    }
}
