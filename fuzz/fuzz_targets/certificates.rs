//! `bastion::certificates::check_user_certificate` on arbitrary bytes decoded as an OpenSSH
//! certificate (the binary wire form, or the `ssh-…-cert-v01@openssh.com AAAA…` text form when
//! the input is text).
//!
//! When the bytes decode, the certificate is checked against a CA list holding its own signing
//! key (so the check goes past the CA match into signature, window, principals and options),
//! an unrelated key, and no CA at all. Checks: no panic; without a matching CA the answer is a
//! refusal; an accepted certificate names the matching CA line and a principal of the
//! certificate (or of the CA line's `principals=`).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bastion::certificates::{check_user_certificate, CertificateAuthority};
use libfuzzer_sys::fuzz_target;
use russh::keys::{Certificate, PublicKey};

const OTHER_CA: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl other-ca";

fn decode(data: &[u8]) -> Option<Certificate> {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cert) = Certificate::from_openssh(text.trim()) {
            return Some(cert);
        }
    }
    Certificate::from_bytes(data).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(cert) = decode(data) else { return };
    let signer = PublicKey::new(cert.signature_key().clone(), "");
    let other = PublicKey::from_openssh(OTHER_CA).expect("a valid key");
    let listed = vec!["deploy".to_owned(), "alice".to_owned()];
    let user = cert
        .valid_principals()
        .first()
        .map_or("alice", String::as_str)
        .to_owned();
    let now = cert.valid_after().saturating_add(1);
    let cas = [
        CertificateAuthority {
            key: &other,
            line: 1,
            principals: None,
        },
        CertificateAuthority {
            key: &signer,
            line: 2,
            principals: None,
        },
        CertificateAuthority {
            key: &signer,
            line: 3,
            principals: Some(&listed),
        },
    ];
    let clients = [
        IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0203)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7)),
    ];
    for client in clients {
        for now in [now, 0, u64::MAX, cert.valid_before()] {
            assert!(check_user_certificate(&cert, &user, client, now, &[]).is_err());
            assert!(
                check_user_certificate(&cert, &user, client, now, &cas[..1]).is_err()
                    || other.key_data() == cert.signature_key()
            );
            let Ok(accepted) = check_user_certificate(&cert, &user, client, now, &cas) else {
                continue;
            };
            assert!(accepted.ca_line == 2 || accepted.ca_line == 3);
            let principals = cert.valid_principals();
            assert!(principals.contains(&accepted.principal), "{accepted:?}");
            if accepted.ca_line == 3 {
                assert!(listed.contains(&accepted.principal), "{accepted:?}");
            }
        }
    }
});
