//! The network the tests run in: the loopback-only namespace check and free loopback ports.

use std::net::TcpListener;

use crate::NETNS_HINT;

/// Names of the network interfaces of this process's network namespace (`/proc/net/dev` is
/// per namespace, unlike `/sys/class/net`).
pub fn network_interfaces() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/net/dev").expect("reading /proc/net/dev");
    text.lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Panics unless this process runs in a network namespace whose only interface is `lo`, so a
/// test that asks the bastion to reach a forbidden (off-machine) address can never send a packet
/// off the machine even if the bastion has a bug.
pub fn require_loopback_only_netns() {
    let interfaces = network_interfaces();
    let others: Vec<&String> = interfaces.iter().filter(|name| *name != "lo").collect();
    assert!(
        others.is_empty(),
        "{NETNS_HINT}; this namespace also has {others:?}"
    );
    assert!(
        interfaces.iter().any(|name| name == "lo"),
        "{NETNS_HINT}; this namespace has no loopback interface"
    );
    // Loopback must be up, or nothing below can work; give a clear message rather than a
    // confusing connection error later.
    let probe = TcpListener::bind("127.0.0.1:0");
    assert!(
        probe.is_ok(),
        "{NETNS_HINT}; loopback is down here (`ip link set lo up`): {probe:?}"
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it back, release it).
/// Whoever uses it must retry on a conflict.
pub fn free_local_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 to find a port");
    listener
        .local_addr()
        .expect("reading back the bound port")
        .port()
}
