//! OpenSSH `authorized_keys` parsing: key options, public keys, fingerprints, and the lookup
//! used at authentication.
//!
//! The format is sshd(8)'s: `[options] keytype base64 [comment]`, options comma-separated,
//! values in double quotes with `\"` escapes. Options are parsed and kept with each key.
//! Options that would restrict a key (`from=`, `permitopen=`, `expiry-time=`, `restrict`,
//! `no-port-forwarding`, `cert-authority`, `principals=`) are not enforced by this version, so
//! such a key fails closed: it is loaded, reported at start, and refused at login, rather than
//! granted more than its line says.

use std::path::Path;

use russh::keys::{HashAlg, PublicKey};

use crate::config::ConfigError;

/// One `name` or `name="value"` option, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOption {
    pub name: String,
    pub value: Option<String>,
}

/// Options a key line may carry, by what this version does with them.
const ENFORCEMENT_PENDING: &[&str] = &[
    "from",
    "permitopen",
    "permitlisten",
    "expiry-time",
    "restrict",
    "no-port-forwarding",
    "cert-authority",
    "principals",
];
/// Options that ask for things the bastion never does (commands, ptys, X11, agent,
/// environment, user rc): harmless here.
const NO_EFFECT: &[&str] = &[
    "command",
    "environment",
    "no-agent-forwarding",
    "no-pty",
    "no-user-rc",
    "no-x11-forwarding",
    "agent-forwarding",
    "port-forwarding",
    "pty",
    "user-rc",
    "x11-forwarding",
    "no-touch-required",
    "touch-required",
    "verify-required",
    "tunnel",
];
const NEEDS_VALUE: &[&str] = &[
    "from",
    "permitopen",
    "permitlisten",
    "expiry-time",
    "principals",
    "command",
    "environment",
    "tunnel",
];

#[derive(Debug, Clone)]
pub struct AuthorizedKey {
    pub key: PublicKey,
    pub options: Vec<KeyOption>,
    /// 1-based line number in the source.
    pub line: usize,
    pub comment: String,
    pub fingerprint: String,
}

impl AuthorizedKey {
    /// Options on this line that this version cannot enforce yet (the key is refused).
    pub fn unenforced_options(&self) -> Vec<&str> {
        self.options
            .iter()
            .map(|o| o.name.as_str())
            .filter(|n| ENFORCEMENT_PENDING.contains(n))
            .collect()
    }
}

/// The loaded key list.
#[derive(Debug, Clone)]
pub struct AuthorizedKeys {
    pub keys: Vec<AuthorizedKey>,
    /// Where the keys came from, for messages: the setting name or the file path.
    pub source: String,
}

impl AuthorizedKeys {
    /// Load from `BASTION_AUTHORIZED_KEYS` content or `BASTION_AUTHORIZED_KEYS_FILE`.
    pub fn load(content: Option<&str>, file: Option<&Path>) -> Result<AuthorizedKeys, ConfigError> {
        let (text, source) = match (content, file) {
            (Some(text), _) => (text.to_owned(), "BASTION_AUTHORIZED_KEYS".to_owned()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!(
                        "BASTION_AUTHORIZED_KEYS_FILE: cannot read {}: {e}; check the path and \
                         its permissions",
                        path.display()
                    ))
                })?;
                (
                    text,
                    format!("BASTION_AUTHORIZED_KEYS_FILE ({})", path.display()),
                )
            }
            (None, None) => {
                return Err(ConfigError(
                    "no authorized keys: set BASTION_AUTHORIZED_KEYS to the text of an \
                     authorized_keys file, or BASTION_AUTHORIZED_KEYS_FILE to its path \
                     (for a local try: BASTION_AUTHORIZED_KEYS=\"$(cat ~/.ssh/id_ed25519.pub)\")"
                        .into(),
                ))
            }
        };
        let keys = parse(&text).map_err(|e| ConfigError(format!("{source}: {e}")))?;
        if keys.is_empty() {
            return Err(ConfigError(format!(
                "{source}: holds no keys; add at least one line such as \
                 `ssh-ed25519 AAAA... alice@laptop`"
            )));
        }
        Ok(AuthorizedKeys { keys, source })
    }

    /// The line authorizing this key, if any (compares key material, not comments).
    pub fn find(&self, key: &PublicKey) -> Option<&AuthorizedKey> {
        self.keys
            .iter()
            .find(|k| k.key.key_data() == key.key_data())
    }
}

/// A malformed line: the message names the line number and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parse a whole file; the first malformed line is an error.
pub fn parse(text: &str) -> Result<Vec<AuthorizedKey>, LineError> {
    let mut keys = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = parse_line(line, i + 1).map_err(|message| LineError {
            line: i + 1,
            message,
        })?;
        keys.push(key);
    }
    Ok(keys)
}

fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-")
        || word.starts_with("ecdsa-sha2-")
        || word.starts_with("sk-ssh-")
        || word.starts_with("sk-ecdsa-")
}

/// Parse one non-empty, non-comment line.
pub fn parse_line(line: &str, number: usize) -> Result<AuthorizedKey, String> {
    let first = line.split_whitespace().next().unwrap_or_default();
    let (options, rest) = if is_key_type(first) {
        (Vec::new(), line)
    } else {
        let (options, rest) = parse_options(line)?;
        (options, rest.trim_start())
    };
    let mut words = rest.splitn(3, |c: char| c.is_ascii_whitespace());
    let kind = words.next().unwrap_or_default();
    let blob = words.next().unwrap_or_default().trim();
    let comment = words.next().unwrap_or_default().trim().to_owned();
    if !is_key_type(kind) {
        return Err(format!(
            "expected a key type such as ssh-ed25519 after the options, found \"{}\"",
            truncate(kind)
        ));
    }
    if kind.ends_with("-cert-v01@openssh.com") {
        return Err(format!(
            "\"{kind}\" is a certificate; authorized_keys lists plain keys (or a CA key \
             marked cert-authority)"
        ));
    }
    if blob.is_empty() {
        return Err(format!("the {kind} key has no base64 key data"));
    }
    let key = PublicKey::from_openssh(&format!("{kind} {blob}"))
        .map_err(|e| format!("the {kind} key data does not decode ({e})"))?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    Ok(AuthorizedKey {
        key,
        options,
        line: number,
        comment,
        fingerprint,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Split the leading option list off a line: returns the options and the rest of the line.
fn parse_options(line: &str) -> Result<(Vec<KeyOption>, &str), String> {
    let mut options = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
            i += 1;
        }
        let name = line[start..i].to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!(
                "malformed options near \"{}\": expected an option name",
                truncate(&line[start..])
            ));
        }
        let mut value = None;
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            if i >= bytes.len() || bytes[i] != b'"' {
                return Err(format!("option {name}= needs a double-quoted value"));
            }
            i += 1;
            let mut v = String::new();
            let mut closed = false;
            let mut chars = line[i..].char_indices();
            while let Some((off, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, '"')) => v.push('"'),
                        Some((_, other)) => {
                            v.push('\\');
                            v.push(other);
                        }
                        None => break,
                    },
                    '"' => {
                        i += off + 1;
                        closed = true;
                        break;
                    }
                    other => v.push(other),
                }
            }
            if !closed {
                return Err(format!("option {name}= has an unterminated quoted value"));
            }
            value = Some(v);
        }
        check_option(&name, value.as_deref())?;
        options.push(KeyOption { name, value });
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b' ') | Some(b'\t') => return Ok((options, &line[i..])),
            Some(_) => {
                return Err(format!(
                    "malformed options near \"{}\": options are separated by commas, \
                     without spaces",
                    truncate(&line[i..])
                ))
            }
            None => return Err("the line ends after its options: the key is missing".into()),
        }
    }
}

fn check_option(name: &str, value: Option<&str>) -> Result<(), String> {
    let known = ENFORCEMENT_PENDING.contains(&name) || NO_EFFECT.contains(&name);
    if !known {
        return Err(format!(
            "unknown option \"{name}\" (see sshd(8) AUTHORIZED_KEYS FILE FORMAT)"
        ));
    }
    match (NEEDS_VALUE.contains(&name), value) {
        (true, None) => Err(format!("option {name} needs a value: {name}=\"...\"")),
        (false, Some(_)) => Err(format!("option {name} takes no value")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICIjdiUtJdomjTqyaNtCcLVJrVxramimyS26/xj01HsR";

    #[test]
    fn plain_key_with_comment() {
        let keys = parse(&format!("# team\n\n{KEY} alice@laptop\n")).unwrap();
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
        assert_eq!(k.unenforced_options(), vec!["from", "permitopen"]);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse(&format!("{KEY}\nssh-ed25519 notbase64!!\n")).unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("bogus-option ssh-ed25519 AAAA").unwrap_err();
        assert!(e.message.contains("unknown option"), "{e}");
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
}
