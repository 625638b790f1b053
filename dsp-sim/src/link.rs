//! The host↔DSP link protocol: fixed-layout little-endian binary messages.
//!
//! Every message is an 8-byte header followed by a body:
//!
//! ```text
//! offset size field
//! 0      2    magic      u16 = MAGIC (the bytes "SR")
//! 2      1    version    u8  = VERSION
//! 3      1    kind       u8  = 1 Period | 2 Control | 3 Stats
//! 4      4    body_len   u32 = number of body bytes that follow
//! ```
//!
//! Bodies (all integers and floats little-endian, floats as IEEE-754 bits):
//!
//! ```text
//! Period   seq u32, frames u16, channels u8 (1..=MAX_CHANNELS), reserved u8 = 0,
//!          then frames * channels f32 samples, interleaved
//! Control  tag u8, then by tag:
//!            1 SetChain   len u16 (<= MAX_SPEC_LEN), len bytes of UTF-8 chain spec
//!            2 Bypass     u8 (0 = off, 1 = on)
//!            3 QueryStats (nothing)
//!            4 Pull       seq u32: the period the DSP asks for
//! Stats    periods u64, worst_ns u64, mean_ns u64, deadline_misses u64,
//!          channels u8 (0..=MAX_CHANNELS), reserved [u8; 3] = 0,
//!          peak_db [f32; MAX_CHANNELS] (entries past `channels` carried as-is)
//! ```
//!
//! Who sends what (the `dsp-sim` process behind `srbd`; see
//! `srb_linux::dsp` for the full message flow):
//!
//! | message | direction | when |
//! | --- | --- | --- |
//! | `Control::Pull { seq }` | DSP → host | at every tick of the DSP's period clock: "send me period `seq`" |
//! | `Period` | host → DSP | the mixed period `seq`, in answer to `Pull { seq }` |
//! | `Period` | DSP → host | the processed period `seq`, before the DSP's next tick |
//! | `Control::SetChain`, `Bypass`, `QueryStats` | host → DSP | at any time |
//! | `Stats` | DSP → host | in answer to `QueryStats`, and unsolicited about once a second |
//!
//! `body_len` must match the body exactly. Encoding writes into a caller's
//! `&mut [u8]` and returns the bytes written; [`decode`] reads one message
//! from the front of a `&[u8]` and returns it with the number of bytes it
//! used, so a stream can hold several back to back ([`message_len`] tells a
//! reader how much to wait for after the header). Nothing allocates: a
//! decoded [`Period`] and [`Control::SetChain`] borrow from the input.
//!
//! Decoding validates every length, count, tag and reserved byte and returns
//! a named [`LinkError`]; it never panics, whatever the bytes.

use core::fmt;

use crate::biquad::MAX_CHANNELS;

/// The first two bytes of every message (`b"SR"` read as a little-endian u16).
pub const MAGIC: u16 = u16::from_le_bytes(*b"SR");
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Size of the message header in bytes.
pub const HEADER_LEN: usize = 8;
/// The longest chain spec a [`Control::SetChain`] carries, in bytes.
pub const MAX_SPEC_LEN: usize = 256;

const KIND_PERIOD: u8 = 1;
const KIND_CONTROL: u8 = 2;
const KIND_STATS: u8 = 3;

const CONTROL_SET_CHAIN: u8 = 1;
const CONTROL_BYPASS: u8 = 2;
const CONTROL_QUERY_STATS: u8 = 3;
const CONTROL_PULL: u8 = 4;

const PERIOD_FIXED: usize = 8;
const STATS_BODY: usize = 4 * 8 + 4 + 4 * MAX_CHANNELS;
const MAX_PERIOD_BODY: usize = PERIOD_FIXED + u16::MAX as usize * MAX_CHANNELS * 4;
const MAX_CONTROL_BODY: usize = 3 + MAX_SPEC_LEN;

/// The longest control message (a [`Control::SetChain`] of
/// [`MAX_SPEC_LEN`] bytes), header included.
pub const MAX_CONTROL_LEN: usize = HEADER_LEN + MAX_CONTROL_BODY;
/// The length of every [`Stats`] message, header included.
pub const STATS_LEN: usize = HEADER_LEN + STATS_BODY;

/// The length of a [`Period`] message of `frames` frames of `channels`
/// channels, header included (what [`encode_period`] writes).
pub const fn period_len(frames: usize, channels: usize) -> usize {
    HEADER_LEN + PERIOD_FIXED + frames * channels * 4
}

/// Why a message could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// Decoding: the input ends before the message does.
    Truncated {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Encoding: the output buffer is too small (or, for
    /// [`Period::copy_samples_to`], the sample buffer).
    BufferTooSmall {
        /// Bytes (or samples) needed.
        needed: usize,
        /// Bytes (or samples) available.
        available: usize,
    },
    /// The header does not start with [`MAGIC`].
    BadMagic {
        /// The value found.
        found: u16,
    },
    /// The header's version is not [`VERSION`].
    BadVersion {
        /// The value found.
        found: u8,
    },
    /// The header's message kind is unknown.
    UnknownKind {
        /// The value found.
        found: u8,
    },
    /// A control message's tag is unknown.
    UnknownControl {
        /// The value found.
        found: u8,
    },
    /// `body_len` does not match what the body's own fields say (or exceeds
    /// the largest body of that kind).
    BadBodyLength {
        /// The message kind byte.
        kind: u8,
        /// The `body_len` in the header.
        declared: u32,
    },
    /// A channel count is out of range (Period: `1..=MAX_CHANNELS`, Stats:
    /// `0..=MAX_CHANNELS`).
    BadChannels {
        /// The value found or given.
        channels: usize,
    },
    /// Encoding a period: the sample count is not a multiple of the channels.
    PartialFrame {
        /// Number of samples given.
        samples: usize,
        /// Channel count given.
        channels: usize,
    },
    /// Encoding a period: more than `u16::MAX` frames.
    TooManyFrames {
        /// Number of frames given.
        frames: usize,
    },
    /// A chain spec is longer than [`MAX_SPEC_LEN`] bytes.
    SpecTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A chain spec is not valid UTF-8.
    BadUtf8,
    /// A boolean byte is neither 0 nor 1.
    BadBool {
        /// The value found.
        found: u8,
    },
    /// A reserved byte is not zero.
    BadReserved,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Truncated { needed, available } => {
                write!(
                    f,
                    "message needs {needed} bytes, only {available} available"
                )
            }
            LinkError::BufferTooSmall { needed, available } => {
                write!(f, "buffer holds {available}, {needed} needed")
            }
            LinkError::BadMagic { found } => write!(f, "bad magic {found:#06x}"),
            LinkError::BadVersion { found } => {
                write!(f, "protocol version {found}, expected {VERSION}")
            }
            LinkError::UnknownKind { found } => write!(f, "unknown message kind {found}"),
            LinkError::UnknownControl { found } => write!(f, "unknown control tag {found}"),
            LinkError::BadBodyLength { kind, declared } => {
                write!(f, "body length {declared} is wrong for message kind {kind}")
            }
            LinkError::BadChannels { channels } => {
                write!(f, "channel count {channels} out of range")
            }
            LinkError::PartialFrame { samples, channels } => {
                write!(
                    f,
                    "{samples} samples is not a whole number of {channels}-channel frames"
                )
            }
            LinkError::TooManyFrames { frames } => {
                write!(f, "{frames} frames exceeds {}", u16::MAX)
            }
            LinkError::SpecTooLong { len } => {
                write!(f, "chain spec of {len} bytes exceeds {MAX_SPEC_LEN}")
            }
            LinkError::BadUtf8 => f.write_str("chain spec is not UTF-8"),
            LinkError::BadBool { found } => write!(f, "boolean byte {found} is not 0 or 1"),
            LinkError::BadReserved => f.write_str("reserved byte is not zero"),
        }
    }
}

/// A decoded message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Message<'a> {
    /// One period of interleaved audio.
    Period(Period<'a>),
    /// A command for the DSP.
    Control(Control<'a>),
    /// Timing and level statistics from the DSP.
    Stats(Stats),
}

/// A decoded period: header fields plus a view of the samples, which stay
/// in the input bytes (they need not be 4-byte aligned there). Encode one
/// with [`encode_period`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Period<'a> {
    /// Sequence number of the period.
    pub seq: u32,
    /// Number of frames.
    pub frames: u16,
    /// Number of interleaved channels (`1..=MAX_CHANNELS`).
    pub channels: u8,
    /// `frames * channels * 4` bytes of little-endian f32.
    payload: &'a [u8],
}

impl<'a> Period<'a> {
    /// The number of samples (`frames * channels`).
    pub fn sample_count(&self) -> usize {
        self.payload.len() / 4
    }

    /// Sample `i` (interleaved order), or `None` past the end.
    pub fn sample(&self, i: usize) -> Option<f32> {
        let start = i.checked_mul(4)?;
        let b = self.payload.get(start..start.checked_add(4)?)?;
        Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The samples in interleaved order.
    pub fn samples(&self) -> impl Iterator<Item = f32> + 'a {
        self.payload
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Copies the samples to the front of `out` and returns how many; fails
    /// with [`LinkError::BufferTooSmall`] (in samples) if `out` is shorter.
    pub fn copy_samples_to(&self, out: &mut [f32]) -> Result<usize, LinkError> {
        let n = self.sample_count();
        let available = out.len();
        let dst = out.get_mut(..n).ok_or(LinkError::BufferTooSmall {
            needed: n,
            available,
        })?;
        for (d, s) in dst.iter_mut().zip(self.samples()) {
            *d = s;
        }
        Ok(n)
    }
}

/// A command from the host to the DSP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control<'a> {
    /// Replace the processing chain with this spec (see [`crate::chain`]);
    /// at most [`MAX_SPEC_LEN`] bytes.
    SetChain(&'a str),
    /// Turn bit-exact bypass on or off.
    Bypass(bool),
    /// Ask for a [`Stats`] message.
    QueryStats,
    /// Sent by the DSP at each tick of its clock: ask the host for period
    /// `seq` (see the module docs for the flow).
    Pull {
        /// The sequence number the host's answering [`Period`] must carry.
        seq: u32,
    },
}

/// Statistics reported by the DSP.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Periods processed.
    pub periods: u64,
    /// Longest processing time of a period, in nanoseconds.
    pub worst_ns: u64,
    /// Mean processing time of a period, in nanoseconds.
    pub mean_ns: u64,
    /// Periods that missed their deadline.
    pub deadline_misses: u64,
    /// How many entries of `peak_db` are meaningful (`0..=MAX_CHANNELS`).
    pub channels: u8,
    /// Peak level per channel in dBFS (`-inf` for silence).
    pub peak_db: [f32; MAX_CHANNELS],
}

/// A bounds-checked little-endian writer over a slice.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        // Callers check the total size first; a short buffer is never
        // written past (get_mut returns None) — it cannot happen.
        let end = self.pos + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }
}

fn writer(out: &mut [u8], kind: u8, body_len: usize) -> Result<Writer<'_>, LinkError> {
    let needed = HEADER_LEN + body_len;
    if out.len() < needed {
        return Err(LinkError::BufferTooSmall {
            needed,
            available: out.len(),
        });
    }
    let mut w = Writer { buf: out, pos: 0 };
    w.put(&MAGIC.to_le_bytes());
    w.put(&[VERSION, kind]);
    // body_len <= MAX_PERIOD_BODY, which fits in u32.
    w.put(&(body_len as u32).to_le_bytes());
    Ok(w)
}

/// Encodes a period of interleaved `samples` with `channels` channels into
/// `out`; returns the bytes written.
///
/// Fails if `channels` is not in `1..=MAX_CHANNELS`, the samples are not a
/// whole number of frames, there are more than `u16::MAX` frames, or `out`
/// is too small.
pub fn encode_period(
    seq: u32,
    channels: usize,
    samples: &[f32],
    out: &mut [u8],
) -> Result<usize, LinkError> {
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(LinkError::BadChannels { channels });
    }
    if !samples.len().is_multiple_of(channels) {
        return Err(LinkError::PartialFrame {
            samples: samples.len(),
            channels,
        });
    }
    let frames = samples.len() / channels;
    let frames16 = u16::try_from(frames).map_err(|_| LinkError::TooManyFrames { frames })?;
    let mut w = writer(out, KIND_PERIOD, PERIOD_FIXED + samples.len() * 4)?;
    w.put(&seq.to_le_bytes());
    w.put(&frames16.to_le_bytes());
    w.put(&[channels as u8, 0]);
    for s in samples {
        w.put(&s.to_le_bytes());
    }
    Ok(w.pos)
}

impl Control<'_> {
    /// Encodes this command into `out`; returns the bytes written. Fails
    /// with [`LinkError::SpecTooLong`] or [`LinkError::BufferTooSmall`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, LinkError> {
        match *self {
            Control::SetChain(spec) => {
                let len = spec.len();
                if len > MAX_SPEC_LEN {
                    return Err(LinkError::SpecTooLong { len });
                }
                let mut w = writer(out, KIND_CONTROL, 3 + len)?;
                w.put(&[CONTROL_SET_CHAIN]);
                w.put(&(len as u16).to_le_bytes());
                w.put(spec.as_bytes());
                Ok(w.pos)
            }
            Control::Bypass(on) => {
                let mut w = writer(out, KIND_CONTROL, 2)?;
                w.put(&[CONTROL_BYPASS, u8::from(on)]);
                Ok(w.pos)
            }
            Control::QueryStats => {
                let mut w = writer(out, KIND_CONTROL, 1)?;
                w.put(&[CONTROL_QUERY_STATS]);
                Ok(w.pos)
            }
            Control::Pull { seq } => {
                let mut w = writer(out, KIND_CONTROL, 5)?;
                w.put(&[CONTROL_PULL]);
                w.put(&seq.to_le_bytes());
                Ok(w.pos)
            }
        }
    }
}

impl Stats {
    /// Encodes these statistics into `out`; returns the bytes written. Fails
    /// with [`LinkError::BadChannels`] or [`LinkError::BufferTooSmall`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, LinkError> {
        if usize::from(self.channels) > MAX_CHANNELS {
            return Err(LinkError::BadChannels {
                channels: self.channels.into(),
            });
        }
        let mut w = writer(out, KIND_STATS, STATS_BODY)?;
        for v in [
            self.periods,
            self.worst_ns,
            self.mean_ns,
            self.deadline_misses,
        ] {
            w.put(&v.to_le_bytes());
        }
        w.put(&[self.channels, 0, 0, 0]);
        for p in self.peak_db {
            w.put(&p.to_le_bytes());
        }
        Ok(w.pos)
    }
}

/// A bounds-checked little-endian reader over a slice; every read that
/// would run past the end is an error, never a panic.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// For error reports: total bytes needed / available of the message.
    needed: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LinkError> {
        let end = self.pos.checked_add(n);
        let bytes = end
            .and_then(|e| self.buf.get(self.pos..e))
            .ok_or(LinkError::Truncated {
                needed: self.needed,
                available: self.buf.len(),
            })?;
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LinkError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, LinkError> {
        Ok(self.array::<1>()?[0])
    }
}

/// Checks a header (the first [`HEADER_LEN`] bytes of `buf`) and returns
/// the total length of the message it starts, header included. Use it to
/// know how many bytes to wait for on a stream.
pub fn message_len(buf: &[u8]) -> Result<usize, LinkError> {
    let mut r = Reader {
        buf,
        pos: 0,
        needed: HEADER_LEN,
    };
    let magic = u16::from_le_bytes(r.array()?);
    if magic != MAGIC {
        return Err(LinkError::BadMagic { found: magic });
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(LinkError::BadVersion { found: version });
    }
    let kind = r.u8()?;
    let max_body = match kind {
        KIND_PERIOD => MAX_PERIOD_BODY,
        KIND_CONTROL => MAX_CONTROL_BODY,
        KIND_STATS => STATS_BODY,
        found => return Err(LinkError::UnknownKind { found }),
    };
    let declared = u32::from_le_bytes(r.array()?);
    match usize::try_from(declared) {
        Ok(body) if body <= max_body => Ok(HEADER_LEN + body),
        _ => Err(LinkError::BadBodyLength { kind, declared }),
    }
}

/// Decodes the message at the front of `buf`, returning it and the number
/// of bytes it occupied (bytes after it are not looked at).
pub fn decode(buf: &[u8]) -> Result<(Message<'_>, usize), LinkError> {
    let total = message_len(buf)?;
    if buf.len() < total {
        return Err(LinkError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    let kind = buf.get(3).copied().unwrap_or(0);
    let declared = (total - HEADER_LEN) as u32;
    let bad_len = LinkError::BadBodyLength { kind, declared };
    let mut r = Reader {
        buf: buf.get(..total).unwrap_or(&[]),
        pos: HEADER_LEN,
        needed: total,
    };
    let msg = match kind {
        KIND_PERIOD => {
            let seq = u32::from_le_bytes(r.array()?);
            let frames = u16::from_le_bytes(r.array()?);
            let channels = r.u8()?;
            if channels == 0 || usize::from(channels) > MAX_CHANNELS {
                return Err(LinkError::BadChannels {
                    channels: channels.into(),
                });
            }
            if r.u8()? != 0 {
                return Err(LinkError::BadReserved);
            }
            let payload_len = usize::from(frames) * usize::from(channels) * 4;
            if total - HEADER_LEN != PERIOD_FIXED + payload_len {
                return Err(bad_len);
            }
            Message::Period(Period {
                seq,
                frames,
                channels,
                payload: r.take(payload_len)?,
            })
        }
        KIND_CONTROL => {
            let control = match r.u8()? {
                CONTROL_SET_CHAIN => {
                    let len = usize::from(u16::from_le_bytes(r.array()?));
                    if len > MAX_SPEC_LEN {
                        return Err(LinkError::SpecTooLong { len });
                    }
                    if total - HEADER_LEN != 3 + len {
                        return Err(bad_len);
                    }
                    let bytes = r.take(len)?;
                    Control::SetChain(core::str::from_utf8(bytes).map_err(|_| LinkError::BadUtf8)?)
                }
                CONTROL_BYPASS => {
                    if total - HEADER_LEN != 2 {
                        return Err(bad_len);
                    }
                    match r.u8()? {
                        0 => Control::Bypass(false),
                        1 => Control::Bypass(true),
                        found => return Err(LinkError::BadBool { found }),
                    }
                }
                CONTROL_QUERY_STATS => {
                    if total - HEADER_LEN != 1 {
                        return Err(bad_len);
                    }
                    Control::QueryStats
                }
                CONTROL_PULL => {
                    if total - HEADER_LEN != 5 {
                        return Err(bad_len);
                    }
                    Control::Pull {
                        seq: u32::from_le_bytes(r.array()?),
                    }
                }
                found => return Err(LinkError::UnknownControl { found }),
            };
            Message::Control(control)
        }
        _ => {
            // KIND_STATS: message_len let no other kind through.
            if total - HEADER_LEN != STATS_BODY {
                return Err(bad_len);
            }
            let mut u = [0u64; 4];
            for v in u.iter_mut() {
                *v = u64::from_le_bytes(r.array()?);
            }
            let [periods, worst_ns, mean_ns, deadline_misses] = u;
            let [channels, r1, r2, r3] = r.array::<4>()?;
            if usize::from(channels) > MAX_CHANNELS {
                return Err(LinkError::BadChannels {
                    channels: channels.into(),
                });
            }
            if (r1, r2, r3) != (0, 0, 0) {
                return Err(LinkError::BadReserved);
            }
            let mut peak_db = [0.0f32; MAX_CHANNELS];
            for p in peak_db.iter_mut() {
                *p = f32::from_le_bytes(r.array()?);
            }
            Message::Stats(Stats {
                periods,
                worst_ns,
                mean_ns,
                deadline_misses,
                channels,
                peak_db,
            })
        }
    };
    Ok((msg, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    fn stats() -> Stats {
        Stats {
            periods: 1_000_000,
            worst_ns: 812_345,
            mean_ns: 120_000,
            deadline_misses: 3,
            channels: 2,
            peak_db: [-6.0, f32::NEG_INFINITY, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        }
    }

    #[test]
    fn period_layout_is_as_documented() {
        let mut out = [0u8; 64];
        let n = encode_period(7, 2, &[1.0, -1.0, 0.5, 0.25], &mut out).unwrap();
        assert_eq!(n, 8 + 8 + 16);
        assert_eq!(&out[..8], &[b'S', b'R', 1, 1, 24, 0, 0, 0]);
        assert_eq!(&out[8..16], &[7, 0, 0, 0, 2, 0, 2, 0]);
        assert_eq!(&out[16..20], &1.0f32.to_le_bytes());
        let (msg, used) = decode(&out).unwrap();
        assert_eq!(used, n);
        let Message::Period(p) = msg else {
            panic!("{msg:?}")
        };
        assert_eq!((p.seq, p.frames, p.channels), (7, 2, 2));
        let mut s = [0.0f32; 4];
        assert_eq!(p.copy_samples_to(&mut s), Ok(4));
        assert_eq!(s, [1.0, -1.0, 0.5, 0.25]);
        assert_eq!(p.sample(3), Some(0.25));
        assert_eq!(p.sample(4), None);
        assert_eq!(
            p.copy_samples_to(&mut [0.0; 3]),
            Err(LinkError::BufferTooSmall {
                needed: 4,
                available: 3
            })
        );
    }

    #[test]
    fn pull_layout_is_as_documented_and_checked() {
        let mut out = [0u8; 16];
        let n = Control::Pull { seq: 0x0403_0201 }.encode(&mut out).unwrap();
        assert_eq!(n, 13);
        assert_eq!(&out[..n], &[b'S', b'R', 1, 2, 5, 0, 0, 0, 4, 1, 2, 3, 4]);
        assert_eq!(
            edited(Control::Pull { seq: 9 }, |v| {
                v.pop();
                v[4] = 4;
            }),
            Err(LinkError::BadBodyLength {
                kind: 2,
                declared: 4
            })
        );
        assert_eq!(
            edited(Control::Pull { seq: 9 }, |v| {
                v.push(0);
                v[4] = 6;
            }),
            Err(LinkError::BadBodyLength {
                kind: 2,
                declared: 6
            })
        );
        assert_eq!(
            Control::Pull { seq: 1 }.encode(&mut [0u8; 12]),
            Err(LinkError::BufferTooSmall {
                needed: 13,
                available: 12
            })
        );
        assert_eq!(period_len(2, 2), 32);
        let mut p = [0u8; 32];
        assert_eq!(encode_period(0, 2, &[0.0; 4], &mut p), Ok(period_len(2, 2)));
    }

    #[test]
    fn controls_and_stats_round_trip() {
        let mut out = [0u8; 512];
        for c in [
            Control::SetChain("gain:-6dB,lowpass:8kHz"),
            Control::SetChain(""),
            Control::Bypass(true),
            Control::Bypass(false),
            Control::QueryStats,
            Control::Pull { seq: 0 },
            Control::Pull { seq: u32::MAX },
        ] {
            let n = c.encode(&mut out).unwrap();
            assert_eq!(decode(&out[..n]), Ok((Message::Control(c), n)));
        }
        let n = stats().encode(&mut out).unwrap();
        assert_eq!(n, HEADER_LEN + STATS_BODY);
        assert_eq!(n, STATS_LEN);
        assert_eq!(decode(&out[..n]), Ok((Message::Stats(stats()), n)));
    }

    #[test]
    fn back_to_back_messages_decode_in_turn() {
        let mut out = [0u8; 128];
        let a = Control::Bypass(true).encode(&mut out).unwrap();
        let b = encode_period(1, 1, &[0.5], &mut out[a..]).unwrap();
        let (m1, n1) = decode(&out).unwrap();
        assert_eq!((m1, n1), (Message::Control(Control::Bypass(true)), a));
        assert_eq!(message_len(&out[a..]), Ok(b));
        let (m2, n2) = decode(&out[a..]).unwrap();
        assert!(matches!(m2, Message::Period(p) if p.seq == 1 && p.sample(0) == Some(0.5)));
        assert_eq!(n2, b);
    }

    #[test]
    fn encode_errors() {
        let mut out = [0u8; 16];
        assert_eq!(
            encode_period(0, 0, &[], &mut out),
            Err(LinkError::BadChannels { channels: 0 })
        );
        assert_eq!(
            encode_period(0, MAX_CHANNELS + 1, &[], &mut out),
            Err(LinkError::BadChannels { channels: 9 })
        );
        assert_eq!(
            encode_period(0, 2, &[1.0; 3], &mut out),
            Err(LinkError::PartialFrame {
                samples: 3,
                channels: 2
            })
        );
        let big = std::vec![0.0f32; u16::MAX as usize + 1];
        assert_eq!(
            encode_period(0, 1, &big, &mut out),
            Err(LinkError::TooManyFrames { frames: 65536 })
        );
        assert_eq!(
            encode_period(0, 1, &[1.0; 3], &mut out),
            Err(LinkError::BufferTooSmall {
                needed: 28,
                available: 16
            })
        );
        let long: String = "x".repeat(MAX_SPEC_LEN + 1);
        assert_eq!(
            Control::SetChain(&long).encode(&mut [0u8; 512]),
            Err(LinkError::SpecTooLong { len: 257 })
        );
        let max: String = "x".repeat(MAX_SPEC_LEN);
        assert!(Control::SetChain(&max).encode(&mut [0u8; 512]).is_ok());
        let mut s = stats();
        s.channels = 9;
        assert_eq!(
            s.encode(&mut [0u8; 128]),
            Err(LinkError::BadChannels { channels: 9 })
        );
    }

    /// Encodes `c`, lets `edit` change the bytes, and decodes.
    fn edited(c: Control<'_>, edit: impl FnOnce(&mut Vec<u8>)) -> Result<usize, LinkError> {
        let mut out = [0u8; 512];
        let n = c.encode(&mut out).unwrap();
        let mut v = out[..n].to_vec();
        edit(&mut v);
        decode(&v).map(|(_, n)| n)
    }

    #[test]
    fn every_decode_error() {
        let q = Control::QueryStats;
        assert_eq!(
            decode(&[b'S', b'R', 1]),
            Err(LinkError::Truncated {
                needed: 8,
                available: 3
            })
        );
        assert_eq!(
            edited(q, |v| {
                v.pop();
            }),
            Err(LinkError::Truncated {
                needed: 9,
                available: 8
            })
        );
        assert_eq!(
            edited(q, |v| v[0] = b'X'),
            Err(LinkError::BadMagic {
                found: u16::from_le_bytes([b'X', b'R'])
            })
        );
        assert_eq!(
            edited(q, |v| v[2] = 2),
            Err(LinkError::BadVersion { found: 2 })
        );
        assert_eq!(
            edited(q, |v| v[3] = 9),
            Err(LinkError::UnknownKind { found: 9 })
        );
        assert_eq!(
            edited(q, |v| v[8] = 77),
            Err(LinkError::UnknownControl { found: 77 })
        );
        assert_eq!(
            edited(q, |v| {
                v[4] = 2;
                v.push(0);
            }),
            Err(LinkError::BadBodyLength {
                kind: 2,
                declared: 2
            })
        );
        assert_eq!(
            edited(q, |v| v[4..8].copy_from_slice(&u32::MAX.to_le_bytes())),
            Err(LinkError::BadBodyLength {
                kind: 2,
                declared: u32::MAX
            })
        );
        assert_eq!(
            edited(Control::Bypass(true), |v| v[9] = 2),
            Err(LinkError::BadBool { found: 2 })
        );
        assert_eq!(
            edited(Control::SetChain("ab"), |v| v[11] = 0xff),
            Err(LinkError::BadUtf8)
        );
        // A SetChain whose own length field is over the limit.
        let mut v = Vec::from(*b"SR\x01\x02");
        v.extend_from_slice(&(3u32 + 300).to_le_bytes());
        v.push(CONTROL_SET_CHAIN);
        v.extend_from_slice(&300u16.to_le_bytes());
        v.resize(v.len() + 300, b'x');
        assert_eq!(
            decode(&v),
            Err(LinkError::BadBodyLength {
                kind: 2,
                declared: 303
            })
        );
        v[4..8].copy_from_slice(&(3u32 + 256).to_le_bytes());
        v.truncate(HEADER_LEN + 3 + 256);
        assert_eq!(decode(&v), Err(LinkError::SpecTooLong { len: 300 }));

        let mut p = [0u8; 32];
        let n = encode_period(1, 2, &[0.0; 4], &mut p).unwrap();
        let mut bad = p;
        bad[14] = 0; // channels
        assert_eq!(
            decode(&bad[..n]),
            Err(LinkError::BadChannels { channels: 0 })
        );
        let mut bad = p;
        bad[15] = 1; // reserved
        assert_eq!(decode(&bad[..n]), Err(LinkError::BadReserved));
        let mut bad = p;
        bad[12] = 3; // frames 3 but body holds 2
        assert_eq!(
            decode(&bad[..n]),
            Err(LinkError::BadBodyLength {
                kind: 1,
                declared: 24
            })
        );

        let mut s = [0u8; 128];
        let n = stats().encode(&mut s).unwrap();
        let mut bad = s;
        bad[8 + 32] = 9;
        assert_eq!(
            decode(&bad[..n]),
            Err(LinkError::BadChannels { channels: 9 })
        );
        let mut bad = s;
        bad[8 + 33] = 1;
        assert_eq!(decode(&bad[..n]), Err(LinkError::BadReserved));
    }

    #[test]
    fn every_truncation_of_a_valid_message_is_an_error() {
        let mut out = [0u8; 128];
        let n = stats().encode(&mut out).unwrap();
        for cut in 0..n {
            assert!(decode(&out[..cut]).is_err(), "cut at {cut}");
        }
    }

    fn control_strategy() -> impl Strategy<Value = (u8, String, bool, u32)> {
        (0u8..4, "\\PC{0,64}", any::<bool>(), any::<u32>())
    }

    proptest! {
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
            let _ = message_len(&bytes);
        }

        #[test]
        fn decoding_random_bodies_behind_a_valid_header_never_panics(
            kind in 0u8..5,
            body in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut v = Vec::from(*b"SR\x01");
            v.push(kind);
            v.extend_from_slice(&(body.len() as u32).to_le_bytes());
            v.extend_from_slice(&body);
            if let Ok((_, n)) = decode(&v) {
                prop_assert_eq!(n, v.len());
            }
        }

        #[test]
        fn flipping_a_byte_of_a_valid_message_never_panics(
            seq in any::<u32>(), at in any::<usize>(), to in any::<u8>(),
        ) {
            let mut out = [0u8; 64];
            let n = encode_period(seq, 2, &[0.5; 8], &mut out).unwrap();
            out[at % n] = to;
            let _ = decode(&out[..n]);
        }

        #[test]
        fn periods_round_trip(
            seq in any::<u32>(),
            channels in 1usize..=MAX_CHANNELS,
            frames in 0usize..64,
            bits in proptest::collection::vec(any::<u32>(), 64 * MAX_CHANNELS),
        ) {
            let samples: Vec<f32> = bits[..frames * channels].iter().map(|&b| f32::from_bits(b)).collect();
            let mut out = std::vec![0u8; HEADER_LEN + PERIOD_FIXED + samples.len() * 4];
            let n = encode_period(seq, channels, &samples, &mut out).unwrap();
            prop_assert_eq!(n, out.len());
            let (msg, used) = decode(&out).unwrap();
            prop_assert_eq!(used, n);
            let Message::Period(p) = msg else { panic!("{msg:?}") };
            prop_assert_eq!((p.seq, usize::from(p.frames), usize::from(p.channels)), (seq, frames, channels));
            let got: Vec<u32> = p.samples().map(f32::to_bits).collect();
            prop_assert_eq!(got, bits[..frames * channels].to_vec());
        }

        #[test]
        fn controls_round_trip((tag, spec, on, seq) in control_strategy()) {
            let c = match tag {
                0 => Control::SetChain(&spec),
                1 => Control::Bypass(on),
                2 => Control::Pull { seq },
                _ => Control::QueryStats,
            };
            let mut out = [0u8; 512];
            let n = c.encode(&mut out).unwrap();
            prop_assert_eq!(decode(&out[..n]), Ok((Message::Control(c), n)));
        }

        #[test]
        fn stats_round_trip(
            u in any::<[u64; 4]>(), channels in 0u8..=MAX_CHANNELS as u8, peaks in any::<[u32; MAX_CHANNELS]>(),
        ) {
            let s = Stats {
                periods: u[0], worst_ns: u[1], mean_ns: u[2], deadline_misses: u[3],
                channels, peak_db: peaks.map(f32::from_bits),
            };
            let mut out = [0u8; 128];
            let n = s.encode(&mut out).unwrap();
            let (msg, used) = decode(&out[..n]).unwrap();
            prop_assert_eq!(used, n);
            let Message::Stats(d) = msg else { panic!("{msg:?}") };
            prop_assert_eq!(
                (d.periods, d.worst_ns, d.mean_ns, d.deadline_misses, d.channels),
                (s.periods, s.worst_ns, s.mean_ns, s.deadline_misses, s.channels)
            );
            prop_assert_eq!(d.peak_db.map(f32::to_bits), peaks);
        }
    }
}
