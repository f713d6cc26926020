//! The Route 53 side's error type: a message naming the setting or AWS action involved and,
//! where there is one, the fix, and its [`Kind`]. The sidecar's own error converts from it and
//! turns the kind into an exit code.

use std::fmt;

/// Whether a setting is wrong or the world failed (the sidecar's exit code follows from it).
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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
