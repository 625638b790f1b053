//! Pstream framing: how packets and memblocks travel over the socket (and
//! the srbchannel ring) of a PulseAudio native connection (doc §3).
//!
//! ```text
//! word  field      (each a big-endian u32; 20 bytes in all)
//!    0  LENGTH     payload bytes after the descriptor
//!    1  CHANNEL    0xFFFFFFFF = control packet, else a stream channel
//!    2  OFFSET_HI  high half of the s64 seek offset; block id of RELEASE/REVOKE
//!    3  OFFSET_LO  low half of the seek offset
//!    4  FLAGS      low byte seek mode; high byte SHM flags
//! ```
//!
//! [`Frame`] is one decoded frame; [`Frame::encode`] writes it and refuses
//! any frame the receiver would reject (§3.7). [`FrameDecoder`] takes bytes
//! in whatever chunks the transport delivers them, validates each
//! descriptor as soon as its 20 bytes are in (so an oversized length is
//! refused before its payload is buffered) and yields whole frames or a
//! named [`FrameError`], after which it stays failed: the connection must be
//! closed. There is no I/O and there are no fds here.

use std::fmt;

/// Bytes of the frame descriptor.
pub const DESCRIPTOR_LEN: usize = 20;
/// The channel of control packets (and of RELEASE/REVOKE frames).
pub const CONTROL_CHANNEL: u32 = 0xFFFF_FFFF;
/// The largest frame payload PulseAudio accepts (`FRAME_SIZE_MAX_ALLOW`,
/// 16 MiB); the default maximum of [`FrameDecoder`].
pub const FRAME_SIZE_MAX_ALLOW: u32 = 16 * 1024 * 1024;
/// Payload bytes of an SHM reference frame (4 × u32).
pub const SHM_REF_LEN: u32 = 16;

/// The FLAGS word's bits (§3.6).
pub mod flags {
    /// The seek mode.
    pub const SEEK_MASK: u32 = 0x0000_00FF;
    /// The importer may write to the block (the srbchannel block only).
    pub const SHM_WRITABLE: u32 = 0x0080_0000;
    /// SHM_ID is a registered memfd id (else a POSIX shm id).
    pub const SHM_MEMFD_BLOCK: u32 = 0x2000_0000;
    /// RELEASE frame (exact value).
    pub const SHM_RELEASE: u32 = 0x4000_0000;
    /// SHM reference frame.
    pub const SHM_DATA: u32 = 0x8000_0000;
    /// REVOKE frame (exact value).
    pub const SHM_REVOKE: u32 = 0xC000_0000;
    /// Any of these makes the frame an SHM frame.
    pub const SHM_MASK: u32 = 0xFF00_0000;
}

/// The 20-byte frame descriptor, field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Descriptor {
    /// Payload bytes after the descriptor.
    pub length: u32,
    /// [`CONTROL_CHANNEL`] or a stream channel.
    pub channel: u32,
    /// High half of the seek offset, or the block id of RELEASE/REVOKE.
    pub offset_hi: u32,
    /// Low half of the seek offset.
    pub offset_lo: u32,
    /// Seek mode and SHM flags ([`flags`]).
    pub flags: u32,
}

impl Descriptor {
    /// The 20 big-endian bytes.
    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut out = [0u8; DESCRIPTOR_LEN];
        let words = [
            self.length,
            self.channel,
            self.offset_hi,
            self.offset_lo,
            self.flags,
        ];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Parses 20 big-endian bytes (any bytes are a descriptor; see
    /// [`FrameDecoder`] for validation).
    pub fn decode(bytes: &[u8; DESCRIPTOR_LEN]) -> Self {
        let w = |i: usize| {
            u32::from_be_bytes([
                bytes[i * 4],
                bytes[i * 4 + 1],
                bytes[i * 4 + 2],
                bytes[i * 4 + 3],
            ])
        };
        Descriptor {
            length: w(0),
            channel: w(1),
            offset_hi: w(2),
            offset_lo: w(3),
            flags: w(4),
        }
    }

    /// The signed 64-bit seek offset of OFFSET_HI and OFFSET_LO.
    pub fn offset(&self) -> i64 {
        ((u64::from(self.offset_hi) << 32) | u64::from(self.offset_lo)) as i64
    }

    fn with_offset(mut self, offset: i64) -> Self {
        let o = offset as u64;
        self.offset_hi = (o >> 32) as u32;
        self.offset_lo = o as u32;
        self
    }
}

/// How a memblock's offset moves the receiver's write index (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SeekMode {
    /// Relative to the current write index (what libpulse sends).
    #[default]
    Relative = 0,
    /// Absolute.
    Absolute = 1,
    /// Relative to the read index.
    RelativeOnRead = 2,
    /// Relative to the end of the queue.
    RelativeEnd = 3,
}

impl SeekMode {
    /// The mode of a FLAGS low byte; `None` above 3.
    pub fn from_wire(v: u32) -> Option<Self> {
        Some(match v {
            0 => SeekMode::Relative,
            1 => SeekMode::Absolute,
            2 => SeekMode::RelativeOnRead,
            3 => SeekMode::RelativeEnd,
            _ => return None,
        })
    }
}

/// The payload of an SHM reference frame (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShmRef {
    /// The exporter's block id, valid until the importer releases it.
    pub block_id: u32,
    /// The segment id (a REGISTER_MEMFD_SHMID id when the memfd flag is set).
    pub shm_id: u32,
    /// Byte offset of the data in the segment.
    pub index: u32,
    /// Byte length of the data.
    pub length: u32,
}

/// An inline memblock frame: sample bytes carried in the frame.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Memblock {
    /// The stream channel (never [`CONTROL_CHANNEL`]).
    pub channel: u32,
    /// The seek offset.
    pub offset: i64,
    /// The seek mode.
    pub seek: SeekMode,
    /// The sample bytes (not empty).
    pub data: Vec<u8>,
}

impl fmt::Debug for Memblock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memblock")
            .field("channel", &self.channel)
            .field("offset", &self.offset)
            .field("seek", &self.seek)
            .field("len", &self.data.len())
            .finish()
    }
}

/// An SHM reference frame: a memblock that lives in shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShmRefFrame {
    /// The stream channel (never [`CONTROL_CHANNEL`]).
    pub channel: u32,
    /// The seek offset.
    pub offset: i64,
    /// The seek mode.
    pub seek: SeekMode,
    /// [`flags::SHM_MEMFD_BLOCK`]: `shm.shm_id` is a registered memfd id.
    pub memfd: bool,
    /// [`flags::SHM_WRITABLE`]: the importer may write to the block.
    pub writable: bool,
    /// Where the data is.
    pub shm: ShmRef,
}

/// One pstream frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Frame {
    /// A control packet: a tagstruct starting with `L command`, `L tag`.
    Packet(Vec<u8>),
    /// Inline sample data.
    Memblock(Memblock),
    /// Sample data in shared memory.
    ShmRef(ShmRefFrame),
    /// The importer is done with an exported block. (On receipt only the
    /// exact FLAGS and LENGTH 0 are checked, as PulseAudio does; CHANNEL and
    /// OFFSET_LO are ignored.)
    Release {
        /// The exporter's block id.
        block_id: u32,
    },
    /// The exporter withdraws a block; no RELEASE follows.
    Revoke {
        /// The exporter's block id.
        block_id: u32,
    },
}

/// Why a frame is refused (§3.7). Every one closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// SHM flags on a connection that did not negotiate SHM.
    #[error("SHM frame (flags {flags:#010x}) on a connection where SHM is disabled")]
    ShmDisabled {
        /// The FLAGS word.
        flags: u32,
    },
    /// A RELEASE or REVOKE frame that announces a payload.
    #[error("release/revoke frame (flags {flags:#010x}) announces {length} payload bytes")]
    ReleaseWithPayload {
        /// The FLAGS word.
        flags: u32,
        /// The announced length.
        length: u32,
    },
    /// A frame with LENGTH 0 that is not RELEASE/REVOKE.
    #[error("empty frame on channel {channel:#x}")]
    Empty {
        /// The channel.
        channel: u32,
    },
    /// LENGTH above the maximum.
    #[error("frame of {length} bytes is above the maximum {max}")]
    TooLarge {
        /// The announced length.
        length: u32,
        /// The maximum.
        max: u32,
    },
    /// A packet with FLAGS other than 0.
    #[error("packet with flags {flags:#010x}")]
    PacketFlags {
        /// The FLAGS word.
        flags: u32,
    },
    /// A packet with a seek offset other than 0.
    #[error("packet with offset {offset}")]
    PacketOffset {
        /// The offset.
        offset: i64,
    },
    /// A memblock with a seek mode above 3.
    #[error("memblock with seek mode {mode}")]
    BadSeekMode {
        /// The FLAGS low byte.
        mode: u32,
    },
    /// An SHM reference whose LENGTH is not 16.
    #[error("SHM reference frame of {length} bytes, expected 16")]
    ShmRefLength {
        /// The announced length.
        length: u32,
    },
    /// SHM flags that are neither RELEASE, REVOKE nor an SHM reference.
    #[error("bad SHM flag combination {flags:#010x}")]
    BadShmFlags {
        /// The FLAGS word.
        flags: u32,
    },
    /// An SHM reference to zero bytes (libpulse aborts on one).
    #[error("SHM reference to block {block_id} with length 0")]
    EmptyShmRef {
        /// The block id.
        block_id: u32,
    },
    /// A memblock or SHM reference frame addressed to [`CONTROL_CHANNEL`]
    /// (only refused when encoding; on the wire that is a packet).
    #[error("memblock frame on the control channel")]
    ControlChannel,
}

/// What a valid descriptor announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Packet,
    Memblock(SeekMode),
    ShmRef {
        seek: SeekMode,
        memfd: bool,
        writable: bool,
    },
    Release,
    Revoke,
}

/// Validates a descriptor in the order of §3.7.
fn classify(d: &Descriptor, shm_enabled: bool, max: u32) -> Result<Kind, FrameError> {
    if !shm_enabled && d.flags & flags::SHM_MASK != 0 {
        return Err(FrameError::ShmDisabled { flags: d.flags });
    }
    if d.flags == flags::SHM_RELEASE || d.flags == flags::SHM_REVOKE {
        if d.length != 0 {
            return Err(FrameError::ReleaseWithPayload {
                flags: d.flags,
                length: d.length,
            });
        }
        return Ok(if d.flags == flags::SHM_RELEASE {
            Kind::Release
        } else {
            Kind::Revoke
        });
    }
    if d.length == 0 {
        return Err(FrameError::Empty { channel: d.channel });
    }
    if d.length > max {
        return Err(FrameError::TooLarge {
            length: d.length,
            max,
        });
    }
    if d.channel == CONTROL_CHANNEL {
        if d.flags != 0 {
            return Err(FrameError::PacketFlags { flags: d.flags });
        }
        if d.offset() != 0 {
            return Err(FrameError::PacketOffset { offset: d.offset() });
        }
        return Ok(Kind::Packet);
    }
    let mode = d.flags & flags::SEEK_MASK;
    let seek = SeekMode::from_wire(mode).ok_or(FrameError::BadSeekMode { mode })?;
    if d.flags & flags::SHM_DATA != 0 {
        if d.length != SHM_REF_LEN {
            return Err(FrameError::ShmRefLength { length: d.length });
        }
        return Ok(Kind::ShmRef {
            seek,
            memfd: d.flags & flags::SHM_MEMFD_BLOCK != 0,
            writable: d.flags & flags::SHM_WRITABLE != 0,
        });
    }
    if d.flags & flags::SHM_MASK != 0 {
        return Err(FrameError::BadShmFlags { flags: d.flags });
    }
    Ok(Kind::Memblock(seek))
}

/// Builds the frame of a validated descriptor and its payload.
fn build(d: &Descriptor, kind: Kind, payload: &[u8]) -> Result<Frame, FrameError> {
    Ok(match kind {
        Kind::Packet => Frame::Packet(payload.to_vec()),
        Kind::Memblock(seek) => Frame::Memblock(Memblock {
            channel: d.channel,
            offset: d.offset(),
            seek,
            data: payload.to_vec(),
        }),
        Kind::ShmRef {
            seek,
            memfd,
            writable,
        } => {
            let w = |i: usize| {
                u32::from_be_bytes([
                    payload[i * 4],
                    payload[i * 4 + 1],
                    payload[i * 4 + 2],
                    payload[i * 4 + 3],
                ])
            };
            let shm = ShmRef {
                block_id: w(0),
                shm_id: w(1),
                index: w(2),
                length: w(3),
            };
            if shm.length == 0 {
                return Err(FrameError::EmptyShmRef {
                    block_id: shm.block_id,
                });
            }
            Frame::ShmRef(ShmRefFrame {
                channel: d.channel,
                offset: d.offset(),
                seek,
                memfd,
                writable,
                shm,
            })
        }
        Kind::Release => Frame::Release {
            block_id: d.offset_hi,
        },
        Kind::Revoke => Frame::Revoke {
            block_id: d.offset_hi,
        },
    })
}

impl Frame {
    /// The descriptor this frame is sent with. A payload longer than
    /// `u32::MAX` saturates LENGTH (and [`Frame::encode`] then refuses it).
    pub fn descriptor(&self) -> Descriptor {
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match self {
            Frame::Packet(p) => Descriptor {
                length: len(p.len()),
                channel: CONTROL_CHANNEL,
                ..Descriptor::default()
            },
            Frame::Memblock(m) => Descriptor {
                length: len(m.data.len()),
                channel: m.channel,
                flags: m.seek as u32,
                ..Descriptor::default()
            }
            .with_offset(m.offset),
            Frame::ShmRef(s) => {
                let mut f = flags::SHM_DATA | s.seek as u32;
                if s.memfd {
                    f |= flags::SHM_MEMFD_BLOCK;
                }
                if s.writable {
                    f |= flags::SHM_WRITABLE;
                }
                Descriptor {
                    length: SHM_REF_LEN,
                    channel: s.channel,
                    flags: f,
                    ..Descriptor::default()
                }
                .with_offset(s.offset)
            }
            Frame::Release { block_id } => Descriptor {
                channel: CONTROL_CHANNEL,
                offset_hi: *block_id,
                flags: flags::SHM_RELEASE,
                ..Descriptor::default()
            },
            Frame::Revoke { block_id } => Descriptor {
                channel: CONTROL_CHANNEL,
                offset_hi: *block_id,
                flags: flags::SHM_REVOKE,
                ..Descriptor::default()
            },
        }
    }

    /// Appends descriptor and payload to `out`, refusing (and appending
    /// nothing for) a frame a receiver would reject: an empty packet or
    /// memblock, a payload above [`FRAME_SIZE_MAX_ALLOW`], an SHM reference
    /// of length 0, a memblock on [`CONTROL_CHANNEL`]. Whether SHM was
    /// negotiated is the caller's concern.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let d = self.descriptor();
        match self {
            Frame::Memblock(Memblock { channel, .. })
            | Frame::ShmRef(ShmRefFrame { channel, .. })
                if *channel == CONTROL_CHANNEL =>
            {
                return Err(FrameError::ControlChannel);
            }
            Frame::ShmRef(s) if s.shm.length == 0 => {
                return Err(FrameError::EmptyShmRef {
                    block_id: s.shm.block_id,
                });
            }
            _ => {}
        }
        classify(&d, true, FRAME_SIZE_MAX_ALLOW)?;
        out.extend_from_slice(&d.encode());
        match self {
            Frame::Packet(p) => out.extend_from_slice(p),
            Frame::Memblock(m) => out.extend_from_slice(&m.data),
            Frame::ShmRef(s) => {
                for w in [s.shm.block_id, s.shm.shm_id, s.shm.index, s.shm.length] {
                    out.extend_from_slice(&w.to_be_bytes());
                }
            }
            Frame::Release { .. } | Frame::Revoke { .. } => {}
        }
        Ok(())
    }

    /// The frame's bytes (see [`Frame::encode_into`]).
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

/// Reassembles frames from a byte stream split anywhere.
///
/// Feed it with [`FrameDecoder::push`] and drain it with
/// [`FrameDecoder::next_frame`] until that gives `Ok(None)` before pushing
/// more: then it holds at most one partial frame plus one read's bytes.
/// Frames are validated one at a time when they are taken, so
/// [`FrameDecoder::set_shm_enabled`] called while handling a frame applies
/// to every later frame. After an error it stays failed and returns that
/// error again.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    pending: Option<(Descriptor, Kind)>,
    max_payload: u32,
    shm_enabled: bool,
    failed: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(FRAME_SIZE_MAX_ALLOW)
    }
}

impl FrameDecoder {
    /// A decoder refusing payloads above `max_payload` bytes, with SHM
    /// disabled.
    pub fn new(max_payload: u32) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            pending: None,
            max_payload,
            shm_enabled: false,
            failed: None,
        }
    }

    /// Allows (or forbids) SHM frames from the next frame taken on.
    pub fn set_shm_enabled(&mut self, enabled: bool) {
        self.shm_enabled = enabled;
    }

    /// Whether SHM frames are allowed.
    pub fn shm_enabled(&self) -> bool {
        self.shm_enabled
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether a frame has been started but not completed (a connection
    /// closing now ends mid-frame).
    pub fn is_mid_frame(&self) -> bool {
        self.pending.is_some() || self.buffered() > 0
    }

    /// How many more bytes complete the part of the frame being assembled:
    /// the rest of the descriptor while none has been taken, else the rest
    /// of the payload. A reader that pushes at most this many bytes, then
    /// drains [`FrameDecoder::next_frame`], never reads past a frame
    /// boundary, so ancillary data (fds) can be attributed to the frame
    /// they arrived with (§3.8). 0 only when a whole frame is buffered or
    /// the decoder has failed: call [`FrameDecoder::next_frame`] then.
    pub fn wanted(&self) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        match self.pending {
            Some((d, _)) => (d.length as usize).saturating_sub(self.buffered()),
            None => DESCRIPTOR_LEN.saturating_sub(self.buffered()),
        }
    }

    /// Appends received bytes (ignored once the decoder has failed).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the
    /// reason the stream is malformed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.step();
        if let Err(e) = r {
            self.failed = Some(e);
            self.buf = Vec::new();
            self.start = 0;
            self.pending = None;
        }
        r
    }

    fn step(&mut self) -> Result<Option<Frame>, FrameError> {
        let (d, kind) = match self.pending {
            Some(p) => p,
            None => {
                let Some(bytes) = self.buf.get(self.start..self.start + DESCRIPTOR_LEN) else {
                    return Ok(None);
                };
                let mut raw = [0u8; DESCRIPTOR_LEN];
                raw.copy_from_slice(bytes);
                let d = Descriptor::decode(&raw);
                let kind = classify(&d, self.shm_enabled, self.max_payload)?;
                self.start += DESCRIPTOR_LEN;
                self.pending = Some((d, kind));
                (d, kind)
            }
        };
        let len = d.length as usize;
        let Some(payload) = self.buf.get(self.start..self.start + len) else {
            return Ok(None);
        };
        let frame = build(&d, kind, payload)?;
        self.start += len;
        self.pending = None;
        // Compact once the consumed prefix dominates the buffer.
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= 4096 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use crate::tagstruct::{TagReader, TagWriter};
    use proptest::prelude::*;

    fn decode_all(bytes: &[u8], shm: bool) -> Result<Vec<Frame>, FrameError> {
        let mut d = FrameDecoder::default();
        d.set_shm_enabled(shm);
        d.push(bytes);
        let mut out = Vec::new();
        while let Some(f) = d.next_frame()? {
            out.push(f);
        }
        assert!(!d.is_mid_frame(), "bytes left over");
        Ok(out)
    }

    fn one(bytes: &[u8], shm: bool) -> Result<Frame, FrameError> {
        let mut d = FrameDecoder::default();
        d.set_shm_enabled(shm);
        d.push(bytes);
        d.next_frame().map(|f| f.expect("a whole frame"))
    }

    fn desc(length: u32, channel: u32, hi: u32, lo: u32, flags: u32) -> Vec<u8> {
        Descriptor {
            length,
            channel,
            offset_hi: hi,
            offset_lo: lo,
            flags,
        }
        .encode()
        .to_vec()
    }

    // ---- Appendix A vectors ----

    #[test]
    fn client_shm_ref_vector() {
        let bytes = hex(
            "00000010 00000000 00000000 00000000 a0000000 | 00000001 4c2e67d8 00010040 000058c8",
        );
        let f = one(&bytes, true).unwrap();
        let expected = Frame::ShmRef(ShmRefFrame {
            channel: 0,
            offset: 0,
            seek: SeekMode::Relative,
            memfd: true,
            writable: false,
            shm: ShmRef {
                block_id: 1,
                shm_id: 0x4c2e_67d8,
                index: 65600,
                length: 22728,
            },
        });
        assert_eq!(f, expected);
        assert_eq!(expected.encode().unwrap(), bytes);
    }

    #[test]
    fn srbchannel_block_ref_vector() {
        let bytes = hex(
            "00000010 00000000 00000000 00000000 a0800000 | 00000180 74c1ebd4 00000040 0000ffc0",
        );
        let expected = Frame::ShmRef(ShmRefFrame {
            channel: 0,
            offset: 0,
            seek: SeekMode::Relative,
            memfd: true,
            writable: true,
            shm: ShmRef {
                block_id: 384,
                shm_id: 0x74c1_ebd4,
                index: 64,
                length: 65472,
            },
        });
        assert_eq!(one(&bytes, true), Ok(expected.clone()));
        assert_eq!(expected.encode().unwrap(), bytes);
        assert_eq!(expected.descriptor().flags, 0xA080_0000);
    }

    #[test]
    fn release_vector_and_revoke() {
        let bytes = hex("00000000 ffffffff 00000001 00000000 40000000");
        let f = Frame::Release { block_id: 1 };
        assert_eq!(one(&bytes, true), Ok(f.clone()));
        assert_eq!(f.encode().unwrap(), bytes);
        let bytes = hex("00000000 ffffffff 00000007 00000000 c0000000");
        let f = Frame::Revoke { block_id: 7 };
        assert_eq!(one(&bytes, true), Ok(f.clone()));
        assert_eq!(f.encode().unwrap(), bytes);
    }

    /// The AUTH reply payload of Appendix A in its packet frame.
    #[test]
    fn auth_reply_packet() {
        let payload = hex("4c 00000002 4c 00000000 4c c0000023");
        let bytes = [desc(15, CONTROL_CHANNEL, 0, 0, 0), payload.clone()].concat();
        assert_eq!(
            &bytes[..20],
            &hex("0000000f ffffffff 00000000 00000000 00000000")[..]
        );
        let f = one(&bytes, false).unwrap();
        assert_eq!(f, Frame::Packet(payload.clone()));
        assert_eq!(f.encode().unwrap(), bytes);
        let Frame::Packet(p) = f else { unreachable!() };
        let mut r = TagReader::new(&p);
        assert_eq!(r.get_u32(), Ok(2));
    }

    #[test]
    fn descriptor_round_trip_and_offset() {
        let d = Descriptor {
            length: 1,
            channel: 2,
            offset_hi: 0xFFFF_FFFF,
            offset_lo: 0xFFFF_FFFE,
            flags: 3,
        };
        assert_eq!(d.offset(), -2);
        assert_eq!(Descriptor::decode(&d.encode()), d);
        assert_eq!(
            d.encode().to_vec(),
            hex("00000001 00000002 ffffffff fffffffe 00000003")
        );
        let m = Frame::Memblock(Memblock {
            channel: 5,
            offset: -2,
            seek: SeekMode::RelativeEnd,
            data: vec![9],
        });
        assert_eq!(m.descriptor(), Descriptor { channel: 5, ..d });
        assert_eq!(one(&m.encode().unwrap(), false), Ok(m));
    }

    /// SHM is allowed from the frame after the one whose handling enabled
    /// it, even when both arrived in one read.
    #[test]
    fn shm_enabled_between_frames() {
        let auth = Frame::Packet(TagWriter::command(8, 0).into_bytes());
        let shm = Frame::ShmRef(ShmRefFrame {
            shm: ShmRef {
                length: 4,
                ..ShmRef::default()
            },
            ..ShmRefFrame::default()
        });
        let mut bytes = auth.encode().unwrap();
        shm.encode_into(&mut bytes).unwrap();
        let mut d = FrameDecoder::default();
        assert!(!d.shm_enabled());
        d.push(&bytes);
        assert_eq!(d.next_frame(), Ok(Some(auth)));
        d.set_shm_enabled(true);
        assert_eq!(d.next_frame(), Ok(Some(shm)));
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn partial_frames() {
        let f = Frame::Packet(vec![1, 2, 3]);
        let bytes = f.encode().unwrap();
        let mut d = FrameDecoder::default();
        assert!(!d.is_mid_frame());
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(d.next_frame(), Ok(None));
            assert_eq!(d.is_mid_frame(), i > 0);
            d.push(&[*b]);
        }
        assert_eq!(d.next_frame(), Ok(Some(f)));
        assert!(!d.is_mid_frame());
    }

    #[test]
    fn wanted_stops_exactly_at_frame_boundaries() {
        let frames = [
            Frame::Packet(vec![1, 2, 3]),
            Frame::Release { block_id: 9 },
            Frame::Memblock(Memblock {
                channel: 0,
                data: vec![5; 70],
                ..Memblock::default()
            }),
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            f.encode_into(&mut bytes).unwrap();
        }
        let mut d = FrameDecoder::default();
        d.set_shm_enabled(true);
        let mut got = Vec::new();
        let mut at = 0;
        // Reads of at most 16 bytes, never more than `wanted`.
        while at < bytes.len() {
            let want = d.wanted();
            assert!(want > 0);
            let n = want.min(16).min(bytes.len() - at);
            d.push(&bytes[at..at + n]);
            at += n;
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
                // A frame just ended: nothing of the next one is buffered.
                assert_eq!(d.buffered(), 0);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(d.wanted(), DESCRIPTOR_LEN);
        // A failed decoder wants nothing.
        d.push(&hex("00000000 00000000 00000000 00000000 00000000"));
        assert!(d.next_frame().is_err());
        assert_eq!(d.wanted(), 0);
    }

    // ---- every FrameError variant ----

    #[test]
    fn shm_disabled() {
        let bytes = hex("00000000 ffffffff 00000001 00000000 40000000");
        assert_eq!(
            one(&bytes, false),
            Err(FrameError::ShmDisabled { flags: 0x4000_0000 })
        );
    }

    #[test]
    fn release_with_payload() {
        let bytes = [
            desc(4, CONTROL_CHANNEL, 1, 0, flags::SHM_REVOKE),
            vec![0; 4],
        ]
        .concat();
        assert_eq!(
            one(&bytes, true),
            Err(FrameError::ReleaseWithPayload {
                flags: flags::SHM_REVOKE,
                length: 4
            })
        );
    }

    #[test]
    fn empty() {
        assert_eq!(
            one(&desc(0, CONTROL_CHANNEL, 0, 0, 0), false),
            Err(FrameError::Empty {
                channel: CONTROL_CHANNEL
            })
        );
        assert_eq!(
            one(&desc(0, 3, 0, 0, 0), false),
            Err(FrameError::Empty { channel: 3 })
        );
        assert_eq!(
            Frame::Packet(Vec::new()).encode(),
            Err(FrameError::Empty {
                channel: CONTROL_CHANNEL
            })
        );
    }

    #[test]
    fn too_large() {
        // Refused on the descriptor alone, before any payload arrives.
        let mut d = FrameDecoder::default();
        d.push(&desc(FRAME_SIZE_MAX_ALLOW + 1, CONTROL_CHANNEL, 0, 0, 0));
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                length: FRAME_SIZE_MAX_ALLOW + 1,
                max: FRAME_SIZE_MAX_ALLOW
            })
        );
        let mut d = FrameDecoder::new(64);
        d.push(&desc(65, 0, 0, 0, 0));
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                length: 65,
                max: 64
            })
        );
        let mut d = FrameDecoder::new(64);
        d.push(&desc(64, 0, 0, 0, 0));
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(
            Frame::Packet(vec![0; FRAME_SIZE_MAX_ALLOW as usize + 1]).encode(),
            Err(FrameError::TooLarge {
                length: FRAME_SIZE_MAX_ALLOW + 1,
                max: FRAME_SIZE_MAX_ALLOW
            })
        );
    }

    #[test]
    fn packet_flags_and_offset() {
        assert_eq!(
            one(
                &[desc(1, CONTROL_CHANNEL, 0, 0, 1), vec![0]].concat(),
                false
            ),
            Err(FrameError::PacketFlags { flags: 1 })
        );
        assert_eq!(
            one(
                &[desc(1, CONTROL_CHANNEL, 0, 0, flags::SHM_DATA), vec![0]].concat(),
                true
            ),
            Err(FrameError::PacketFlags {
                flags: flags::SHM_DATA
            })
        );
        assert_eq!(
            one(
                &[desc(1, CONTROL_CHANNEL, 1, 2, 0), vec![0]].concat(),
                false
            ),
            Err(FrameError::PacketOffset {
                offset: (1 << 32) | 2
            })
        );
    }

    #[test]
    fn bad_seek_mode() {
        assert_eq!(
            one(&[desc(1, 0, 0, 0, 4), vec![0]].concat(), false),
            Err(FrameError::BadSeekMode { mode: 4 })
        );
        assert_eq!(
            one(
                &[desc(16, 0, 0, 0, 0xA000_0004), vec![0; 16]].concat(),
                true
            ),
            Err(FrameError::BadSeekMode { mode: 4 })
        );
    }

    #[test]
    fn shm_ref_length() {
        assert_eq!(
            one(
                &[desc(12, 0, 0, 0, 0xA000_0000), vec![0; 12]].concat(),
                true
            ),
            Err(FrameError::ShmRefLength { length: 12 })
        );
    }

    #[test]
    fn bad_shm_flags() {
        for f in [
            flags::SHM_MEMFD_BLOCK,
            0x0100_0000,
            flags::SHM_RELEASE | 1,
            flags::SHM_RELEASE | flags::SHM_MEMFD_BLOCK,
        ] {
            assert_eq!(
                one(&[desc(1, 0, 0, 0, f), vec![0]].concat(), true),
                Err(FrameError::BadShmFlags { flags: f })
            );
        }
    }

    #[test]
    fn empty_shm_ref() {
        let bytes = hex(
            "00000010 00000000 00000000 00000000 a0000000 | 00000009 00000001 00000000 00000000",
        );
        assert_eq!(
            one(&bytes, true),
            Err(FrameError::EmptyShmRef { block_id: 9 })
        );
        let f = Frame::ShmRef(ShmRefFrame {
            shm: ShmRef {
                block_id: 9,
                ..ShmRef::default()
            },
            ..ShmRefFrame::default()
        });
        assert_eq!(f.encode(), Err(FrameError::EmptyShmRef { block_id: 9 }));
    }

    #[test]
    fn control_channel() {
        let m = Frame::Memblock(Memblock {
            channel: CONTROL_CHANNEL,
            data: vec![1],
            ..Memblock::default()
        });
        assert_eq!(m.encode(), Err(FrameError::ControlChannel));
        let s = Frame::ShmRef(ShmRefFrame {
            channel: CONTROL_CHANNEL,
            shm: ShmRef {
                length: 1,
                ..ShmRef::default()
            },
            ..ShmRefFrame::default()
        });
        let mut out = vec![7];
        assert_eq!(s.encode_into(&mut out), Err(FrameError::ControlChannel));
        assert_eq!(out, [7], "nothing appended on refusal");
    }

    #[test]
    fn errors_are_sticky() {
        let mut d = FrameDecoder::default();
        d.push(&desc(0, 0, 0, 0, 0));
        let e = FrameError::Empty { channel: 0 };
        assert_eq!(d.next_frame(), Err(e));
        d.push(&Frame::Packet(vec![1]).encode().unwrap());
        assert_eq!(d.next_frame(), Err(e));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn seek_modes() {
        for (v, m) in [
            (0, SeekMode::Relative),
            (1, SeekMode::Absolute),
            (2, SeekMode::RelativeOnRead),
            (3, SeekMode::RelativeEnd),
        ] {
            assert_eq!(SeekMode::from_wire(v), Some(m));
            assert_eq!(m as u32, v);
        }
        assert_eq!(SeekMode::from_wire(4), None);
    }

    // ---- property tests ----

    fn arb_seek() -> impl Strategy<Value = SeekMode> {
        (0u32..4).prop_map(|v| SeekMode::from_wire(v).unwrap())
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 1..300).prop_map(Frame::Packet),
            (
                0..CONTROL_CHANNEL,
                any::<i64>(),
                arb_seek(),
                prop::collection::vec(any::<u8>(), 1..300)
            )
                .prop_map(|(channel, offset, seek, data)| Frame::Memblock(Memblock {
                    channel,
                    offset,
                    seek,
                    data
                })),
            (
                0..CONTROL_CHANNEL,
                any::<i64>(),
                arb_seek(),
                any::<(bool, bool)>(),
                any::<(u32, u32, u32)>(),
                1..=u32::MAX
            )
                .prop_map(
                    |(
                        channel,
                        offset,
                        seek,
                        (memfd, writable),
                        (block_id, shm_id, index),
                        length,
                    )| {
                        Frame::ShmRef(ShmRefFrame {
                            channel,
                            offset,
                            seek,
                            memfd,
                            writable,
                            shm: ShmRef {
                                block_id,
                                shm_id,
                                index,
                                length,
                            },
                        })
                    }
                ),
            any::<u32>().prop_map(|block_id| Frame::Release { block_id }),
            any::<u32>().prop_map(|block_id| Frame::Revoke { block_id }),
        ]
    }

    proptest! {
        /// Every frame kind round-trips through encode and decode.
        #[test]
        fn frame_round_trip(frames in prop::collection::vec(arb_frame(), 0..8)) {
            let mut bytes = Vec::new();
            for f in &frames {
                f.encode_into(&mut bytes).unwrap();
            }
            prop_assert_eq!(decode_all(&bytes, true)?, frames);
        }

        /// A stream split at arbitrary points gives the same frames.
        #[test]
        fn split_anywhere(frames in prop::collection::vec(arb_frame(), 1..8),
                          cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12)) {
            let mut bytes = Vec::new();
            for f in &frames {
                f.encode_into(&mut bytes).unwrap();
            }
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            at.push(0);
            at.push(bytes.len());
            at.sort_unstable();
            let mut d = FrameDecoder::new(1024);
            d.set_shm_enabled(true);
            let mut got = Vec::new();
            for w in at.windows(2) {
                d.push(&bytes[w[0]..w[1]]);
                while let Some(f) = d.next_frame()? {
                    got.push(f);
                }
            }
            prop_assert!(!d.is_mid_frame());
            prop_assert_eq!(got, frames);
        }

        /// Random bytes, fed in random chunks, give frames or a named
        /// error, never a panic; with SHM off no SHM frame comes out.
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512),
                                    chunk in 1usize..64, shm in any::<bool>(), max in 0u32..400) {
            let mut d = FrameDecoder::new(max);
            d.set_shm_enabled(shm);
            'outer: for c in bytes.chunks(chunk) {
                d.push(c);
                loop {
                    match d.next_frame() {
                        Ok(Some(f)) => {
                            if !shm {
                                let not_shm = matches!(f, Frame::Packet(_) | Frame::Memblock(_));
                                prop_assert!(not_shm);
                            }
                        }
                        Ok(None) => break,
                        Err(_) => break 'outer,
                    }
                }
            }
        }

        /// Random descriptors with small payloads (so that the frames can
        /// complete) never panic; an accepted frame re-encodes to a frame
        /// that decodes the same, and to the same bytes except where the
        /// receiver ignores fields (SHMWRITABLE on inline data; channel and
        /// OFFSET_LO of RELEASE/REVOKE).
        #[test]
        fn random_descriptors(len in 0u32..40, channel in prop::sample::select(vec![0u32, 1, CONTROL_CHANNEL]),
                              hi in any::<u32>(), lo in any::<u32>(),
                              fl in prop::sample::select(vec![0u32, 1, 3, 4, 0x40000000, 0xC0000000, 0xA0000000, 0xA0800000, 0x80000000, 0x20000000, 0x00800000]),
                              payload in prop::collection::vec(any::<u8>(), 40)) {
            let bytes = [desc(len, channel, hi, lo, fl), payload[..len as usize].to_vec()].concat();
            if let Ok(f) = one(&bytes, true) {
                let re = f.encode().unwrap();
                prop_assert_eq!(one(&re, true)?, f);
                let ignored = fl == flags::SHM_WRITABLE || fl == flags::SHM_RELEASE || fl == flags::SHM_REVOKE;
                if !ignored {
                    prop_assert_eq!(re, bytes);
                }
            }
        }
    }
}
