//! The key sync's state as the health check reports it. Stale keys (a source failing after a
//! good sync) stay healthy: the bastion still has the last good set and the tunnels work, so
//! restarting the task would not help; the status line says `keys stale since ...` instead.
//! Before the first good sync the task is unhealthy: the bastion may have no keys at all.

use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// No sync finished yet.
    Starting,
    /// Every sync so far failed.
    NeverSynced { error: String },
    /// The last sync succeeded; `summary` says what the files hold.
    Current { summary: String },
    /// The files hold the last good set; reading a source fails since `since`.
    Stale {
        since: SystemTime,
        error: String,
        summary: String,
    },
}

impl KeyStatus {
    /// Whether the health check passes on the key sync's account.
    pub fn healthy(&self) -> bool {
        matches!(self, KeyStatus::Current { .. } | KeyStatus::Stale { .. })
    }

    /// The key sync's part of the status line.
    pub fn describe(&self) -> String {
        match self {
            KeyStatus::Starting => "keys not written yet".into(),
            KeyStatus::NeverSynced { error } => {
                format!("keys never written: {}", shortened(error))
            }
            KeyStatus::Current { summary } => format!("keys current ({summary})"),
            KeyStatus::Stale { since, error, .. } => format!(
                "keys stale since {}: {}",
                humantime::format_rfc3339_seconds(*since),
                shortened(error)
            ),
        }
    }
}

/// At most 600 characters of an error (the probe reads 1 KiB of status).
fn shortened(error: &str) -> String {
    match error.char_indices().nth(600) {
        Some((cut, _)) => format!("{}...", &error[..cut]),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stale_is_healthy_never_synced_is_not() {
        assert!(!KeyStatus::Starting.healthy());
        let never = KeyStatus::NeverSynced {
            error: "denied".into(),
        };
        assert!(!never.healthy());
        assert_eq!(never.describe(), "keys never written: denied");
        let stale = KeyStatus::Stale {
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(86_400),
            error: "secret not found".into(),
            summary: "x".into(),
        };
        assert!(stale.healthy());
        assert_eq!(
            stale.describe(),
            "keys stale since 1970-01-02T00:00:00Z: secret not found"
        );
        let current = KeyStatus::Current {
            summary: "2 keys".into(),
        };
        assert!(current.healthy());
        assert_eq!(current.describe(), "keys current (2 keys)");
    }
}
