//! Unit tests of `host_key`.
use super::*;

#[test]
fn generated_key_has_a_fingerprint() {
    let k = HostKey::load(None, None).unwrap();
    assert_eq!(k.source, HostKeySource::Generated);
    assert!(k.fingerprint().starts_with("SHA256:"));
}

#[test]
fn roundtrip_through_openssh_text_and_escaped_newlines() {
    let k = HostKey::load(None, None).unwrap();
    let text = k
        .key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .unwrap();
    let again = HostKey::load(Some(&text), None).unwrap();
    assert_eq!(again.fingerprint(), k.fingerprint());
    let escaped = text.replace('\n', "\\n");
    let third = HostKey::load(Some(&escaped), None).unwrap();
    assert_eq!(third.fingerprint(), k.fingerprint());
}

#[test]
fn errors_name_the_setting() {
    let e = HostKey::load(Some("garbage"), None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("BASTION_HOST_KEY:"), "{e}");
    let e = HostKey::load(None, Some(Path::new("/nonexistent/key")))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("BASTION_HOST_KEY_FILE") && e.contains("/nonexistent/key"),
        "{e}"
    );
}
