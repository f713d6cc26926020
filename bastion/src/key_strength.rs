//! What a key and its signature must be to be used, whatever line authorizes the key: no SHA-1
//! signatures, no security key whose touch is required, and no RSA modulus below
//! `BASTION_MIN_RSA_BITS`.
//!
//! The server advertises only `rsa-sha2-512` and `rsa-sha2-256` for RSA (`server-sig-algs`),
//! but russh checks a signature against whatever algorithm the client names, so a client may
//! still sign with SHA-1 `ssh-rsa` (or present an `ssh-rsa-cert-v01@openssh.com` certificate,
//! which means the same). [`check_signature_algorithm`] refuses that, as OpenSSH has by default
//! since 8.8.
//!
//! A security key (`sk-ssh-ed25519@openssh.com`, `sk-ecdsa-sha2-nistp256@openssh.com`) signs
//! with a flags byte saying whether the user touched it. Neither russh nor `ssh-key` shows
//! those flags to the server, so a signature made without a touch cannot be told from one made
//! with: [`check_user_presence`] fails closed and accepts a security key only where the
//! operator said a touch is not needed (`no-touch-required`; for a certificate, on the
//! `cert-authority` line and in the certificate, as sshd requires both).
//!
//! [`MinRsaBits`] is the smallest RSA modulus accepted for every key the server trusts or
//! presents: user keys, `cert-authority` keys, the CA that signed a certificate, the
//! certificate's own key, and the host key. 2048 bits by default (NIST's floor since 2013); it
//! may be lowered to 1024, OpenSSH's own floor (`RequiredRSASize`), for old keys that cannot be
//! replaced at once, and never below.

#[cfg(test)]
mod tests;

use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Algorithm, Certificate};

/// May a user authenticate with a signature of this algorithm? `Err` is the audit reason.
pub fn check_signature_algorithm(algorithm: &Algorithm) -> Result<(), String> {
    match algorithm {
        Algorithm::Rsa { hash: None } => Err(
            "signature algorithm ssh-rsa (RSA with SHA-1) is refused: SHA-1 signatures can be \
             forged; sign with rsa-sha2-512 or rsa-sha2-256, as OpenSSH 7.2 and later do unless \
             configured otherwise (check PubkeyAcceptedAlgorithms in the client's ssh_config)"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// `BASTION_MIN_RSA_BITS`: the smallest RSA modulus accepted, in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRsaBits(u32);

impl MinRsaBits {
    /// The default: 2048 bits.
    pub const DEFAULT: u32 = 2048;
    /// The lowest allowed setting: OpenSSH's own floor (`RequiredRSASize`).
    pub const FLOOR: u32 = 1024;

    /// Validate the setting. `Err` names it and says what to use.
    pub fn new(bits: u32) -> Result<MinRsaBits, String> {
        if bits < Self::FLOOR {
            return Err(format!(
                "BASTION_MIN_RSA_BITS: {bits} is below {}, the smallest RSA key OpenSSH \
                 accepts (RSA keys that small can be factored); use {} (the default) or, for \
                 old keys that cannot be replaced yet, at least {}",
                Self::FLOOR,
                Self::DEFAULT,
                Self::FLOOR
            ));
        }
        Ok(MinRsaBits(bits))
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// Is this key strong enough? Only RSA keys have a size to check. `Err` says how big the
    /// key is and what to do, for a message about `what` ("key", "CA key", …).
    pub fn check(self, key: &KeyData, what: &str) -> Result<(), String> {
        match rsa_bits(key) {
            Some(bits) if bits < self.0 => Err(format!(
                "RSA {what} of {bits} bits is below the minimum of {} bits \
                 (BASTION_MIN_RSA_BITS); replace it with an Ed25519 key (ssh-keygen -t ed25519) \
                 or an RSA key of at least {} bits",
                self.0, self.0
            )),
            _ => Ok(()),
        }
    }
}

impl Default for MinRsaBits {
    fn default() -> Self {
        MinRsaBits(Self::DEFAULT)
    }
}

/// The exact bit length of an RSA key's modulus (as `ssh-keygen -l` prints it); `None` for
/// other key types.
pub fn rsa_bits(key: &KeyData) -> Option<u32> {
    let KeyData::Rsa(rsa) = key else {
        return None;
    };
    let bytes = rsa.n().as_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let significant = &bytes[first..];
    let Some(&top) = significant.first() else {
        return Some(0);
    };
    let len = u32::try_from(significant.len()).unwrap_or(u32::MAX);
    Some(len.saturating_mul(8).saturating_sub(top.leading_zeros()))
}

/// The certificate extension that waives the touch (`ssh-keygen -O no-touch-required`).
pub const NO_TOUCH_REQUIRED: &str = "no-touch-required";

/// Is this a security key (FIDO, `sk-…`), whose signatures carry a user-presence flag?
pub fn is_security_key(key: &KeyData) -> bool {
    matches!(key, KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_))
}

/// Why a security key is refused: what this server cannot do, and the operator's way out.
fn presence_unverifiable(key: &KeyData, fix: &str) -> String {
    format!(
        "security key {} refused: this server cannot check the security key's user-presence \
         flag (whether it was touched), so it cannot enforce the touch that is required by \
         default; {fix} to accept it without a touch",
        key.algorithm().as_str()
    )
}

/// May this key log in from a line whose options say `no_touch_required`? Any key but a
/// security key may; a security key only with `no-touch-required`.
pub fn check_user_presence(key: &KeyData, no_touch_required: bool) -> Result<(), String> {
    if !is_security_key(key) || no_touch_required {
        return Ok(());
    }
    Err(presence_unverifiable(
        key,
        "add no-touch-required to its authorized_keys line",
    ))
}

/// May this certificate log in under a `cert-authority` line whose options say
/// `ca_no_touch_required`? A certificate of a security key needs both that and the
/// certificate's own `no-touch-required` extension (sshd: the option applies only when both
/// grant it).
pub fn check_certificate_user_presence(
    certificate: &Certificate,
    ca_no_touch_required: bool,
) -> Result<(), String> {
    let key = certificate.public_key();
    let in_certificate = certificate.extensions().contains_key(NO_TOUCH_REQUIRED);
    let fix = match (ca_no_touch_required, in_certificate) {
        _ if !is_security_key(key) => return Ok(()),
        (true, true) => return Ok(()),
        (false, true) => "add no-touch-required to the cert-authority line",
        (true, false) => {
            "re-issue the certificate with the no-touch-required extension \
             (ssh-keygen -s ca -O no-touch-required ...)"
        }
        (false, false) => {
            "add no-touch-required to the cert-authority line and re-issue the certificate \
             with the no-touch-required extension (ssh-keygen -s ca -O no-touch-required ...)"
        }
    };
    Err(presence_unverifiable(key, fix))
}
