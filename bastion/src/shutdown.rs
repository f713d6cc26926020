//! The stop signals: SIGTERM (ECS stopping the task) and SIGINT (Ctrl-C), installed before the
//! wait for key files (`key_wait`, which a signal ends) and so before the server says it is
//! listening, so a signal right after that is never the default action (immediate death).
//! `serve` takes the resulting future as its shutdown parameter, so tests stop a server
//! without signals.

/// SIGTERM and SIGINT, installed.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        let int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        Ok(Signals { term, int })
    }

    /// Resolves with the signal's name when the first one arrives.
    pub async fn recv(mut self) -> &'static str {
        self.next().await
    }

    /// The next signal's name, keeping the handlers (a wait before `serve` may end on one).
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
