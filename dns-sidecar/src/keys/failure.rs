//! Why a key source could not be read: which source and call, the AWS error code, and a hint
//! at the usual fix (a missing IAM permission, a wrong or deleted secret, throttling, no route
//! to the endpoint). A read failure never changes the written files; the sync keeps the last
//! good set and tries again at the next interval.

use std::fmt;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// One failed read of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// `secretsmanager:<id>` or `ssm:<path>`.
    pub source: String,
    /// The API call, e.g. `secretsmanager:DescribeSecret`.
    pub call: &'static str,
    /// The AWS error code, when AWS answered.
    pub code: Option<String>,
    /// What went wrong, without request ids (so repeats of one failure compare equal).
    pub message: String,
    pub hint: String,
}

impl SourceError {
    /// From an SDK error of `call` on `source`.
    pub fn from_sdk<E, R>(source: &str, call: &'static str, e: &SdkError<E, R>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let (code, message) = match e {
            SdkError::ServiceError(se) => (
                se.err().code().map(str::to_string),
                se.err()
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| DisplayErrorContext(e).to_string()),
            ),
            SdkError::TimeoutError(_) => (None, "no answer in time".to_string()),
            _ => (None, DisplayErrorContext(e).to_string()),
        };
        let hint = hint(
            call,
            code.as_deref(),
            matches!(e, SdkError::ServiceError(_)),
        );
        SourceError {
            source: source.to_string(),
            call,
            code,
            message,
            hint,
        }
    }

    /// A source that answered with something unusable (e.g. a binary secret that is not text).
    pub fn content(source: &str, call: &'static str, message: String, hint: &str) -> Self {
        SourceError {
            source: source.to_string(),
            call,
            code: None,
            message,
            hint: hint.to_string(),
        }
    }
}

/// What to do about a failed `call`, by AWS error code (`answered`: AWS sent an error, rather
/// than the request failing on the way).
pub fn hint(call: &str, code: Option<&str>, answered: bool) -> String {
    let permission = match call {
        c if c.starts_with("ssm:") => "ssm:GetParametersByPath on the path's parameters",
        "secretsmanager:GetSecretValue" => "secretsmanager:GetSecretValue on the secret",
        _ => "secretsmanager:DescribeSecret on the secret",
    };
    match code.unwrap_or("") {
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => format!(
            "missing IAM permission: the task role needs {permission} (and kms:Decrypt when \
             it is encrypted with a customer managed key)"
        ),
        "ResourceNotFoundException" => "secret not found: check the name or ARN in the \
             setting, the region, and that the secret was not deleted"
            .into(),
        "InvalidRequestException" => "the secret cannot be read now (scheduled for deletion? \
             restore it with `aws secretsmanager restore-secret`)"
            .into(),
        "DecryptionFailure" | "InvalidKeyId" | "KMSAccessDeniedException" => {
            "cannot decrypt: the task role needs kms:Decrypt on the KMS key that encrypts it".into()
        }
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" => {
            "throttled by AWS; it is read again at the next interval (raise KEYS_INTERVAL if \
             this persists)"
                .into()
        }
        "ValidationException" | "InvalidFilterValue" => {
            "AWS refused the request: check KEYS_PARAMETER_PATH".into()
        }
        _ if !answered => "no answer from the AWS endpoint: check the task's route to it (a \
             public IP or NAT gateway, or a VPC endpoint) and AWS_ENDPOINT_URL"
            .into(),
        _ => "read again at the next interval".into(),
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} failed", self.source, self.call)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {} ({})", self.message, self.hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_fix() {
        let h = hint(
            "secretsmanager:GetSecretValue",
            Some("AccessDeniedException"),
            true,
        );
        assert!(h.contains("secretsmanager:GetSecretValue"), "{h}");
        let h = hint(
            "ssm:GetParametersByPath",
            Some("AccessDeniedException"),
            true,
        );
        assert!(h.contains("ssm:GetParametersByPath"), "{h}");
        assert!(hint(
            "secretsmanager:DescribeSecret",
            Some("ResourceNotFoundException"),
            true
        )
        .starts_with("secret not found"));
        assert!(
            hint("ssm:GetParametersByPath", Some("ThrottlingException"), true)
                .starts_with("throttled")
        );
        assert!(hint("ssm:GetParametersByPath", None, false).starts_with("no answer"));
    }

    #[test]
    fn display_names_source_call_code_and_hint() {
        let e = SourceError {
            source: "secretsmanager:jumpbox/keys".into(),
            call: "secretsmanager:DescribeSecret",
            code: Some("ResourceNotFoundException".into()),
            message: "Secrets Manager can't find the specified secret.".into(),
            hint: "secret not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "secretsmanager:jumpbox/keys: secretsmanager:DescribeSecret failed \
             (ResourceNotFoundException): Secrets Manager can't find the specified secret. \
             (secret not found)"
        );
    }
}
