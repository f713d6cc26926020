//! Key sync: keeps the bastion's `authorized_keys` and `revoked_keys` files, on a volume the two
//! containers share, in step with Secrets Manager and SSM Parameter Store, so a key is added,
//! removed or revoked without a redeploy (the bastion re-reads the files every 2 s and closes
//! the tunnels of a key that is gone).
//!
//! - [`settings`]: the `KEYS_*` variables and their validation.
//! - [`secret`]: a Secrets Manager secret, read again only when its version changes.
//! - [`parameters`]: the SSM parameters under one path, one per person.
//! - [`failure`]: why a source could not be read, with a hint at the fix.
//! - [`keyline`]: whether the bastion can load a line (bad lines are left out).
//! - [`content`]: the two files' text, each source's lines under a comment naming it.
//! - [`files`]: atomic replacement of a file when its text changed.
//! - [`status`]: the key sync's part of the health line.
//! - [`sync`]: the loop tying them together.

pub mod content;
pub mod failure;
pub mod files;
pub mod keyline;
pub mod parameters;
pub mod secret;
pub mod settings;
pub mod status;
pub mod sync;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use settings::KeySettings;
use status::KeyStatus;

/// Check `KEYS_DIR`, then start the sync loop (its first read at once). The receiver follows
/// the key sync's health; abort the handle to stop it.
pub fn start(
    settings: KeySettings,
    conf: &aws_config::SdkConfig,
) -> Result<(JoinHandle<()>, watch::Receiver<KeyStatus>)> {
    files::check_dir(&settings.dir).map_err(Error::config)?;
    let (tx, rx) = watch::channel(KeyStatus::Starting);
    let sources = sync::Sources::new(&settings, conf);
    let tracker = sync::Tracker::new(settings.dir.clone(), tx);
    tracing::info!(event = "keys_sync_started", dir = %settings.dir.display(),
                   secret = settings.secret_id.as_deref().unwrap_or(""),
                   revoked_secret = settings.revoked_secret_id.as_deref().unwrap_or(""),
                   parameter_path = settings.parameter_path.as_deref().unwrap_or(""),
                   interval_ms = settings.interval.as_millis() as u64, "key sync started");
    Ok((tokio::spawn(sync::run(settings, sources, tracker)), rx))
}
