//! SSM Parameter Store as a key source: every parameter under one path (recursive, decrypted,
//! all pages of `GetParametersByPath`), one per person, each holding authorized_keys lines.
//! Standard-parameter API calls cost nothing, so the whole path is read every interval and
//! compared by content; a deleted parameter simply is not there any more.

use crate::keys::failure::SourceError;

const CALL: &str = "ssm:GetParametersByPath";

/// One parameter's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The full name, e.g. `/jumpbox/users/alice`.
    pub name: String,
    pub version: i64,
    pub value: String,
}

/// The parameters under one path.
#[derive(Debug)]
pub struct ParameterSource {
    client: aws_sdk_ssm::Client,
    path: String,
}

impl ParameterSource {
    /// `path` without a trailing slash (as [`crate::keys::settings`] leaves it).
    pub fn new(client: aws_sdk_ssm::Client, path: &str) -> Self {
        ParameterSource {
            client,
            path: path.to_string(),
        }
    }

    /// `ssm:<path>/`, for logs and the health line.
    pub fn name(&self) -> String {
        format!("ssm:{}/", self.path)
    }

    /// Every parameter under the path, sorted by name.
    pub async fn read(&self) -> Result<Vec<Parameter>, SourceError> {
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(&self.path)
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| SourceError::from_sdk(&self.name(), CALL, &e))?;
            for p in page.parameters() {
                found.push(Parameter {
                    name: p.name().unwrap_or_default().to_string(),
                    version: p.version(),
                    value: p.value().unwrap_or_default().to_string(),
                });
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}
