//! The OpenSSH host certificate the bastion presents with its host key
//! (`BASTION_HOST_CERTIFICATE` or `BASTION_HOST_CERTIFICATE_FILE`), so that clients trusting
//! the host CA (`@cert-authority *.example.com ...` in `known_hosts`) need no per-host key line.
//!
//! At start [`HostCertificate::load`] refuses a certificate clients would refuse: one that does
//! not parse or whose signature does not verify, a user certificate, one for another key than
//! the host key, one not yet valid or already expired. [`HostCertificate::health`] tells whether
//! it runs out within [`EXPIRY_WARNING`]; [`watch_expiry`] keeps saying so while the bastion
//! runs, since clients refuse an expired certificate although the bastion keeps serving it.

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg, PublicKey};

use crate::audit::{self, CertificateHealth, HostCertificateSummary};
use crate::key_options::format_utc;

/// A certificate that runs out within this long is reported at warn level.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 86_400);

/// What to run to get a new certificate like `cert` (its key id and principals), for the
/// messages.
pub fn sign_hint(cert: &Certificate) -> String {
    let names = match cert.valid_principals() {
        [] => "jump.example.com,jump-eu.example.com".to_owned(),
        names => names.join(","),
    };
    format!(
        "`ssh-keygen -s host_ca -I {:?} -h -n {names} -V -5m:+52w host_key.pub` signs the host \
         key's public key; pass the host_key-cert.pub it writes",
        cert.key_id()
    )
}

/// Why the host certificate cannot be used; the message names the setting and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCertificateError {
    /// The file cannot be read.
    Unreadable { setting: String, error: String },
    /// Not an OpenSSH certificate, or its CA signature does not verify.
    Invalid { setting: String, why: String },
    /// A user certificate (signed without `-h`).
    NotHost {
        setting: String,
        key_id: String,
        hint: String,
    },
    /// Its key is not the host key.
    WrongKey {
        setting: String,
        certificate_key: String,
        host_key: String,
        hint: String,
    },
    NotYetValid {
        setting: String,
        valid_after: String,
        hint: String,
    },
    Expired {
        setting: String,
        valid_before: String,
        hint: String,
    },
}

impl std::fmt::Display for HostCertificateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use HostCertificateError::*;
        match self {
            Unreadable { setting, error } => write!(
                f,
                "{setting}: {error}; check the path and that the bastion's user may read it"
            ),
            Invalid { setting, why } => write!(
                f,
                "{setting}: not a usable OpenSSH host certificate ({why}); pass the text of the \
                 host_key-cert.pub that `ssh-keygen -s host_ca -h ...` wrote"
            ),
            NotHost {
                setting,
                key_id,
                hint,
            } => write!(
                f,
                "{setting}: certificate {key_id:?} is a user certificate, not a host \
                 certificate; sign it with -h: {hint}"
            ),
            WrongKey {
                setting,
                certificate_key,
                host_key,
                hint,
            } => write!(
                f,
                "{setting}: the certificate is for key {certificate_key}, not for the host key \
                 {host_key} (BASTION_HOST_KEY / BASTION_HOST_KEY_FILE; an ephemeral key when \
                 neither is set); sign this host key instead: {hint}"
            ),
            NotYetValid {
                setting,
                valid_after,
                hint,
            } => write!(
                f,
                "{setting}: the certificate is not valid before {valid_after}; clients would \
                 refuse it until then. Start the validity in the past (-V -5m:...): {hint}"
            ),
            Expired {
                setting,
                valid_before,
                hint,
            } => write!(
                f,
                "{setting}: the certificate expired at {valid_before}; clients refuse it. \
                 Sign a new one: {hint}"
            ),
        }
    }
}

impl std::error::Error for HostCertificateError {}

/// A host certificate that matched the host key and was valid at start.
#[derive(Debug, Clone)]
pub struct HostCertificate {
    pub certificate: Certificate,
    /// The setting it came from, for messages.
    pub setting: &'static str,
}

impl HostCertificate {
    /// Load from content or file (`None` when neither is given) and check it against the host
    /// key at `now` (unix seconds).
    pub fn load(
        content: Option<&str>,
        file: Option<&Path>,
        host_key: &PublicKey,
        now: u64,
    ) -> Result<Option<HostCertificate>, HostCertificateError> {
        let (setting, text) = match (content, file) {
            (Some(text), _) => ("BASTION_HOST_CERTIFICATE", text.to_owned()),
            (None, Some(path)) => (
                "BASTION_HOST_CERTIFICATE_FILE",
                std::fs::read_to_string(path).map_err(|e| HostCertificateError::Unreadable {
                    setting: "BASTION_HOST_CERTIFICATE_FILE".into(),
                    error: format!("cannot read {}: {e}", path.display()),
                })?,
            ),
            (None, None) => return Ok(None),
        };
        let certificate = parse(&text).map_err(|why| HostCertificateError::Invalid {
            setting: setting.into(),
            why,
        })?;
        let cert = HostCertificate {
            certificate,
            setting,
        };
        cert.check(host_key, now)?;
        Ok(Some(cert))
    }

    /// Host certificate, for this host key, valid at `now`.
    fn check(&self, host_key: &PublicKey, now: u64) -> Result<(), HostCertificateError> {
        let cert = &self.certificate;
        let setting = self.setting.to_owned();
        let hint = sign_hint(cert);
        if cert.cert_type() != CertType::Host {
            return Err(HostCertificateError::NotHost {
                setting,
                key_id: cert.key_id().to_owned(),
                hint,
            });
        }
        if cert.public_key() != host_key.key_data() {
            return Err(HostCertificateError::WrongKey {
                setting,
                certificate_key: cert.public_key().fingerprint(HashAlg::Sha256).to_string(),
                host_key: host_key.fingerprint(HashAlg::Sha256).to_string(),
                hint,
            });
        }
        if now < cert.valid_after() {
            return Err(HostCertificateError::NotYetValid {
                setting,
                valid_after: format_utc(cert.valid_after()),
                hint,
            });
        }
        if self.health(now) == CertificateHealth::Expired {
            return Err(HostCertificateError::Expired {
                setting,
                valid_before: format_utc(cert.valid_before()),
                hint,
            });
        }
        Ok(())
    }

    /// Valid, running out within [`EXPIRY_WARNING`], or expired at `now`.
    pub fn health(&self, now: u64) -> CertificateHealth {
        let before = self.certificate.valid_before();
        if now >= before {
            CertificateHealth::Expired
        } else if before - now <= EXPIRY_WARNING.as_secs() {
            CertificateHealth::ExpiresSoon
        } else {
            CertificateHealth::Valid
        }
    }

    /// What the `host_certificate` event reports at `now`.
    pub fn summary(&self, now: u64) -> HostCertificateSummary {
        let cert = &self.certificate;
        let before = cert.valid_before();
        HostCertificateSummary {
            key_id: cert.key_id().to_owned(),
            principals: cert.valid_principals().join(","),
            serial: cert.serial(),
            valid_until: if before == u64::MAX {
                "forever".to_owned()
            } else {
                format_utc(before)
            },
            ca_fingerprint: cert
                .signature_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
            expires_in_s: (before != u64::MAX).then(|| before.saturating_sub(now)),
        }
    }

    /// The `host_certificate` event at the level its health at `now` calls for.
    pub fn log(&self, now: u64) {
        let hint = sign_hint(&self.certificate);
        audit::host_certificate(&self.summary(now), self.health(now), &hint);
    }
}

/// Parse the certificate line (`ssh-ed25519-cert-v01@openssh.com AAAA... comment`) and verify
/// its CA signature (a client would refuse a certificate whose signature does not verify).
fn parse(text: &str) -> Result<Certificate, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| "it is empty".to_owned())?;
    let cert = Certificate::from_openssh(line).map_err(|e| e.to_string())?;
    cert.verify_signature()
        .map_err(|e| format!("its CA signature does not verify: {e}"))?;
    Ok(cert)
}

/// Longest single sleep of [`watch_expiry`], so a changed clock is noticed within a day.
const WATCH_STEP: Duration = Duration::from_secs(86_400);

/// While the bastion runs: a warn-level `host_certificate` event once a day in the last
/// [`EXPIRY_WARNING`] before the certificate runs out, and an error-level one when it has.
/// `started`: when the start event was logged (unix seconds), so it is not repeated at once.
pub async fn watch_expiry(cert: HostCertificate, started: u64) {
    let before = cert.certificate.valid_before();
    if before == u64::MAX {
        return;
    }
    let mut warned_at = (cert.health(started) == CertificateHealth::ExpiresSoon).then_some(started);
    loop {
        let now = crate::key_options::now_unix();
        let left = before.saturating_sub(now);
        match cert.health(now) {
            CertificateHealth::Expired => {
                cert.log(now);
                return;
            }
            CertificateHealth::ExpiresSoon => {
                if warned_at.is_none_or(|at: u64| now >= at + WATCH_STEP.as_secs()) {
                    cert.log(now);
                    warned_at = Some(now);
                }
            }
            CertificateHealth::Valid => {}
        }
        let until_warning = left.saturating_sub(EXPIRY_WARNING.as_secs());
        let wait = match until_warning {
            0 => left.min(WATCH_STEP.as_secs()),
            w => w.min(WATCH_STEP.as_secs()),
        };
        tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
    }
}
