//! Unit tests of `host_certificate`: every start-up refusal, its message, and the expiry health.
use super::*;
use russh::keys::ssh_key::certificate::Builder;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey};

const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const DAY: u64 = 86_400;

fn key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
}

fn sign(
    ca: &PrivateKey,
    subject: &PrivateKey,
    cert_type: CertType,
    valid_after: u64,
    valid_before: u64,
) -> String {
    let mut b = Builder::new_with_random_nonce(
        &mut rand::rng(),
        subject.public_key(),
        valid_after,
        valid_before,
    )
    .unwrap();
    b.cert_type(cert_type).unwrap();
    b.key_id("jumpbox").unwrap();
    b.serial(9).unwrap();
    b.valid_principal("jump.example.com").unwrap();
    b.valid_principal("jump-eu.example.com").unwrap();
    b.sign(ca).unwrap().to_openssh().unwrap()
}

fn host_cert(ca: &PrivateKey, host: &PrivateKey, after: u64, before: u64) -> String {
    sign(ca, host, CertType::Host, after, before)
}

fn load(text: &str, host: &PrivateKey, now: u64) -> Result<HostCertificate, String> {
    HostCertificate::load(Some(text), None, host.public_key(), now)
        .map(|c| c.expect("content given"))
        .map_err(|e| e.to_string())
}

fn fp(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

#[test]
fn a_host_certificate_of_the_host_key_loads_and_is_summarized() {
    let (ca, host) = (key(), key());
    let text = host_cert(&ca, &host, NOW - DAY, NOW + 30 * DAY);
    let cert = load(&format!("{text}\n"), &host, NOW).unwrap();
    assert_eq!(cert.setting, "BASTION_HOST_CERTIFICATE");
    assert_eq!(cert.health(NOW), CertificateHealth::Valid);
    let s = cert.summary(NOW);
    assert_eq!(s.key_id, "jumpbox");
    assert_eq!(s.principals, "jump.example.com,jump-eu.example.com");
    assert_eq!(s.serial, 9);
    assert_eq!(s.valid_until, "2026-01-31T00:00:00Z");
    assert_eq!(s.ca_fingerprint, fp(&ca));
    assert_eq!(s.expires_in_s, Some(30 * DAY));
}

#[test]
fn no_setting_means_no_certificate() {
    let host = key();
    assert!(HostCertificate::load(None, None, host.public_key(), NOW)
        .unwrap()
        .is_none());
}

#[test]
fn a_file_is_read_and_an_unreadable_one_is_named() {
    let (ca, host) = (key(), key());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host_key-cert.pub");
    std::fs::write(&path, host_cert(&ca, &host, NOW - DAY, NOW + DAY)).unwrap();
    let cert = HostCertificate::load(None, Some(&path), host.public_key(), NOW)
        .unwrap()
        .unwrap();
    assert_eq!(cert.setting, "BASTION_HOST_CERTIFICATE_FILE");
    let missing = dir.path().join("missing-cert.pub");
    let e = HostCertificate::load(None, Some(&missing), host.public_key(), NOW)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("BASTION_HOST_CERTIFICATE_FILE:") && e.contains("missing-cert.pub"),
        "{e}"
    );
}

#[test]
fn text_that_is_not_a_certificate_is_refused() {
    let host = key();
    let plain_key = host.public_key().to_openssh().unwrap();
    for text in ["garbage", "", &plain_key] {
        let e = load(text, &host, NOW).unwrap_err();
        assert!(
            e.starts_with("BASTION_HOST_CERTIFICATE: not a usable OpenSSH host certificate"),
            "{text:?}: {e}"
        );
    }
    let private = host.to_openssh(LineEnding::LF).unwrap();
    assert!(load(&private, &host, NOW).is_err());
}

#[test]
fn a_certificate_whose_signed_body_was_edited_does_not_verify() {
    let (ca, host) = (key(), key());
    let text = host_cert(&ca, &host, NOW - DAY, NOW + DAY);
    let mut bytes = Certificate::from_openssh(&text)
        .unwrap()
        .to_bytes()
        .unwrap();
    let at = bytes
        .windows(7)
        .position(|w| w == b"jumpbox")
        .expect("key id in the encoding");
    bytes[at + 6] = b'y';
    let edited = Certificate::from_bytes(&bytes).unwrap();
    assert_eq!(edited.key_id(), "jumpboy");
    let e = load(&edited.to_openssh().unwrap(), &host, NOW).unwrap_err();
    assert!(e.contains("CA signature does not verify"), "{e}");
}

#[test]
fn a_user_certificate_is_refused_with_the_fix() {
    let (ca, host) = (key(), key());
    let text = sign(&ca, &host, CertType::User, NOW - DAY, NOW + DAY);
    let e = load(&text, &host, NOW).unwrap_err();
    assert!(
        e.contains("\"jumpbox\" is a user certificate") && e.contains("sign it with -h"),
        "{e}"
    );
    assert!(
        e.contains(
            "ssh-keygen -s host_ca -I \"jumpbox\" -h -n jump.example.com,jump-eu.example.com"
        ),
        "{e}"
    );
}

#[test]
fn a_certificate_of_another_key_names_both_fingerprints() {
    let (ca, host, other) = (key(), key(), key());
    let text = host_cert(&ca, &other, NOW - DAY, NOW + DAY);
    let e = load(&text, &host, NOW).unwrap_err();
    assert!(
        e.contains(&format!("for key {}", fp(&other)))
            && e.contains(&format!("not for the host key {}", fp(&host))),
        "{e}"
    );
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused_with_the_time() {
    let (ca, host) = (key(), key());
    let expired = host_cert(&ca, &host, NOW - 2 * DAY, NOW - DAY);
    let e = load(&expired, &host, NOW).unwrap_err();
    assert!(
        e.contains("expired at 2025-12-31T00:00:00Z") && e.contains("-V -5m:+52w"),
        "{e}"
    );
    // valid_before is exclusive, as in OpenSSH.
    assert!(load(&host_cert(&ca, &host, NOW - DAY, NOW), &host, NOW).is_err());
    let future = host_cert(&ca, &host, NOW + 60, NOW + DAY);
    let e = load(&future, &host, NOW).unwrap_err();
    assert!(
        e.contains("not valid before 2026-01-01T00:01:00Z") && e.contains("-V -5m:"),
        "{e}"
    );
}

#[test]
fn health_warns_within_seven_days() {
    let (ca, host) = (key(), key());
    let text = host_cert(&ca, &host, NOW - DAY, NOW + 7 * DAY);
    let cert = load(&text, &host, NOW).unwrap();
    assert_eq!(cert.health(NOW - 1), CertificateHealth::Valid);
    assert_eq!(cert.health(NOW), CertificateHealth::ExpiresSoon);
    assert_eq!(cert.health(NOW + 7 * DAY), CertificateHealth::Expired);
    let forever = host_cert(&ca, &host, 0, u64::MAX);
    let cert = load(&forever, &host, NOW).unwrap();
    assert_eq!(cert.health(NOW), CertificateHealth::Valid);
    assert_eq!(cert.summary(NOW).valid_until, "forever");
    assert_eq!(cert.summary(NOW).expires_in_s, None);
}
