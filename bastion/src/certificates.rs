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

use crate::key_options::{canonical_ip, format_utc, parse_addr_or_cidr};

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
                let client = canonical_ip(client);
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
mod tests {
    use super::*;
    use russh::keys::signature::{self, Signer};
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::private::RsaKeypair;
    use russh::keys::ssh_key::public::KeyData;
    use russh::keys::ssh_key::Signature;
    use russh::keys::PrivateKey;

    const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const DAY: u64 = 86_400;

    fn key() -> PrivateKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    struct Spec<'a> {
        cert_type: CertType,
        principals: &'a [&'a str],
        extensions: &'a [&'a str],
        critical: &'a [(&'a str, &'a str)],
        valid_after: u64,
        valid_before: u64,
    }

    impl Default for Spec<'_> {
        fn default() -> Self {
            Spec {
                cert_type: CertType::User,
                principals: &["alice"],
                extensions: &["permit-port-forwarding", "permit-pty"],
                critical: &[],
                valid_after: NOW - DAY,
                valid_before: NOW + DAY,
            }
        }
    }

    fn issue(ca: &PrivateKey, spec: Spec<'_>) -> Certificate {
        let subject = key();
        let mut b = Builder::new_with_random_nonce(
            &mut rand::rng(),
            subject.public_key(),
            spec.valid_after,
            spec.valid_before,
        )
        .unwrap();
        b.cert_type(spec.cert_type).unwrap();
        b.key_id("alice@laptop").unwrap();
        b.serial(42).unwrap();
        if spec.principals.is_empty() {
            b.all_principals_valid().unwrap();
        }
        for p in spec.principals {
            b.valid_principal(*p).unwrap();
        }
        for e in spec.extensions {
            b.extension(*e, "").unwrap();
        }
        for (name, value) in spec.critical {
            b.critical_option(*name, *value).unwrap();
        }
        b.sign(ca).unwrap()
    }

    fn check(
        cert: &Certificate,
        user: &str,
        client: &str,
        now: u64,
        ca: &PrivateKey,
        principals: Option<&[String]>,
    ) -> Result<AcceptedCertificate, String> {
        let public = ca.public_key().clone();
        let cas = [CertificateAuthority {
            key: &public,
            line: 7,
            principals,
        }];
        check_user_certificate(cert, user, ip(client), now, &cas)
    }

    #[test]
    fn accepted_for_listed_principal() {
        let ca = key();
        let cert = issue(&ca, Spec::default());
        let ok = check(&cert, "alice", "203.0.113.9", NOW, &ca, None).unwrap();
        assert_eq!(ok.key_id, "alice@laptop");
        assert_eq!(ok.serial, 42);
        assert_eq!(ok.ca_line, 7);
        assert_eq!(ok.principal, "alice");
        assert_eq!(ok.source_address, None);
        assert_eq!(
            ok.ca_fingerprint,
            ca.public_key().fingerprint(HashAlg::Sha256).to_string()
        );
        assert!(ok.ca_fingerprint.starts_with("SHA256:"));
    }

    #[test]
    fn refused_for_other_user() {
        let ca = key();
        let cert = issue(&ca, Spec::default());
        let e = check(&cert, "bob", "203.0.113.9", NOW, &ca, None).unwrap_err();
        assert!(
            e.contains("login user \"bob\" is not a principal") && e.contains("\"alice\""),
            "{e}"
        );
        assert!(
            e.starts_with("certificate \"alice@laptop\" (serial 42): "),
            "{e}"
        );
    }

    #[test]
    fn expired_and_not_yet_valid() {
        let ca = key();
        let cert = issue(
            &ca,
            Spec {
                valid_after: NOW - 2 * DAY,
                valid_before: NOW - DAY,
                ..Spec::default()
            },
        );
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(
            e.contains("certificate expired at 2025-12-31T00:00:00Z")
                && e.contains("valid from 2025-12-30T00:00:00Z to 2025-12-31T00:00:00Z"),
            "{e}"
        );
        let cert = issue(
            &ca,
            Spec {
                valid_after: NOW + DAY,
                valid_before: NOW + 2 * DAY,
                ..Spec::default()
            },
        );
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(
            e.contains("certificate not yet valid until 2026-01-02T00:00:00Z")
                && e.contains("to 2026-01-03T00:00:00Z"),
            "{e}"
        );
    }

    #[test]
    fn clock_skew_tolerated_on_both_sides() {
        let ca = key();
        let cert = issue(
            &ca,
            Spec {
                valid_after: NOW,
                valid_before: NOW + 600,
                ..Spec::default()
            },
        );
        let at = |t| check(&cert, "alice", "10.0.0.1", t, &ca, None);
        assert!(at(NOW - CLOCK_SKEW).is_ok());
        assert!(at(NOW - CLOCK_SKEW - 1)
            .unwrap_err()
            .contains("not yet valid"));
        assert!(at(NOW + 600 + CLOCK_SKEW - 1).is_ok());
        assert!(at(NOW + 600 + CLOCK_SKEW).unwrap_err().contains("expired"));
        let forever = issue(
            &ca,
            Spec {
                valid_after: 0,
                valid_before: u64::MAX,
                ..Spec::default()
            },
        );
        assert!(check(&forever, "alice", "10.0.0.1", u64::MAX - 1, &ca, None).is_ok());
    }

    #[test]
    fn unknown_ca_refused_with_its_fingerprint() {
        let ca = key();
        let other = key();
        let cert = issue(&other, Spec::default());
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        let fp = other.public_key().fingerprint(HashAlg::Sha256).to_string();
        assert_eq!(e, format!("certificate signed by an unknown CA ({fp})"));
        let e = check_user_certificate(&cert, "alice", ip("10.0.0.1"), NOW, &[]).unwrap_err();
        assert!(e.contains("unknown CA"), "{e}");
    }

    #[test]
    fn ca_matched_by_key_data_not_comment() {
        let ca = key();
        let cert = issue(&ca, Spec::default());
        let mut public = ca.public_key().clone();
        public.set_comment("a different comment");
        let other = key().public_key().clone();
        let cas = [
            CertificateAuthority {
                key: &other,
                line: 1,
                principals: None,
            },
            CertificateAuthority {
                key: &public,
                line: 2,
                principals: None,
            },
        ];
        let ok = check_user_certificate(&cert, "alice", ip("10.0.0.1"), NOW, &cas).unwrap();
        assert_eq!(ok.ca_line, 2);
    }

    #[test]
    fn host_certificate_refused() {
        let ca = key();
        let cert = issue(
            &ca,
            Spec {
                cert_type: CertType::Host,
                principals: &["alice"],
                ..Spec::default()
            },
        );
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(
            e.ends_with("host certificate presented for user login"),
            "{e}"
        );
    }

    #[test]
    fn force_command_refused() {
        let ca = key();
        let cert = issue(
            &ca,
            Spec {
                critical: &[("force-command", "/bin/true")],
                ..Spec::default()
            },
        );
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(
            e.ends_with("certificate has force-command: this bastion only forwards ports"),
            "{e}"
        );
    }

    #[test]
    fn unknown_and_verify_required_critical_options_refused() {
        let ca = key();
        let cert = issue(
            &ca,
            Spec {
                critical: &[("frobnicate@example.com", "yes")],
                ..Spec::default()
            },
        );
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(
            e.contains("unsupported critical option \"frobnicate@example.com\""),
            "{e}"
        );
        let cert = issue(
            &ca,
            Spec {
                critical: &[("verify-required", "")],
                ..Spec::default()
            },
        );
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(e.contains("verify-required"), "{e}");
    }

    #[test]
    fn source_address_enforced() {
        let ca = key();
        let cert = issue(
            &ca,
            Spec {
                critical: &[("source-address", "10.0.0.0/8,2001:db8::/32,192.0.2.7")],
                ..Spec::default()
            },
        );
        let ok = check(&cert, "alice", "10.1.2.3", NOW, &ca, None).unwrap();
        assert_eq!(
            ok.source_address.unwrap(),
            ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"].map(|n| n.parse::<IpNet>().unwrap())
        );
        assert!(check(&cert, "alice", "::ffff:10.9.9.9", NOW, &ca, None).is_ok());
        assert!(check(&cert, "alice", "2001:db8::5", NOW, &ca, None).is_ok());
        assert!(check(&cert, "alice", "192.0.2.7", NOW, &ca, None).is_ok());
        let e = check(&cert, "alice", "203.0.113.9", NOW, &ca, None).unwrap_err();
        assert!(
            e.contains("client 203.0.113.9 not allowed by the certificate's source-address"),
            "{e}"
        );
        let e = check(&cert, "alice", "::ffff:203.0.113.9", NOW, &ca, None).unwrap_err();
        assert!(e.contains("client 203.0.113.9 "), "{e}");
    }

    #[test]
    fn malformed_source_address_refused() {
        let ca = key();
        for bad in [
            "10.0.0.0/8, 192.168.0.0/16",
            "10.0.0.1/8",
            "*",
            "!10.0.0.0/8",
            "10.0.0.0/8,",
            "host.example",
        ] {
            let cert = issue(
                &ca,
                Spec {
                    critical: &[("source-address", bad)],
                    ..Spec::default()
                },
            );
            let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
            assert!(
                e.contains("source-address") && e.contains("is invalid"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn missing_permit_port_forwarding_refused() {
        let ca = key();
        let cert = issue(
            &ca,
            Spec {
                extensions: &["permit-pty", "permit-agent-forwarding"],
                ..Spec::default()
            },
        );
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(
            e.contains("certificate does not permit port forwarding"),
            "{e}"
        );
    }

    #[test]
    fn ca_principals_option_replaces_user_match() {
        let ca = key();
        let cert = issue(
            &ca,
            Spec {
                principals: &["alice", "ops"],
                ..Spec::default()
            },
        );
        let allowed = vec!["ops".to_owned(), "sre".to_owned()];
        // The login name need not be a certificate principal when principals= is set.
        let ok = check(&cert, "tunnel", "10.0.0.1", NOW, &ca, Some(&allowed)).unwrap();
        assert_eq!(ok.principal, "ops");
        let only_bob = vec!["bob".to_owned()];
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, Some(&only_bob)).unwrap_err();
        assert!(
            e.contains("none of the certificate's principals (\"alice\", \"ops\")")
                && e.contains("principals=\"bob\"")
                && e.contains("line 7"),
            "{e}"
        );
    }

    #[test]
    fn several_ca_lines_any_may_accept() {
        let ca = key();
        let cert = issue(&ca, Spec::default());
        let public = ca.public_key().clone();
        let only_bob = vec!["bob".to_owned()];
        let cas = [
            CertificateAuthority {
                key: &public,
                line: 3,
                principals: Some(&only_bob),
            },
            CertificateAuthority {
                key: &public,
                line: 4,
                principals: None,
            },
        ];
        let ok = check_user_certificate(&cert, "alice", ip("10.0.0.1"), NOW, &cas).unwrap();
        assert_eq!(ok.ca_line, 4);
        let e = check_user_certificate(&cert, "carol", ip("10.0.0.1"), NOW, &cas).unwrap_err();
        assert!(e.contains("line 3"), "first line's reason: {e}");
    }

    #[test]
    fn no_principals_refused() {
        let ca = key();
        let cert = issue(
            &ca,
            Spec {
                principals: &[],
                ..Spec::default()
            },
        );
        assert!(cert.valid_principals().is_empty());
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(e.contains("certificate lacks principal list"), "{e}");
        let any = vec!["alice".to_owned()];
        let e = check(&cert, "alice", "10.0.0.1", NOW, &ca, Some(&any)).unwrap_err();
        assert!(e.contains("lacks principal list"), "{e}");
    }

    #[test]
    fn tampered_certificate_refused() {
        let ca = key();
        let cert = issue(&ca, Spec::default());
        // Rewrite the signed principal (and key ID) bytes, keeping the CA's signature.
        let mut bytes = cert.to_bytes().unwrap();
        let at = bytes.windows(5).position(|w| w == b"alice").unwrap();
        bytes[at..at + 5].copy_from_slice(b"mallo");
        let forged = Certificate::from_bytes(&bytes).unwrap();
        let e = check(&forged, "mallo", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(e.contains("signature does not verify"), "{e}");
    }

    /// A CA signing with SHA-1 `ssh-rsa`, which `PrivateKey` never does by itself.
    struct Sha1RsaCa(RsaKeypair);

    impl Signer<Signature> for Sha1RsaCa {
        fn try_sign(&self, message: &[u8]) -> Result<Signature, signature::Error> {
            (&self.0, None).try_sign(message)
        }
    }

    impl From<&Sha1RsaCa> for KeyData {
        fn from(ca: &Sha1RsaCa) -> KeyData {
            KeyData::Rsa(ca.0.public().clone())
        }
    }

    #[test]
    fn rsa_ca_sha2_accepted_sha1_refused() {
        let keypair = RsaKeypair::random(&mut rand::rng(), 2048).unwrap();
        let ca = PrivateKey::from(keypair.clone());
        let sha2 = issue(&ca, Spec::default());
        assert_eq!(
            sha2.signature().algorithm(),
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512)
            }
        );
        assert!(check(&sha2, "alice", "10.0.0.1", NOW, &ca, None).is_ok());

        let subject = key();
        let mut b =
            Builder::new_with_random_nonce(&mut rand::rng(), subject.public_key(), 0, u64::MAX)
                .unwrap();
        b.valid_principal("alice").unwrap();
        b.extension("permit-port-forwarding", "").unwrap();
        let sha1 = b.sign(&Sha1RsaCa(keypair)).unwrap();
        assert!(
            sha1.verify_signature().is_ok(),
            "a valid signature, only a weak one"
        );
        let e = check(&sha1, "alice", "10.0.0.1", NOW, &ca, None).unwrap_err();
        assert!(
            e.contains("CA signature algorithm ssh-rsa is refused"),
            "{e}"
        );
    }
}
