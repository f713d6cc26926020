//! The signature algorithm rule and the RSA key size minimum.

use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Algorithm, EcdsaCurve, HashAlg};

use super::*;

#[test]
fn sha1_rsa_signatures_are_refused() {
    let why = check_signature_algorithm(&Algorithm::Rsa { hash: None }).unwrap_err();
    assert!(
        why.contains("ssh-rsa") && why.contains("rsa-sha2-512"),
        "{why}"
    );
    // The certificate form maps to the same algorithm.
    let cert = Algorithm::new_certificate("ssh-rsa-cert-v01@openssh.com").unwrap();
    assert!(check_signature_algorithm(&cert).is_err());
}

#[test]
fn other_signature_algorithms_pass() {
    for algorithm in [
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::SkEd25519,
        Algorithm::SkEcdsaSha2NistP256,
    ] {
        assert_eq!(check_signature_algorithm(&algorithm), Ok(()), "{algorithm}");
    }
}

fn key(line: &str) -> KeyData {
    russh::keys::PublicKey::from_openssh(line)
        .unwrap()
        .key_data()
        .clone()
}

#[test]
fn rsa_bits_are_exact() {
    use crate::testkit::{new_key, RSA_1024, RSA_2047, RSA_2048};
    assert_eq!(rsa_bits(&key(RSA_1024)), Some(1024));
    assert_eq!(rsa_bits(&key(RSA_2047)), Some(2047));
    assert_eq!(rsa_bits(&key(RSA_2048)), Some(2048));
    assert_eq!(rsa_bits(new_key().public_key().key_data()), None);
}

#[test]
fn the_minimum_is_enforced_on_rsa_keys_only() {
    use crate::testkit::{new_key, RSA_1024, RSA_2047, RSA_2048};
    let min = MinRsaBits::default();
    assert_eq!(min.bits(), 2048);
    assert!(min.check(&key(RSA_2048), "key").is_ok());
    let why = min.check(&key(RSA_2047), "CA key").unwrap_err();
    assert!(
        why.starts_with("RSA CA key of 2047 bits is below the minimum of 2048 bits")
            && why.contains("BASTION_MIN_RSA_BITS"),
        "{why}"
    );
    assert!(min.check(&key(RSA_1024), "key").is_err());
    assert!(min.check(new_key().public_key().key_data(), "key").is_ok());
    let lowered = MinRsaBits::new(1024).unwrap();
    assert!(lowered.check(&key(RSA_1024), "key").is_ok());
}

#[test]
fn the_setting_cannot_go_below_openssh_s_floor() {
    assert_eq!(MinRsaBits::new(1024).unwrap().bits(), 1024);
    assert_eq!(MinRsaBits::new(4096).unwrap().bits(), 4096);
    for bits in [0, 512, 1023] {
        let why = MinRsaBits::new(bits).unwrap_err();
        assert!(
            why.starts_with(&format!("BASTION_MIN_RSA_BITS: {bits} is below 1024")),
            "{why}"
        );
    }
}

#[test]
fn security_keys_need_no_touch_required() {
    use crate::testkit::{new_key, RSA_2048, SK_ECDSA, SK_ED25519};
    for sk in [SK_ED25519, SK_ECDSA] {
        let sk = key(sk);
        assert!(is_security_key(&sk));
        let why = check_user_presence(&sk, false).unwrap_err();
        assert!(
            why.contains("cannot check the security key's user-presence flag")
                && why.contains("add no-touch-required to its authorized_keys line")
                && why.contains("to accept it without a touch"),
            "{why}"
        );
        assert_eq!(check_user_presence(&sk, true), Ok(()));
    }
    for other in [key(RSA_2048), new_key().public_key().key_data().clone()] {
        assert!(!is_security_key(&other));
        assert_eq!(check_user_presence(&other, false), Ok(()));
    }
}

/// A user certificate for `subject`, with these extensions, signed by a fresh CA.
fn certificate(subject: KeyData, extensions: &[&str]) -> Certificate {
    use russh::keys::ssh_key::certificate::Builder;
    let ca = crate::testkit::new_key();
    let mut b = Builder::new_with_random_nonce(&mut rand::rng(), subject, 0, u64::MAX).unwrap();
    b.valid_principal("alice").unwrap();
    for e in extensions {
        b.extension(*e, "").unwrap();
    }
    b.sign(&ca).unwrap()
}

#[test]
fn a_security_key_certificate_needs_no_touch_required_on_both_sides() {
    use crate::testkit::{new_key, SK_ED25519};
    let sk = key(SK_ED25519);
    let waived = certificate(sk.clone(), &["permit-port-forwarding", NO_TOUCH_REQUIRED]);
    let plain = certificate(sk, &["permit-port-forwarding"]);
    assert_eq!(check_certificate_user_presence(&waived, true), Ok(()));
    let why = check_certificate_user_presence(&waived, false).unwrap_err();
    assert!(
        why.contains("add no-touch-required to the cert-authority line"),
        "{why}"
    );
    let why = check_certificate_user_presence(&plain, true).unwrap_err();
    assert!(why.contains("re-issue the certificate"), "{why}");
    let why = check_certificate_user_presence(&plain, false).unwrap_err();
    assert!(why.contains("cert-authority line and re-issue"), "{why}");
    let ed25519 = certificate(new_key().public_key().key_data().clone(), &[]);
    assert_eq!(check_certificate_user_presence(&ed25519, false), Ok(()));
}
