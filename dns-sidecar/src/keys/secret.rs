//! A Secrets Manager secret as a key source, read by version: every interval one
//! `DescribeSecret` finds the version labelled `AWSCURRENT`, and only when that differs from
//! the version last read does `GetSecretValue` (by `VersionId`) fetch the text. An unchanged
//! secret costs one cheap call per interval.

use std::collections::HashMap;

use crate::keys::failure::SourceError;

const DESCRIBE: &str = "secretsmanager:DescribeSecret";
const GET: &str = "secretsmanager:GetSecretValue";

/// One version of a secret's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretText {
    /// The secret id as configured (name or ARN).
    pub id: String,
    pub version: String,
    pub text: String,
}

/// A secret and the version of it last read.
#[derive(Debug)]
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
    id: String,
    last: Option<SecretText>,
}

/// The version id carrying the `AWSCURRENT` stage.
pub fn current_version(stages: &HashMap<String, Vec<String>>) -> Option<&str> {
    stages
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == "AWSCURRENT"))
        .map(|(version, _)| version.as_str())
}

/// The cached text when it is still the current version; `None` means fetch `current`.
pub fn cached<'a>(last: Option<&'a SecretText>, current: &str) -> Option<&'a SecretText> {
    last.filter(|t| t.version == current)
}

impl SecretSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, id: &str) -> Self {
        SecretSource {
            client,
            id: id.to_string(),
            last: None,
        }
    }

    /// `secretsmanager:<id>`, for logs and the health line.
    pub fn name(&self) -> String {
        format!("secretsmanager:{}", self.id)
    }

    /// The current text: from the cache when `AWSCURRENT` did not move, else fetched.
    pub async fn read(&mut self) -> Result<SecretText, SourceError> {
        let described = self
            .client
            .describe_secret()
            .secret_id(&self.id)
            .send()
            .await
            .map_err(|e| SourceError::from_sdk(&self.name(), DESCRIBE, &e))?;
        let stages = described
            .version_ids_to_stages()
            .cloned()
            .unwrap_or_default();
        let Some(current) = current_version(&stages).map(str::to_string) else {
            return Err(SourceError::content(
                &self.name(),
                DESCRIBE,
                "the secret has no version labelled AWSCURRENT".into(),
                "give the secret a value (aws secretsmanager put-secret-value)",
            ));
        };
        if let Some(hit) = cached(self.last.as_ref(), &current) {
            return Ok(hit.clone());
        }
        let text = self.fetch(&current).await?;
        self.last = Some(text.clone());
        Ok(text)
    }

    async fn fetch(&self, version: &str) -> Result<SecretText, SourceError> {
        let value = self
            .client
            .get_secret_value()
            .secret_id(&self.id)
            .version_id(version)
            .send()
            .await
            .map_err(|e| SourceError::from_sdk(&self.name(), GET, &e))?;
        let text = match (value.secret_string(), value.secret_binary()) {
            (Some(s), _) => s.to_string(),
            (None, Some(b)) => String::from_utf8(b.as_ref().to_vec()).map_err(|_| {
                SourceError::content(
                    &self.name(),
                    GET,
                    "the secret's binary value is not UTF-8 text".into(),
                    "store the authorized_keys text as the secret string",
                )
            })?,
            (None, None) => String::new(),
        };
        Ok(SecretText {
            id: self.id.clone(),
            version: value.version_id().unwrap_or(version).to_string(),
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(pairs: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(v, l)| (v.to_string(), l.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn the_current_version_is_the_one_labelled_awscurrent() {
        let s = stages(&[("v1", &["AWSPREVIOUS"]), ("v2", &["AWSCURRENT", "mine"])]);
        assert_eq!(current_version(&s), Some("v2"));
        assert_eq!(current_version(&stages(&[("v1", &["AWSPENDING"])])), None);
    }

    #[test]
    fn an_unchanged_version_is_not_fetched_again() {
        let last = SecretText {
            id: "s".into(),
            version: "v1".into(),
            text: "ssh-ed25519 AAAA a\n".into(),
        };
        assert_eq!(cached(Some(&last), "v1"), Some(&last));
        assert_eq!(cached(Some(&last), "v2"), None);
        assert_eq!(cached(None, "v1"), None);
    }
}
