//! The scanner finds the identification line and the client's NEWKEYS in any segmentation,
//! gives up on garbage without panicking, and progress only moves forward.

use super::*;

fn packet(message: u8, payload_len: usize) -> Vec<u8> {
    let padding = 4u8;
    let length = (1 + 1 + payload_len + padding as usize) as u32;
    let mut p = length.to_be_bytes().to_vec();
    p.push(padding);
    p.push(message);
    p.extend(std::iter::repeat_n(0xAB, payload_len));
    p.extend(std::iter::repeat_n(0, padding as usize));
    p
}

/// What an OpenSSH client sends before encryption: id, KEXINIT, KEX_ECDH_INIT, NEWKEYS.
fn client_handshake() -> Vec<u8> {
    let mut bytes = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
    bytes.extend(packet(20, 1500));
    bytes.extend(packet(30, 1220));
    bytes.extend(packet(21, 0));
    bytes.extend(b"\x00\x00\x00\x40encrypted-bytes-follow....");
    bytes
}

fn scan_in_pieces(bytes: &[u8], sizes: impl Iterator<Item = usize>) -> Vec<Stage> {
    let mut scanner = KexScanner::default();
    let mut seen = Vec::new();
    let mut rest = bytes;
    for size in sizes {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(size.clamp(1, rest.len()));
        if let Some(stage) = scanner.feed(now) {
            seen.push(stage);
        }
        rest = later;
    }
    seen
}

#[test]
fn finds_banner_then_newkeys_in_any_segmentation() {
    let bytes = client_handshake();
    assert_eq!(
        scan_in_pieces(&bytes, std::iter::once(bytes.len())),
        vec![Stage::KexDone]
    );
    let seen = scan_in_pieces(&bytes, std::iter::repeat(1));
    assert_eq!(seen[0], Stage::Banner);
    assert_eq!(seen[1], Stage::KexStarted);
    assert_eq!(seen.last(), Some(&Stage::KexDone));
    let mut seed = 7u64;
    for _ in 0..200 {
        let sizes = std::iter::from_fn(|| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Some((seed >> 33) as usize % 700)
        });
        let seen = scan_in_pieces(&bytes, sizes);
        assert_eq!(seen.last(), Some(&Stage::KexDone), "{seen:?}");
    }
}

#[test]
fn banner_then_kexinit_is_a_started_exchange() {
    let mut scanner = KexScanner::default();
    assert_eq!(scanner.feed(b"SSH-2.0-squatter\r\n"), Some(Stage::Banner));
    assert_eq!(scanner.feed(&packet(20, 100)), Some(Stage::KexStarted));
    assert!(!scanner.is_done());
}

#[test]
fn garbage_ends_the_scan_without_a_stage() {
    let mut scanner = KexScanner::default();
    assert_eq!(scanner.feed(&vec![b'x'; 10_000]), None);
    assert!(scanner.is_done());
    let mut scanner = KexScanner::default();
    scanner.feed(b"SSH-2.0-x\n");
    assert_eq!(
        scanner.feed(&[0xff, 0xff, 0xff, 0xff, 0, 21]),
        Some(Stage::KexDone)
    );
    let mut scanner = KexScanner::default();
    scanner.feed(b"SSH-2.0-x\n");
    assert_eq!(
        scanner.feed(&[0xff, 0xff, 0xff, 0xff, 0, 20, 1, 2, 3]),
        None
    );
    assert!(scanner.is_done(), "an impossible length ends the scan");
}

#[test]
fn progress_moves_forward_only_and_eviction_wakes_the_waiter() {
    let progress = Progress::new(Stage::Connected, Instant::now());
    progress.advance(Stage::KexDone);
    progress.advance(Stage::Banner);
    assert_eq!(progress.stage(), Stage::KexDone);
    assert!(!progress.stage().evictable());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let waiter = {
            let progress = progress.clone();
            tokio::spawn(async move { progress.evicted().await })
        };
        tokio::task::yield_now().await;
        progress.cut(Cut::Evicted(Stage::Banner));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the eviction woke the waiter")
            .unwrap();
    });
    assert_eq!(progress.cut_reason(), Some(Cut::Evicted(Stage::Banner)));
}
