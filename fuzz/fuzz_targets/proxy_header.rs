//! `bastion::proxy_header::accept` on arbitrary connection starts, read in segmentations chosen
//! by the input, in every `ProxyMode`, from trusted, loopback and untrusted peers.
//!
//! Input: byte 0 picks the mode and the peer, byte 1 the number `k` (0..8) of chunk-size bytes
//! that follow; the rest is what the peer sent. Checks: no panic; the outcome (or the fact of
//! an error) does not depend on the segmentation (the same bytes in one read give the same
//! result); on success the bytes left for SSH are exactly the input after the header (all of
//! it without a header), and a header is no longer than the protocol allows.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bastion::proxy_header::{accept, Outcome, ProxyConfig, ProxyMode, V1_MAX_LEN, V2_MAX_PAYLOAD};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// A reader that hands out `data` in chunks of the given sizes (cycled), then EOF.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    turn: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let want = match self.sizes {
            [] => self.data.len(),
            sizes => 1 + usize::from(sizes[self.turn % sizes.len()] % 40),
        };
        let n = want.min(buf.remaining()).min(self.data.len());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.turn += 1;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

/// The outcome and the bytes SSH would read, or `None` for a refused start.
fn run(
    payload: &[u8],
    sizes: &[u8],
    peer: SocketAddr,
    cfg: &ProxyConfig,
) -> Option<(Outcome, Vec<u8>)> {
    runtime().block_on(async {
        let stream = Chunked {
            data: payload,
            sizes,
            turn: 0,
        };
        let (outcome, mut rest) = accept(stream, peer, cfg).await.ok()?;
        let mut leftover = Vec::new();
        rest.read_to_end(&mut leftover)
            .await
            .expect("reading a mock cannot fail");
        Some((outcome, leftover))
    })
}

const PEERS: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
    // IPv4-mapped 192.168.1.1: trusted through the IPv4 entry.
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc0a8, 0x0101)),
];

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let Some((&k, rest)) = rest.split_first() else {
        return;
    };
    let k = usize::from(k % 8).min(rest.len());
    let (sizes, payload) = rest.split_at(k);
    let mode = [ProxyMode::Off, ProxyMode::Optional, ProxyMode::Required][usize::from(control % 3)];
    let peer = SocketAddr::new(PEERS[usize::from(control / 3) % PEERS.len()], 40000);
    let cfg = ProxyConfig {
        mode,
        trusted: ProxyConfig::parse_trusted("10.0.0.0/8, 192.168.0.0/16, [fd00::]/8")
            .expect("a valid trusted list"),
        // The mock never blocks: a deadline can only fire if the reader loops forever.
        timeout: Duration::from_secs(60),
    };
    let segmented = run(payload, sizes, peer, &cfg);
    let whole = run(payload, &[], peer, &cfg);
    assert_eq!(
        segmented.as_ref().map(|(o, _)| o),
        whole.as_ref().map(|(o, _)| o),
        "the outcome depends on the segmentation"
    );
    let Some((outcome, leftover)) = segmented else {
        return;
    };
    assert!(
        payload.ends_with(&leftover),
        "SSH would read bytes that were not sent last"
    );
    let header_len = payload.len() - leftover.len();
    match outcome {
        Outcome::NoHeader => assert_eq!(header_len, 0, "no header, yet bytes were consumed"),
        Outcome::Proxied { version: 1, .. } | Outcome::Local { version: 1 } => {
            assert!(header_len <= V1_MAX_LEN, "v1 header of {header_len} bytes")
        }
        Outcome::Proxied { .. } | Outcome::Local { .. } => {
            assert!(
                header_len <= 16 + V2_MAX_PAYLOAD,
                "v2 header of {header_len} bytes"
            )
        }
    }
    assert_eq!(
        whole.map(|(_, l)| l),
        Some(leftover),
        "leftover depends on the segmentation"
    );
});
