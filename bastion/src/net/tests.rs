use super::*;
use proptest::prelude::*;

use crate::client_policy::ClientPolicy;
use crate::destination_policy::DestinationPolicy;
use crate::key_options::PatternList;
use crate::proxy_header::ProxyConfig;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidr(s: &str) -> IpNet {
    s.parse().unwrap()
}

// ---- net.rs itself ------------------------------------------------------------------------

#[test]
fn parse_net_bare_addresses_and_cidrs() {
    for b in [Brackets::Allowed, Brackets::Rejected] {
        assert_eq!(parse_net("10.0.0.0/8", b), Ok(cidr("10.0.0.0/8")));
        assert_eq!(parse_net("192.0.2.7", b), Ok(cidr("192.0.2.7/32")));
        assert_eq!(parse_net("fd00::/8", b), Ok(cidr("fd00::/8")));
        assert_eq!(parse_net("::1", b), Ok(cidr("::1/128")));
        assert_eq!(parse_net("10.0.0.0/33", b), Err(NetError::NotCidr));
        assert_eq!(parse_net("host", b), Err(NetError::NotAddress));
        assert_eq!(parse_net("", b), Err(NetError::NotAddress));
    }
}

#[test]
fn parse_net_host_bits_name_the_network() {
    assert_eq!(
        parse_net("10.0.0.1/8", Brackets::Rejected),
        Err(NetError::HostBits {
            network: cidr("10.0.0.0/8")
        })
    );
    assert_eq!(
        parse_net("[fd00::1]/8", Brackets::Allowed),
        Err(NetError::HostBits {
            network: cidr("fd00::/8")
        })
    );
    assert_eq!(exact(cidr("10.1.0.0/16")), Ok(cidr("10.1.0.0/16")));
}

#[test]
fn brackets_only_where_allowed() {
    let a = Brackets::Allowed;
    assert_eq!(parse_net("[fd00::]/8", a), Ok(cidr("fd00::/8")));
    assert_eq!(parse_net("[fd00::/8]", a), Ok(cidr("fd00::/8")));
    assert_eq!(parse_net("[fd00::1]", a), Ok(cidr("fd00::1/128")));
    assert_eq!(parse_net("[fd00::1", a), Err(NetError::UnbalancedBrackets));
    assert_eq!(
        parse_net("[fd00::1]x", a),
        Err(NetError::UnbalancedBrackets)
    );
    let r = Brackets::Rejected;
    assert_eq!(parse_net("[fd00::1]", r), Err(NetError::NotAddress));
    assert_eq!(parse_net("[fd00::]/8", r), Err(NetError::NotCidr));
}

#[test]
fn odd_notations_and_zone_ids_are_not_addresses() {
    for text in ODD {
        assert_eq!(parse_ip(text), None, "{text}");
        assert_eq!(
            parse_net(text, Brackets::Allowed),
            Err(NetError::NotAddress),
            "{text}"
        );
    }
}

#[test]
fn canonical_addresses() {
    let (k, a) = (Compatible::Keep, Compatible::AsIpv4);
    let (nk, na) = (Nat64::Keep, Nat64::AsIpv4);
    assert_eq!(canonical_ip(ip("::ffff:10.0.0.1"), k, nk), ip("10.0.0.1"));
    assert_eq!(canonical_ip(ip("::10.0.0.1"), k, nk), ip("::10.0.0.1"));
    assert_eq!(canonical_ip(ip("::10.0.0.1"), a, nk), ip("10.0.0.1"));
    assert_eq!(canonical_ip(ip("::"), a, na), ip("::"));
    assert_eq!(canonical_ip(ip("::1"), a, na), ip("::1"));
    assert_eq!(
        canonical_ip(ip("64:ff9b::10.0.0.1"), k, nk),
        ip("64:ff9b::a00:1")
    );
    assert_eq!(canonical_ip(ip("64:ff9b::10.0.0.1"), k, na), ip("10.0.0.1"));
    assert_eq!(canonical_ip(ip("10.0.0.1"), a, na), ip("10.0.0.1"));
    assert_eq!(canonical_ip(ip("fd00::1"), a, na), ip("fd00::1"));
}

#[test]
fn canonical_networks() {
    assert_eq!(
        canonical_net(cidr("::ffff:10.0.0.0/104"), Nat64::Keep),
        cidr("10.0.0.0/8")
    );
    assert_eq!(
        canonical_net(cidr("::ffff:0:0/96"), Nat64::Keep),
        cidr("0.0.0.0/0")
    );
    // Shorter than /96: not inside the mapped space, stays IPv6.
    assert_eq!(canonical_net(cidr("::/64"), Nat64::Keep), cidr("::/64"));
    assert_eq!(
        canonical_net(cidr("64:ff9b::10.0.0.0/104"), Nat64::Keep),
        cidr("64:ff9b::a00:0/104")
    );
    assert_eq!(
        canonical_net(cidr("64:ff9b::10.0.0.0/104"), Nat64::AsIpv4),
        cidr("10.0.0.0/8")
    );
    // IPv4-compatible networks are never converted.
    assert_eq!(
        canonical_net(cidr("::10.0.0.0/104"), Nat64::AsIpv4),
        cidr("::a00:0/104")
    );
}

#[test]
fn net_text_forms() {
    let v6 = cidr("fd00::/8");
    assert_eq!(net_text(v6, V6Form::Plain), "fd00::/8");
    assert_eq!(net_text(v6, V6Form::AddrBracketed), "[fd00::]/8");
    assert_eq!(net_text(v6, V6Form::WholeBracketed), "[fd00::/8]");
    for form in [V6Form::Plain, V6Form::AddrBracketed, V6Form::WholeBracketed] {
        assert_eq!(net_text(cidr("10.0.0.0/8"), form), "10.0.0.0/8");
    }
}

#[test]
fn quoting_styles() {
    let debug = Quoting::new(5, Escape::Debug, true);
    assert_eq!(quoted("ab", debug), "\"ab\"");
    assert_eq!(quoted("a\"b'\n", debug), "\"a\\\"b\\'\\n\"");
    assert_eq!(quoted("abcdefg", debug), "\"abcde...\"");
    let fmt = Quoting::new(5, Escape::DebugFmt, false);
    assert_eq!(quoted("a\"b'\n", fmt), "\"a\\\"b'\\n\"");
    assert_eq!(quoted("abcdefg", fmt), "\"abcde\"");
    let printable = Quoting::new(5, Escape::Printable, true);
    assert_eq!(shown("a\"b\\\n", printable), "a\"b\\?");
    assert_eq!(shown("é\u{200b}x", printable), "é\\u{200b}x");
    assert_eq!(shown("abcdef", printable), "abcde...");
    assert_eq!(shown("abcde", printable), "abcde");
}

// ---- the four callers agree ---------------------------------------------------------------

/// Legacy resolver notations of 127.0.0.1 and a zone id: no caller takes them as addresses.
const ODD: [&str; 5] = [
    "127.1",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "2130706433",
    "fe80::1%eth0",
];

/// How each caller reads one address-or-CIDR text, as the addresses it matches: `None` when
/// it refuses the text as an address (an error, or for `from=` a never-matching host-name
/// pattern with a warning).
struct Callers {
    client_policy: Option<ClientPolicy>,
    destination: Option<DestinationPolicy>,
    key_options: Option<PatternList>,
    proxy_header: Option<ProxyConfig>,
}

impl Callers {
    fn read(text: &str) -> Self {
        let dest_rule = if text.contains(':') {
            format!("[{text}]:22")
        } else {
            format!("{text}:22")
        };
        Callers {
            client_policy: ClientPolicy::build("", text, None, None).ok(),
            destination: DestinationPolicy::parse(&dest_rule).ok(),
            key_options: PatternList::parse(text)
                .ok()
                .filter(|l| l.warnings().is_empty()),
            proxy_header: ProxyConfig::parse_trusted(text)
                .ok()
                .map(|trusted| ProxyConfig {
                    trusted,
                    ..ProxyConfig::default()
                }),
        }
    }

    fn all_refuse(&self) -> bool {
        self.client_policy.is_none()
            && self.destination.is_none()
            && self.key_options.is_none()
            && self.proxy_header.is_none()
    }

    /// Does each caller's rule cover `addr`? (client_policy: a deny rule, so "covered" is
    /// "denied"; destination_policy: the only rule, so "covered" is "permitted".)
    fn covers(&self, addr: IpAddr) -> [Option<bool>; 4] {
        [
            self.client_policy
                .as_ref()
                .map(|p| !p.check(addr).is_allowed()),
            self.destination
                .as_ref()
                .map(|p| p.check_addr(&addr.to_string(), addr, 22).is_ok()),
            self.key_options.as_ref().map(|l| l.matches(addr)),
            self.proxy_header.as_ref().map(|c| c.is_trusted(addr)),
        ]
    }
}

const ALL: [Option<bool>; 4] = [Some(true); 4];
const NONE: [Option<bool>; 4] = [Some(false); 4];

/// An IPv4 address outside the ranges the destination policy treats specially without a
/// rule (0/8, loopback, multicast, reserved) or refuses whatever the rules (link-local), and
/// not 0.0.0.x (whose IPv4-compatible form would be `::` or `::1`).
fn v4() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254)
        .prop_filter("not loopback", |(a, ..)| *a != 127)
        .prop_filter("not link-local", |(a, b, ..)| (*a, *b) != (169, 254))
        .prop_map(|(a, b, c, d)| Ipv4Addr::new(a, b, c, d))
}

#[test]
fn odd_notations_and_zone_ids_are_refused_by_every_caller() {
    for text in ODD {
        assert!(Callers::read(text).all_refuse(), "{text}");
    }
}

proptest! {
    /// IPv4-mapped addresses and networks: every caller reads them as the IPv4 address or
    /// network, and matches the client both as IPv4 and as the mapped IPv6 address.
    #[test]
    fn mapped_is_ipv4_everywhere(a in v4(), len in 8u8..=32) {
        let mapped = a.to_ipv6_mapped();
        let callers = Callers::read(&mapped.to_string());
        prop_assert_eq!(callers.covers(IpAddr::V4(a)), ALL);
        prop_assert_eq!(callers.covers(IpAddr::V6(mapped)), ALL);
        let net = Ipv4Net::new(a, len).unwrap().trunc();
        let text = format!("::ffff:{}/{}", net.network(), u16::from(len) + 96);
        let callers = Callers::read(&text);
        prop_assert_eq!(callers.covers(IpAddr::V4(net.broadcast())), ALL);
        prop_assert_eq!(callers.covers(IpAddr::V6(net.broadcast().to_ipv6_mapped())), ALL);
    }

    /// IPv4-compatible addresses (`::a.b.c.d`): the one documented disagreement.
    /// destination_policy reads them as the IPv4 address; client_policy, key_options and
    /// proxy_header read them as that IPv6 address only.
    #[test]
    fn compatible_is_ipv4_only_for_destinations(a in v4()) {
        let compat = Ipv6Addr::from(u128::from(u32::from(a)));
        let callers = Callers::read(&compat.to_string());
        prop_assert_eq!(callers.covers(IpAddr::V6(compat)), ALL);
        prop_assert_eq!(
            callers.covers(IpAddr::V4(a)),
            [Some(false), Some(true), Some(false), Some(false)]
        );
    }

    /// A CIDR with host bits set is refused by every caller; its network is accepted by all
    /// and covers the address (IPv6 from global unicast 2000::/3, clear of IPv4-mapped,
    /// -compatible and NAT64 space and of the destination policy's built-in denials).
    #[test]
    fn host_bits_are_refused_everywhere(a in v4(), len in 0u8..=31, v6 in any::<u128>(), len6 in 0u8..=127) {
        let global = Ipv6Addr::from((0x2000u128 << 112) | (v6 & ((1u128 << 125) - 1)));
        let net = Ipv4Net::new(a, len).unwrap();
        let six = ipnet::Ipv6Net::new(global, len6).unwrap();
        for (whole, network, inside) in [
            (IpNet::V4(net), IpNet::V4(net.trunc()), IpAddr::V4(a)),
            (IpNet::V6(six), IpNet::V6(six.trunc()), IpAddr::V6(global)),
        ] {
            if whole != network {
                prop_assert!(Callers::read(&whole.to_string()).all_refuse(), "{}", whole);
            }
            prop_assert_eq!(Callers::read(&network.to_string()).covers(inside), ALL, "{}", network);
        }
    }

    /// Plain IPv4 addresses mean the same address to every caller, and no other.
    #[test]
    fn plain_ipv4_agrees(a in v4(), b in v4()) {
        let callers = Callers::read(&a.to_string());
        prop_assert_eq!(callers.covers(IpAddr::V4(a)), ALL);
        if a != b {
            prop_assert_eq!(callers.covers(IpAddr::V4(b)), NONE);
        }
    }
}

/// An IPv6 range shorter than /96 that contains IPv4-mapped space (`::/0`, `::/64`): only
/// proxy_header also matches the peer address as the socket reported it, so it trusts an
/// IPv4 peer seen as `::ffff:a.b.c.d`; the others check that peer as IPv4 only.
#[test]
fn short_ipv6_range_and_mapped_peer() {
    let peer = ip("::ffff:10.0.0.1");
    for range in ["::/0", "::/64"] {
        assert_eq!(
            Callers::read(range).covers(peer),
            [Some(false), Some(false), Some(false), Some(true)],
            "{range}"
        );
        assert_eq!(Callers::read(range).covers(ip("10.0.0.1")), NONE, "{range}");
    }
}
