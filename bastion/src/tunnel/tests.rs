//! Tunnels in process: the key's permitopen, the bastion's own listener, the per-connection
//! cap, unreachable destinations, half-close, and connecting to the first reachable checked
//! address.

use std::time::Duration;

use russh::ChannelOpenFailure;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::testkit::*;

async fn server_for(key_line: &str, rule: &str) -> TestServer {
    TestServer::start(&["--authorized-keys", key_line, "--permit-open", rule]).await
}

#[tokio::test]
async fn permitopen_narrows_the_server_rules() {
    let key = new_key();
    let (echo, other) = (echo_server().await, echo_server().await);
    let line = format!(
        "permitopen=\"127.0.0.1:{}\" {}",
        echo.port(),
        public_line(&key)
    );
    let server = server_for(&line, "127.0.0.1/32:*").await;
    let (handle, _) = login(server.addr, &key).await.unwrap();
    let refused = open_tunnel(&handle, "127.0.0.1", other.port()).await;
    assert!(matches!(
        refused,
        Err(ChannelOpenFailure::AdministrativelyProhibited)
    ));
    let mut ok = open_tunnel(&handle, "127.0.0.1", echo.port())
        .await
        .unwrap();
    assert_eq!(echo_through(&mut ok, b"permitted").await, b"permitted");
}

/// A tunnel back into the bastion (its listening port on any loopback address, the address it
/// listens on) is refused even under a rule that opens loopback; other ports stay open.
#[tokio::test]
async fn a_tunnel_to_the_bastions_own_listener_is_refused() {
    let key = new_key();
    let echo = echo_server().await;
    let server = server_for(&public_line(&key), "127.0.0.0/8:*").await;
    let (handle, _) = login(server.addr, &key).await.unwrap();
    let port = server.addr.port();
    for host in ["127.0.0.1", "127.0.0.9", "::ffff:127.0.0.1"] {
        let refused = open_tunnel(&handle, host, port).await;
        assert!(
            matches!(refused, Err(ChannelOpenFailure::AdministrativelyProhibited)),
            "{host}:{port}: {:?}",
            refused.map(|_| ()).map_err(|e| failure_text(&e))
        );
    }
    let mut ok = open_tunnel(&handle, "127.0.0.1", echo.port())
        .await
        .unwrap();
    assert_eq!(echo_through(&mut ok, b"elsewhere").await, b"elsewhere");
}

#[tokio::test]
async fn unreachable_destination_is_connect_failed() {
    let key = new_key();
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = server_for(&public_line(&key), "127.0.0.1/32:*").await;
    let (handle, _) = login(server.addr, &key).await.unwrap();
    let refused = open_tunnel(&handle, "127.0.0.1", closed.port()).await;
    assert!(
        matches!(refused, Err(ChannelOpenFailure::ConnectFailed)),
        "{:?}",
        refused.map(|_| ()).map_err(|e| failure_text(&e))
    );
}

#[tokio::test]
async fn tunnels_per_connection_are_capped() {
    const MAX: usize = 12;
    let key = new_key();
    let echo = echo_server().await;
    let line = public_line(&key);
    let rule = echo.to_string();
    let max = MAX.to_string();
    let args = [
        "--authorized-keys",
        &line,
        "--permit-open",
        &rule,
        "--max-channels",
        &max,
    ];
    let server = TestServer::start(&args).await;
    let (handle, _) = login(server.addr, &key).await.unwrap();
    let mut open = Vec::new();
    for _ in 0..MAX {
        open.push(
            open_tunnel(&handle, "127.0.0.1", echo.port())
                .await
                .unwrap(),
        );
    }
    let over = open_tunnel(&handle, "127.0.0.1", echo.port()).await;
    assert!(matches!(over, Err(ChannelOpenFailure::ResourceShortage)));
    // Session channels count too.
    assert!(handle.channel_open_session().await.is_err());
    // Closing one makes room for one.
    let mut first = open.remove(0);
    first.shutdown().await.unwrap();
    drop(first);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match open_tunnel(&handle, "127.0.0.1", echo.port()).await {
            Ok(_) => break,
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "no room after a close"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_eof_reaches_the_destination_and_the_reply_comes_back() {
    let setup = EchoSetup::start().await;
    let mut tunnel = setup.tunnel().await;
    let payload = vec![7u8; 300_000];
    tunnel.write_all(&payload).await.unwrap();
    tunnel.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(DEADLINE, tunnel.read_to_end(&mut back))
        .await
        .expect("the echo ends after the client's EOF")
        .unwrap();
    assert_eq!(back.len(), payload.len());
}

#[tokio::test]
async fn connect_uses_the_first_reachable_address() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let echo = echo_server().await;
    let (_, used) = connect(&[closed, echo], DEADLINE).await.unwrap();
    assert_eq!(used, echo);
    let why = connect(&[closed], DEADLINE).await.unwrap_err();
    assert!(why.contains(&closed.to_string()), "{why}");
    assert_eq!(
        connect(&[], DEADLINE).await.unwrap_err(),
        "no address to connect to"
    );
}
