//! Is a line one the bastion can load? A light check, before the line reaches the shared
//! files: the bastion refuses a whole file when one line's key does not decode (and keeps its
//! previous keys), so one bad self-service parameter would stop every later change, removals
//! included. Lines failing this check are left out (replaced by a comment saying why); the
//! bastion stays the authority on everything else (options, key sizes), which it rejects line
//! by line.

/// Key types as the bastion recognises them (`ssh-…`, `ecdsa-sha2-…`, `sk-…`).
fn is_key_type(word: &str) -> bool {
    ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| word.starts_with(p))
}

/// A line worth checking: not blank, not a comment.
pub fn is_entry(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty() && !line.starts_with('#')
}

/// An authorized_keys line: `[options] keytype base64 [comment]`.
pub fn check_authorized(line: &str) -> Result<(), String> {
    let line = line.trim();
    let first = line.split_whitespace().next().unwrap_or_default();
    let rest = if is_key_type(first) {
        line
    } else {
        skip_options(line)?
    };
    check_key(rest)
}

/// A revocation line: a public key or a `SHA256:` fingerprint.
pub fn check_revoked(line: &str) -> Result<(), String> {
    let line = line.trim();
    if let Some(b64) = line.strip_prefix("SHA256:") {
        let b64 = b64.split_whitespace().next().unwrap_or_default();
        let ok = b64.len() == 43
            && b64
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
        return if ok {
            Ok(())
        } else {
            Err("not a SHA256 fingerprint as ssh-keygen -l prints it".into())
        };
    }
    check_key(line)
}

/// The text after the options field (which ends at the first space outside double quotes).
fn skip_options(line: &str) -> Result<&str, String> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok(line[i..].trim_start()),
            _ => {}
        }
    }
    Err(if quoted {
        "an option's double quotes are not closed".into()
    } else {
        "no key after the options".into()
    })
}

/// `keytype base64 [comment]`: a known type whose key data decodes and names the same type.
fn check_key(text: &str) -> Result<(), String> {
    let mut words = text.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let blob = words.next().unwrap_or_default();
    if !is_key_type(kind) {
        return Err(format!(
            "expected a key type such as ssh-ed25519, found \"{}\"",
            kind.chars().take(40).collect::<String>()
        ));
    }
    if kind.ends_with("-cert-v01@openssh.com") {
        return Err(format!("{kind} is a certificate, not a key"));
    }
    let data = decode_base64(blob).ok_or_else(|| format!("the {kind} key data is not base64"))?;
    let named = data
        .get(..4)
        .and_then(|len| {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            data.get(4..4usize.saturating_add(len))
        })
        .filter(|name| *name == kind.as_bytes());
    match named {
        Some(_) => Ok(()),
        None => Err(format!("the key data is not a {kind} key")),
    }
}

/// Standard base64 (with or without `=` padding); `None` when malformed or empty.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if body.is_empty() || text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILePIUXBLdMITv0JAjfkXKJiywwJl/AIAVavBrVHDR/p";

    #[test]
    fn well_formed_lines_pass() {
        assert_eq!(check_authorized(ED), Ok(()));
        assert_eq!(check_authorized(&format!("{ED} alice@laptop")), Ok(()));
        let opts = format!("restrict,permitopen=\"10.0.0.1:22\",from=\"a b\" {ED} alice");
        assert_eq!(check_authorized(&opts), Ok(()));
        assert_eq!(check_revoked(ED), Ok(()));
        assert_eq!(
            check_revoked("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"),
            Ok(())
        );
    }

    #[test]
    fn lines_the_bastion_would_refuse_the_whole_file_for_fail() {
        assert!(check_authorized("ssh-ed25519 AAAA!!!!").is_err());
        assert!(check_authorized("ssh-ed25519").is_err());
        // An RSA key's data labelled as Ed25519.
        assert!(check_authorized("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB")
            .unwrap_err()
            .contains("not a ssh-ed25519 key"));
        assert!(check_authorized("hello world").is_err());
        assert!(check_authorized(&format!("from=\"10.0.0.1 {ED}")).is_err());
        assert!(
            check_authorized(&format!("ssh-ed25519-cert-v01@openssh.com {}", &ED[12..])).is_err()
        );
        assert!(check_revoked("SHA256:short").is_err());
        assert!(check_revoked("alice").is_err());
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert_eq!(decode_base64("aGVsbG8h").unwrap(), b"hello!");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("").is_none());
        assert!(decode_base64("aG$k").is_none());
    }

    #[test]
    fn comments_and_blank_lines_are_not_entries() {
        assert!(!is_entry("  # ssm:/jumpbox/users/alice"));
        assert!(!is_entry("   "));
        assert!(is_entry(ED));
    }
}
