//! The live key set: the authorized keys and revocation list in force now, re-read from their
//! files while the server runs (through `reload`), and published to whoever must act on a
//! change (the server closes the connections of keys that were removed or revoked).

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::sync::watch;

use crate::audit::{self, events};
use crate::authorized_keys::{AuthorizedKeys, KeyListError, KeySources};
use crate::reload::{Reloadable, Trigger};

/// The current key set; a new version replaces it only when it loads without error.
pub struct KeyStore {
    sources: KeySources,
    current: watch::Sender<Arc<AuthorizedKeys>>,
}

impl KeyStore {
    /// Read the sources once; an error here stops the bastion before it listens.
    pub fn load(sources: KeySources) -> Result<Arc<KeyStore>, KeyListError> {
        let keys = sources.load()?;
        let (current, _) = watch::channel(Arc::new(keys));
        Ok(Arc::new(KeyStore { sources, current }))
    }

    /// The set in force now (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<AuthorizedKeys> {
        self.current.borrow().clone()
    }

    /// Each new version, as it replaces the previous one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<AuthorizedKeys>> {
        self.current.subscribe()
    }

    /// Are there files to watch (content from the environment never changes)?
    pub fn has_files(&self) -> bool {
        (self.sources.keys.is_none() && self.sources.keys_file.is_some())
            || (self.sources.revoked.is_none() && self.sources.revoked_file.is_some())
    }

    /// Re-read the sources; `Ok(true)` when a new set is in force, `Ok(false)` when nothing
    /// changed, and `Err` (the old set stays) when the new files are broken.
    pub fn reload_keys(&self) -> Result<bool, KeyListError> {
        let fresh = self.sources.load()?;
        let mut changed = false;
        self.current.send_if_modified(|old| {
            changed = !same_keys(old, &fresh);
            if changed {
                *old = Arc::new(fresh);
            }
            changed
        });
        Ok(changed)
    }
}

impl Reloadable for KeyStore {
    fn what(&self) -> &'static str {
        "keys"
    }

    fn unchanged_event(&self) -> &'static events::EventSpec {
        &events::KEYS_UNCHANGED
    }

    fn failed_event(&self) -> &'static events::EventSpec {
        &events::KEYS_RELOAD_FAILED
    }

    fn reload_now(&self) -> Result<bool, String> {
        self.reload_keys().map_err(|e| e.to_string())
    }

    fn announce(&self, trigger: Trigger) {
        let keys = self.current();
        audit::keys_reloaded(
            trigger.as_str(),
            keys.keys.len(),
            keys.revoked.len(),
            &keys.source,
        );
        log_lines(&keys);
    }
}

/// Log what loading found in the lines: the lines rejected (for their options or key size),
/// the options without effect here, and the lines that cannot work as written (warnings).
pub fn log_lines(keys: &AuthorizedKeys) {
    for e in &keys.rejected {
        audit::key_line_rejected(&keys.source, e.line, &e.message);
    }
    for key in &keys.keys {
        let r = &key.restrictions;
        for note in &r.ignored {
            audit::key_option_note(key.line, &key.fingerprint, note);
        }
        for warning in &r.warnings {
            audit::key_line_warning(key.line, &key.fingerprint, warning);
        }
    }
}

fn same_keys(a: &AuthorizedKeys, b: &AuthorizedKeys) -> bool {
    a.revoked == b.revoked
        && a.keys.len() == b.keys.len()
        && a.keys.iter().zip(&b.keys).all(|(x, y)| {
            x.line == y.line && x.key.key_data() == y.key.key_data() && x.options == y.options
        })
}
