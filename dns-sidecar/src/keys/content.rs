//! The text of the two files, assembled from what the sources hold: each source's lines under
//! a comment naming it and its version (`# ssm:/jumpbox/users/alice (version 3)`), so a line
//! the bastion logs by number can be traced to its source. Lines whose key would not decode
//! are replaced by a comment (see [`crate::keys::keyline`]). Pure: no I/O.

use crate::keys::keyline::{check_authorized, check_revoked, is_entry};
use crate::keys::parameters::Parameter;
use crate::keys::secret::SecretText;

/// The first line of both files.
const HEADER: &str = "# Written by dns-sidecar (key sync); edits here are replaced at the next \
                      change of a source.\n";

/// The line an authorized_keys file without any key carries, so the bastion can tell an
/// intentionally empty list (nobody may log in) from a truncated or mistaken file (which it
/// refuses, keeping the keys it has). The bastion looks for this exact text.
pub const EMPTY_ON_PURPOSE: &str = "# empty on purpose: nobody may log in";

/// What went into one file from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCount {
    /// `secretsmanager:<id>` or `ssm:<parameter name>`.
    pub source: String,
    pub version: String,
    /// Non-blank lines in the source.
    pub lines: usize,
    /// Key lines written.
    pub keys: usize,
}

/// A line left out because the bastion could not load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub source: String,
    /// 1-based line number within the source's value.
    pub line: usize,
    pub reason: String,
}

/// One file's text and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assembled {
    pub text: String,
    pub counts: Vec<SourceCount>,
    /// Key lines in the whole file.
    pub keys: usize,
    pub dropped: Vec<Dropped>,
}

impl Assembled {
    /// `source@version: keys/lines` per source, for the log and the health line.
    pub fn summary(&self) -> String {
        self.counts
            .iter()
            .map(|c| format!("{} v{}: {}/{}", c.source, c.version, c.keys, c.lines))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Append one source's block.
    fn add(
        &mut self,
        source: &str,
        version: &str,
        value: &str,
        check: fn(&str) -> Result<(), String>,
    ) {
        let source = printable_label(source);
        self.text
            .push_str(&format!("# {source} (version {version})\n"));
        let mut count = SourceCount {
            source: source.clone(),
            version: version.to_string(),
            lines: 0,
            keys: 0,
        };
        for (i, raw) in value.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            count.lines += 1;
            if !is_entry(line) {
                self.text.push_str(line);
                self.text.push('\n');
                continue;
            }
            match check(line) {
                Ok(()) => {
                    count.keys += 1;
                    self.text.push_str(line);
                    self.text.push('\n');
                }
                Err(reason) => {
                    self.text.push_str(&format!(
                        "# line {} of {source} left out: {reason}\n",
                        i + 1
                    ));
                    self.dropped.push(Dropped {
                        source: source.clone(),
                        line: i + 1,
                        reason,
                    });
                }
            }
        }
        self.keys += count.keys;
        self.counts.push(count);
    }
}

/// Control characters out of a label that goes into a comment line.
fn printable_label(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The authorized_keys text: the secret's lines, then each parameter's, in name order.
pub fn authorized(secret: Option<&SecretText>, parameters: Option<&[Parameter]>) -> Assembled {
    let mut out = Assembled {
        text: HEADER.to_string(),
        ..Assembled::default()
    };
    if let Some(s) = secret {
        out.add(
            &format!("secretsmanager:{}", s.id),
            &s.version,
            &s.text,
            check_authorized,
        );
    }
    for p in parameters.unwrap_or_default() {
        out.add(
            &format!("ssm:{}", p.name),
            &p.version.to_string(),
            &p.value,
            check_authorized,
        );
    }
    if out.keys == 0 {
        out.text.push_str(EMPTY_ON_PURPOSE);
        out.text.push('\n');
    }
    out
}

/// The revoked_keys text: the revocation secret's lines, or only comments without one.
pub fn revoked(secret: Option<&SecretText>) -> Assembled {
    let mut out = Assembled {
        text: HEADER.to_string(),
        ..Assembled::default()
    };
    match secret {
        Some(s) => out.add(
            &format!("secretsmanager:{}", s.id),
            &s.version,
            &s.text,
            check_revoked,
        ),
        None => out
            .text
            .push_str("# no revocation source (KEYS_REVOKED_SECRET_ID is not set)\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILePIUXBLdMITv0JAjfkXKJiywwJl/AIAVavBrVHDR/p alice";
    const BOB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOgC1vXCuEEQNmSKLKe7Sx83wz95zmkkXg6eGOFuHWov bob";

    fn secret(text: &str) -> SecretText {
        SecretText {
            id: "jumpbox/keys".into(),
            version: "v-1".into(),
            text: text.into(),
        }
    }

    fn param(name: &str, version: i64, value: &str) -> Parameter {
        Parameter {
            name: name.into(),
            version,
            value: value.into(),
        }
    }

    #[test]
    fn each_source_is_introduced_by_a_comment_naming_it_and_its_version() {
        let s = secret(&format!("{ALICE}\r\n\n# ops team\n"));
        let params = [param("/jumpbox/users/bob", 3, BOB)];
        let a = authorized(Some(&s), Some(&params));
        assert_eq!(
            a.text,
            format!(
                "{HEADER}# secretsmanager:jumpbox/keys (version v-1)\n{ALICE}\n# ops team\n\
                 # ssm:/jumpbox/users/bob (version 3)\n{BOB}\n"
            )
        );
        assert_eq!(a.keys, 2);
        assert_eq!(a.counts[0].lines, 2);
        assert_eq!(a.counts[0].keys, 1);
        assert_eq!(
            a.summary(),
            "secretsmanager:jumpbox/keys vv-1: 1/2, ssm:/jumpbox/users/bob v3: 1/1"
        );
    }

    #[test]
    fn a_line_that_would_not_decode_is_left_out_with_a_comment() {
        let params = [param(
            "/jumpbox/users/eve",
            1,
            &format!("ssh-ed25519 AAAA!!\n{BOB}"),
        )];
        let a = authorized(None, Some(&params));
        assert_eq!(a.keys, 1);
        assert_eq!(a.dropped.len(), 1);
        assert_eq!(a.dropped[0].line, 1);
        assert!(
            a.text
                .contains("# line 1 of ssm:/jumpbox/users/eve left out: "),
            "{}",
            a.text
        );
        assert!(!a.text.contains("AAAA!!"));
    }

    #[test]
    fn no_key_at_all_says_so_on_purpose() {
        let a = authorized(Some(&secret("\n# nobody\n")), Some(&[]));
        assert_eq!(a.keys, 0);
        assert!(
            a.text.ends_with(&format!("{EMPTY_ON_PURPOSE}\n")),
            "{}",
            a.text
        );
        let a = authorized(Some(&secret(ALICE)), None);
        assert!(!a.text.contains(EMPTY_ON_PURPOSE));
    }

    #[test]
    fn the_revocation_file_exists_without_a_source() {
        let r = revoked(None);
        assert_eq!(r.keys, 0);
        assert!(r.text.lines().all(|l| l.starts_with('#')), "{}", r.text);
        let r = revoked(Some(&secret(&format!(
            "{ALICE}\nSHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s\nnot a key"
        ))));
        assert_eq!(r.keys, 2);
        assert_eq!(r.dropped.len(), 1);
    }

    #[test]
    fn same_sources_same_text() {
        let params = [param("/jumpbox/users/bob", 3, BOB)];
        let one = authorized(Some(&secret(ALICE)), Some(&params));
        let two = authorized(Some(&secret(ALICE)), Some(&params));
        assert_eq!(one.text, two.text);
        let bumped = [param("/jumpbox/users/bob", 4, BOB)];
        assert_ne!(
            one.text,
            authorized(Some(&secret(ALICE)), Some(&bumped)).text
        );
    }
}
