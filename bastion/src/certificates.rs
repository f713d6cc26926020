//! OpenSSH user-certificate authorization: decides whether a certificate presented at login
//! is issued by a configured `cert-authority` key and valid for this login, following sshd(8)
//! (`auth2-pubkeyfile.c`, `auth-options.c`) and ssh-keygen(1) CERTIFICATES.
//!
//! russh calls `Handler::auth_openssh_certificate(user, &Certificate)` after checking the
//! certificate's own signature (against the CA key embedded in it) and its validity window,
//! but not who issued it. [`check_user_certificate`] does the rest:
//!
//! 1. the signing CA key must equal the key of a `cert-authority` line (key data, not
//!    comments); the signature is verified again, so the function is safe on its own;
//! 2. the CA signature algorithm must be one OpenSSH accepts by default
//!    (`CASignatureAlgorithms`: no SHA-1 `ssh-rsa`, matching this server's refusal of SHA-1
//!    user-key signatures), and it must be a user certificate;
//! 3. `valid_after - CLOCK_SKEW <= now < valid_before + CLOCK_SKEW` (the window is half-open,
//!    as in OpenSSH);
//! 4. principals: the certificate must list at least one (a certificate without principals
//!    is refused, as current OpenSSH does); with `principals=` on the CA line one of the
//!    certificate's principals must be in that list and the login name is not compared,
//!    otherwise the login name must be one of the certificate's principals;
//! 5. critical options: `source-address` is enforced, `force-command` is refused (this server
//!    runs no commands), `verify-required` is refused (the FIDO user-verification flag is not
//!    checked here) and any other critical option is refused by name;
//! 6. extensions: `permit-port-forwarding` is required, since forwarding is all this server
//!    does; other extensions are ignored, as OpenSSH ignores unknown ones.
//!
//! The CA line's own options (`from=`, `expiry-time`, `restrict`, `permitopen`) are the
//! caller's, through [`crate::key_options::KeyRestrictions`]; so is revocation, for which the
//! accepted certificate's key ID and serial are returned.

use std::net::IpAddr;

use ipnet::IpNet;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey};

use crate::key_options::{format_utc, parse_addr_or_cidr};
use crate::net::{self, Compatible, Nat64};

/// Seconds of clock difference tolerated on either side of a certificate's validity window,
/// for CAs whose clock runs slightly ahead of or behind this server's (a certificate issued
/// "now" by a CA a few seconds ahead is otherwise not yet valid).
///
/// russh checks the window itself, strictly, before calling the handler, so in the login path
/// this tolerance cannot admit anything russh refused; it keeps this check from refusing a
/// certificate russh accepted because the two read the clock at slightly different moments,
/// and it applies in full wherever the function is used on its own.
pub const CLOCK_SKEW: u64 = 60;

/// One `cert-authority` line of authorized_keys.
#[derive(Debug, Clone, Copy)]
pub struct CertificateAuthority<'a> {
    pub key: &'a PublicKey,
    /// 1-based line number, for messages.
    pub line: usize,
    /// The `principals=` option of the line, if any.
    pub principals: Option<&'a [String]>,
}

/// A certificate accepted for a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedCertificate {
    pub key_id: String,
    pub serial: u64,
    /// `SHA256:…` fingerprint of the signing CA key.
    pub ca_fingerprint: String,
    /// Line of the `cert-authority` entry that accepted it.
    pub ca_line: usize,
    /// The principal the login was accepted as: the login user, or with `principals=` on the
    /// CA line, the first certificate principal found in that list.
    pub principal: String,
    /// The certificate's `source-address` networks, if it has that critical option (already
    /// checked against the client).
    pub source_address: Option<Vec<IpNet>>,
}

/// Check `cert` for login as `user` from `client` at `now_unix` (unix seconds) against the
/// configured CAs. `Err` is the reason, for the audit log.
///
/// When several CA lines hold the signing key, the certificate is accepted if any of them
/// accepts it (as sshd tries each matching line); otherwise the first line's reason is
/// returned.
pub fn check_user_certificate(
    cert: &Certificate,
    user: &str,
    client: IpAddr,
    now_unix: u64,
    cas: &[CertificateAuthority<'_>],
) -> Result<AcceptedCertificate, String> {
    let ca_fingerprint = cert
        .signature_key()
        .fingerprint(HashAlg::Sha256)
        .to_string();
    let mut first_error = None;
    for ca in cas
        .iter()
        .filter(|ca| ca.key.key_data() == cert.signature_key())
    {
        match check_against(cert, user, client, now_unix, ca, &ca_fingerprint) {
            Ok(accepted) => return Ok(accepted),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error
        .unwrap_or_else(|| format!("certificate signed by an unknown CA ({ca_fingerprint})")))
}

fn check_against(
    cert: &Certificate,
    user: &str,
    client: IpAddr,
    now: u64,
    ca: &CertificateAuthority<'_>,
    ca_fingerprint: &str,
) -> Result<AcceptedCertificate, String> {
    let id = format!("certificate {:?} (serial {})", cert.key_id(), cert.serial());
    if cert.verify_signature().is_err() {
        return Err(format!(
            "{id}: signature does not verify with CA {ca_fingerprint} (line {})",
            ca.line
        ));
    }
    let algorithm = cert.signature().algorithm();
    if !ca_signature_allowed(&algorithm) {
        return Err(format!(
            "{id}: CA signature algorithm {} is refused (as by OpenSSH's default \
             CASignatureAlgorithms: ssh-ed25519, ecdsa-sha2-nistp256/384/521, \
             sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, rsa-sha2-512, \
             rsa-sha2-256); re-sign it, e.g. ssh-keygen -s ca_key -t rsa-sha2-512 ...",
            algorithm.as_str()
        ));
    }
    if cert.cert_type() != CertType::User {
        return Err(format!("{id}: host certificate presented for user login"));
    }
    check_validity(cert, now).map_err(|e| format!("{id}: {e}"))?;
    let principal = check_principals(cert, user, ca).map_err(|e| format!("{id}: {e}"))?;
    let source_address = check_critical_options(cert, client).map_err(|e| format!("{id}: {e}"))?;
    if !cert.extensions().contains_key("permit-port-forwarding") {
        return Err(format!(
            "{id}: certificate does not permit port forwarding (no permit-port-forwarding \
             extension; ssh-keygen -s sets it unless given -O no-port-forwarding or -O clear)"
        ));
    }
    Ok(AcceptedCertificate {
        key_id: cert.key_id().to_owned(),
        serial: cert.serial(),
        ca_fingerprint: ca_fingerprint.to_owned(),
        ca_line: ca.line,
        principal,
        source_address,
    })
}

/// OpenSSH's default `CASignatureAlgorithms` (since 8.2): no SHA-1 `ssh-rsa`, no DSA.
fn ca_signature_allowed(algorithm: &Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Ed25519
            | Algorithm::Ecdsa { .. }
            | Algorithm::SkEd25519
            | Algorithm::SkEcdsaSha2NistP256
            | Algorithm::Rsa {
                hash: Some(HashAlg::Sha256 | HashAlg::Sha512)
            }
    )
}

fn window(cert: &Certificate) -> String {
    let before = if cert.valid_before() == u64::MAX {
        "forever".to_owned()
    } else {
        format_utc(cert.valid_before())
    };
    format!("valid from {} to {before}", format_utc(cert.valid_after()))
}

fn check_validity(cert: &Certificate, now: u64) -> Result<(), String> {
    if now.saturating_add(CLOCK_SKEW) < cert.valid_after() {
        return Err(format!(
            "certificate not yet valid until {} ({}; now {}, {CLOCK_SKEW}s clock skew allowed)",
            format_utc(cert.valid_after()),
            window(cert),
            format_utc(now)
        ));
    }
    if now >= cert.valid_before().saturating_add(CLOCK_SKEW) {
        return Err(format!(
            "certificate expired at {} ({}; now {}, {CLOCK_SKEW}s clock skew allowed)",
            format_utc(cert.valid_before()),
            window(cert),
            format_utc(now)
        ));
    }
    Ok(())
}

/// Principals, shown in messages: at most a few, escaped.
fn show_list(names: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", … ({} in all)", names.len()));
    }
    s
}

fn check_principals(
    cert: &Certificate,
    user: &str,
    ca: &CertificateAuthority<'_>,
) -> Result<String, String> {
    let listed = cert.valid_principals();
    if listed.is_empty() {
        return Err(
            "certificate lacks principal list (a certificate valid for any user is refused, \
             as current OpenSSH does)"
                .into(),
        );
    }
    match ca.principals {
        Some(allowed) => listed
            .iter()
            .find(|p| allowed.contains(p))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "none of the certificate's principals ({}) is in principals=\"{}\" of the \
                     cert-authority on line {}",
                    show_list(listed),
                    allowed.join(","),
                    ca.line
                )
            }),
        None if listed.iter().any(|p| p == user) => Ok(user.to_owned()),
        None => Err(format!(
            "login user {user:?} is not a principal of the certificate (principals: {})",
            show_list(listed)
        )),
    }
}

/// Check the critical options; returns the `source-address` networks, if any.
fn check_critical_options(
    cert: &Certificate,
    client: IpAddr,
) -> Result<Option<Vec<IpNet>>, String> {
    let mut source_address = None;
    for (name, value) in cert.critical_options().iter() {
        match name.as_str() {
            "source-address" => {
                let nets = parse_source_address(value)
                    .map_err(|e| format!("certificate source-address {value:?} is invalid: {e}"))?;
                let client = net::canonical_ip(client, Compatible::Keep, Nat64::Keep);
                if !nets.iter().any(|n| n.contains(&client)) {
                    return Err(format!(
                        "client {client} not allowed by the certificate's source-address {value:?}"
                    ));
                }
                source_address = Some(nets);
            }
            "force-command" => {
                return Err(
                    "certificate has force-command: this bastion only forwards ports".into(),
                )
            }
            "verify-required" => {
                return Err(
                    "certificate has critical option verify-required, which this server cannot \
                     enforce (it does not check the FIDO user-verification flag)"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "certificate has unsupported critical option {other:?} (critical options \
                     must be understood or the certificate refused)"
                ))
            }
        }
    }
    Ok(source_address)
}

/// sshd's `addr_match_cidr_list` syntax: comma-separated addresses or CIDRs, no spaces, no
/// negation, no wildcards.
fn parse_source_address(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(|entry| {
            if entry.is_empty() {
                return Err("empty entry".to_owned());
            }
            if !entry
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/'))
            {
                return Err(format!("{entry:?} contains characters not valid in a CIDR"));
            }
            parse_addr_or_cidr(entry)
        })
        .collect()
}

#[cfg(test)]
mod tests;
