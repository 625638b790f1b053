//! The echo exchange: checksummed messages through a [`Channel`], both
//! directions at once. Used by the `srb-echo` peer binary and the transport
//! tests; also a quick way to exercise a channel by hand.
//!
//! A message is `[len: u32 LE][checksum: u64 LE][len bytes]`; a message
//! with `len == END` and no payload ends the exchange. The driver
//! ([`run_exchange`]) sends `count` messages whose sizes are log-uniform
//! over `1..=max_len` (each power-of-two size class equally likely, so small
//! and large messages are both common while the mean stays near
//! `max_len / ln(max_len)`), taken from a fixed random pattern at random
//! offsets, and checks every echo against the message it sent. The echo
//! side ([`serve_echo`]) checks each checksum and sends the message back.
//!
//! Both sides drive both directions from one loop: write what fits, read
//! what is there, and [`Channel::wait`] only when neither made progress.
//! With a ring smaller than a message, both writers fill their rings and
//! both sides block, which is the point.

use std::time::Duration;

use srb_core::Woken;

use crate::channel::{Channel, ChannelIoError};

/// Bytes before each payload.
pub const HEADER_LEN: usize = 12;
/// The length value that ends the exchange.
pub const END: u32 = u32::MAX;
/// The largest payload the exchange uses or accepts.
pub const MAX_MESSAGE: usize = 1 << 16;
/// Bytes of the random pattern messages are cut from.
const PATTERN_LEN: usize = 2 * MAX_MESSAGE;
/// Receive buffer size (several maximal messages).
const INBUF: usize = 4 * (MAX_MESSAGE + HEADER_LEN);

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EchoError {
    /// The channel failed (or the peer went away).
    #[error("channel: {0}")]
    Channel(#[from] ChannelIoError),
    /// A message's checksum did not match its bytes.
    #[error("message {index}: checksum mismatch")]
    Checksum {
        /// The message's index in the stream.
        index: u64,
    },
    /// An echo differs from the message that was sent.
    #[error("message {index}: echo differs from what was sent ({what})")]
    Mismatch {
        /// The message's index.
        index: u64,
        /// What differs.
        what: &'static str,
    },
    /// A message announced a length above [`MAX_MESSAGE`].
    #[error("message {index}: bad length {len}")]
    BadLength {
        /// The message's index.
        index: u64,
        /// The announced length.
        len: u32,
    },
    /// A wait passed its timeout without progress.
    #[error("no progress within the timeout")]
    Stalled,
}

/// What one side saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Messages handled (sent and verified, or echoed).
    pub messages: u64,
    /// Payload bytes handled.
    pub bytes: u64,
    /// Waits that slept and were woken by the peer.
    pub slept: u64,
    /// Waits that found a post pending and did not sleep.
    pub pending: u64,
}

/// The message checksum: a Fletcher-style pair of 64-bit sums over
/// little-endian words (order-sensitive), mixed with the length.
pub fn checksum(data: &[u8]) -> u64 {
    let (mut a, mut b) = (0x9e37_79b9_7f4a_7c15u64, data.len() as u64);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        a = a.wrapping_add(w);
        b = b.wrapping_add(a);
    }
    for &byte in chunks.remainder() {
        a = a.wrapping_add(u64::from(byte));
        b = b.wrapping_add(a);
    }
    (a ^ b.rotate_left(32)).wrapping_mul(0xff51_afd7_ed55_8ccd)
}

/// SplitMix64: a small, fast, deterministic generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The deterministic message sequence of one exchange.
#[derive(Debug, Clone)]
struct Messages {
    rng: SplitMix64,
    max_len: usize,
}

impl Messages {
    /// (offset into the pattern, length) of the next message.
    fn next(&mut self) -> (usize, usize) {
        let r = self.rng.next_u64();
        // Log-uniform: pick a size class [2^k, 2^(k+1)) uniformly, then a
        // size in it; the top class runs up to max_len inclusive.
        let classes = self.max_len.ilog2().max(1);
        let class = (r % u64::from(classes)) as u32;
        let lo = 1usize << class;
        let span = if class + 1 == classes {
            self.max_len + 1 - lo
        } else {
            lo
        };
        let len = lo + ((r >> 32) as usize % span);
        let off = (r >> 16) as usize % (PATTERN_LEN - MAX_MESSAGE);
        (off, len.min(self.max_len))
    }
}

fn pattern(seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let mut p = Vec::with_capacity(PATTERN_LEN);
    while p.len() < PATTERN_LEN {
        p.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    p
}

fn header(len: u32, sum: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..12].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Reassembles messages from the bytes a channel delivers.
struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    fn new() -> Self {
        Self {
            buf: vec![0; INBUF],
            start: 0,
            end: 0,
        }
    }

    /// Reads what the channel has; returns the bytes read.
    fn fill(&mut self, ch: &mut Channel) -> Result<usize, ChannelIoError> {
        if self.buf.len() - self.end < MAX_MESSAGE + HEADER_LEN {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = ch.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The next complete message: (len field, checksum, payload range).
    fn next(
        &mut self,
        index: u64,
    ) -> Result<Option<(u32, u64, std::ops::Range<usize>)>, EchoError> {
        let have = self.end - self.start;
        if have < HEADER_LEN {
            return Ok(None);
        }
        let h = &self.buf[self.start..self.start + HEADER_LEN];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let mut s = [0u8; 8];
        s.copy_from_slice(&h[4..12]);
        let sum = u64::from_le_bytes(s);
        let plen = if len == END { 0 } else { len as usize };
        if len != END && plen > MAX_MESSAGE {
            return Err(EchoError::BadLength { index, len });
        }
        if have < HEADER_LEN + plen {
            return Ok(None);
        }
        let body = self.start + HEADER_LEN..self.start + HEADER_LEN + plen;
        self.start = body.end;
        Ok(Some((len, sum, body)))
    }
}

/// Counts a wait and turns a timeout into [`EchoError::Stalled`].
fn wait(
    ch: &mut Channel,
    timeout: Option<Duration>,
    stats: &mut EchoStats,
) -> Result<(), EchoError> {
    match ch.wait(timeout)? {
        Woken::Notified => stats.slept += 1,
        Woken::Pending => stats.pending += 1,
        Woken::TimedOut => return Err(EchoError::Stalled),
    }
    Ok(())
}

/// The echo side: checks and returns every message until the end marker
/// (which it returns too). Each wait may last `timeout`.
pub fn serve_echo(ch: &mut Channel, timeout: Option<Duration>) -> Result<EchoStats, EchoError> {
    let mut stats = EchoStats::default();
    let mut rx = Reader::new();
    let mut out: Vec<u8> = Vec::with_capacity(INBUF);
    let mut sent = 0usize;
    let mut ended = false;
    loop {
        let mut progress = false;
        if sent < out.len() {
            let n = ch.write(&out[sent..])?;
            sent += n;
            progress |= n > 0;
            if sent == out.len() {
                out.clear();
                sent = 0;
            }
        }
        if ended && out.is_empty() {
            return Ok(stats);
        }
        // Back-pressure: stop taking messages while much is still unsent.
        if !ended && out.len() - sent < INBUF {
            let n = rx.fill(ch)?;
            progress |= n > 0;
            while let Some((len, sum, body)) = rx.next(stats.messages)? {
                if len == END {
                    out.extend_from_slice(&header(END, 0));
                    ended = true;
                    break;
                }
                if checksum(&rx.buf[body.clone()]) != sum {
                    return Err(EchoError::Checksum {
                        index: stats.messages,
                    });
                }
                out.extend_from_slice(&header(len, sum));
                out.extend_from_slice(&rx.buf[body]);
                stats.messages += 1;
                stats.bytes += u64::from(len);
            }
        }
        if !progress {
            wait(ch, timeout, &mut stats)?;
        }
    }
}

/// The driving side: sends `count` messages of log-uniform sizes up to
/// `max_len` (≤ [`MAX_MESSAGE`]) generated from `seed`, then the end
/// marker, and checks every echo (checksum and bytes) in order.
pub fn run_exchange(
    ch: &mut Channel,
    count: u64,
    max_len: usize,
    seed: u64,
    timeout: Option<Duration>,
) -> Result<EchoStats, EchoError> {
    let max_len = max_len.clamp(1, MAX_MESSAGE);
    let pattern = pattern(seed);
    let mut tx_seq = Messages {
        rng: SplitMix64::new(seed),
        max_len,
    };
    let mut rx_seq = tx_seq.clone();
    let mut stats = EchoStats::default();
    let mut rx = Reader::new();
    // The message being written: header, then payload from the pattern.
    let mut sent_msgs = 0u64;
    let mut cur: Option<([u8; HEADER_LEN], usize, usize, usize)> = None; // (hdr, off, len, pos)
    let mut got = 0u64;
    let mut end_sent = false;
    loop {
        let mut progress = false;
        // Write as much as fits.
        loop {
            if cur.is_none() {
                if sent_msgs < count {
                    let (off, len) = tx_seq.next();
                    let sum = checksum(&pattern[off..off + len]);
                    cur = Some((header(len as u32, sum), off, len, 0));
                    sent_msgs += 1;
                } else if !end_sent {
                    cur = Some((header(END, 0), 0, 0, 0));
                    end_sent = true;
                } else {
                    break;
                }
            }
            let Some((hdr, off, len, pos)) = cur.as_mut() else {
                break;
            };
            let n = if *pos < HEADER_LEN {
                ch.write(&hdr[*pos..])?
            } else {
                let p = *pos - HEADER_LEN;
                ch.write(&pattern[*off + p..*off + *len])?
            };
            *pos += n;
            progress |= n > 0;
            if *pos == HEADER_LEN + *len {
                cur = None;
            } else if n == 0 {
                break;
            }
        }
        // Read and check every echo that is there.
        let n = rx.fill(ch)?;
        progress |= n > 0;
        while let Some((len, sum, body)) = rx.next(got)? {
            if len == END {
                if got != count {
                    return Err(EchoError::Mismatch {
                        index: got,
                        what: "end marker before the last message",
                    });
                }
                return Ok(stats);
            }
            let (off, want_len) = rx_seq.next();
            let expected = &pattern[off..off + want_len];
            if len as usize != want_len {
                return Err(EchoError::Mismatch {
                    index: got,
                    what: "length",
                });
            }
            if checksum(&rx.buf[body.clone()]) != sum {
                return Err(EchoError::Checksum { index: got });
            }
            if sum != checksum(expected) || rx.buf[body] != *expected {
                return Err(EchoError::Mismatch {
                    index: got,
                    what: "payload",
                });
            }
            got += 1;
            stats.messages += 1;
            stats.bytes += u64::from(len);
        }
        if !progress {
            wait(ch, timeout, &mut stats)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_log_uniform_within_bounds() {
        let mut m = Messages {
            rng: SplitMix64::new(1),
            max_len: MAX_MESSAGE,
        };
        let mut classes = [0u32; 18];
        let mut total = 0u64;
        for _ in 0..100_000 {
            let (off, len) = m.next();
            assert!((1..=MAX_MESSAGE).contains(&len));
            assert!(off + len <= PATTERN_LEN);
            classes[len.ilog2() as usize] += 1;
            total += len as u64;
        }
        // Every size class 2^0..2^16 occurs, and roughly equally often.
        for (k, &c) in classes[..16].iter().enumerate() {
            assert!((4_000..8_000).contains(&c), "class {k}: {c}");
        }
        let mean = total / 100_000;
        assert!((3_000..9_000).contains(&mean), "mean {mean}");
    }

    #[test]
    fn the_checksum_sees_order_and_content() {
        assert_ne!(checksum(b"abcdefgh12345678"), checksum(b"12345678abcdefgh"));
        assert_ne!(checksum(b"a"), checksum(b"b"));
        assert_ne!(checksum(b""), checksum(b"\0"));
    }
}
