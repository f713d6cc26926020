use super::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICIjdiUtJdomjTqyaNtCcLVJrVxramimyS26/xj01HsR";

#[test]
fn plain_key_with_comment() {
    let (keys, _) = parse(&format!("# team\n\n{KEY} alice@laptop\n")).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].line, 3);
    assert_eq!(keys[0].comment, "alice@laptop");
    assert!(keys[0].fingerprint.starts_with("SHA256:"));
    assert!(keys[0].options.is_empty());
}

#[test]
fn options_are_parsed_and_kept() {
    let line = format!(
        "from=\"10.0.0.0/8,!10.1.0.0/16\",permitopen=\"db:5432\",no-pty,command=\"echo \\\"hi\\\"\" {KEY} c"
    );
    let k = parse_line(&line, 1).unwrap();
    assert_eq!(k.options.len(), 4);
    assert_eq!(
        k.options[0].value.as_deref(),
        Some("10.0.0.0/8,!10.1.0.0/16")
    );
    assert_eq!(k.options[3].value.as_deref(), Some("echo \"hi\""));
    assert!(k.restrictions.from.is_some());
    assert_eq!(k.restrictions.permit_open.len(), 1);
}

#[test]
fn malformed_lines_name_the_line() {
    let e = parse(&format!("{KEY}\nssh-ed25519 notbase64!!\n")).unwrap_err();
    assert_eq!(e.line, 2);
    // An unknown option rejects its line alone; the other lines load.
    let (keys, rejected) = parse(&format!("bogus-option {KEY}\n{KEY} ok\n")).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(rejected[0].line, 1);
    assert!(
        rejected[0].message.contains("bogus-option"),
        "{:?}",
        rejected
    );
    // A permitopen naming the credentials endpoint, in any spelling, rejects its line alone.
    for dest in [
        "169.254.170.2:80",
        "[64:ff9b::a9fe:aa02]:80",
        "[::a9fe:aa02]:*",
        "[fe80::1]:22",
    ] {
        let text = format!("permitopen=\"{dest}\" {KEY} bad\n{KEY} ok\n");
        let (keys, rejected) = parse(&text).unwrap();
        assert_eq!(keys.len(), 1, "{dest}");
        assert_eq!(rejected[0].line, 1, "{dest}");
        assert!(
            rejected[0].message.contains("never forwards"),
            "{:?}",
            rejected
        );
    }
    // A line that is not a key at all stops the load.
    assert_eq!(parse("not a key at all").unwrap_err().line, 1);
    assert!(parse_line(&format!("from=10.0.0.1 {KEY}"), 1).is_err());
    assert!(parse_line(&format!("from=\"10.0.0.1 {KEY}"), 1).is_err());
    assert!(parse_line("no-pty", 1).is_err());
    assert!(parse_line("ssh-ed25519", 1).is_err());
    assert!(parse_line(&format!("no-pty, {KEY}"), 1).is_err());
}

#[test]
fn lookup_ignores_comments() {
    let keys = AuthorizedKeys::load(Some(&format!("{KEY} a")), None).unwrap();
    let probe = PublicKey::from_openssh(&format!("{KEY} other")).unwrap();
    assert_eq!(keys.find(&probe).map(|k| k.line), Some(1));
}

#[test]
fn revocations_take_keys_and_fingerprints() {
    let k = PublicKey::from_openssh(KEY).unwrap();
    let fp = k.fingerprint(HashAlg::Sha256).to_string();
    let r = Revocations::parse(&format!("# gone\n{KEY} old\n")).unwrap();
    assert!(r.is_revoked(&fp));
    let r = Revocations::parse(&format!("{fp}\n")).unwrap();
    assert!(r.is_revoked(&fp));
    assert_eq!(Revocations::parse("SHA256:short\n").unwrap_err().line, 1);
    assert_eq!(Revocations::parse("\nnonsense\n").unwrap_err().line, 2);
}

#[test]
fn cert_authority_lines_do_not_authorize_their_key() {
    let keys = AuthorizedKeys::load(Some(&format!("cert-authority {KEY} ca")), None).unwrap();
    let probe = PublicKey::from_openssh(KEY).unwrap();
    assert!(keys.find(&probe).is_none());
    assert_eq!(keys.authorities().count(), 1);
}

#[test]
fn empty_and_missing_lists_are_errors() {
    assert!(AuthorizedKeys::load(None, None).is_err());
    let e = AuthorizedKeys::load(Some("# nothing\n"), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("BASTION_AUTHORIZED_KEYS") && e.contains("no keys"),
        "{e}"
    );
}

#[test]
fn a_list_empty_on_purpose_loads_and_lets_nobody_in() {
    let text = format!("# written by the key sync\n  {EMPTY_ON_PURPOSE}\n");
    let keys = AuthorizedKeys::load(Some(&text), None).unwrap();
    assert!(keys.keys.is_empty());
    let probe = PublicKey::from_openssh(KEY).unwrap();
    assert!(keys.find(&probe).is_none());
    // The marker must be the whole line: a mention in another comment is not enough.
    assert!(AuthorizedKeys::load(Some(&format!("# not {EMPTY_ON_PURPOSE}\n")), None).is_err());
}

// Moved from key_options' tests: the key-type check is authorized_keys' own.
#[test]
fn lines_sshd_rejects_fail_in_the_tokenizer() {
    let bad = [
        ("from=\"10.0.0.1 ", "unterminated"),
        ("from=10.0.0.1", "double-quoted"),
        ("from", "needs a value"),
        ("permitopen", "needs a value"),
        ("expiry-time", "needs a value"),
        ("principals,cert-authority", "needs a value"),
        ("restrict=\"yes\"", "takes no value"),
        ("no-such-option", "unknown option"),
        ("from=\"10.0.0.1\" ,no-pty", "expected a key type"),
        ("no-pty,,restrict", "expected an option name"),
    ];
    for (options, why) in bad {
        let e = parse_line(&format!("{options} {KEY}"), 1).unwrap_err();
        assert!(e.contains(why), "{options}: {e}");
    }
}

fn load_with_min(text: &str, min_rsa_bits: u32) -> Result<AuthorizedKeys, KeyListError> {
    KeySources {
        keys: Some(text.to_owned()),
        min_rsa_bits: MinRsaBits::new(min_rsa_bits).unwrap(),
        ..KeySources::default()
    }
    .load()
}

#[test]
fn small_rsa_lines_are_rejected_alone_with_their_size() {
    use crate::testkit::{RSA_1024, RSA_2048};
    let text =
        format!("{KEY}\n{RSA_1024}\nno-pty,bogus {KEY}\ncert-authority {RSA_1024}\n{RSA_2048}\n");
    let keys = load_with_min(&text, MinRsaBits::DEFAULT).unwrap();
    assert_eq!(keys.keys.iter().map(|k| k.line).collect::<Vec<_>>(), [1, 5]);
    let rejected: Vec<_> = keys.rejected.iter().map(|e| e.line).collect();
    assert_eq!(rejected, [2, 3, 4], "in line order: {:?}", keys.rejected);
    assert!(
        keys.rejected[0]
            .to_string()
            .starts_with("line 2: RSA key of 1024 bits is below the minimum of 2048 bits"),
        "{}",
        keys.rejected[0]
    );
    assert!(
        keys.rejected[2]
            .message
            .starts_with("RSA cert-authority key of 1024 bits"),
        "{}",
        keys.rejected[2]
    );
    let lowered = load_with_min(&text, 1024).unwrap();
    assert_eq!(lowered.keys.len(), 4);
    assert_eq!(lowered.min_rsa_bits.bits(), 1024);
}

#[test]
fn a_list_of_small_rsa_keys_only_is_an_error() {
    let e = load_with_min(crate::testkit::RSA_1024, MinRsaBits::DEFAULT).unwrap_err();
    assert!(
        e.0.contains("every key line was rejected (first: line 1: RSA key of 1024 bits"),
        "{e}"
    );
}

#[test]
fn a_security_key_line_without_no_touch_required_loads_with_a_warning() {
    use crate::testkit::{SK_ECDSA, SK_ED25519};
    let warned = |line: &str| {
        let k = parse_line(line, 1).unwrap();
        k.restrictions
            .warnings
            .iter()
            .any(|w| w.starts_with("this line can never log in") && w.contains("no-touch-required"))
    };
    for sk in [SK_ED25519, SK_ECDSA] {
        assert!(warned(sk), "{sk}");
        assert!(warned(&format!("no-touch-required,touch-required {sk}")));
        assert!(!warned(&format!("no-touch-required {sk}")));
        // A security key as a CA: the touch concerns the certificate's key, not its signer.
        assert!(!warned(&format!("cert-authority {sk}")));
    }
    assert!(!warned(KEY));
}
