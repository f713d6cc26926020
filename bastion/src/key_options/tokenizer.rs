//! The `authorized_keys` option tokenizer: splits the leading `name` / `name="value"` list
//! (comma-separated, `\"` escapes inside quotes) off a line, as sshd(8) reads it.

/// One `name` or `name="value"` option, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOption {
    pub name: String,
    pub value: Option<String>,
}

/// Split the leading option list off a line: returns the options and the rest of the line.
pub fn parse_options(line: &str) -> Result<(Vec<KeyOption>, &str), String> {
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

/// The first 40 characters of `s`, for messages.
pub fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}
