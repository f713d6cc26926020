//! The server in process: logins, tunnels, refusals, key reload and shutdown through the real
//! accept loop and a real russh client, on loopback.

use std::time::Duration;

use russh::ChannelOpenFailure;

use tokio::io::AsyncReadExt;

use crate::testkit::*;

#[tokio::test]
async fn authorized_key_opens_a_permitted_tunnel() {
    let setup = EchoSetup::start().await;
    let mut tunnel = setup.tunnel().await;
    let payload = b"hello through the bastion".repeat(1000);
    assert_eq!(echo_through(&mut tunnel, &payload).await, payload);
}

#[tokio::test]
async fn unknown_and_revoked_keys_do_not_log_in() {
    let (good, stranger, revoked) = (new_key(), new_key(), new_key());
    let keys = format!("{}\n{}\n", public_line(&good), public_line(&revoked));
    let server = TestServer::start(&[
        "--authorized-keys",
        &keys,
        "--revoked-keys",
        &public_line(&revoked),
    ])
    .await;
    assert!(login(server.addr, &good).await.unwrap().1);
    assert!(!login(server.addr, &stranger).await.unwrap().1);
    assert!(
        !login(server.addr, &revoked).await.unwrap().1,
        "a revoked key logged in although it is in the authorized keys"
    );
}

#[tokio::test]
async fn refused_destination_does_not_connect_and_others_still_work() {
    let key = new_key();
    let echo = echo_server().await;
    // Default rules: private ranges only; loopback is refused.
    let server = TestServer::start(&["--authorized-keys", &public_line(&key)]).await;
    let (handle, _) = login(server.addr, &key).await.unwrap();
    let refused = open_tunnel(&handle, "127.0.0.1", echo.port()).await;
    assert!(
        matches!(refused, Err(ChannelOpenFailure::AdministrativelyProhibited)),
        "loopback must be administratively prohibited: {:?}",
        refused.map(|_| ()).map_err(|e| failure_text(&e))
    );
    let metadata = open_tunnel(&handle, "169.254.170.2", 80).await;
    assert!(matches!(
        metadata,
        Err(ChannelOpenFailure::AdministrativelyProhibited)
    ));
    let server2 = TestServer::permitting(&key, echo).await;
    let (handle2, _) = login(server2.addr, &key).await.unwrap();
    assert!(open_tunnel(&handle2, "127.0.0.1", echo.port() ^ 1)
        .await
        .is_err());
    let mut ok = open_tunnel(&handle2, "127.0.0.1", echo.port())
        .await
        .unwrap();
    assert_eq!(echo_through(&mut ok, b"still fine").await, b"still fine");
}

#[tokio::test]
async fn shutdown_parameter_stops_the_server() {
    let key = new_key();
    let mut server = TestServer::start(&[
        "--authorized-keys",
        &public_line(&key),
        "--shutdown-grace",
        "2s",
    ])
    .await;
    let (handle, _) = login(server.addr, &key).await.unwrap();
    server.shut_down();
    let finished = tokio::time::timeout(DEADLINE, &mut server.task).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "serve did not return after its shutdown future resolved"
    );
    assert!(
        handle.is_closed() || {
            tokio::time::sleep(Duration::from_millis(300)).await;
            handle.is_closed()
        }
    );
    let refused = tokio::net::TcpStream::connect(server.addr).await;
    assert!(
        refused.is_err(),
        "the listener still accepts after shutdown"
    );
}

#[tokio::test]
async fn removing_a_key_from_its_file_closes_its_connection() {
    let (leaving, staying) = (new_key(), new_key());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authorized_keys");
    let both = format!("{}\n{}\n", public_line(&leaving), public_line(&staying));
    std::fs::write(&path, both).unwrap();
    let file = path.to_string_lossy().into_owned();
    let server = TestServer::start(&["--authorized-keys-file", &file]).await;
    let (gone, _) = login(server.addr, &leaving).await.unwrap();
    let (kept, _) = login(server.addr, &staying).await.unwrap();
    std::fs::write(&path, format!("{}\n", public_line(&staying))).unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !gone.is_closed() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the removed key's connection is still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !kept.is_closed(),
        "the other key's connection was closed too"
    );
    assert!(!login(server.addr, &leaving).await.unwrap().1);
}

#[tokio::test]
async fn a_login_evicts_a_silent_squatter_when_the_cap_is_full() {
    let key = new_key();
    let server = TestServer::start(&[
        "--authorized-keys",
        &public_line(&key),
        "--max-startups",
        "2",
    ])
    .await;
    // Two silent connections hold both pre-authentication slots.
    let mut a = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        login(server.addr, &key).await.unwrap().1,
        "a newcomer takes a squatter's slot instead of being refused"
    );
    // The older squatter was the one evicted: its socket is closed after the server banner.
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(1), a.read_to_end(&mut seen)).await;
    assert!(read.is_ok(), "the oldest squatter is closed at once");
    let mut banner = [0u8; 64];
    let first = tokio::time::timeout(DEADLINE, b.read(&mut banner)).await;
    assert!(
        matches!(first, Ok(Ok(n)) if n > 0),
        "server banner: {first:?}"
    );
    let still_open = tokio::time::timeout(Duration::from_millis(300), b.read(&mut banner)).await;
    assert!(
        still_open.is_err(),
        "the younger squatter keeps its slot: {still_open:?}"
    );
}

/// A log sink for one test's thread-local subscriber.
#[derive(Clone, Default)]
struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = Sink;
    fn make_writer(&'a self) -> Sink {
        self.clone()
    }
}

/// What the server really logs stays inside the audit catalogue: every `event` is defined in
/// `audit/events.rs` and carries only the fields listed there. The check runs in a process of
/// its own, with a global subscriber: tracing's per-thread subscribers miss events whose
/// callsites other tests (running in parallel) registered first.
#[test]
fn logged_events_match_the_catalogue() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args(["--exact", "server::tests::catalogue_check_in_own_process"])
        .args(["--ignored", "--nocapture", "--test-threads", "1"])
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the catalogue check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "run by logged_events_match_the_catalogue, in a process of its own"]
async fn catalogue_check_in_own_process() {
    let sink = Sink::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(sink.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let (key, stranger) = (new_key(), new_key());
    let echo = echo_server().await;
    let mut server = TestServer::start(&[
        "--authorized-keys",
        &public_line(&key),
        "--permit-open",
        &format!("{echo}"),
        "--shutdown-grace",
        "1s",
    ])
    .await;
    assert!(!login(server.addr, &stranger).await.unwrap().1);
    let (handle, _) = login(server.addr, &key).await.unwrap();
    let mut tunnel = open_tunnel(&handle, "127.0.0.1", echo.port())
        .await
        .unwrap();
    assert_eq!(echo_through(&mut tunnel, b"audited").await, b"audited");
    drop(tunnel);
    assert!(open_tunnel(&handle, "10.255.255.1", 0).await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.shut_down();
    let _ = tokio::time::timeout(DEADLINE, &mut server.task).await;

    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(line) else {
            panic!("not a JSON log line: {line}");
        };
        let Some(name) = fields.get("event").and_then(|v| v.as_str()) else {
            continue; // a library's own log line
        };
        let spec = crate::audit::events::find(name)
            .unwrap_or_else(|| panic!("event {name:?} is not in the catalogue: {line}"));
        for field in fields.keys() {
            let generic = ["event", "message", "level", "timestamp"].contains(&field.as_str());
            assert!(
                generic || spec.fields.contains(&field.as_str()),
                "event {name:?} logs field {field:?}, not listed in the catalogue: {line}"
            );
        }
        seen.insert(name.to_owned());
    }
    for expected in [
        "listening",
        "connection",
        "auth",
        "tunnel_open",
        "tunnel_close",
        "tunnel_refused",
        "connection_closed",
        "shutdown",
        "shutdown_complete",
    ] {
        assert!(
            seen.contains(expected),
            "no {expected:?} event among {seen:?}:\n{text}"
        );
    }
}
