//! What a user key's signature must be to be accepted, whatever line authorizes the key: no
//! SHA-1.
//!
//! The server advertises only `rsa-sha2-512` and `rsa-sha2-256` for RSA (`server-sig-algs`),
//! but russh checks a signature against whatever algorithm the client names, so a client may
//! still sign with SHA-1 `ssh-rsa` (or present an `ssh-rsa-cert-v01@openssh.com` certificate,
//! which means the same). [`check_signature_algorithm`] refuses that, as OpenSSH has by default
//! since 8.8.

#[cfg(test)]
mod tests;

use russh::keys::Algorithm;

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
