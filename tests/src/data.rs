//! Deterministic data and digests: pseudo-random byte streams, SHA-256 of what was read, rates,
//! and echo round trips.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::MIB;

const PATTERN_PERIOD: usize = 1024 * 1024 + 61;

/// A deterministic pseudo-random byte stream (one per seed). Its period is not a power of two,
/// so lost, duplicated or reordered blocks change the digest.
#[derive(Clone)]
pub struct Pattern {
    bytes: Arc<Vec<u8>>,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut bytes = Vec::with_capacity(PATTERN_PERIOD + 8);
        while bytes.len() < PATTERN_PERIOD {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            bytes.extend_from_slice(&z.to_le_bytes());
        }
        bytes.truncate(PATTERN_PERIOD);
        Pattern {
            bytes: Arc::new(bytes),
        }
    }

    /// The largest contiguous slice at stream offset `offset`, at most `max` bytes.
    pub fn chunk(&self, offset: u64, max: usize) -> &[u8] {
        let start = (offset % PATTERN_PERIOD as u64) as usize;
        let end = (start + max).min(PATTERN_PERIOD);
        &self.bytes[start..end]
    }

    /// SHA-256 (hex) of the first `len` bytes of the stream.
    pub fn digest(&self, len: u64) -> String {
        let mut hasher = Sha256::new();
        let mut offset = 0;
        while offset < len {
            let chunk = self.chunk(offset, (len - offset).min(1 << 20) as usize);
            hasher.update(chunk);
            offset += chunk.len() as u64;
        }
        hex(&hasher.finalize())
    }

    /// Writes the first `len` bytes of the stream to `w` and returns their SHA-256 (hex).
    pub fn write_to(&self, w: &mut impl Write, len: u64) -> io::Result<String> {
        let mut hasher = Sha256::new();
        let mut offset = 0;
        while offset < len {
            let chunk = self.chunk(offset, (len - offset).min(256 * 1024) as usize);
            w.write_all(chunk)?;
            hasher.update(chunk);
            offset += chunk.len() as u64;
        }
        w.flush()?;
        Ok(hex(&hasher.finalize()))
    }
}

/// Reads `r` to EOF; returns the byte count and SHA-256 (hex).
pub fn read_to_end_digest(r: &mut impl Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

/// SHA-256 (hex) of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MiB per second for `bytes` moved in `elapsed`.
pub fn mib_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Sends `payload` through a bidirectional stream and reads back exactly as many bytes
/// (an echo round trip); panics with `what` on failure or mismatch.
pub fn echo_round_trip<S: Read + Write>(stream: &mut S, payload: &[u8], what: &str) {
    stream
        .write_all(payload)
        .unwrap_or_else(|e| panic!("{what}: writing {} bytes: {e}", payload.len()));
    let mut back = vec![0u8; payload.len()];
    stream
        .read_exact(&mut back)
        .unwrap_or_else(|e| panic!("{what}: reading the echo of {} bytes: {e}", payload.len()));
    assert!(
        back == payload,
        "{what}: the echo differs from what was sent"
    );
}
