//! `bastion::authorized_keys::parse` (key lines with their options) and `Revocations::parse`
//! on arbitrary text.
//!
//! Checks: no panic; every accepted key reparses alone (`parse_line`) to the same key and
//! options; line numbers point into the text; a revocation list built from the text answers
//! for every fingerprint of the accepted keys without panicking.
#![no_main]

use bastion::authorized_keys::{parse, parse_line, Revocations};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    let revocations = Revocations::parse(text).ok();
    if let Some(r) = &revocations {
        assert!(r.len() <= lines, "more revocations than lines");
        assert_eq!(r.is_empty(), r.len() == 0);
    }
    let Ok((keys, rejected)) = parse(text) else {
        return;
    };
    for error in &rejected {
        let _ = error.to_string();
    }
    for key in &keys {
        assert!(
            key.line >= 1 && key.line <= lines,
            "line {} of {lines}",
            key.line
        );
        let source = text.lines().nth(key.line - 1).expect("the key's line");
        let again = parse_line(source.trim(), key.line).expect("an accepted line reparses");
        assert_eq!(again.key, key.key);
        assert_eq!(again.options, key.options);
        assert_eq!(again.fingerprint, key.fingerprint);
        if let Some(r) = &revocations {
            let _ = r.is_revoked(&key.fingerprint);
        }
    }
});
