//! Connection state and the registry: a reload closes only the connections whose key is gone
//! or whose line now refuses them, and applies a changed line's options to the others;
//! draining closes idle connections at once and busy ones at the end of the grace.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::authorized_keys::KeySources;
use crate::flow::FlowLimits;
use crate::testkit::{new_key, public_line};

const CLIENT: &str = "192.0.2.7:50000";

fn keys(lines: &str) -> AuthorizedKeys {
    KeySources {
        keys: Some(lines.to_owned()),
        ..KeySources::default()
    }
    .load()
    .unwrap()
}

/// A login of `key` as its line in `lines` allows it.
fn login_of(key: &russh::keys::PrivateKey, lines: &str) -> Login {
    let fp = key
        .public_key()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    let client = CLIENT.parse().unwrap();
    let (_, restrictions) =
        crate::auth::check_key(&keys(lines), key.public_key(), &fp, client, 0).unwrap();
    Login {
        identity: Identity {
            user: "u".into(),
            key_fingerprint: fp,
            ca_fingerprint: None,
        },
        restrictions,
        credential: crate::auth::Credential::Key(key.public_key().clone()),
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
    let key = new_key();
    let login = login_of(&key, &public_line(&key));
    state.logged_in(login.clone(), CLIENT.parse().unwrap());
    assert!(state.is_authenticated());
    assert_eq!(state.identity(), Some(login.identity));
}

#[tokio::test]
async fn recheck_closes_only_removed_keys() {
    let (a, b) = (new_key(), new_key());
    let both = format!("{}\n{}\n", public_line(&a), public_line(&b));
    let registry = Registry::default();
    let (flow_a, state_a) = live(&registry, 1);
    let (flow_b, state_b) = live(&registry, 2);
    let (flow_anon, _) = live(&registry, 3);
    state_a.logged_in(login_of(&a, &both), CLIENT.parse().unwrap());
    state_b.logged_in(login_of(&b, &both), CLIENT.parse().unwrap());
    registry.recheck(&keys(&public_line(&b)), 0);
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
async fn recheck_applies_a_changed_line_or_closes_what_it_now_refuses() {
    let (a, b, c, d) = (new_key(), new_key(), new_key(), new_key());
    let registry = Registry::default();
    let mut lines = String::new();
    let mut live_ones = Vec::new();
    for (id, key) in [&a, &b, &c, &d].into_iter().enumerate() {
        lines += &format!("{}\n", public_line(key));
        let (flow, state) = live(&registry, id as u64);
        live_ones.push((flow, state));
    }
    for ((_, state), key) in live_ones.iter().zip([&a, &b, &c, &d]) {
        state.logged_in(login_of(key, &lines), CLIENT.parse().unwrap());
    }
    let edited = format!(
        "permitopen=\"db:5432\" {}\nrestrict {}\nexpiry-time=\"20200101\" {}\nfrom=\"10.0.0.0/8\" {}\n",
        public_line(&a),
        public_line(&b),
        public_line(&c),
        public_line(&d)
    );
    registry.recheck(&keys(&edited), crate::auth::now_unix());
    let (flow_a, state_a) = &live_ones[0];
    assert!(
        !flow_a.is_killed(),
        "a narrower permitopen closed the connection"
    );
    let now = state_a.restrictions();
    assert!(now.permits_destination("db", 5432) && !now.permits_destination("other", 22));
    for (flow, _) in &live_ones[1..] {
        assert!(
            killed_soon(flow).await,
            "restrict, a past expiry-time or a from= that no longer matches left it open"
        );
    }
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
