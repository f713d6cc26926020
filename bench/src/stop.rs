//! When a tool stops: its standard input closes (the orchestrator exited or closed the pipe),
//! or it gets SIGTERM or SIGINT. Every long-running tool awaits this, so none outlives the run.

use std::io::Read;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// Resolves when standard input reaches end of file or on SIGTERM/SIGINT.
pub async fn stopped() {
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    // A blocking read on a plain thread: tokio's async stdin would need a feature the bastion
    // does not build with (and so a second compiled tokio).
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the default action (exit) still ends the process.
        let _ = closed_rx.await;
        return;
    };
    tokio::select! {
        _ = closed_rx => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
