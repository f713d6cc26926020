//! OpenSSH `authorized_keys` parsing and the revocation list: keys with their options,
//! certificate authorities, fingerprints, and the lookups used at login.
//!
//! The format is sshd(8)'s: `[options] keytype base64 [comment]`, options comma-separated,
//! values in double quotes with `\"` escapes. Options become enforced restrictions
//! (`key_options`). A line whose key does not decode is an error for the whole file (a typo
//! must not silently lock someone out); a line with an unknown or malformed option, or with an
//! RSA key below `BASTION_MIN_RSA_BITS`, is rejected alone, with an error naming it, and the
//! other lines still load.
//!
//! The live set, re-read while the server runs, is `key_store`'s.

use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PublicKey};

use crate::key_options::{parse_options, truncate, KeyOption, KeyRestrictions};
use crate::key_strength::{check_user_presence, MinRsaBits};

#[derive(Debug, Clone)]
pub struct AuthorizedKey {
    pub key: PublicKey,
    pub options: Vec<KeyOption>,
    /// 1-based line number in the source.
    pub line: usize,
    pub comment: String,
    pub fingerprint: String,
    /// What the options allow, enforced at login and at each tunnel.
    pub restrictions: KeyRestrictions,
}

/// The loaded key list: plain keys and certificate authorities, plus the revocation list.
#[derive(Debug, Clone)]
pub struct AuthorizedKeys {
    pub keys: Vec<AuthorizedKey>,
    /// Where the keys came from, for messages: the setting name or the file path.
    pub source: String,
    /// Lines rejected for their options or for an RSA key below `min_rsa_bits` (logged; the
    /// other lines are in `keys`), in line order.
    pub rejected: Vec<LineError>,
    pub revoked: Revocations,
    /// `BASTION_MIN_RSA_BITS`, also checked at login (a certificate's key and CA).
    pub min_rsa_bits: MinRsaBits,
}

/// Why the key list or the revocation list cannot be used: names the setting (or file and
/// line) and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyListError(pub String);

impl std::fmt::Display for KeyListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyListError {}

/// Where the key list and the revocation list come from (content or file).
#[derive(Debug, Clone, Default)]
pub struct KeySources {
    pub keys: Option<String>,
    pub keys_file: Option<PathBuf>,
    pub revoked: Option<String>,
    pub revoked_file: Option<PathBuf>,
    /// RSA keys below this are rejected, line by line.
    pub min_rsa_bits: MinRsaBits,
}

impl KeySources {
    fn read(&self) -> Result<(String, String, String), String> {
        let (text, source) = match (&self.keys, &self.keys_file) {
            (Some(text), _) => (text.clone(), "BASTION_AUTHORIZED_KEYS".to_owned()),
            (None, Some(path)) => (
                std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "BASTION_AUTHORIZED_KEYS_FILE: cannot read {}: {e}; check the path and \
                         its permissions",
                        path.display()
                    )
                })?,
                format!("BASTION_AUTHORIZED_KEYS_FILE ({})", path.display()),
            ),
            (None, None) => {
                return Err(
                    "no authorized keys: set BASTION_AUTHORIZED_KEYS to the text of an \
                     authorized_keys file, or BASTION_AUTHORIZED_KEYS_FILE to its path \
                     (for a local try: BASTION_AUTHORIZED_KEYS=\"$(cat ~/.ssh/id_ed25519.pub)\")"
                        .into(),
                )
            }
        };
        let revoked = match (&self.revoked, &self.revoked_file) {
            (Some(text), _) => text.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "BASTION_REVOKED_KEYS_FILE: cannot read {}: {e}; check the path and its \
                     permissions",
                    path.display()
                )
            })?,
            (None, None) => String::new(),
        };
        Ok((text, source, revoked))
    }

    /// Read and parse everything. A key that does not decode, an unreadable file, a bad
    /// revocation line or a list without any usable key is an error.
    pub fn load(&self) -> Result<AuthorizedKeys, KeyListError> {
        let (text, source, revoked_text) = self.read().map_err(KeyListError)?;
        let revoked = Revocations::parse(&revoked_text)
            .map_err(|e| KeyListError(format!("BASTION_REVOKED_KEYS: {e}")))?;
        let (keys, rejected) = parse(&text).map_err(|e| KeyListError(format!("{source}: {e}")))?;
        let (keys, rejected) = reject_weak_keys(keys, rejected, self.min_rsa_bits);
        if keys.is_empty() && !empty_on_purpose(&text) {
            let why = match rejected.first() {
                Some(e) => format!("every key line was rejected (first: {e})"),
                None => "holds no keys; add at least one line such as \
                         `ssh-ed25519 AAAA... alice@laptop` (or, to let nobody in, the line \
                         `# empty on purpose: nobody may log in`)"
                    .to_owned(),
            };
            return Err(KeyListError(format!("{source}: {why}")));
        }
        Ok(AuthorizedKeys {
            keys,
            source,
            rejected,
            revoked,
            min_rsa_bits: self.min_rsa_bits,
        })
    }
}

/// The line that makes a list without keys valid: nobody may log in. A list without keys is
/// otherwise an error (a truncated or mistaken file must not lock everyone out, nor close
/// every tunnel); `dns-sidecar`'s key sync writes this line when its sources hold no key.
pub const EMPTY_ON_PURPOSE: &str = "# empty on purpose: nobody may log in";

fn empty_on_purpose(text: &str) -> bool {
    text.lines().any(|l| l.trim() == EMPTY_ON_PURPOSE)
}

/// Move the lines whose RSA key is below `min` from `keys` to `rejected` (kept in line order):
/// like a line with an option the bastion cannot honour, such a line is refused alone, with
/// its line number and size, and the other lines still load.
fn reject_weak_keys(
    keys: Vec<AuthorizedKey>,
    mut rejected: Vec<LineError>,
    min: MinRsaBits,
) -> (Vec<AuthorizedKey>, Vec<LineError>) {
    let mut kept = Vec::with_capacity(keys.len());
    for key in keys {
        let what = if key.restrictions.cert_authority {
            "cert-authority key"
        } else {
            "key"
        };
        match min.check(key.key.key_data(), what) {
            Ok(()) => kept.push(key),
            Err(message) => rejected.push(LineError {
                line: key.line,
                message,
            }),
        }
    }
    rejected.sort_by_key(|e| e.line);
    (kept, rejected)
}

impl AuthorizedKeys {
    /// Load from `BASTION_AUTHORIZED_KEYS` content or `BASTION_AUTHORIZED_KEYS_FILE`.
    pub fn load(
        content: Option<&str>,
        file: Option<&Path>,
    ) -> Result<AuthorizedKeys, KeyListError> {
        KeySources {
            keys: content.map(str::to_owned),
            keys_file: file.map(Path::to_path_buf),
            ..KeySources::default()
        }
        .load()
    }

    /// The plain-key line authorizing this key, if any (compares key material, not comments;
    /// `cert-authority` lines never authorize their key directly).
    pub fn find(&self, key: &PublicKey) -> Option<&AuthorizedKey> {
        self.keys
            .iter()
            .find(|k| !k.restrictions.cert_authority && k.key.key_data() == key.key_data())
    }

    /// The `cert-authority` lines.
    pub fn authorities(&self) -> impl Iterator<Item = &AuthorizedKey> {
        self.keys.iter().filter(|k| k.restrictions.cert_authority)
    }

    /// The `cert-authority` line of this CA key, by line number.
    pub fn authority_at(&self, line: usize) -> Option<&AuthorizedKey> {
        self.authorities().find(|k| k.line == line)
    }
}

/// Revoked keys, by SHA256 fingerprint (`BASTION_REVOKED_KEYS` / `_FILE`): lines holding a
/// public key (`ssh-ed25519 AAAA…`, options not allowed) or a `SHA256:…` fingerprint, `#`
/// comments. A revoked key cannot log in, directly or as a certificate's key, and a revoked CA
/// key signs nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    fingerprints: std::collections::HashSet<String>,
}

impl Revocations {
    pub fn parse(text: &str) -> Result<Revocations, LineError> {
        let mut fingerprints = std::collections::HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |message: String| LineError {
                line: i + 1,
                message,
            };
            if let Some(b64) = line.strip_prefix("SHA256:") {
                let b64 = b64.split_whitespace().next().unwrap_or_default();
                if b64.len() != 43
                    || !b64
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
                {
                    return Err(fail(format!(
                        "\"{}\" is not a SHA256 fingerprint as ssh-keygen -l prints it",
                        truncate(line)
                    )));
                }
                fingerprints.insert(format!("SHA256:{b64}"));
                continue;
            }
            let mut words = line.split_whitespace();
            let kind = words.next().unwrap_or_default();
            let blob = words.next().unwrap_or_default();
            if !is_key_type(kind) || blob.is_empty() {
                return Err(fail(format!(
                    "expected a public key or a SHA256:... fingerprint, found \"{}\"",
                    truncate(line)
                )));
            }
            let key = PublicKey::from_openssh(&format!("{kind} {blob}"))
                .map_err(|e| fail(format!("the {kind} key data does not decode ({e})")))?;
            fingerprints.insert(key.fingerprint(HashAlg::Sha256).to_string());
        }
        Ok(Revocations { fingerprints })
    }

    pub fn is_revoked(&self, fingerprint: &str) -> bool {
        self.fingerprints.contains(fingerprint)
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

/// A malformed line: the message names the line number and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What is wrong with a line.
#[derive(Debug)]
pub enum LineProblem {
    /// The key itself does not parse: the whole file is refused.
    Key(String),
    /// The key is fine but an option is unknown or malformed: this line alone is rejected.
    Options(String),
}

impl std::fmt::Display for LineProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineProblem::Key(m) | LineProblem::Options(m) => f.write_str(m),
        }
    }
}

impl From<LineProblem> for String {
    fn from(p: LineProblem) -> String {
        p.to_string()
    }
}

impl LineProblem {
    pub fn contains(&self, needle: &str) -> bool {
        self.to_string().contains(needle)
    }
}

/// Parse a whole file: the keys, and the lines rejected for their options. A line whose key
/// does not parse is an error for the whole file.
pub fn parse(text: &str) -> Result<(Vec<AuthorizedKey>, Vec<LineError>), LineError> {
    let mut keys = Vec::new();
    let mut rejected = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line, i + 1) {
            Ok(key) => keys.push(key),
            Err(LineProblem::Options(message)) => rejected.push(LineError {
                line: i + 1,
                message,
            }),
            Err(LineProblem::Key(message)) => {
                return Err(LineError {
                    line: i + 1,
                    message,
                })
            }
        }
    }
    Ok((keys, rejected))
}

fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-")
        || word.starts_with("ecdsa-sha2-")
        || word.starts_with("sk-ssh-")
        || word.starts_with("sk-ecdsa-")
}

/// Parse one non-empty, non-comment line.
pub fn parse_line(line: &str, number: usize) -> Result<AuthorizedKey, LineProblem> {
    let first = line.split_whitespace().next().unwrap_or_default();
    let (options, rest) = if is_key_type(first) {
        (Vec::new(), line)
    } else {
        let (options, rest) = parse_options(line).map_err(LineProblem::Key)?;
        (options, rest.trim_start())
    };
    let key = parse_key(rest)?;
    let mut restrictions = KeyRestrictions::from_options(&options).map_err(LineProblem::Options)?;
    if !restrictions.cert_authority {
        if let Err(why) = check_user_presence(key.0.key_data(), restrictions.no_touch_required) {
            restrictions
                .warnings
                .push(format!("this line can never log in: {why}"));
        }
    }
    let fingerprint = key.0.fingerprint(HashAlg::Sha256).to_string();
    Ok(AuthorizedKey {
        key: key.0,
        options,
        line: number,
        comment: key.1,
        fingerprint,
        restrictions,
    })
}

/// `keytype base64 [comment]` → the key and its comment.
fn parse_key(rest: &str) -> Result<(PublicKey, String), LineProblem> {
    let fail = |m: String| LineProblem::Key(m);
    let mut words = rest.splitn(3, |c: char| c.is_ascii_whitespace());
    let kind = words.next().unwrap_or_default();
    let blob = words.next().unwrap_or_default().trim();
    let comment = words.next().unwrap_or_default().trim().to_owned();
    if !is_key_type(kind) {
        return Err(fail(format!(
            "expected a key type such as ssh-ed25519 after the options, found \"{}\"",
            truncate(kind)
        )));
    }
    if kind.ends_with("-cert-v01@openssh.com") {
        return Err(fail(format!(
            "\"{kind}\" is a certificate; authorized_keys lists plain keys (or a CA key \
             marked cert-authority)"
        )));
    }
    if blob.is_empty() {
        return Err(fail(format!("the {kind} key has no base64 key data")));
    }
    let key = PublicKey::from_openssh(&format!("{kind} {blob}"))
        .map_err(|e| fail(format!("the {kind} key data does not decode ({e})")))?;
    Ok((key, comment))
}

#[cfg(test)]
mod tests;
