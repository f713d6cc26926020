//! Connection state and the registry: revocation closes only the connections whose identity
//! is gone; draining closes idle connections at once and busy ones at the end of the grace.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::authorized_keys::KeySources;
use crate::flow::FlowLimits;
use crate::testkit::{new_key, public_line};

fn identity_of(key: &russh::keys::PrivateKey) -> Identity {
    Identity {
        user: "u".into(),
        key_fingerprint: key
            .public_key()
            .fingerprint(russh::keys::HashAlg::Sha256)
            .to_string(),
        ca_fingerprint: None,
    }
}

fn live(registry: &Registry, id: u64) -> (Arc<Flow>, Arc<ConnState>) {
    let flow = Flow::new(FlowLimits::default());
    let state = Arc::new(ConnState::default());
    registry.insert(id, flow.clone(), state.clone());
    (flow, state)
}

async fn killed_soon(flow: &Flow) -> bool {
    for _ in 0..100 {
        if flow.is_killed() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[test]
fn state_counts_tunnels_and_records_the_login() {
    let state = ConnState::default();
    assert!(!state.is_authenticated());
    state.tunnel_opened();
    state.tunnel_opened();
    state.tunnel_released();
    assert_eq!(state.open_tunnels(), 1);
    let id = identity_of(&new_key());
    state.logged_in(id.clone());
    assert!(state.is_authenticated());
    assert_eq!(state.identity(), Some(id));
}

#[tokio::test]
async fn revoke_gone_closes_only_removed_keys() {
    let (a, b) = (new_key(), new_key());
    let registry = Registry::default();
    let (flow_a, state_a) = live(&registry, 1);
    let (flow_b, state_b) = live(&registry, 2);
    let (flow_anon, _) = live(&registry, 3);
    state_a.logged_in(identity_of(&a));
    state_b.logged_in(identity_of(&b));
    let keys = KeySources {
        keys: Some(public_line(&b)),
        ..KeySources::default()
    }
    .load()
    .unwrap();
    registry.revoke_gone(&keys);
    assert!(
        killed_soon(&flow_a).await,
        "the removed key's connection stays open"
    );
    assert!(
        !flow_b.is_killed(),
        "a still-authorized connection was closed"
    );
    assert!(
        !flow_anon.is_killed(),
        "an unauthenticated connection was closed"
    );
}

#[tokio::test]
async fn drain_waits_for_open_tunnels_until_the_grace_ends() {
    let registry = Arc::new(Registry::default());
    let (idle, _) = live(&registry, 1);
    let (busy, busy_state) = live(&registry, 2);
    busy_state.tunnel_opened();
    let drain = tokio::spawn({
        let registry = registry.clone();
        async move { registry.drain(Duration::from_millis(600)).await }
    });
    assert!(
        killed_soon(&idle).await,
        "an idle connection is closed at once"
    );
    assert!(idle.is_draining() && busy.is_draining());
    assert!(
        !busy.is_killed(),
        "a connection with an open tunnel was cut early"
    );
    // The connection tasks remove themselves once closed; here the test does it.
    registry.remove(1);
    assert!(
        killed_soon(&busy).await || {
            tokio::time::sleep(Duration::from_millis(700)).await;
            busy.is_killed()
        }
    );
    registry.remove(2);
    tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .expect("drain ends")
        .unwrap();
}
