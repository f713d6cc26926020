//! The `authorized_keys` option tokenizer (`bastion::key_options::parse_options`) and what is
//! built from its result: `KeyRestrictions::from_options`, then `check_login` and
//! `permits_destination`; plus the option-value parsers on their own.
//!
//! Input: the first 26 bytes, zero-padded, are a client address (16), a clock (8) and a port
//! (2); the rest is an option list as written on a key line. Checks: no panic; the rest of the
//! line the tokenizer returns is a suffix of the input; `permits_destination` with no
//! `permitopen=` lets every destination through (it only narrows the server's policy).
#![no_main]

use std::net::{IpAddr, Ipv6Addr};

use bastion::key_options::{
    canonical_ip, format_utc, parse_addr_or_cidr, parse_expiry_time, parse_options,
    KeyRestrictions, PatternList, PermitOpen,
};
use libfuzzer_sys::fuzz_target;

/// Client address, unix time and port from the first 26 bytes (missing bytes are zero).
fn derived(data: &[u8]) -> (IpAddr, u64, u16) {
    let mut head = [0u8; 26];
    let n = data.len().min(26);
    head[..n].copy_from_slice(&data[..n]);
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(&head[..16]).expect("16 bytes"));
    // An IPv4 client when the first byte is even (as an IPv4-mapped address, made canonical).
    let client = if head[0] % 2 == 0 {
        canonical_ip(IpAddr::V6(Ipv6Addr::from([
            0,
            0,
            0,
            0,
            0,
            0xffff,
            v6.segments()[6],
            v6.segments()[7],
        ])))
    } else {
        IpAddr::V6(v6)
    };
    let now = u64::from_be_bytes(head[16..24].try_into().expect("8 bytes"));
    (client, now, u16::from_be_bytes([head[24], head[25]]))
}

fn restrictions(line: &str, client: IpAddr, now: u64, port: u16) {
    let Ok((options, rest)) = parse_options(line) else {
        return;
    };
    assert!(
        line.ends_with(rest),
        "the rest of the line is not the line's end"
    );
    let Ok(r) = KeyRestrictions::from_options(&options) else {
        return;
    };
    let _ = r.check_login(client, now);
    let host = rest.split_whitespace().next().unwrap_or("db.internal");
    for host in [host, "10.0.0.5", "[fd00::1]", "db.internal"] {
        let permitted = r.permits_destination(host, port);
        if r.permit_open.is_empty() {
            assert!(permitted, "no permitopen=, yet {host}:{port} is refused");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (client, now, port) = derived(data);
    let Ok(line) = std::str::from_utf8(data.get(26..).unwrap_or_default()) else {
        return;
    };
    restrictions(line, client, now, port);
    if let Ok(list) = PatternList::parse(line) {
        let _ = (list.matches(client), list.as_str(), list.warnings());
    }
    if let Ok(open) = PermitOpen::parse(line) {
        let _ = open.matches("db.internal", port);
    }
    if let Ok(t) = parse_expiry_time(line) {
        let _ = format_utc(t);
    }
    let _ = format_utc(now);
    if let Ok(net) = parse_addr_or_cidr(line) {
        let _ = net.contains(&client);
    }
});
