//! Unit tests of `healthcheck`.
use super::*;

#[test]
fn unspecified_listen_probes_loopback() {
    assert_eq!(
        probe_addr("0.0.0.0:2222".parse().unwrap()),
        "127.0.0.1:2222".parse().unwrap()
    );
    assert_eq!(
        probe_addr("[::]:22".parse().unwrap()),
        "[::1]:22".parse().unwrap()
    );
}

#[tokio::test]
async fn nothing_listening_is_an_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    assert!(check(addr, Duration::from_secs(2), false).await.is_err());
}
