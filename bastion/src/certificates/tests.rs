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
    let mut b = Builder::new_with_random_nonce(&mut rand::rng(), subject.public_key(), 0, u64::MAX)
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
