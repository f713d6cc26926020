//! Reads a client's first bytes just far enough to see its progress: the end of the SSH
//! identification line, then the binary packets of the initial key exchange, which are not
//! encrypted (the first whole packet header means the exchange started), up to the client's
//! `SSH_MSG_NEWKEYS` (RFC 4253 §6: `uint32 packet_length`, `byte
//! padding_length`, then the payload, whose first byte is the message number). It never
//! fails: bytes it cannot make sense of end the scan, and russh reports the protocol error.

use super::Stage;

/// `SSH_MSG_NEWKEYS`.
const NEWKEYS: u8 = 21;
/// A longer identification line is not SSH; stop looking (russh refuses it).
const MAX_ID_LINE: usize = 8192;
/// Larger than any packet of the initial exchange (RFC 4253 requires 35,000 to be accepted).
const MAX_PACKET: u32 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Inside the identification line, `n` bytes seen.
    IdLine(usize),
    /// Collecting a packet's first 6 bytes (length, padding length, message number).
    Header {
        got: usize,
        bytes: [u8; 6],
    },
    /// Skipping the rest of a packet.
    Skip(u64),
    Done,
}

/// The scan state of one client stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KexScanner {
    state: State,
}

impl Default for KexScanner {
    fn default() -> Self {
        KexScanner {
            state: State::IdLine(0),
        }
    }
}

impl KexScanner {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feed the next bytes; returns the highest stage they reveal, if any.
    pub fn feed(&mut self, mut data: &[u8]) -> Option<Stage> {
        let mut reached = None;
        while !data.is_empty() {
            let (used, stage) = self.step(data);
            data = &data[used.min(data.len())..];
            reached = stage.or(reached);
            if self.is_done() {
                break;
            }
        }
        reached
    }

    /// Consume a prefix of `data` (at least one byte unless done); report a new stage.
    fn step(&mut self, data: &[u8]) -> (usize, Option<Stage>) {
        match &mut self.state {
            State::IdLine(seen) => match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.state = State::Header {
                        got: 0,
                        bytes: [0; 6],
                    };
                    (end + 1, Some(Stage::Banner))
                }
                None => {
                    *seen += data.len();
                    if *seen > MAX_ID_LINE {
                        self.state = State::Done;
                    }
                    (data.len(), None)
                }
            },
            State::Header { got, bytes } => {
                let take = (6 - *got).min(data.len());
                bytes[*got..*got + take].copy_from_slice(&data[..take]);
                *got += take;
                if *got < 6 {
                    return (take, None);
                }
                let length = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                let message = bytes[5];
                if message == NEWKEYS {
                    self.state = State::Done;
                    return (take, Some(Stage::KexDone));
                }
                if !(2..=MAX_PACKET).contains(&length) {
                    self.state = State::Done;
                    return (take, None);
                }
                // The 4 length bytes are not part of packet_length; 2 more were read.
                self.state = State::Skip(u64::from(length) - 2);
                (take, Some(Stage::KexStarted))
            }
            State::Skip(left) => {
                let take = (*left).min(data.len() as u64);
                *left -= take;
                if *left == 0 {
                    self.state = State::Header {
                        got: 0,
                        bytes: [0; 6],
                    };
                }
                (take as usize, None)
            }
            State::Done => (data.len(), None),
        }
    }
}
