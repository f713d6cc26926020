use std::net::{Ipv4Addr, Ipv6Addr};

use super::local_addrs::{parse_fib_trie, parse_if_inet6};
use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn task_addrs() -> Result<Vec<IpAddr>, String> {
    Ok(vec![
        ip("127.0.0.1"),
        ip("10.0.1.23"),
        ip("::1"),
        ip("2600:1f18::23"),
    ])
}

fn unreadable() -> Result<Vec<IpAddr>, String> {
    Err("reading /proc/net/fib_trie: permission denied".into())
}

#[test]
fn every_local_address_on_a_listening_port_is_refused() {
    let own = OwnListeners::with_reader(vec![sa("0.0.0.0:2222")], task_addrs);
    for dest in [
        "10.0.1.23:2222",
        "[::ffff:10.0.1.23]:2222",
        "127.0.0.1:2222",
        "127.9.9.9:2222",
        "0.0.0.0:2222",
        "[::]:2222",
        "[::1]:2222",
        "[2600:1f18::23]:2222",
    ] {
        let why = own.check(sa(dest)).expect_err(dest);
        assert!(
            why.starts_with("reaches the bastion's own listener 0.0.0.0:2222"),
            "{why}"
        );
    }
    for dest in [
        "10.0.1.24:2222",
        "10.0.1.23:2223",
        "127.0.0.1:22",
        "[2600:1f18::24]:2222",
    ] {
        assert_eq!(own.check(sa(dest)), Ok(()), "{dest}");
    }
}

#[test]
fn a_specific_listen_address_is_refused_too() {
    let own = OwnListeners::with_reader(vec![sa("10.0.1.23:2222")], || Ok(Vec::new()));
    assert!(own.check(sa("10.0.1.23:2222")).is_err());
    assert!(own.check(sa("127.0.0.1:2222")).is_err());
    assert_eq!(own.check(sa("10.0.1.9:2222")), Ok(()));
}

#[test]
fn an_address_added_after_start_is_found_by_reading_again() {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    fn later() -> Result<Vec<IpAddr>, String> {
        if CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Ok(Vec::new())
        } else {
            Ok(vec![IpAddr::V4(Ipv4Addr::new(10, 0, 9, 9))])
        }
    }
    let own = OwnListeners::with_reader(vec![sa("0.0.0.0:2222")], later);
    assert!(own.check(sa("10.0.9.9:2222")).is_err());
}

#[test]
fn an_unreadable_address_list_refuses_the_listening_port_only() {
    let own = OwnListeners::with_reader(vec![sa("0.0.0.0:2222")], unreadable);
    let why = own.check(sa("10.0.1.23:2222")).unwrap_err();
    assert!(
        why.contains("cannot tell whether 10.0.1.23 is an address of this host"),
        "{why}"
    );
    assert!(why.contains("permission denied"), "{why}");
    assert_eq!(own.check(sa("10.0.1.23:5432")), Ok(()));
}

#[test]
fn fib_trie_local_entries_are_the_ipv4_addresses() {
    let text = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
        \x20    +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n           |-- 127.0.0.0\n\
        \x20             /8 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n\
        \x20       |-- 127.255.255.255\n           /32 link BROADCAST\n\
        \x20    +-- 10.0.1.0/24 2 0 2\n        |-- 10.0.1.0\n           /24 link UNICAST\n\
        \x20       |-- 10.0.1.23\n           /32 host LOCAL\n\
        Local:\n  +-- 0.0.0.0/0 3 0 5\n        |-- 10.0.1.23\n           /32 host LOCAL\n";
    assert_eq!(parse_fib_trie(text), vec![ip("127.0.0.1"), ip("10.0.1.23")]);
}

#[test]
fn if_inet6_lines_are_the_ipv6_addresses() {
    let text = "00000000000000000000000000000001 01 80 10 80       lo\n\
                fd000000000000000000000000000002 04 40 00 82     eth0\n\
                garbage\n";
    assert_eq!(
        parse_if_inet6(text),
        vec![IpAddr::V6(Ipv6Addr::LOCALHOST), ip("fd00::2")]
    );
}

#[test]
fn this_host_lists_its_loopback() {
    let addrs = super::local_addrs::read().expect("reading this host's addresses");
    assert!(addrs.contains(&ip("127.0.0.1")), "{addrs:?}");
}
