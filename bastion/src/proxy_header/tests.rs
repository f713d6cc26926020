use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use tokio::io::{AsyncWriteExt, DuplexStream};

const SSH: &[u8] = b"SSH-2.0-OpenSSH_9.2\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A load balancer inside the default trusted ranges.
fn lb() -> SocketAddr {
    addr("10.0.0.5:40000")
}

/// A peer outside them.
fn outsider() -> SocketAddr {
    addr("203.0.113.9:40000")
}

fn cfg(mode: ProxyMode) -> ProxyConfig {
    ProxyConfig {
        mode,
        trusted: ProxyConfig::default_trusted(),
        timeout: Duration::from_millis(2000),
    }
}

#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// Header and SSH banner in one write (NLB: the header rides on the first segment).
    OneWrite,
    /// Header, a pause, then the banner (haproxy sends the header on connect).
    HeaderThenPause,
    /// Every byte its own write with a pause in between.
    ByteByByte,
}

const ALL_DELIVERIES: [Delivery; 3] = [
    Delivery::OneWrite,
    Delivery::HeaderThenPause,
    Delivery::ByteByByte,
];

fn spawn_writer(mut w: DuplexStream, header: Vec<u8>, rest: Vec<u8>, how: Delivery) {
    tokio::spawn(async move {
        let pause = || tokio::time::sleep(Duration::from_millis(1));
        match how {
            Delivery::OneWrite => {
                let all = [header, rest].concat();
                w.write_all(&all).await.unwrap();
            }
            Delivery::HeaderThenPause => {
                w.write_all(&header).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                w.write_all(&rest).await.unwrap();
            }
            Delivery::ByteByByte => {
                // The pipe holds one byte, so every read sees at most one.
                for (i, b) in header.iter().chain(rest.iter()).enumerate() {
                    w.write_all(&[*b]).await.unwrap();
                    if i < 64 {
                        pause().await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
        // Dropping `w` ends the stream, so the reader can read to the end.
    });
}

/// Deliver `header` then `rest`; return the outcome and everything SSH would read after.
async fn deliver(
    header: &[u8],
    rest: &[u8],
    how: Delivery,
    peer: SocketAddr,
    cfg: &ProxyConfig,
) -> Result<(Outcome, Vec<u8>), ProxyError> {
    let capacity = match how {
        Delivery::ByteByByte => 1,
        Delivery::OneWrite | Delivery::HeaderThenPause => 4096,
    };
    let (r, w) = tokio::io::duplex(capacity);
    spawn_writer(w, header.to_vec(), rest.to_vec(), how);
    let (outcome, mut stream) = accept(r, peer, cfg).await?;
    let mut after = Vec::new();
    stream.read_to_end(&mut after).await.unwrap();
    Ok((outcome, after))
}

/// Every delivery gives the same outcome, and SSH then reads exactly `SSH`.
async fn same_everywhere(header: &[u8], peer: SocketAddr, cfg: &ProxyConfig) -> Outcome {
    let mut seen: Option<Outcome> = None;
    for how in ALL_DELIVERIES {
        let (outcome, after) = deliver(header, SSH, how, peer, cfg)
            .await
            .unwrap_or_else(|e| panic!("{how:?}: {e}"));
        assert_eq!(after, SSH, "{how:?}: SSH bytes damaged");
        if let Some(prev) = &seen {
            assert_eq!(prev, &outcome, "{how:?} differs");
        }
        seen = Some(outcome);
    }
    seen.unwrap()
}

async fn error_of(header: &[u8], peer: SocketAddr, cfg: &ProxyConfig) -> ProxyError {
    match deliver(header, SSH, Delivery::OneWrite, peer, cfg).await {
        Ok((o, _)) => panic!("expected an error, got {o:?}"),
        Err(e) => e,
    }
}

/// A v2 header built by hand: version/command byte, family/protocol byte, payload.
fn v2(ver_cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(ver_cmd);
    h.push(fam);
    h.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut t = vec![kind];
    t.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    t.extend_from_slice(value);
    t
}

fn v4_payload() -> Vec<u8> {
    // 198.51.100.7:51234 -> 10.0.1.20:2222
    vec![198, 51, 100, 7, 10, 0, 1, 20, 0xC8, 0x22, 0x08, 0xAE]
}

#[tokio::test]
async fn v1_tcp4() {
    let o = same_everywhere(
        b"PROXY TCP4 198.51.100.7 10.0.1.20 51234 2222\r\n",
        lb(),
        &cfg(ProxyMode::Required),
    )
    .await;
    assert_eq!(
        o,
        Outcome::Proxied {
            client: addr("198.51.100.7:51234"),
            destination: Some(addr("10.0.1.20:2222")),
            version: 1,
            vpce_id: None,
        }
    );
    assert_eq!(o.client(lb()), addr("198.51.100.7:51234"));
}

#[tokio::test]
async fn v1_tcp6() {
    let o = same_everywhere(
        b"PROXY TCP6 2001:db8::7 fd00::14 51234 2222\r\n",
        lb(),
        &cfg(ProxyMode::Optional),
    )
    .await;
    assert_eq!(
        o,
        Outcome::Proxied {
            client: addr("[2001:db8::7]:51234"),
            destination: Some(addr("[fd00::14]:2222")),
            version: 1,
            vpce_id: None,
        }
    );
}

#[tokio::test]
async fn v1_longest_valid_header() {
    // 104 bytes + CRLF: the worst case the specification allows for.
    let h = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert!(h.len() <= V1_MAX_LEN);
    let o = same_everywhere(h, lb(), &cfg(ProxyMode::Required)).await;
    assert!(matches!(o, Outcome::Proxied { version: 1, .. }));
}

#[tokio::test]
async fn v1_unknown_is_local() {
    for h in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    ] {
        let o = same_everywhere(h, lb(), &cfg(ProxyMode::Required)).await;
        assert_eq!(o, Outcome::Local { version: 1 });
        assert_eq!(o.client(lb()), lb());
    }
}

#[tokio::test]
async fn v2_proxy_inet_by_hand() {
    let o = same_everywhere(
        &v2(0x21, 0x11, &v4_payload()),
        lb(),
        &cfg(ProxyMode::Required),
    )
    .await;
    assert_eq!(
        o,
        Outcome::Proxied {
            client: addr("198.51.100.7:51234"),
            destination: Some(addr("10.0.1.20:2222")),
            version: 2,
            vpce_id: None,
        }
    );
}

#[tokio::test]
async fn v2_proxy_inet6_with_ppp_builder() {
    let src: SocketAddr = addr("[2001:db8::7]:51234");
    let dst: SocketAddr = addr("[fd00::14]:2222");
    let header = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (src, dst),
    )
    .build()
    .unwrap();
    let o = same_everywhere(&header, lb(), &cfg(ProxyMode::Required)).await;
    assert_eq!(
        o,
        Outcome::Proxied {
            client: src,
            destination: Some(dst),
            version: 2,
            vpce_id: None,
        }
    );
}

#[tokio::test]
async fn v2_local_with_dummy_addresses_and_padding_is_local() {
    // As captured from an NLB health check: LOCAL, family INET/STREAM, 84 bytes of "address"
    // and TLVs (CRC32C, then NOOP padding) that do not even line up with the family.
    let mut payload = vec![0x03, 0x00, 0x04, 0xbc, 0xe5, 0x95, 0x1f, 0x04, 0x00, 0x4a];
    payload.resize(84, 0);
    let o = same_everywhere(&v2(0x20, 0x11, &payload), lb(), &cfg(ProxyMode::Required)).await;
    assert_eq!(o, Outcome::Local { version: 2 });

    // Dummy addresses that would otherwise parse, plus a NOOP TLV.
    let mut payload = v4_payload();
    payload.extend(tlv(0x04, &[0; 10]));
    let o = same_everywhere(&v2(0x20, 0x11, &payload), lb(), &cfg(ProxyMode::Optional)).await;
    assert_eq!(o, Outcome::Local { version: 2 });
    assert_eq!(o.client(lb()), lb());

    // The usual form: UNSPEC and no payload at all.
    let o = same_everywhere(&v2(0x20, 0x00, &[]), lb(), &cfg(ProxyMode::Required)).await;
    assert_eq!(o, Outcome::Local { version: 2 });
}

#[tokio::test]
async fn v2_aws_vpce_tlv() {
    let mut payload = v4_payload();
    payload.extend(tlv(0x04, &[0; 3]));
    let mut aws = vec![PP2_SUBTYPE_AWS_VPCE_ID];
    aws.extend_from_slice(b"vpce-08d2bf15fac5001c9");
    payload.extend(tlv(PP2_TYPE_AWS, &aws));
    let o = same_everywhere(&v2(0x21, 0x11, &payload), lb(), &cfg(ProxyMode::Required)).await;
    assert_eq!(
        o,
        Outcome::Proxied {
            client: addr("198.51.100.7:51234"),
            destination: Some(addr("10.0.1.20:2222")),
            version: 2,
            vpce_id: Some("vpce-08d2bf15fac5001c9".to_owned()),
        }
    );

    // Other AWS subtypes are ignored; hostile bytes in the id are escaped.
    let mut payload = v4_payload();
    payload.extend(tlv(PP2_TYPE_AWS, &[0x02, b'x']));
    payload.extend(tlv(PP2_TYPE_AWS, b"\x01vpce-1\n\x1b[31m"));
    let o = same_everywhere(&v2(0x21, 0x11, &payload), lb(), &cfg(ProxyMode::Required)).await;
    let Outcome::Proxied { vpce_id, .. } = o else {
        panic!("{o:?}")
    };
    assert_eq!(vpce_id.as_deref(), Some("vpce-1\\n\\x1b[31m"));
}

#[tokio::test]
async fn v2_bad_tlv_is_malformed() {
    let mut payload = v4_payload();
    payload.extend([0x04, 0x00, 0x09, 0x00]); // TLV claims 9 bytes, has 1
    let e = error_of(&v2(0x21, 0x11, &payload), lb(), &cfg(ProxyMode::Required)).await;
    assert!(matches!(e, ProxyError::Malformed(_)), "{e}");
}

#[tokio::test]
async fn optional_mode_plain_ssh_loses_nothing() {
    for how in ALL_DELIVERIES {
        let (o, after) = deliver(b"", SSH, how, lb(), &cfg(ProxyMode::Optional))
            .await
            .unwrap();
        assert_eq!(o, Outcome::NoHeader);
        assert_eq!(after, SSH, "{how:?}");
    }
}

#[tokio::test]
async fn off_mode_reads_nothing() {
    let (mut r, mut w) = tokio::io::duplex(64);
    w.write_all(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")
        .await
        .unwrap();
    let (o, prefix) = read_header(&mut r, lb(), &cfg(ProxyMode::Off))
        .await
        .unwrap();
    assert_eq!(o, Outcome::NoHeader);
    assert!(prefix.is_empty());
    let mut first = [0u8; 6];
    r.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"PROXY ");
}

#[tokio::test]
async fn second_header_is_ssh_data() {
    let h = b"PROXY TCP4 198.51.100.7 10.0.1.20 51234 2222\r\n";
    let rest = [&h[..], SSH].concat();
    for how in ALL_DELIVERIES {
        let (o, after) = deliver(h, &rest, how, lb(), &cfg(ProxyMode::Required))
            .await
            .unwrap();
        assert!(matches!(o, Outcome::Proxied { version: 1, .. }));
        assert_eq!(after, rest);
    }
}

#[tokio::test]
async fn required_mode_without_header_is_missing() {
    let e = error_of(b"", lb(), &cfg(ProxyMode::Required)).await;
    assert!(matches!(e, ProxyError::Missing), "{e}");
}

#[tokio::test]
async fn truncated_then_silence_times_out() {
    let mut c = cfg(ProxyMode::Required);
    c.timeout = Duration::from_millis(200);
    let v2_partial = v2(0x21, 0x11, &v4_payload())[..20].to_vec();
    let v1_partial = b"PROXY TCP4 198.51.100.7 10.0".to_vec();
    for partial in [Vec::new(), b"\r\n\r\n".to_vec(), v2_partial, v1_partial] {
        let (mut r, mut w) = tokio::io::duplex(64);
        w.write_all(&partial).await.unwrap();
        let started = tokio::time::Instant::now();
        let e = read_header(&mut r, lb(), &c).await.unwrap_err();
        assert!(matches!(e, ProxyError::Timeout), "{partial:?}: {e}");
        assert!(started.elapsed() >= Duration::from_millis(190));
        drop(w); // kept open until here: silence, not EOF
    }
    // Optional mode waits for the first byte under the same deadline.
    c.mode = ProxyMode::Optional;
    let (mut r, _w) = tokio::io::duplex(64);
    let e = read_header(&mut r, lb(), &c).await.unwrap_err();
    assert!(matches!(e, ProxyError::Timeout), "{e}");
}

#[tokio::test]
async fn eof_mid_header_is_io() {
    let (mut r, mut w) = tokio::io::duplex(64);
    w.write_all(b"PROXY TCP4 1.2").await.unwrap();
    drop(w);
    let e = read_header(&mut r, lb(), &cfg(ProxyMode::Required))
        .await
        .unwrap_err();
    let ProxyError::Io(io) = &e else {
        panic!("{e}")
    };
    assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof);
    assert!(e.to_string().contains("closed before"), "{e}");
}

#[tokio::test]
async fn bad_v2_signature_is_malformed() {
    let e = error_of(
        b"\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c",
        lb(),
        &cfg(ProxyMode::Optional),
    )
    .await;
    assert!(matches!(e, ProxyError::Malformed(_)), "{e}");
    let e = error_of(b"PROXY_TCP4 1.2.3.4\r\n", lb(), &cfg(ProxyMode::Optional)).await;
    assert!(matches!(e, ProxyError::Malformed(_)), "{e}");
}

#[tokio::test]
async fn v2_bad_version_command_family() {
    let c = cfg(ProxyMode::Required);
    for (ver_cmd, fam, want) in [
        (0x11, 0x11, "version 1"),
        (0x22, 0x11, "command 0x2"),
        (0x21, 0x00, "UNSPEC"),
        (0x21, 0x31, "UNIX"),
        (0x21, 0x12, "DGRAM"),
        (0x21, 0x51, "Address Family"),
    ] {
        let payload = if fam & 0xF0 == 0x30 {
            vec![0; 216]
        } else {
            v4_payload()
        };
        let e = error_of(&v2(ver_cmd, fam, &payload), lb(), &c).await;
        assert!(matches!(e, ProxyError::Malformed(_)), "{e}");
        assert!(e.to_string().contains(want), "{e} lacks {want}");
    }
    // INET with a payload too short for the addresses.
    let e = error_of(&v2(0x21, 0x11, &[1, 2, 3]), lb(), &c).await;
    assert!(matches!(e, ProxyError::Malformed(_)), "{e}");
}

#[tokio::test]
async fn v2_oversized_length_is_refused_before_reading_payload() {
    let (mut r, mut w) = tokio::io::duplex(64);
    // Announce 0xFFFF bytes and send none: the error must come without waiting for them.
    let mut h = V2_SIGNATURE.to_vec();
    h.extend([0x21, 0x11, 0xFF, 0xFF]);
    w.write_all(&h).await.unwrap();
    let e = read_header(&mut r, lb(), &cfg(ProxyMode::Required))
        .await
        .unwrap_err();
    assert!(matches!(e, ProxyError::Malformed(_)), "{e}");
    assert!(e.to_string().contains("length 65535 over the limit"), "{e}");
    drop(w);
    // The largest accepted payload still works.
    let mut payload = v4_payload();
    payload.extend(tlv(0x04, &vec![0; V2_MAX_PAYLOAD - 12 - 3]));
    assert_eq!(payload.len(), V2_MAX_PAYLOAD);
    let o = same_everywhere(&v2(0x21, 0x11, &payload), lb(), &cfg(ProxyMode::Required)).await;
    assert!(matches!(o, Outcome::Proxied { version: 2, .. }));
}

#[tokio::test]
async fn v1_too_long_or_bad_is_malformed() {
    let c = cfg(ProxyMode::Required);
    let long = format!("PROXY TCP4 {} 5.6.7.8 1 2\r\n", "1".repeat(120));
    let e = error_of(long.as_bytes(), lb(), &c).await;
    assert!(e.to_string().contains("longer than 107"), "{e}");
    // Exactly 108 bytes with the CRLF: one too many.
    let h = format!("PROXY UNKNOWN {}\r\n", "x".repeat(108 - 16));
    assert_eq!(h.len(), 108);
    let e = error_of(h.as_bytes(), lb(), &c).await;
    assert!(e.to_string().contains("longer than 107"), "{e}");
    // 107 bytes: accepted.
    let h = format!("PROXY UNKNOWN {}\r\n", "x".repeat(107 - 16));
    let o = same_everywhere(h.as_bytes(), lb(), &c).await;
    assert_eq!(o, Outcome::Local { version: 1 });
    for bad in [
        &b"PROXY TCP4\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
        b"PROXY TCP4 ::1 ::2 1 2\r\n",
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY \xff\xfe 1.2.3.4 5.6.7.8 1 2\r\n",
    ] {
        let e = error_of(bad, lb(), &c).await;
        assert!(
            matches!(e, ProxyError::Malformed(_)),
            "{:?}: {e}",
            bad.escape_ascii().to_string()
        );
    }
}

#[tokio::test]
async fn untrusted_sender() {
    let v1 = b"PROXY TCP4 198.51.100.7 10.0.1.20 51234 2222\r\n".to_vec();
    let v2h = v2(0x21, 0x11, &v4_payload());
    // Required: refused before reading anything (even with nothing sent).
    let (mut r, _w) = tokio::io::duplex(64);
    let e = read_header(&mut r, outsider(), &cfg(ProxyMode::Required))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProxyError::UntrustedSender(ip) if ip == outsider().ip()),
        "{e}"
    );
    // Optional with a header: spoofing attempt.
    for h in [&v1, &v2h] {
        let e = error_of(h, outsider(), &cfg(ProxyMode::Optional)).await;
        assert!(matches!(e, ProxyError::UntrustedSender(_)), "{e}");
        assert!(e.to_string().contains("203.0.113.9"), "{e}");
    }
    // Optional without a header: a plain client, nothing lost.
    for how in ALL_DELIVERIES {
        let (o, after) = deliver(b"", SSH, how, outsider(), &cfg(ProxyMode::Optional))
            .await
            .unwrap();
        assert_eq!(o, Outcome::NoHeader);
        assert_eq!(after, SSH);
    }
}

#[tokio::test]
async fn loopback_may_send_local_only() {
    // `bastion healthcheck` inside the task: LOCAL from loopback, not in the trusted list.
    let me = addr("127.0.0.1:40001");
    let local = v2(0x20, 0x00, &[]);
    for mode in [ProxyMode::Required, ProxyMode::Optional] {
        let (o, after) = deliver(&local, SSH, Delivery::OneWrite, me, &cfg(mode))
            .await
            .unwrap();
        assert_eq!(o, Outcome::Local { version: 2 }, "{mode:?}");
        assert_eq!(after, SSH);
        // A client address from loopback is still a spoofing attempt.
        let proxied = v2(0x21, 0x11, &v4_payload());
        let e = error_of(&proxied, me, &cfg(mode)).await;
        assert!(matches!(e, ProxyError::UntrustedSender(_)), "{mode:?}: {e}");
    }
    // Required: a plain connection from loopback is still refused (no header).
    let e = error_of(b"", me, &cfg(ProxyMode::Required)).await;
    assert!(matches!(e, ProxyError::UntrustedSender(_)), "{e}");
    // Optional: a plain connection from loopback is a plain client.
    let (o, after) = deliver(b"", SSH, Delivery::OneWrite, me, &cfg(ProxyMode::Optional))
        .await
        .unwrap();
    assert_eq!((o, after.as_slice()), (Outcome::NoHeader, SSH));
}

#[tokio::test]
async fn ipv4_mapped_peer_matches_ipv4_cidr() {
    let mapped = SocketAddr::new(
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 5).to_ipv6_mapped()),
        40000,
    );
    let o = same_everywhere(
        b"PROXY TCP4 198.51.100.7 10.0.1.20 51234 2222\r\n",
        mapped,
        &cfg(ProxyMode::Required),
    )
    .await;
    assert!(matches!(o, Outcome::Proxied { .. }));
    let outside_mapped = SocketAddr::new(
        IpAddr::V6(Ipv4Addr::new(203, 0, 113, 9).to_ipv6_mapped()),
        40000,
    );
    let e = error_of(b"", outside_mapped, &cfg(ProxyMode::Required)).await;
    assert!(
        matches!(e, ProxyError::UntrustedSender(IpAddr::V4(ip)) if ip == Ipv4Addr::new(203, 0, 113, 9)),
        "{e}"
    );
    // A mapped entry in the list matches plain IPv4 peers too.
    let mut c = cfg(ProxyMode::Required);
    c.trusted = ProxyConfig::parse_trusted("[::ffff:203.0.113.0]/120").unwrap();
    assert_eq!(c.trusted, vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]);
    assert!(c.is_trusted(outsider().ip()));
    assert!(c.is_trusted(outside_mapped.ip()));
    assert!(!c.is_trusted(IpAddr::V6(Ipv6Addr::LOCALHOST)));
}

#[test]
fn mode_parse_and_display() {
    for m in [ProxyMode::Off, ProxyMode::Optional, ProxyMode::Required] {
        assert_eq!(m.to_string().parse::<ProxyMode>().unwrap(), m);
    }
    assert_eq!(
        " Required ".parse::<ProxyMode>().unwrap(),
        ProxyMode::Required
    );
    let e = "v2".parse::<ProxyMode>().unwrap_err();
    assert!(
        e.contains("BASTION_PROXY_PROTOCOL") && e.contains("optional"),
        "{e}"
    );
    assert_eq!(ProxyMode::default(), ProxyMode::Off);
}

#[test]
fn trusted_list_parsing() {
    let nets =
        ProxyConfig::parse_trusted(" 10.1.0.0/16, 192.0.2.7 ,fd00::/8,[2001:db8::1]").unwrap();
    let want: Vec<IpNet> = ["10.1.0.0/16", "192.0.2.7/32", "fd00::/8", "2001:db8::1/128"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nets, want);
    for (bad, needle) in [
        ("", "is empty"),
        ("10.0.0.0/8,,10.1.0.0/16", "entry 2 is empty"),
        ("10.0.0.1/8", "host bits"),
        ("lb.example.com", "\"lb.example.com\""),
        ("10.0.0.0/33", "not a CIDR"),
        ("[fd00::/8", "brackets"),
    ] {
        let e = ProxyConfig::parse_trusted(bad).unwrap_err();
        assert!(e.contains("BASTION_PROXY_TRUSTED"), "{e}");
        assert!(e.contains(needle), "{bad}: {e} lacks {needle}");
    }
    assert_eq!(ProxyConfig::default_trusted().len(), 4);
}

#[test]
fn error_display_is_one_line() {
    let errors = [
        ProxyError::Timeout,
        ProxyError::Missing,
        ProxyError::Malformed("v2: x".into()),
        ProxyError::UntrustedSender(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
        ProxyError::Io(io::Error::other("boom")),
    ];
    for e in errors {
        let s = e.to_string();
        assert!(!s.contains('\n') && s.len() < 120, "{s}");
    }
}

#[tokio::test]
async fn prefixed_replays_prefix_then_inner_and_passes_writes() {
    let (a, mut b) = tokio::io::duplex(64);
    let mut p = Prefixed::new(b"SS".to_vec(), a);
    b.write_all(b"H-2.0").await.unwrap();
    let mut one = [0u8; 1];
    p.read_exact(&mut one).await.unwrap();
    assert_eq!(&one, b"S");
    let mut rest = [0u8; 6];
    p.read_exact(&mut rest).await.unwrap();
    assert_eq!(&rest, b"SH-2.0");
    p.write_all(b"reply").await.unwrap();
    p.flush().await.unwrap();
    let mut got = [0u8; 5];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"reply");
    let (left, _inner) = p.into_parts();
    assert!(left.is_empty());
}

// ---- property tests ----

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Headers of every kind, each with the outcome it must give.
fn sample_headers() -> Vec<(Vec<u8>, Outcome)> {
    let mut aws = v4_payload();
    let mut vpce = vec![PP2_SUBTYPE_AWS_VPCE_ID];
    vpce.extend_from_slice(b"vpce-0abc");
    aws.extend(tlv(PP2_TYPE_AWS, &vpce));
    let proxied = |client: &str, dest: &str, version, vpce_id: Option<&str>| Outcome::Proxied {
        client: addr(client),
        destination: Some(addr(dest)),
        version,
        vpce_id: vpce_id.map(str::to_owned),
    };
    vec![
        (
            b"PROXY TCP4 198.51.100.7 10.0.1.20 51234 2222\r\n".to_vec(),
            proxied("198.51.100.7:51234", "10.0.1.20:2222", 1, None),
        ),
        (
            b"PROXY TCP6 2001:db8::7 fd00::14 51234 2222\r\n".to_vec(),
            proxied("[2001:db8::7]:51234", "[fd00::14]:2222", 1, None),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), Outcome::Local { version: 1 }),
        (
            v2(0x21, 0x11, &aws),
            proxied("198.51.100.7:51234", "10.0.1.20:2222", 2, Some("vpce-0abc")),
        ),
        (v2(0x20, 0x00, &[]), Outcome::Local { version: 2 }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Whatever segments the bytes arrive in, the outcome is the same and SSH gets every
    /// byte after the header.
    #[test]
    fn any_segmentation_gives_same_result(
        which in 0usize..5,
        cuts in proptest::collection::vec(1usize..40, 0..30),
    ) {
        let (header, want) = sample_headers().swap_remove(which);
        let all = [header.as_slice(), SSH].concat();
        let (got, after) = runtime().block_on(async {
            let (r, mut w) = tokio::io::duplex(4096);
            let bytes = all.clone();
            tokio::spawn(async move {
                let mut rest = bytes.as_slice();
                for cut in cuts {
                    let (now, later) = rest.split_at(cut.min(rest.len()));
                    w.write_all(now).await.unwrap();
                    tokio::task::yield_now().await;
                    rest = later;
                }
                w.write_all(rest).await.unwrap();
            });
            let (o, mut stream) = accept(r, lb(), &cfg(ProxyMode::Optional)).await.unwrap();
            let mut after = Vec::new();
            stream.read_to_end(&mut after).await.unwrap();
            (o, after)
        });
        proptest::prop_assert_eq!(got, want);
        proptest::prop_assert_eq!(after, SSH.to_vec());
    }

    /// Arbitrary bytes after either signature never panic and never wait past the end
    /// of the stream; whatever is accepted leaves the rest of the stream untouched.
    #[test]
    fn garbage_never_panics(
        v2_sig in proptest::bool::ANY,
        fixed in proptest::collection::vec(proptest::num::u8::ANY, 4),
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
    ) {
        let mut input = if v2_sig { V2_SIGNATURE.to_vec() } else { V1_SIGNATURE.to_vec() };
        if v2_sig {
            input.extend(&fixed);
        }
        input.extend(&body);
        let result = runtime().block_on(async {
            let (mut r, mut w) = tokio::io::duplex(4096);
            w.write_all(&input).await.unwrap();
            drop(w);
            let result = read_header(&mut r, lb(), &cfg(ProxyMode::Required)).await;
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).await.unwrap();
            result.map(|o| (o, rest))
        });
        match result {
            Ok((_, rest)) => {
                // The consumed part is a whole header: v1 ends in CRLF, v2 is 16 + length.
                let used = input.len() - rest.len();
                proptest::prop_assert_eq!(&input[used..], rest.as_slice());
                if v2_sig {
                    let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
                    proptest::prop_assert_eq!(used, V2_FIXED_LEN + len);
                } else {
                    proptest::prop_assert!(input[..used].ends_with(b"\r\n"));
                    proptest::prop_assert!((V1_MIN_LEN..=V1_MAX_LEN).contains(&used));
                }
            }
            Err(ProxyError::Timeout) => proptest::prop_assert!(false, "timed out on a closed stream"),
            Err(_) => {}
        }
    }
}
