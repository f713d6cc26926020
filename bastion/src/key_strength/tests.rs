//! The signature algorithm rule.

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
