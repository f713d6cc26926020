//! `bastion::net`, the address parser every policy shares: `parse_ip`, `parse_net` with and
//! without brackets, `exact`, the canonical forms, `net_text` and the quoting helpers, on
//! arbitrary text.
//!
//! Checks: no panic; a bracket-less parse also succeeds, identically, with brackets allowed;
//! every accepted network is exact and reparses from each of its `net_text` forms (bracketed
//! forms with brackets allowed) to itself; an address reparses from its `Display`; the
//! canonical forms are idempotent; `Escape::Printable` leaves no ASCII control character.
#![no_main]

use bastion::net::{
    canonical_ip, canonical_net, exact, net_text, parse_ip, parse_net, quoted, shown, Brackets,
    Compatible, Escape, Nat64, Quoting, V6Form,
};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

fn round_trips(net: IpNet) {
    assert_eq!(exact(net), Ok(net), "{net} has host bits");
    for form in [V6Form::Plain, V6Form::AddrBracketed, V6Form::WholeBracketed] {
        let text = net_text(net, form);
        assert_eq!(parse_net(&text, Brackets::Allowed), Ok(net), "{text}");
    }
    let plain = net_text(net, V6Form::Plain);
    assert_eq!(parse_net(&plain, Brackets::Rejected), Ok(net), "{plain}");
    for nat64 in [Nat64::Keep, Nat64::AsIpv4] {
        let c = canonical_net(net, nat64);
        assert_eq!(
            canonical_net(c, nat64),
            c,
            "canonical_net({net}) is not idempotent"
        );
        assert_eq!(exact(c), Ok(c), "canonical_net({net}) = {c} has host bits");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(ip) = parse_ip(text) {
        assert_eq!(parse_ip(&ip.to_string()), Some(ip));
        for compatible in [Compatible::Keep, Compatible::AsIpv4] {
            for nat64 in [Nat64::Keep, Nat64::AsIpv4] {
                let c = canonical_ip(ip, compatible, nat64);
                assert_eq!(canonical_ip(c, compatible, nat64), c, "{ip} -> {c}");
            }
        }
    }
    let rejected = parse_net(text, Brackets::Rejected);
    let allowed = parse_net(text, Brackets::Allowed);
    if let Ok(net) = &rejected {
        assert_eq!(
            allowed.as_ref(),
            Ok(net),
            "brackets allowed changed {text:?}"
        );
    }
    if let Ok(net) = allowed {
        round_trips(net);
    }
    let limit = data.len() % 70;
    for escape in [Escape::Debug, Escape::DebugFmt, Escape::Printable] {
        for ellipsis in [false, true] {
            let q = Quoting::new(limit, escape, ellipsis);
            let _ = (shown(text, q), quoted(text, q));
            if escape == Escape::Printable {
                let s = shown(text, q);
                assert!(!s.chars().any(|c| c.is_ascii_control()), "{s:?}");
            }
        }
    }
});
