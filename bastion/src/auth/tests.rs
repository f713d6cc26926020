//! The authentication decisions: plain keys, revocation (one check for every path), the
//! re-check after a reload, and the attempt cap.

use std::net::SocketAddr;

use super::*;
use crate::authorized_keys::KeySources;
use crate::testkit::{new_key, public_line};

const CLIENT: &str = "192.0.2.10:50000";

fn client() -> SocketAddr {
    CLIENT.parse().unwrap()
}

fn key_set(keys: &str, revoked: &str) -> AuthorizedKeys {
    KeySources {
        keys: Some(keys.to_owned()),
        revoked: (!revoked.is_empty()).then(|| revoked.to_owned()),
        ..KeySources::default()
    }
    .load()
    .unwrap()
}

fn fp(key: &russh::keys::PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

#[test]
fn listed_key_logs_in_with_its_line() {
    let key = new_key();
    let keys = key_set(&format!("# team\n{}\n", public_line(&key)), "");
    let (detail, _) = check_key(&keys, key.public_key(), &fp(&key), client(), 0).unwrap();
    assert!(detail.ends_with("line 2"), "{detail}");
    let stranger = new_key();
    let why = check_key(&keys, stranger.public_key(), &fp(&stranger), client(), 0).unwrap_err();
    assert_eq!(why, "key not in the authorized keys");
}

#[test]
fn revoked_key_is_refused_even_when_listed() {
    let key = new_key();
    let keys = key_set(&public_line(&key), &fp(&key));
    let why = check_key(&keys, key.public_key(), &fp(&key), client(), 0).unwrap_err();
    assert!(why.contains("revoked"), "{why}");
    assert_eq!(revocation(&keys, &fp(&key), None), Some(Revoked::Key));
}

#[test]
fn revoked_ca_is_reported_as_the_ca() {
    let (user, ca) = (new_key(), new_key());
    let keys = key_set(&public_line(&user), &public_line(&ca));
    assert_eq!(revocation(&keys, &fp(&user), None), None);
    assert_eq!(
        revocation(&keys, &fp(&user), Some(&fp(&ca))),
        Some(Revoked::Ca(fp(&ca)))
    );
}

#[test]
fn from_option_limits_the_client_address() {
    let key = new_key();
    let keys = key_set(&format!("from=\"10.0.0.0/8\" {}", public_line(&key)), "");
    let why = check_key(&keys, key.public_key(), &fp(&key), client(), 0).unwrap_err();
    assert!(why.starts_with("line 1:"), "{why}");
    let inside: SocketAddr = "10.1.2.3:4000".parse().unwrap();
    assert!(check_key(&keys, key.public_key(), &fp(&key), inside, 0).is_ok());
}

#[test]
fn still_allowed_follows_removal_and_revocation() {
    let (a, b) = (new_key(), new_key());
    let identity = Identity {
        user: "alice".into(),
        key_fingerprint: fp(&a),
        ca_fingerprint: None,
    };
    let both = key_set(&format!("{}\n{}\n", public_line(&a), public_line(&b)), "");
    assert_eq!(identity.still_allowed(&both), Ok(()));
    let without = key_set(&public_line(&b), "");
    assert!(identity
        .still_allowed(&without)
        .unwrap_err()
        .contains("removed"));
    let revoked = key_set(
        &format!("{}\n{}\n", public_line(&a), public_line(&b)),
        &fp(&a),
    );
    assert!(identity
        .still_allowed(&revoked)
        .unwrap_err()
        .contains("revoked"));
}

#[test]
fn certificate_identity_depends_on_its_ca_line() {
    let (user, ca) = (new_key(), new_key());
    let identity = Identity {
        user: "alice".into(),
        key_fingerprint: fp(&user),
        ca_fingerprint: Some(fp(&ca)),
    };
    let with_ca = key_set(&format!("cert-authority {}", public_line(&ca)), "");
    assert_eq!(identity.still_allowed(&with_ca), Ok(()));
    let other = key_set(&format!("cert-authority {}", public_line(&new_key())), "");
    assert!(identity
        .still_allowed(&other)
        .unwrap_err()
        .contains("removed"));
    let revoked = key_set(&format!("cert-authority {}", public_line(&ca)), &fp(&ca));
    assert!(identity
        .still_allowed(&revoked)
        .unwrap_err()
        .contains("revoked"));
}

#[test]
fn a_ca_lets_unknown_keys_proceed_to_the_certificate_check_unless_revoked() {
    let (ca, probe) = (new_key(), new_key());
    let keys = key_set(&format!("cert-authority {}", public_line(&ca)), "");
    assert!(may_be_certificate(&keys, &fp(&probe)));
    let revoked = key_set(&format!("cert-authority {}", public_line(&ca)), &fp(&probe));
    assert!(!may_be_certificate(&revoked, &fp(&probe)));
    let no_ca = key_set(&public_line(&ca), "");
    assert!(!may_be_certificate(&no_ca, &fp(&probe)));
}

/// A connection's authenticator over this key list, allowing `max_tries` attempts.
fn authenticator(keys: &str, max_tries: u32) -> Authenticator {
    let store = crate::key_store::KeyStore::load(KeySources {
        keys: Some(keys.to_owned()),
        ..KeySources::default()
    })
    .unwrap();
    Authenticator::new(store, 1, client(), max_tries)
}

#[tokio::test]
async fn attempts_are_capped() {
    let key = new_key();
    let mut auth = authenticator(&public_line(&key), 3);
    let stranger = new_key();
    for attempt in 1..=3 {
        let verdict = auth.offered("bob", stranger.public_key(), &Algorithm::Ed25519);
        let last = attempt == 3;
        assert!(
            matches!(verdict, Verdict::Rejected { disconnect } if disconnect == last),
            "attempt {attempt}: {verdict:?}"
        );
    }
    assert!(matches!(
        auth.offered("bob", key.public_key(), &Algorithm::Ed25519),
        Verdict::Proceed
    ));
    match auth.signed("bob", key.public_key(), &Algorithm::Ed25519) {
        Verdict::LoggedIn(login) => {
            assert_eq!(login.identity.user, "bob");
            assert_eq!(login.identity.key_fingerprint, fp(&key));
        }
        other => panic!("a listed key did not log in: {other:?}"),
    }
    assert!(matches!(
        auth.password("bob"),
        Verdict::Rejected { disconnect: true }
    ));
}

#[tokio::test]
async fn sha1_rsa_signatures_are_refused_and_counted() {
    let key = new_key();
    let mut auth = authenticator(&public_line(&key), 2);
    let sha1 = Algorithm::Rsa { hash: None };
    assert!(matches!(
        auth.offered("bob", key.public_key(), &sha1),
        Verdict::Rejected { disconnect: false }
    ));
    assert!(matches!(
        auth.signed("bob", key.public_key(), &sha1),
        Verdict::Rejected { disconnect: true }
    ));
}

#[test]
fn a_small_rsa_key_is_refused_with_its_size() {
    let keys = key_set(&public_line(&new_key()), "");
    let small = russh::keys::PublicKey::from_openssh(crate::testkit::RSA_1024).unwrap();
    let why = check_key(&keys, &small, "SHA256:x", client(), 0).unwrap_err();
    assert!(
        why.starts_with("RSA key of 1024 bits is below the minimum of 2048 bits"),
        "{why}"
    );
}

#[test]
fn a_security_key_logs_in_only_with_no_touch_required() {
    use crate::testkit::{SK_ECDSA, SK_ED25519};
    for sk in [SK_ED25519, SK_ECDSA] {
        let key = russh::keys::PublicKey::from_openssh(sk).unwrap();
        for (line, allowed) in [
            (sk.to_owned(), false),
            (format!("touch-required {sk}"), false),
            (format!("no-touch-required,touch-required {sk}"), false),
            (
                format!("restrict,port-forwarding,no-touch-required {sk}"),
                true,
            ),
            (format!("no-touch-required {sk}"), true),
        ] {
            let keys = key_set(&line, "");
            let verdict = check_key(&keys, &key, "SHA256:x", client(), 0);
            match verdict {
                Ok(_) => assert!(allowed, "{line}: accepted"),
                Err(why) => {
                    assert!(!allowed, "{line}: {why}");
                    assert!(
                        why.starts_with("line 1: security key")
                            && why.contains("add no-touch-required"),
                        "{why}"
                    );
                }
            }
        }
    }
}

fn user_certificate(
    ca: &russh::keys::PrivateKey,
    subject: &russh::keys::PrivateKey,
) -> Certificate {
    use russh::keys::ssh_key::certificate::{Builder, CertType};
    let now = now_unix();
    let mut b =
        Builder::new_with_random_nonce(&mut rand::rng(), subject.public_key(), 0, now + 3600)
            .unwrap();
    b.cert_type(CertType::User).unwrap();
    b.key_id("alice@laptop").unwrap();
    b.serial(77).unwrap();
    b.valid_principal("alice").unwrap();
    b.valid_principal("admins").unwrap();
    b.extension("permit-port-forwarding", "").unwrap();
    b.sign(ca).unwrap()
}

/// A certificate login carries who the certificate names, for the audit events of its
/// connection; a plain key login carries none.
#[tokio::test]
async fn a_certificate_login_names_the_certificate_for_the_audit_log() {
    let (ca, user) = (new_key(), new_key());
    let keys = key_set(
        &format!("cert-authority,principals=\"admins\" {}", public_line(&ca)),
        "",
    );
    let cert = user_certificate(&ca, &user);
    let (_, login) = check_certificate(&keys, "root", &cert, client(), now_unix()).unwrap();
    let wanted = audit::CertIdentity {
        key_id: "alice@laptop".into(),
        principals: "alice,admins".into(),
        serial: 77,
        ca_fingerprint: fp(&ca),
    };
    assert_eq!(login.identity.user, "root");
    assert_eq!(login.cert_identity(), Some(wanted.clone()));
    assert_eq!(cert_identity(&cert), wanted);

    let mut auth = authenticator(&public_line(&user), 6);
    let Verdict::LoggedIn(login) = auth.signed("alice", user.public_key(), &Algorithm::Ed25519)
    else {
        panic!("a listed key did not log in");
    };
    assert_eq!(login.cert_identity(), None);
}
