//! The server's host key: loaded from `BASTION_HOST_KEY` (OpenSSH private key text, as Secrets
//! Manager injects it) or `BASTION_HOST_KEY_FILE`, or generated at start as an ephemeral
//! Ed25519 key with a loud warning. A stable key matters: with an ephemeral one, every task
//! replacement shows users "REMOTE HOST IDENTIFICATION HAS CHANGED". An RSA host key below
//! `BASTION_MIN_RSA_BITS` stops the start ([`HostKey::check_strength`]).

use std::path::Path;

use russh::keys::{HashAlg, PrivateKey};

use crate::key_strength::MinRsaBits;

/// Why the host key cannot be used: names the setting and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyError(pub String);

impl std::fmt::Display for HostKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostKeyError {}

/// Where the host key came from (logged at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeySource {
    Env,
    File,
    Generated,
}

impl HostKeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            HostKeySource::Env => "env",
            HostKeySource::File => "file",
            HostKeySource::Generated => "generated",
        }
    }
}

pub struct HostKey {
    pub key: PrivateKey,
    pub source: HostKeySource,
}

impl HostKey {
    /// Load from content or file; generate when neither is given.
    pub fn load(content: Option<&str>, file: Option<&Path>) -> Result<HostKey, HostKeyError> {
        if let Some(text) = content {
            let key = parse(text).map_err(|why| {
                HostKeyError(format!(
                    "BASTION_HOST_KEY: not a usable OpenSSH private key ({why}); generate one \
                     with `ssh-keygen -t ed25519 -N '' -f host_key` and pass the file's text"
                ))
            })?;
            return Ok(HostKey {
                key,
                source: HostKeySource::Env,
            });
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                HostKeyError(format!(
                    "BASTION_HOST_KEY_FILE: cannot read {}: {e}; check the path and that the \
                     bastion's user may read it",
                    path.display()
                ))
            })?;
            let key = parse(&text).map_err(|why| {
                HostKeyError(format!(
                    "BASTION_HOST_KEY_FILE: {} is not a usable OpenSSH private key ({why}); \
                     generate one with `ssh-keygen -t ed25519 -N '' -f host_key`",
                    path.display()
                ))
            })?;
            return Ok(HostKey {
                key,
                source: HostKeySource::File,
            });
        }
        let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
            .map_err(|e| HostKeyError(format!("cannot generate an ephemeral host key: {e}")))?;
        Ok(HostKey {
            key,
            source: HostKeySource::Generated,
        })
    }

    /// Is the key strong enough (`BASTION_MIN_RSA_BITS`)? `Err` names the setting it came
    /// from; a weak host key stops the start.
    pub fn check_strength(&self, min: MinRsaBits) -> Result<(), HostKeyError> {
        let setting = match self.source {
            HostKeySource::Env => "BASTION_HOST_KEY",
            HostKeySource::File => "BASTION_HOST_KEY_FILE",
            HostKeySource::Generated => return Ok(()),
        };
        min.check(self.key.public_key().key_data(), "host key")
            .map_err(|why| HostKeyError(format!("{setting}: {why}")))
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.key
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    }
}

/// Parse OpenSSH private key text. Environment variables sometimes arrive with the newlines
/// escaped as `\n` (a JSON secret pasted by hand): accept that form too.
fn parse(text: &str) -> Result<PrivateKey, String> {
    let unescaped;
    let text = if !text.trim().contains('\n') && text.contains("\\n") {
        unescaped = text.replace("\\n", "\n");
        unescaped.as_str()
    } else {
        text
    };
    let key = PrivateKey::from_openssh(text.trim()).map_err(|e| e.to_string())?;
    if key.is_encrypted() {
        return Err(
            "it is encrypted with a passphrase; the bastion cannot prompt for one, \
                    so store the key without a passphrase in the secret"
                .into(),
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
