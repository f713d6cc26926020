//! The status port and the `dns-sidecar healthcheck` probe.
//!
//! The image has no shell and a read-only root, so the running sidecar keeps its state in
//! memory and answers on a loopback port: each connection gets one line, `ok ...` while the
//! record is published and still ours, something else otherwise. The probe connects, reads
//! the line, and exits 0 only for `ok`.
//!
//! With key sync on, the line also carries the key sync's state ([`KeyStatus`]): `ok published
//! ...; keys current (...)`, or `ok ...; keys stale since <time>: <error>` (stale keys stay
//! healthy: the bastion still serves the last good set). Before the first good key sync the
//! line starts with the key state and the probe fails. In keys-only mode (no DNS record) the
//! line is the key state alone, prefixed `ok ` when healthy.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::keys::status::KeyStatus;

/// What the sidecar is doing, as the health check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Starting,
    /// Published and, at the last check, still ours.
    Published(String),
    /// The record no longer holds our address (changed by someone else, or deleted).
    Lost(String),
    /// Lost, but DNS_ON_RECORD_LOST=warn keeps the health check ok.
    LostTolerated(String),
    Stopping,
}

impl State {
    fn line(&self) -> String {
        match self {
            State::Starting => "starting: the record is not published yet\n".into(),
            State::Published(what) => format!("ok published {what}\n"),
            State::Lost(why) => format!("lost: {why}\n"),
            State::LostTolerated(why) => {
                format!("ok record lost (tolerated, DNS_ON_RECORD_LOST=warn): {why}\n")
            }
            State::Stopping => "stopping\n".into(),
        }
    }
}

/// The status line: the DNS state and/or the key sync's, `ok ...` only when both are healthy.
pub fn status_line(dns: Option<&State>, keys: Option<&KeyStatus>) -> String {
    match (dns, keys) {
        (Some(dns), None) => dns.line(),
        (None, Some(k)) if k.healthy() => format!("ok {}\n", k.describe()),
        (Some(dns), Some(k)) if k.healthy() => {
            format!("{}; {}\n", dns.line().trim_end(), k.describe())
        }
        (Some(dns), Some(k)) => format!("{}; {}\n", k.describe(), dns.line().trim_end()),
        (None, Some(k)) => format!("{}\n", k.describe()),
        (None, None) => "starting\n".into(),
    }
}

/// Bind the status port (before anything else, so a port clash fails the start).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::config(format!(
            "DNS_HEALTH_LISTEN: cannot listen on {addr}: {e} (another process, perhaps another \
             container of the task, holds the port; choose another)"
        ))
    })
}

/// Answer every connection with the current state (of the DNS record and/or the key sync),
/// until the process ends.
pub async fn serve(
    listener: TcpListener,
    dns: Option<watch::Receiver<State>>,
    keys: Option<watch::Receiver<KeyStatus>>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let line = status_line(
            dns.as_ref().map(|d| d.borrow().clone()).as_ref(),
            keys.as_ref().map(|k| k.borrow().clone()).as_ref(),
        );
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = stream.write_all(line.as_bytes()).await;
                let _ = stream.shutdown().await;
            })
            .await;
        });
    }
}

/// The probe: Ok(line) when the sidecar says `ok`.
pub async fn check(addr: SocketAddr, timeout: Duration) -> Result<String> {
    let answer = tokio::time::timeout(timeout, async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
            Error::runtime(format!(
                "no sidecar answers on {addr} (DNS_HEALTH_LISTEN): {e}"
            ))
        })?;
        let mut buf = Vec::new();
        (&mut stream)
            .take(1024)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::runtime(format!("reading the status from {addr}: {e}")))?;
        Ok::<_, Error>(String::from_utf8_lossy(&buf).trim().to_string())
    })
    .await
    .map_err(|_| Error::runtime(format!("no answer from {addr} within {timeout:?}")))??;
    if answer.starts_with("ok ") {
        Ok(answer)
    } else {
        Err(Error::runtime(if answer.is_empty() {
            format!("{addr} answered nothing")
        } else {
            answer
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_follows_the_state() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(State::Starting);
        let server = tokio::spawn(serve(listener, Some(rx), None));
        let t = Duration::from_secs(2);
        assert!(check(addr, t)
            .await
            .unwrap_err()
            .message
            .starts_with("starting"));
        tx.send_replace(State::Published("a.example.com A 52.95.110.1".into()));
        assert_eq!(
            check(addr, t).await.unwrap(),
            "ok published a.example.com A 52.95.110.1"
        );
        tx.send_replace(State::LostTolerated("it now holds [1.1.1.1]".into()));
        assert!(check(addr, t)
            .await
            .unwrap()
            .contains("DNS_ON_RECORD_LOST=warn"));
        tx.send_replace(State::Lost("it now holds [1.1.1.1]".into()));
        assert!(check(addr, t)
            .await
            .unwrap_err()
            .message
            .contains("1.1.1.1"));
        server.abort();
        let _ = server.await;
        assert!(check(addr, t)
            .await
            .unwrap_err()
            .message
            .contains("no sidecar answers"));
        let e = bind(addr)
            .await
            .map(|_| ())
            .and(bind(addr).await.map(|_| ()));
        // The port is free again after abort: binding works (or, if reused, says which setting).
        if let Err(e) = e {
            assert!(e.message.starts_with("DNS_HEALTH_LISTEN"), "{e}");
        }
    }

    #[test]
    fn the_line_joins_the_record_and_the_keys() {
        let published = State::Published("a.example.com A 52.95.110.1".into());
        let current = KeyStatus::Current {
            summary: "2 keys".into(),
        };
        let never = KeyStatus::NeverSynced {
            error: "denied".into(),
        };
        assert_eq!(
            status_line(Some(&published), Some(&current)),
            "ok published a.example.com A 52.95.110.1; keys current (2 keys)\n"
        );
        let line = status_line(Some(&published), Some(&never));
        assert!(
            line.starts_with("keys never written: denied; ok published"),
            "{line}"
        );
        assert_eq!(
            status_line(None, Some(&current)),
            "ok keys current (2 keys)\n"
        );
        assert_eq!(
            status_line(None, Some(&never)),
            "keys never written: denied\n"
        );
        assert!(status_line(Some(&State::Starting), Some(&current)).starts_with("starting"));
    }
}
