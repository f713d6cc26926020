//! The Route 53 side's error type (the sidecar's own `error::Error` converts from it). Every
//! message names the setting or AWS action involved and, where there is one, the fix; the kind
//! decides the exit code (2 for configuration, 1 else).

use std::fmt;

/// Why a run failed; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A setting is missing or malformed: exit 2, nothing was changed.
    Config,
    /// Discovery, AWS or network failure: exit 1.
    Runtime,
}

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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
