//! The `KEYS_*` settings of the key sync and their validation into [`KeySettings`]: where the
//! files go, which sources feed them, how often they are read. Key sync is on when `KEYS_DIR`
//! and at least one authorized-keys source are set; half a configuration is an error that
//! names the missing variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::parse_duration;
use crate::error::{Error, Result};
use dns_sidecar_route53::address::printable;

/// The longest Secrets Manager secret id (an ARN) AWS accepts.
const MAX_SECRET_ID: usize = 2048;
/// The longest SSM parameter name (with its path) AWS accepts.
const MAX_PARAMETER_PATH: usize = 1011;

#[derive(Debug, Clone, Default, Args)]
pub struct KeysOptions {
    /// Directory shared with the bastion (an ECS task volume, e.g. /keys) where the key sync
    /// writes `authorized_keys` and `revoked_keys`; point the bastion's
    /// BASTION_AUTHORIZED_KEYS_FILE and BASTION_REVOKED_KEYS_FILE at them. Needs KEYS_SECRET_ID
    /// or KEYS_PARAMETER_PATH.
    #[arg(long, env = "KEYS_DIR")]
    pub keys_dir: Option<PathBuf>,

    /// Secrets Manager secret (name or ARN) whose value is authorized_keys text. Read again
    /// only when its AWSCURRENT version changes (DescribeSecret every KEYS_INTERVAL).
    #[arg(long, env = "KEYS_SECRET_ID")]
    pub keys_secret_id: Option<String>,

    /// Secrets Manager secret (name or ARN) holding the revocation list: one public key or
    /// SHA256:... fingerprint per line, written to `revoked_keys` (empty without it).
    #[arg(long, env = "KEYS_REVOKED_SECRET_ID")]
    pub keys_revoked_secret_id: Option<String>,

    /// SSM Parameter Store path (e.g. /jumpbox/users/) holding one parameter per person
    /// (/jumpbox/users/alice), each one or more authorized_keys lines (String or
    /// SecureString); deleting a parameter removes that person's keys.
    #[arg(long, env = "KEYS_PARAMETER_PATH")]
    pub keys_parameter_path: Option<String>,

    /// How often the sources are read. A removed key's tunnels close within this plus the
    /// bastion's 2 s reload.
    #[arg(long, env = "KEYS_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub keys_interval: Duration,
}

/// Validated key sync configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    pub dir: PathBuf,
    pub secret_id: Option<String>,
    pub revoked_secret_id: Option<String>,
    /// Without a trailing slash (`/jumpbox/users`).
    pub parameter_path: Option<String>,
    pub interval: Duration,
}

/// Trimmed, `None` when unset or blank.
fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl KeysOptions {
    /// `None` when key sync is off (nothing set); an error naming the variable when only half
    /// of it is configured or a value is malformed.
    pub fn into_settings(self) -> Result<Option<KeySettings>> {
        let dir = self.keys_dir.filter(|d| !d.as_os_str().is_empty());
        let secret_id = check_secret_id("KEYS_SECRET_ID", given(&self.keys_secret_id))?;
        let revoked_secret_id = check_secret_id(
            "KEYS_REVOKED_SECRET_ID",
            given(&self.keys_revoked_secret_id),
        )?;
        let parameter_path = parameter_path(given(&self.keys_parameter_path))?;
        let has_source = secret_id.is_some() || parameter_path.is_some();
        let Some(dir) = dir else {
            let set = [
                ("KEYS_SECRET_ID", secret_id.is_some()),
                ("KEYS_REVOKED_SECRET_ID", revoked_secret_id.is_some()),
                ("KEYS_PARAMETER_PATH", parameter_path.is_some()),
            ];
            return match set.iter().find(|(_, on)| *on) {
                None => Ok(None),
                Some((name, _)) => Err(Error::config(format!(
                    "{name} is set but KEYS_DIR is not: set KEYS_DIR to the directory shared \
                     with the bastion (e.g. /keys, a task volume) where authorized_keys and \
                     revoked_keys are written, or unset {name}"
                ))),
            };
        };
        if !has_source {
            return Err(Error::config(
                "KEYS_DIR is set but no authorized-keys source is: set KEYS_SECRET_ID (a \
                 Secrets Manager secret holding authorized_keys text) and/or \
                 KEYS_PARAMETER_PATH (an SSM path such as /jumpbox/users/), or unset KEYS_DIR \
                 (a revocation list alone authorizes nobody)",
            ));
        }
        if !dir.is_absolute() {
            return Err(Error::config(format!(
                "KEYS_DIR: \"{}\" is not an absolute path; give the mount point of the shared \
                 volume, e.g. /keys",
                printable(&dir.to_string_lossy())
            )));
        }
        if self.keys_interval < Duration::from_secs(1) {
            return Err(Error::config(
                "KEYS_INTERVAL: must be at least 1s (the default is 30s)",
            ));
        }
        Ok(Some(KeySettings {
            dir,
            secret_id,
            revoked_secret_id,
            parameter_path,
            interval: self.keys_interval,
        }))
    }
}

/// A secret name or ARN: no spaces, not too long.
fn check_secret_id(name: &str, value: Option<String>) -> Result<Option<String>> {
    let Some(id) = value else { return Ok(None) };
    if id.len() > MAX_SECRET_ID || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::config(format!(
            "{name}: \"{}\" is not a secret name or ARN (no spaces, at most {MAX_SECRET_ID} \
             characters), e.g. jumpbox/authorized-keys or \
             arn:aws:secretsmanager:eu-west-1:123456789012:secret:jumpbox/authorized-keys-AbCdEf",
            printable(&id)
        )));
    }
    Ok(Some(id))
}

/// An SSM hierarchy such as `/jumpbox/users/`, returned without the trailing slash.
fn parameter_path(value: Option<String>) -> Result<Option<String>> {
    let Some(raw) = value else { return Ok(None) };
    let path = raw.trim_end_matches('/');
    let valid_chars = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if !raw.starts_with('/')
        || !valid_chars
        || path.contains("//")
        || raw.len() > MAX_PARAMETER_PATH
    {
        return Err(Error::config(format!(
            "KEYS_PARAMETER_PATH: \"{}\" is not a Parameter Store path; it starts with / and \
             holds letters, digits and _.-/ only, e.g. /jumpbox/users/",
            printable(&raw)
        )));
    }
    if path.is_empty() {
        return Err(Error::config(
            "KEYS_PARAMETER_PATH: \"/\" would read every parameter of the account; give the \
             path of the key parameters only, e.g. /jumpbox/users/",
        ));
    }
    Ok(Some(path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: Option<&str>, secret: Option<&str>, path: Option<&str>) -> KeysOptions {
        KeysOptions {
            keys_dir: dir.map(PathBuf::from),
            keys_secret_id: secret.map(str::to_string),
            keys_parameter_path: path.map(str::to_string),
            keys_interval: Duration::from_secs(30),
            ..KeysOptions::default()
        }
    }

    #[test]
    fn off_when_nothing_is_set() {
        assert_eq!(options(None, None, None).into_settings().unwrap(), None);
        assert_eq!(
            options(None, Some(" "), None).into_settings().unwrap(),
            None
        );
    }

    #[test]
    fn on_with_a_directory_and_a_source() {
        let s = options(Some("/keys"), Some("jumpbox/keys"), Some("/jumpbox/users/"))
            .into_settings()
            .unwrap()
            .unwrap();
        assert_eq!(s.dir, PathBuf::from("/keys"));
        assert_eq!(s.secret_id.as_deref(), Some("jumpbox/keys"));
        assert_eq!(s.parameter_path.as_deref(), Some("/jumpbox/users"));
        assert_eq!(s.revoked_secret_id, None);
        assert_eq!(s.interval, Duration::from_secs(30));
    }

    #[test]
    fn half_a_configuration_names_what_is_missing() {
        let e = options(None, Some("jumpbox/keys"), None)
            .into_settings()
            .unwrap_err();
        assert!(
            e.message
                .starts_with("KEYS_SECRET_ID is set but KEYS_DIR is not"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
        let e = options(Some("/keys"), None, None)
            .into_settings()
            .unwrap_err();
        assert!(e.message.starts_with("KEYS_DIR is set but no"), "{e}");
        let mut revoked_only = options(Some("/keys"), None, None);
        revoked_only.keys_revoked_secret_id = Some("jumpbox/revoked".into());
        let e = revoked_only.into_settings().unwrap_err();
        assert!(e.message.contains("a revocation list alone"), "{e}");
        let mut no_dir = options(None, None, None);
        no_dir.keys_revoked_secret_id = Some("jumpbox/revoked".into());
        let e = no_dir.into_settings().unwrap_err();
        assert!(
            e.message.starts_with("KEYS_REVOKED_SECRET_ID is set"),
            "{e}"
        );
    }

    #[test]
    fn malformed_values_are_named() {
        let bad = |o: KeysOptions, var: &str| {
            let e = o.into_settings().unwrap_err();
            assert!(e.message.starts_with(var), "{e}");
        };
        bad(options(Some("keys"), Some("s"), None), "KEYS_DIR:");
        bad(options(Some("/k"), Some("a b"), None), "KEYS_SECRET_ID:");
        bad(
            options(Some("/k"), None, Some("jumpbox/users")),
            "KEYS_PARAMETER_PATH:",
        );
        bad(
            options(Some("/k"), None, Some("/a//b")),
            "KEYS_PARAMETER_PATH:",
        );
        bad(
            options(Some("/k"), None, Some("/a b/")),
            "KEYS_PARAMETER_PATH:",
        );
        bad(options(Some("/k"), None, Some("/")), "KEYS_PARAMETER_PATH:");
        let mut fast = options(Some("/k"), Some("s"), None);
        fast.keys_interval = Duration::from_millis(100);
        bad(fast, "KEYS_INTERVAL:");
    }
}
