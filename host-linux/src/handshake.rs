//! The channel handshake: how one process hands a block and its signals to
//! another over a unix socket, and how the other checks them.
//!
//! # Roles and order
//!
//! The **creator** ([`create`]) owns the memory: it makes a sealed memfd
//! ([`crate::memfd`]), maps it, writes the layout header (srb-core's
//! `pa::init_server` or `srb::create`), and then sends, as frames
//! ([`crate::frame`]):
//!
//! 1. [`FRAME_OFFER`] with 1 fd (the memfd) and an [`Offer`] payload;
//! 2. for eventfd signals, [`FRAME_EVENTFDS`] with 2 fds, no payload:
//!    `[fd0, fd1]`, fd0 = the eventfd the creator waits on, fd1 = the one the
//!    attacher waits on (PulseAudio's `ENABLE_SRBCHANNEL` order, §5.2).
//!
//! The **attacher** ([`accept`]) checks every fd's kind and count, imports
//! the memfd (sealed, large enough), validates the offer's geometry, attaches
//! (`pa::adopt_client` or `srb::attach`, which validate the header again),
//! and answers [`FRAME_ACCEPT`] (no fds), or [`FRAME_REJECT`] with a reason
//! code before returning its error. The creator waits for the answer. A
//! frame with fds it does not take, or the wrong kind or number, is an
//! error that closes every received fd.
//!
//! Shared memory is offered to, and taken from, a peer of our own uid only
//! (`SO_PEERCRED`), as PulseAudio does.
//!
//! # Offer payload (48 bytes, little-endian)
//!
//! ```text
//! offset size field
//!      0    4 magic          "srbH"
//!      4    2 version        1
//!      6    1 layout         1 = pa, 2 = srb
//!      7    1 signal         1 = eventfd, 2 = futex
//!      8    4 capacity       bytes per ring
//!     12    4 reserved       0
//!     16    8 memfd_len      bytes the attacher maps
//!     24    8 block_offset   where the layout header starts (128-aligned)
//!     32    8 block_len      bytes of the block
//!     40    8 signal_offset  futex words (128-aligned), 0 for eventfds
//! ```
//!
//! For futex signals, the memfd holds after the block a 256-byte signal
//! area: the word the creator waits on at `signal_offset`, the word the
//! attacher waits on at `signal_offset + 128` (separate cache lines).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;
use srb_core::{layout, AttachError, SrbChannel};

use crate::channel::{Channel, Inner};
pub use crate::channel::{LayoutKind, SignalKind};
use crate::eventfd::{Eventfd, EventfdImportError, EventfdWait};
use crate::fdkind::FdKind;
use crate::frame::{recv_frame, send_frame, Frame, FrameError};
use crate::futex::{FutexNotify, FutexWait, FutexWord};
use crate::mapping::{MapError, RangeError, SharedMapping};
use crate::memfd::{CreateError, ImportError, SealedMemfd, MAX_MEMFD_LEN};
use crate::scm::{ClaimError, ScmStream, SendError};
use crate::signal::PeerWatch;

/// Frame kind: the block offer (1 fd: the memfd).
pub const FRAME_OFFER: u32 = 1;
/// Frame kind: the two eventfds (2 fds, no payload).
pub const FRAME_EVENTFDS: u32 = 2;
/// Frame kind: the attacher accepted (no fds; payload magic + version).
pub const FRAME_ACCEPT: u32 = 3;
/// Frame kind: the attacher refused (no fds; payload a u32 reason code).
pub const FRAME_REJECT: u32 = 4;

/// `"srbH"` as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"srbH");
/// The handshake version this crate speaks.
pub const VERSION: u16 = 1;
/// Length of the [`Offer`] payload.
pub const OFFER_LEN: usize = 48;
/// Length of the futex signal area.
pub const SIGNAL_AREA_LEN: usize = 256;
/// Offset of the attacher's futex word inside the signal area.
const ATTACHER_WORD: usize = 128;
/// Alignment of the block and the signal area inside the memfd.
const AREA_ALIGN: u64 = 128;

/// What the creator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Block layout.
    pub layout: LayoutKind,
    /// Signal kind.
    pub signal: SignalKind,
    /// Bytes per ring: a power of two for [`LayoutKind::Srb`], a multiple
    /// of 8 for [`LayoutKind::Pa`].
    pub capacity: u32,
}

/// The offer frame's payload (see the module docs for the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// Block layout.
    pub layout: LayoutKind,
    /// Signal kind.
    pub signal: SignalKind,
    /// Bytes per ring.
    pub capacity: u32,
    /// Bytes of the memfd to map.
    pub memfd_len: u64,
    /// Offset of the block in the memfd.
    pub block_offset: u64,
    /// Length of the block.
    pub block_len: u64,
    /// Offset of the futex signal area (0 for eventfds).
    pub signal_offset: u64,
}

/// Reason codes of [`FRAME_REJECT`].
pub mod reject {
    /// The offer or its fds were malformed or of the wrong kind.
    pub const BAD_OFFER: u32 = 1;
    /// The memfd failed the import checks.
    pub const BAD_MEMFD: u32 = 2;
    /// The layout header did not validate.
    pub const BAD_LAYOUT: u32 = 3;
    /// Something else failed on the attacher's side.
    pub const INTERNAL: u32 = 4;
}

/// Why a handshake failed. Every fd received so far is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The peer's uid is not ours: no shared memory for it.
    #[error("peer uid {uid} is not ours; refusing to share memory")]
    ForeignPeer {
        /// The peer's uid (`SO_PEERCRED`).
        uid: u32,
    },
    /// The peer closed the connection.
    #[error("peer is gone")]
    PeerGone,
    /// Sending a frame failed.
    #[error("sending failed: {0}")]
    Send(SendError),
    /// Receiving a frame failed (including `MSG_CTRUNC` and timeouts).
    #[error("receiving failed: {0}")]
    Frame(FrameError),
    /// A frame's fds were of the wrong number or kind.
    #[error("bad fds: {0}")]
    Claim(#[from] ClaimError),
    /// A frame of another kind arrived.
    #[error("expected frame kind {expected}, got {got}")]
    UnexpectedFrame {
        /// The kind the protocol needs now.
        expected: u32,
        /// The kind that arrived.
        got: u32,
    },
    /// A payload has the wrong length.
    #[error("frame kind {kind} has a {len}-byte payload")]
    BadPayload {
        /// The frame kind.
        kind: u32,
        /// Its payload length.
        len: usize,
    },
    /// The offer's magic is wrong.
    #[error("bad handshake magic {found:#010x}")]
    BadMagic {
        /// What arrived.
        found: u32,
    },
    /// The offer's version is not ours.
    #[error("unsupported handshake version {found}")]
    BadVersion {
        /// What arrived.
        found: u16,
    },
    /// Unknown layout code.
    #[error("unknown layout code {0}")]
    BadLayout(u8),
    /// Unknown signal code.
    #[error("unknown signal code {0}")]
    BadSignal(u8),
    /// The offer's offsets and lengths do not fit together.
    #[error("offer geometry is invalid: {what}")]
    BadGeometry {
        /// Which rule failed.
        what: &'static str,
    },
    /// The requested capacity is not valid for the layout.
    #[error("capacity {capacity} is not valid for the {layout:?} layout")]
    BadCapacity {
        /// The capacity asked for.
        capacity: u32,
        /// The layout.
        layout: LayoutKind,
    },
    /// The header's capacity differs from the offer's.
    #[error("offer says capacity {offered}, header says {found}")]
    CapacityMismatch {
        /// From the offer.
        offered: u32,
        /// From the header.
        found: u32,
    },
    /// Creating the memfd failed.
    #[error(transparent)]
    Create(#[from] CreateError),
    /// The received memfd failed the checks.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A received eventfd failed the checks.
    #[error(transparent)]
    Eventfd(#[from] EventfdImportError),
    /// Mapping failed.
    #[error(transparent)]
    Map(#[from] MapError),
    /// A range was outside the mapping.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// srb-core refused the block.
    #[error("layout: {0}")]
    Attach(AttachError),
    /// The attacher refused with a reason code ([`reject`]).
    #[error("peer rejected the offer (code {code})")]
    Rejected {
        /// The reason code.
        code: u32,
    },
    /// A system call failed.
    #[error("system call failed: {0}")]
    Sys(Errno),
}

impl From<SendError> for HandshakeError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::PeerGone => Self::PeerGone,
            e => Self::Send(e),
        }
    }
}

impl From<FrameError> for HandshakeError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Recv(crate::scm::RecvError::PeerGone) => Self::PeerGone,
            e => Self::Frame(e),
        }
    }
}

impl From<AttachError> for HandshakeError {
    fn from(e: AttachError) -> Self {
        Self::Attach(e)
    }
}

impl Offer {
    /// The wire bytes.
    pub fn encode(&self) -> [u8; OFFER_LEN] {
        let mut b = [0u8; OFFER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6] = self.layout as u8;
        b[7] = self.signal as u8;
        b[8..12].copy_from_slice(&self.capacity.to_le_bytes());
        b[16..24].copy_from_slice(&self.memfd_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.block_offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.block_len.to_le_bytes());
        b[40..48].copy_from_slice(&self.signal_offset.to_le_bytes());
        b
    }

    /// Parses and validates an offer: fields, then geometry (all in `u64`).
    pub fn decode(b: &[u8]) -> Result<Self, HandshakeError> {
        if b.len() != OFFER_LEN {
            return Err(HandshakeError::BadPayload {
                kind: FRAME_OFFER,
                len: b.len(),
            });
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(HandshakeError::BadMagic { found: magic });
        }
        let version = u16_at(4);
        if version != VERSION {
            return Err(HandshakeError::BadVersion { found: version });
        }
        let layout = LayoutKind::from_wire(b[6]).ok_or(HandshakeError::BadLayout(b[6]))?;
        let signal = SignalKind::from_wire(b[7]).ok_or(HandshakeError::BadSignal(b[7]))?;
        let offer = Self {
            layout,
            signal,
            capacity: u32_at(8),
            memfd_len: u64_at(16),
            block_offset: u64_at(24),
            block_len: u64_at(32),
            signal_offset: u64_at(40),
        };
        offer.check()?;
        Ok(offer)
    }

    fn check(&self) -> Result<(), HandshakeError> {
        let bad = |what| Err(HandshakeError::BadGeometry { what });
        if self.memfd_len == 0 || self.memfd_len > MAX_MEMFD_LEN {
            return bad("memfd length out of range");
        }
        if !self.block_offset.is_multiple_of(AREA_ALIGN) {
            return bad("block offset not 128-byte aligned");
        }
        let block_end = self.block_offset.checked_add(self.block_len);
        if self.block_len == 0 || block_end.is_none_or(|e| e > self.memfd_len) {
            return bad("block outside the memfd");
        }
        match self.signal {
            SignalKind::Eventfd if self.signal_offset != 0 => bad("signal offset with eventfds"),
            SignalKind::Eventfd => Ok(()),
            SignalKind::Futex => {
                let s = self.signal_offset;
                let s_end = s.checked_add(SIGNAL_AREA_LEN as u64);
                if !s.is_multiple_of(AREA_ALIGN) || s_end.is_none_or(|e| e > self.memfd_len) {
                    return bad("signal area outside the memfd or misaligned");
                }
                let b_end = self.block_offset + self.block_len;
                if s < b_end && self.block_offset < s + SIGNAL_AREA_LEN as u64 {
                    return bad("signal area overlaps the block");
                }
                Ok(())
            }
        }
    }
}

fn page_round(n: u64) -> u64 {
    let page = rustix::param::page_size() as u64;
    n.div_ceil(page) * page
}

fn align_area(n: u64) -> u64 {
    n.div_ceil(AREA_ALIGN) * AREA_ALIGN
}

/// The block length a configuration needs.
fn block_len_for(cfg: &ChannelConfig) -> Result<u64, HandshakeError> {
    let bad = Err(HandshakeError::BadCapacity {
        capacity: cfg.capacity,
        layout: cfg.layout,
    });
    match cfg.layout {
        LayoutKind::Srb => {
            if !cfg.capacity.is_power_of_two() || cfg.capacity > layout::srb::MAX_CAPACITY {
                return bad;
            }
            Ok(layout::srb::block_len(cfg.capacity) as u64)
        }
        LayoutKind::Pa => {
            // PulseAudio's geometry for a block of RINGS_START + 2 * capacity
            // bytes gives exactly `capacity` when it is a multiple of 8.
            if cfg.capacity == 0 || !cfg.capacity.is_multiple_of(8) || cfg.capacity > (1 << 28) {
                return bad;
            }
            Ok(layout::pa::RINGS_START as u64 + 2 * u64::from(cfg.capacity))
        }
    }
}

fn check_peer(stream: &ScmStream) -> Result<(), HandshakeError> {
    let peer = stream.peer_credentials().map_err(HandshakeError::Sys)?;
    let ours = rustix::process::geteuid();
    if peer.uid != ours {
        return Err(HandshakeError::ForeignPeer {
            uid: peer.uid.as_raw(),
        });
    }
    Ok(())
}

fn expect_kind(frame: &Frame, expected: u32) -> Result<(), HandshakeError> {
    if frame.kind != expected {
        return Err(HandshakeError::UnexpectedFrame {
            expected,
            got: frame.kind,
        });
    }
    Ok(())
}

/// The signals of one side: what it notifies and what it waits on.
enum Signals {
    Eventfd {
        notify: Eventfd,
        wait: EventfdWait,
    },
    Futex {
        notify: FutexNotify,
        wait: FutexWait,
    },
}

/// Builds the channel from this side's srb-core ends.
///
/// # Safety
/// `block` lies in a mapping the caller keeps alive for as long as the
/// returned ends live (the [`Channel`] owns both and drops the ends first).
/// The creator calls this before the memfd leaves the process.
unsafe fn assemble(
    block: srb_core::Block,
    offer: &Offer,
    signals: Signals,
    creator: bool,
) -> Result<Inner, HandshakeError> {
    // SAFETY (for every layout call below): the caller's contract; the
    // creator initialises a block no one else has yet; each side builds
    // exactly one set of ends.
    let inner = match (offer.layout, signals, creator) {
        (LayoutKind::Pa, s, c) => {
            let (g, ends) = if c {
                // SAFETY: see above.
                unsafe { layout::pa::init_server(block) }?
            } else {
                // SAFETY: see above.
                unsafe { layout::pa::adopt_client(block) }?
            };
            if g.capacity != offer.capacity {
                return Err(HandshakeError::CapacityMismatch {
                    offered: offer.capacity,
                    found: g.capacity,
                });
            }
            match s {
                Signals::Eventfd { notify, wait } => {
                    Inner::PaEventfd(SrbChannel::new(ends, notify, wait))
                }
                Signals::Futex { notify, wait } => {
                    Inner::PaFutex(SrbChannel::new(ends, notify, wait))
                }
            }
        }
        (LayoutKind::Srb, s, c) => {
            let (g, ends) = if c {
                // SAFETY: see above.
                unsafe { layout::srb::create(block, offer.capacity) }?
            } else {
                // SAFETY: see above.
                unsafe { layout::srb::attach(block) }?
            };
            if g.capacity != offer.capacity {
                return Err(HandshakeError::CapacityMismatch {
                    offered: offer.capacity,
                    found: g.capacity,
                });
            }
            match s {
                Signals::Eventfd { notify, wait } => {
                    Inner::SrbEventfd(SrbChannel::new(ends, notify, wait))
                }
                Signals::Futex { notify, wait } => {
                    Inner::SrbFutex(SrbChannel::new(ends, notify, wait))
                }
            }
        }
    };
    Ok(inner)
}

fn futex_signals(
    map: &Arc<SharedMapping>,
    offer: &Offer,
    watch: PeerWatch,
    creator: bool,
) -> Result<Signals, HandshakeError> {
    let base = usize::try_from(offer.signal_offset).map_err(|_| HandshakeError::BadGeometry {
        what: "signal offset beyond the address space",
    })?;
    let creator_word = FutexWord::new(map.clone(), base)?;
    let attacher_word = FutexWord::new(map.clone(), base + ATTACHER_WORD)?;
    let (mine, theirs) = if creator {
        (creator_word, attacher_word)
    } else {
        (attacher_word, creator_word)
    };
    Ok(Signals::Futex {
        notify: FutexNotify::new(theirs),
        wait: FutexWait::new(mine, Some(watch)),
    })
}

/// Creator side: makes a block for `cfg`, sends it and its signals over
/// `stream`, and waits up to `timeout` for the peer to accept.
pub fn create(
    stream: ScmStream,
    cfg: ChannelConfig,
    timeout: Option<Duration>,
) -> Result<Channel, HandshakeError> {
    let mut stream = stream;
    check_peer(&stream)?;
    let block_len = block_len_for(&cfg)?;
    let (signal_offset, end) = match cfg.signal {
        SignalKind::Eventfd => (0, block_len),
        SignalKind::Futex => {
            let s = align_area(block_len);
            (s, s + SIGNAL_AREA_LEN as u64)
        }
    };
    let offer = Offer {
        layout: cfg.layout,
        signal: cfg.signal,
        capacity: cfg.capacity,
        memfd_len: page_round(end),
        block_offset: 0,
        block_len,
        signal_offset,
    };
    let memfd = SealedMemfd::create("srb-channel", offer.memfd_len)?;
    let map = memfd.map()?;
    // SAFETY: the block lies in `map`, which the channel will own; no
    // reference into it is formed.
    let block = unsafe { map.block(0, block_len as usize) }?;
    let watch = stream.watch();
    let (signals, eventfds, poll_dup) = match cfg.signal {
        SignalKind::Eventfd => {
            let fd0 = Eventfd::new().map_err(HandshakeError::Sys)?; // creator waits
            let fd1 = Eventfd::new().map_err(HandshakeError::Sys)?; // attacher waits
            let send0 = fd0.try_clone().map_err(HandshakeError::Sys)?;
            let send1 = fd1.try_clone().map_err(HandshakeError::Sys)?;
            let dup = fd0.try_clone().map_err(HandshakeError::Sys)?;
            let s = Signals::Eventfd {
                notify: fd1,
                wait: EventfdWait::new(fd0, Some(watch)),
            };
            (s, Some((send0, send1)), Some(dup.into_fd()))
        }
        SignalKind::Futex => (futex_signals(&map, &offer, watch, true)?, None, None),
    };
    // Build the creator's ends (this writes the header) before the offer
    // leaves: the attacher may look at the block as soon as it has the fd.
    // SAFETY: `block` lies in `map`, which goes into the channel with the
    // ends (or is dropped after them on error); the fd has not left yet.
    let inner = unsafe { assemble(block, &offer, signals, true) }?;
    send_frame(
        &stream,
        FRAME_OFFER,
        &offer.encode(),
        &[memfd.as_fd()],
        true,
    )?;
    drop(memfd); // the mapping keeps the memory; the fd is not needed.
    if let Some((a, b)) = &eventfds {
        send_frame(&stream, FRAME_EVENTFDS, &[], &[a.as_fd(), b.as_fd()], false)?;
    }
    drop(eventfds);
    let answer = recv_frame(&mut stream, timeout)?;
    match answer.kind {
        FRAME_ACCEPT => {
            stream.claim_exact(&[])?;
            if answer.payload.len() != 8
                || answer.payload[0..4] != MAGIC.to_le_bytes()
                || answer.payload[4..6] != VERSION.to_le_bytes()
            {
                return Err(HandshakeError::BadPayload {
                    kind: FRAME_ACCEPT,
                    len: answer.payload.len(),
                });
            }
        }
        FRAME_REJECT => {
            stream.claim_exact(&[])?;
            let code = match answer.payload[..] {
                [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
                _ => {
                    return Err(HandshakeError::BadPayload {
                        kind: FRAME_REJECT,
                        len: answer.payload.len(),
                    })
                }
            };
            return Err(HandshakeError::Rejected { code });
        }
        got => {
            stream.close_unclaimed();
            return Err(HandshakeError::UnexpectedFrame {
                expected: FRAME_ACCEPT,
                got,
            });
        }
    }
    Ok(Channel::new(
        inner,
        stream,
        map,
        offer.layout,
        offer.signal,
        poll_dup,
    ))
}

/// Attacher side: receives an offer over `stream` (waiting up to `timeout`
/// for each frame), checks and attaches it, and accepts. On failure it
/// sends a reject (best effort) and returns the error.
pub fn accept(stream: ScmStream, timeout: Option<Duration>) -> Result<Channel, HandshakeError> {
    let mut stream = stream;
    match accept_inner(&mut stream, timeout) {
        Ok((map, block, offer, signals, poll_dup)) => {
            // SAFETY: `block` lies in `map`, which goes into the channel
            // with the ends (or is dropped after them on error).
            let inner = unsafe { assemble(block, &offer, signals, false) }
                .inspect_err(|e| reject(&stream, e))?;
            let mut ok = [0u8; 8];
            ok[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            ok[4..6].copy_from_slice(&VERSION.to_le_bytes());
            send_frame(&stream, FRAME_ACCEPT, &ok, &[], false)?;
            Ok(Channel::new(
                inner,
                stream,
                map,
                offer.layout,
                offer.signal,
                poll_dup,
            ))
        }
        Err(e) => {
            reject(&stream, &e);
            Err(e)
        }
    }
}

type Accepted = (
    Arc<SharedMapping>,
    srb_core::Block,
    Offer,
    Signals,
    Option<OwnedFd>,
);

fn accept_inner(
    stream: &mut ScmStream,
    timeout: Option<Duration>,
) -> Result<Accepted, HandshakeError> {
    check_peer(stream)?;
    let frame = recv_frame(stream, timeout)?;
    expect_kind(&frame, FRAME_OFFER)?;
    let memfd = stream
        .claim_exact(&[FdKind::Memfd])?
        .pop()
        .ok_or(HandshakeError::Sys(Errno::INVAL))?;
    let offer = Offer::decode(&frame.payload)?;
    let eventfds = if offer.signal == SignalKind::Eventfd {
        let frame = recv_frame(stream, timeout)?;
        expect_kind(&frame, FRAME_EVENTFDS)?;
        let mut fds = stream.claim_exact(&[FdKind::Eventfd, FdKind::Eventfd])?;
        if !frame.payload.is_empty() {
            return Err(HandshakeError::BadPayload {
                kind: FRAME_EVENTFDS,
                len: frame.payload.len(),
            });
        }
        let fd1 = Eventfd::import(fds.pop().ok_or(HandshakeError::Sys(Errno::INVAL))?)?;
        let fd0 = Eventfd::import(fds.pop().ok_or(HandshakeError::Sys(Errno::INVAL))?)?;
        Some((fd0, fd1))
    } else {
        None
    };
    let memfd = SealedMemfd::import(memfd, offer.memfd_len)?;
    let map = memfd.map()?;
    drop(memfd);
    // Checked by `Offer::check`: the block lies inside the memfd, so inside
    // the mapping, and fits usize because the mapping does.
    let (off, len) = (offer.block_offset as usize, offer.block_len as usize);
    // SAFETY: the block lies in `map`, which the channel will own; no
    // reference into it is formed.
    let block = unsafe { map.block(off, len) }?;
    let watch = stream.watch();
    let (signals, poll_dup) = match eventfds {
        Some((fd0, fd1)) => {
            let dup = fd1.try_clone().map_err(HandshakeError::Sys)?.into_fd();
            let s = Signals::Eventfd {
                notify: fd0,
                wait: EventfdWait::new(fd1, Some(watch)),
            };
            (s, Some(dup))
        }
        None => (futex_signals(&map, &offer, watch, false)?, None),
    };
    Ok((map, block, offer, signals, poll_dup))
}

/// Sends a reject frame for `e`, ignoring failures (the peer may be gone).
fn reject(stream: &ScmStream, e: &HandshakeError) {
    let code = match e {
        HandshakeError::Import(_) => reject::BAD_MEMFD,
        HandshakeError::Attach(_) | HandshakeError::CapacityMismatch { .. } => reject::BAD_LAYOUT,
        HandshakeError::Sys(_) | HandshakeError::Map(_) => reject::INTERNAL,
        _ => reject::BAD_OFFER,
    };
    tracing::warn!(error = %e, code, "rejecting channel offer");
    let _ = send_frame(stream, FRAME_REJECT, &code.to_le_bytes(), &[], false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer {
            layout: LayoutKind::Srb,
            signal: SignalKind::Futex,
            capacity: 4096,
            memfd_len: 8192,
            block_offset: 0,
            block_len: 5120,
            signal_offset: 5120,
        }
    }

    #[test]
    fn offers_round_trip() {
        let o = offer();
        assert_eq!(Offer::decode(&o.encode()), Ok(o));
    }

    #[test]
    fn hostile_offers_get_named_errors() {
        let mut b = offer().encode();
        b[0] ^= 1;
        assert!(matches!(
            Offer::decode(&b),
            Err(HandshakeError::BadMagic { .. })
        ));
        let mut b = offer().encode();
        b[4] = 9;
        assert_eq!(
            Offer::decode(&b),
            Err(HandshakeError::BadVersion { found: 9 })
        );
        let mut b = offer().encode();
        b[6] = 7;
        assert_eq!(Offer::decode(&b), Err(HandshakeError::BadLayout(7)));
        let mut b = offer().encode();
        b[7] = 0;
        assert_eq!(Offer::decode(&b), Err(HandshakeError::BadSignal(0)));
        assert!(matches!(
            Offer::decode(&b[..40]),
            Err(HandshakeError::BadPayload { len: 40, .. })
        ));
        let geometry = |o: Offer| {
            matches!(
                Offer::decode(&o.encode()),
                Err(HandshakeError::BadGeometry { .. })
            )
        };
        assert!(geometry(Offer {
            block_len: u64::MAX,
            ..offer()
        }));
        assert!(geometry(Offer {
            block_offset: 64,
            ..offer()
        }));
        assert!(geometry(Offer {
            block_len: 8193,
            ..offer()
        }));
        assert!(
            geometry(Offer {
                signal_offset: 4096,
                ..offer()
            }),
            "overlaps the block"
        );
        assert!(
            geometry(Offer {
                signal_offset: 8064,
                ..offer()
            }),
            "runs past the end"
        );
        assert!(geometry(Offer {
            signal_offset: u64::MAX - 127,
            ..offer()
        }));
        assert!(geometry(Offer {
            memfd_len: 0,
            ..offer()
        }));
        assert!(geometry(Offer {
            signal: SignalKind::Eventfd,
            ..offer()
        }));
    }

    #[test]
    fn capacities_are_checked_per_layout() {
        let cfg = |layout, capacity| ChannelConfig {
            layout,
            signal: SignalKind::Eventfd,
            capacity,
        };
        assert!(block_len_for(&cfg(LayoutKind::Srb, 4096)).is_ok());
        assert!(block_len_for(&cfg(LayoutKind::Srb, 4000)).is_err());
        assert_eq!(block_len_for(&cfg(LayoutKind::Pa, 32712)), Ok(65472));
        assert!(block_len_for(&cfg(LayoutKind::Pa, 4001)).is_err());
        assert!(block_len_for(&cfg(LayoutKind::Pa, 0)).is_err());
    }
}
