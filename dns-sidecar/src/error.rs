//! The sidecar's own error type: why a run failed, with a message naming the setting or AWS
//! action involved and, where there is one, the fix. The kind decides the exit code (2 for
//! configuration, 1 else). Failures reported by the Route 53 crate
//! ([`dns_sidecar_route53::error::Error`]) convert into it with their kind and message.

use std::fmt;

use dns_sidecar_route53::error as route53_error;

/// Why a run failed (a setting, or discovery/AWS/network); decides the exit code. The Route
/// 53 crate's vocabulary, shared.
pub use route53_error::Kind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl Error {
    pub fn config(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Config,
            message: message.into(),
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Runtime,
            message: message.into(),
        }
    }

    /// Prefix the message with what was being done.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Config => 2,
            Kind::Runtime => 1,
        }
    }
}

impl From<route53_error::Error> for Error {
    fn from(e: route53_error::Error) -> Self {
        Error {
            kind: e.kind,
            message: e.message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route53_error_keeps_its_kind_message_and_exit_code() {
        let config: Error = route53_error::Error::config("DNS_IP: bad").into();
        assert_eq!(config, Error::config("DNS_IP: bad"));
        assert_eq!(config.exit_code(), 2);
        let runtime: Error = route53_error::Error::runtime("UPSERT failed").into();
        assert_eq!(runtime, Error::runtime("UPSERT failed"));
        assert_eq!(runtime.exit_code(), 1);
    }
}
