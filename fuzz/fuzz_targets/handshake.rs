//! `bastion::progress::KexScanner`, which reads the first bytes every client sends (its
//! identification line and plaintext key-exchange packets) to tell squatters from users, on
//! arbitrary bytes in segmentations chosen by the input.
//!
//! Input: byte 0 gives the number `k` (0..8) of chunk-size bytes that follow; the rest is what
//! the client sent. Checks: no panic; the stage finally reached does not depend on the
//! segmentation; stages reported only go up; after the scan is done nothing more is reported.
#![no_main]

use bastion::progress::{KexScanner, Stage};
use libfuzzer_sys::fuzz_target;

/// The stages reported, feeding `data` in chunks of `sizes` (cycled; empty: one chunk).
fn scan(data: &[u8], sizes: &[u8]) -> Vec<Stage> {
    let mut scanner = KexScanner::default();
    let mut seen = Vec::new();
    let mut rest = data;
    let mut turn = 0;
    while !rest.is_empty() {
        let want = match sizes {
            [] => rest.len(),
            sizes => 1 + usize::from(sizes[turn % sizes.len()] % 64),
        };
        let (now, later) = rest.split_at(want.min(rest.len()));
        let done_before = scanner.is_done();
        let stage = scanner.feed(now);
        assert!(
            !(done_before && stage.is_some()),
            "a stage after the scan was done"
        );
        seen.extend(stage);
        rest = later;
        turn += 1;
    }
    seen
}

fuzz_target!(|input: &[u8]| {
    let Some((&k, rest)) = input.split_first() else {
        return;
    };
    let k = usize::from(k % 8).min(rest.len());
    let (sizes, data) = rest.split_at(k);
    let whole = scan(data, &[]);
    let pieces = scan(data, sizes);
    assert_eq!(
        whole.last(),
        pieces.last(),
        "the stage reached depends on segmentation"
    );
    assert!(
        pieces.windows(2).all(|w| w[0] <= w[1]),
        "stages went down: {pieces:?}"
    );
});
