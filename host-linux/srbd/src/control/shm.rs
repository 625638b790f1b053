//! The SHM fast path for playback (`pa-native-protocol.md` §3.4, §4.2,
//! §4.3): a local client of our uid that negotiated SHM + memfd in AUTH
//! registers its memory pool (an **unsealed** memfd) with
//! REGISTER_MEMFD_SHMID and then sends audio as SHM reference frames
//! (block id, shm id, index, length) instead of copying it into the socket.
//!
//! - **Registration** ([`ShmImports::register`]): exactly one fd, which
//!   must be a memfd (a pipe, socket or regular file is a named error
//!   naming what arrived) of a non-zero size, a multiple of 8, at most
//!   [`MAX_SEGMENT_LEN`] (libpulse's own importer checks); an id already
//!   registered, or more than [`MAX_SEGMENTS`] segments, is an error. The
//!   fd is kept (never mapped) and closed when the connection ends.
//! - **References** ([`validate`], pure, so it can be fuzzed): the id must
//!   be registered on this connection, `index + length` must lie within
//!   the segment size seen at registration (64-bit arithmetic: a `u32`
//!   overflow cannot wrap into range), `length` must be non-zero, a
//!   multiple of the stream's frame size and at most [`MAX_REF_LEN`]
//!   (the inline frame limit: a hostile 1 GiB reference must not make us
//!   allocate 1 GiB). References without the memfd flag name POSIX shm
//!   segments, which are never offered (§1.5): an error.
//! - **Reading** ([`ShmImports::import`]): the bytes are copied with
//!   `pread` ([`UnsealedPool`]). libpulse does not seal its pool and the
//!   client may shrink it at any time; a mapping would then raise SIGBUS
//!   in the daemon, a `pread` merely comes up short, which is
//!   [`ShmError::Read`] and closes only that connection.
//! - **RELEASE** is queued at once after the copy (§4.3 step 3): srbd
//!   holds nothing of the block from then on. The queued RELEASE frames
//!   ([`ReleaseQueue`]) leave with the connection's next outgoing frames
//!   (the next REQUEST, normally within a period), or once
//!   [`RELEASE_BATCH`] are queued, or [`RELEASE_DELAY`] after the oldest,
//!   whichever comes first: sent alone, each would wake the client once
//!   more per period for nothing it needs at once (its pool has 1024
//!   slots). PulseAudio releases even later, once the block is played.
//!   The [`MAX_OUTSTANDING_BLOCKS`] cap (libpulse's import limit) is
//!   enforced on blocks imported and not yet released, which with the
//!   release at copy time never exceeds one.
//!
//! Every error here is fatal to the connection ([`crate::control::session::HandleError::Shm`]; the
//! commands and frames that use this file are served in [`crate::control::client_cmds`]):
//! libpulse never produces any of them (it copies inline rather than
//! refer to a pool it did not register, §4.5), so a client that does is
//! broken or hostile.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::control::limits::MAX_FRAME_PAYLOAD;
use srb_linux::memfd::MAX_MEMFD_LEN;
use srb_linux::pool::{PoolImportError, PoolReadError, UnsealedPool};
use srb_pulse::pstream::{Frame, FrameError, ShmRef, ShmRefFrame};

/// Most memfd segments one connection may register (libpulse's
/// `PA_MEMIMPORT_SEGMENTS_MAX`).
pub const MAX_SEGMENTS: usize = 16;
/// Most imported blocks one connection may hold unreleased (libpulse's
/// `PA_MEMIMPORT_SLOTS_MAX`).
pub const MAX_OUTSTANDING_BLOCKS: usize = 160;
/// The largest segment accepted (1 GiB, libpulse's limit).
pub const MAX_SEGMENT_LEN: u64 = MAX_MEMFD_LEN;
/// The longest reference accepted: the inline frame limit (libpulse's
/// blocks are at most 65472 bytes).
pub const MAX_REF_LEN: u32 = MAX_FRAME_PAYLOAD;

/// Queued RELEASE frames go out once this many are waiting, whatever else
/// is sent.
pub const RELEASE_BATCH: usize = 16;
/// Queued RELEASE frames go out at the latest this long after the oldest
/// was queued.
pub const RELEASE_DELAY: Duration = Duration::from_millis(20);

/// RELEASE frames waiting to ride along with the connection's next
/// outgoing frames (see the module docs).
#[derive(Debug, Default)]
pub struct ReleaseQueue {
    bytes: Vec<u8>,
    count: usize,
    oldest: Option<Instant>,
}

impl ReleaseQueue {
    /// Queues `release`; moves the whole queue to `out` once it holds
    /// [`RELEASE_BATCH`] frames.
    pub fn push(&mut self, release: Frame, out: &mut Vec<u8>) -> Result<(), FrameError> {
        release.encode_into(&mut self.bytes)?;
        self.count += 1;
        self.oldest.get_or_insert_with(Instant::now);
        if self.count >= RELEASE_BATCH {
            self.flush(out);
        }
        Ok(())
    }

    /// Moves every queued frame to `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.bytes);
        self.count = 0;
        self.oldest = None;
    }

    /// How many frames are queued.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How long until the queue must go out (`None`: empty; zero: now).
    pub fn due_in(&self) -> Option<Duration> {
        self.oldest
            .map(|t| RELEASE_DELAY.saturating_sub(t.elapsed()))
    }
}

/// Why an SHM reference is refused by [`validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShmRefError {
    /// A reference to zero bytes.
    #[error("SHM reference to block {block_id} with length 0")]
    Empty {
        /// The block id.
        block_id: u32,
    },
    /// The stream's frame size is 0 (cannot happen for a valid stream).
    #[error("stream frame size 0")]
    NoFrameSize,
    /// A length that is not a whole number of frames.
    #[error("SHM reference to block {block_id}: {length} bytes is not a multiple of the frame size {frame}")]
    Misaligned {
        /// The block id.
        block_id: u32,
        /// The announced length.
        length: u32,
        /// The stream's bytes per frame.
        frame: u32,
    },
    /// A length above [`MAX_REF_LEN`].
    #[error("SHM reference to block {block_id}: {length} bytes is above the maximum {max}")]
    TooLarge {
        /// The block id.
        block_id: u32,
        /// The announced length.
        length: u32,
        /// The maximum.
        max: u32,
    },
    /// `index + length` beyond the segment.
    #[error("SHM reference to block {block_id}: {index}+{length} ends past the segment of {segment} bytes")]
    OutOfBounds {
        /// The block id.
        block_id: u32,
        /// The announced offset.
        index: u32,
        /// The announced length.
        length: u32,
        /// The segment size seen at registration.
        segment: u64,
    },
}

/// Checks an SHM reference against a segment of `segment_len` bytes for a
/// stream of `frame_size` bytes per frame; on success the byte range to
/// copy, as `(offset, length)`, with `offset + length <= segment_len`,
/// `0 < length <= MAX_REF_LEN` and `length % frame_size == 0`. All
/// arithmetic is in `u64`: `index + length` cannot overflow.
pub fn validate(
    r: &ShmRef,
    segment_len: u64,
    frame_size: u32,
) -> Result<(u64, usize), ShmRefError> {
    let block_id = r.block_id;
    if r.length == 0 {
        return Err(ShmRefError::Empty { block_id });
    }
    if frame_size == 0 {
        return Err(ShmRefError::NoFrameSize);
    }
    if !r.length.is_multiple_of(frame_size) {
        return Err(ShmRefError::Misaligned {
            block_id,
            length: r.length,
            frame: frame_size,
        });
    }
    if r.length > MAX_REF_LEN {
        return Err(ShmRefError::TooLarge {
            block_id,
            length: r.length,
            max: MAX_REF_LEN,
        });
    }
    let end = u64::from(r.index) + u64::from(r.length);
    if end > segment_len {
        return Err(ShmRefError::OutOfBounds {
            block_id,
            index: r.index,
            length: r.length,
            segment: segment_len,
        });
    }
    let len = usize::try_from(r.length).map_err(|_| ShmRefError::TooLarge {
        block_id,
        length: r.length,
        max: MAX_REF_LEN,
    })?;
    Ok((u64::from(r.index), len))
}

/// Why a registration or a reference was refused. Each closes the
/// connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShmError {
    /// REGISTER_MEMFD_SHMID on a connection without SHM + memfd.
    #[error("REGISTER_MEMFD_SHMID on a connection that did not negotiate SHM + memfd")]
    NotNegotiated,
    /// REGISTER_MEMFD_SHMID with no fd or more than one.
    #[error("REGISTER_MEMFD_SHMID {shm_id} carried {got} fds; it takes exactly 1")]
    FdCount {
        /// The id it would register.
        shm_id: u32,
        /// How many fds came with the frame.
        got: usize,
    },
    /// The fd is not a memfd, or its size is not acceptable.
    #[error("REGISTER_MEMFD_SHMID {shm_id}: {source}")]
    Import {
        /// The id it would register.
        shm_id: u32,
        /// What is wrong with the fd (names its kind if not a memfd).
        source: PoolImportError,
    },
    /// The id is already registered on this connection.
    #[error("REGISTER_MEMFD_SHMID {shm_id}: id already registered on this connection")]
    Duplicate {
        /// The id.
        shm_id: u32,
    },
    /// A registration beyond [`MAX_SEGMENTS`].
    #[error("REGISTER_MEMFD_SHMID {shm_id}: more than {MAX_SEGMENTS} segments")]
    TooManySegments {
        /// The id it would register.
        shm_id: u32,
    },
    /// A reference without the memfd flag (a POSIX shm segment).
    #[error("SHM reference to block {block_id} names POSIX shm segment {shm_id}; only memfd pools are served")]
    PosixRef {
        /// The block id.
        block_id: u32,
        /// The segment id.
        shm_id: u32,
    },
    /// A reference to an id never registered on this connection.
    #[error("SHM reference to block {block_id} names shm id {shm_id}, not registered on this connection")]
    UnknownId {
        /// The block id.
        block_id: u32,
        /// The segment id.
        shm_id: u32,
    },
    /// The reference is out of bounds, empty, misaligned or too long.
    #[error(transparent)]
    Ref(#[from] ShmRefError),
    /// The bytes could not be read: the client shrank its pool.
    #[error("reading block {block_id} from pool {shm_id}: {source}")]
    Read {
        /// The block id.
        block_id: u32,
        /// The segment id.
        shm_id: u32,
        /// What `pread` said.
        source: PoolReadError,
    },
    /// More than [`MAX_OUTSTANDING_BLOCKS`] blocks imported and not
    /// released.
    #[error("more than {MAX_OUTSTANDING_BLOCKS} imported blocks outstanding")]
    TooManyBlocks,
}

/// What a connection imported so far (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShmStats {
    /// Segments registered now.
    pub segments: usize,
    /// SHM references imported.
    pub refs: u64,
    /// Bytes copied from them.
    pub bytes: u64,
}

/// One connection's imported memfd segments and outstanding blocks.
#[derive(Debug, Default)]
pub struct ShmImports {
    segments: BTreeMap<u32, UnsealedPool>,
    held: BTreeSet<u32>,
    refs: u64,
    bytes: u64,
}

impl ShmImports {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// REGISTER_MEMFD_SHMID: imports the single fd of `fds` as segment
    /// `shm_id`; returns its size. Every fd is closed on failure.
    pub fn register(&mut self, shm_id: u32, fds: Vec<OwnedFd>) -> Result<u64, ShmError> {
        if fds.len() != 1 {
            return Err(ShmError::FdCount {
                shm_id,
                got: fds.len(),
            });
        }
        if self.segments.contains_key(&shm_id) {
            return Err(ShmError::Duplicate { shm_id });
        }
        if self.segments.len() >= MAX_SEGMENTS {
            return Err(ShmError::TooManySegments { shm_id });
        }
        let Some(fd) = fds.into_iter().next() else {
            return Err(ShmError::FdCount { shm_id, got: 0 });
        };
        let pool = UnsealedPool::import(fd, MAX_SEGMENT_LEN)
            .map_err(|source| ShmError::Import { shm_id, source })?;
        let size = pool.len();
        self.segments.insert(shm_id, pool);
        Ok(size)
    }

    /// Segments registered now.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Blocks imported and not yet released.
    pub fn outstanding(&self) -> usize {
        self.held.len()
    }

    /// What was imported so far.
    pub fn stats(&self) -> ShmStats {
        ShmStats {
            segments: self.segments.len(),
            refs: self.refs,
            bytes: self.bytes,
        }
    }

    /// Validates `f` for a stream of `frame_size` bytes per frame and
    /// copies its bytes into `buf` (replacing its contents). The block
    /// counts as outstanding until [`ShmImports::release`].
    pub fn import(
        &mut self,
        f: &ShmRefFrame,
        frame_size: u32,
        buf: &mut Vec<u8>,
    ) -> Result<(), ShmError> {
        let ShmRef {
            block_id, shm_id, ..
        } = f.shm;
        if !f.memfd {
            return Err(ShmError::PosixRef { block_id, shm_id });
        }
        let pool = self
            .segments
            .get(&shm_id)
            .ok_or(ShmError::UnknownId { block_id, shm_id })?;
        let (offset, len) = validate(&f.shm, pool.len(), frame_size)?;
        if !self.held.contains(&block_id) && self.held.len() >= MAX_OUTSTANDING_BLOCKS {
            return Err(ShmError::TooManyBlocks);
        }
        buf.clear();
        buf.resize(len, 0);
        pool.read_at(offset, buf).map_err(|source| ShmError::Read {
            block_id,
            shm_id,
            source,
        })?;
        self.held.insert(block_id);
        self.refs += 1;
        self.bytes += len as u64;
        Ok(())
    }

    /// Forgets block `block_id`; the RELEASE frame to send for it.
    pub fn release(&mut self, block_id: u32) -> Frame {
        self.held.remove(&block_id);
        Frame::Release { block_id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_queue_batches_and_comes_due() {
        let mut q = ReleaseQueue::default();
        let mut out = Vec::new();
        assert_eq!(q.due_in(), None);
        q.push(Frame::Release { block_id: 1 }, &mut out).unwrap();
        assert!(out.is_empty(), "one RELEASE waits for company");
        let due = q.due_in().unwrap();
        assert!(due <= RELEASE_DELAY && !q.is_empty());
        for id in 2..RELEASE_BATCH as u32 {
            q.push(Frame::Release { block_id: id }, &mut out).unwrap();
        }
        assert!(out.is_empty());
        q.push(Frame::Release { block_id: 99 }, &mut out).unwrap();
        // The batch went out whole, in order.
        let mut want = Vec::new();
        for id in (1..RELEASE_BATCH as u32).chain([99]) {
            Frame::Release { block_id: id }
                .encode_into(&mut want)
                .unwrap();
        }
        assert_eq!(out, want);
        assert!(q.is_empty() && q.due_in().is_none());
        q.push(Frame::Release { block_id: 7 }, &mut out).unwrap();
        assert!(q.due_in().is_some_and(|d| d <= RELEASE_DELAY));
        let mut rest = Vec::new();
        q.flush(&mut rest);
        assert_eq!(rest, Frame::Release { block_id: 7 }.encode().unwrap());
    }
    use srb_linux::fdkind::FdKind;
    use srb_linux::memfd::create_unsealed_memfd;
    use srb_pulse::pstream::SeekMode;

    fn r(index: u32, length: u32) -> ShmRef {
        ShmRef {
            block_id: 7,
            shm_id: 1,
            index,
            length,
        }
    }

    #[test]
    fn validate_accepts_ranges_inside_the_segment() {
        assert_eq!(validate(&r(64, 8), 4096, 8), Ok((64, 8)));
        // Exactly at the end.
        assert_eq!(validate(&r(4088, 8), 4096, 8), Ok((4088, 8)));
        assert_eq!(validate(&r(0, 4096), 4096, 4), Ok((0, 4096)));
        // The index need not be frame-aligned (libpulse's blocks start at
        // 64 + 65536 k, whatever the frame size).
        assert_eq!(validate(&r(64, 6), 4096, 6), Ok((64, 6)));
        assert_eq!(
            validate(&r(0, MAX_REF_LEN), u64::from(MAX_REF_LEN), 1),
            Ok((0, MAX_REF_LEN as usize))
        );
    }

    #[test]
    fn validate_refuses_every_bad_reference_by_name() {
        // One byte past the end.
        assert_eq!(
            validate(&r(4089, 8), 4096, 1),
            Err(ShmRefError::OutOfBounds {
                block_id: 7,
                index: 4089,
                length: 8,
                segment: 4096
            })
        );
        // index + length overflows u32: must not wrap into range.
        let wrap = r(0xFFFF_FF00, 0x200);
        assert_eq!(wrap.index.wrapping_add(wrap.length), 0x100);
        assert!(matches!(
            validate(&wrap, 4096, 8),
            Err(ShmRefError::OutOfBounds { .. })
        ));
        assert!(matches!(
            validate(&r(u32::MAX, 8), u64::MAX, 8),
            Ok((0xFFFF_FFFF, 8))
        ));
        assert_eq!(
            validate(&r(0, 0), 4096, 8),
            Err(ShmRefError::Empty { block_id: 7 })
        );
        assert_eq!(
            validate(&r(0, 12), 4096, 8),
            Err(ShmRefError::Misaligned {
                block_id: 7,
                length: 12,
                frame: 8
            })
        );
        assert_eq!(validate(&r(0, 12), 4096, 0), Err(ShmRefError::NoFrameSize));
        assert_eq!(
            validate(&r(0, MAX_REF_LEN + 8), u64::MAX, 8),
            Err(ShmRefError::TooLarge {
                block_id: 7,
                length: MAX_REF_LEN + 8,
                max: MAX_REF_LEN
            })
        );
        // An empty segment holds nothing.
        assert!(matches!(
            validate(&r(0, 8), 0, 8),
            Err(ShmRefError::OutOfBounds { .. })
        ));
    }

    fn memfd_with(bytes: &[u8], len: u64) -> (OwnedFd, OwnedFd) {
        let fd = create_unsealed_memfd("pool", len).unwrap();
        rustix::io::pwrite(&fd, bytes, 0).unwrap();
        let ours = rustix::io::fcntl_dupfd_cloexec(&fd, 0).unwrap();
        (fd, ours)
    }

    fn frame(shm_id: u32, block_id: u32, index: u32, length: u32) -> ShmRefFrame {
        ShmRefFrame {
            channel: 0,
            offset: 0,
            seek: SeekMode::Relative,
            memfd: true,
            writable: false,
            shm: ShmRef {
                block_id,
                shm_id,
                index,
                length,
            },
        }
    }

    #[test]
    fn register_and_import() {
        let mut t = ShmImports::new();
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let (fd, _peer) = memfd_with(&data, 4096);
        assert_eq!(t.register(42, vec![fd]), Ok(4096));
        let mut buf = Vec::new();
        t.import(&frame(42, 3, 64, 16), 4, &mut buf).unwrap();
        assert_eq!(buf, data[64..80]);
        assert_eq!(t.outstanding(), 1);
        assert_eq!(t.release(3), Frame::Release { block_id: 3 });
        assert_eq!(t.outstanding(), 0);
        assert_eq!(
            t.stats(),
            ShmStats {
                segments: 1,
                refs: 1,
                bytes: 16
            }
        );
        assert_eq!(
            t.import(&frame(43, 4, 0, 16), 4, &mut buf),
            Err(ShmError::UnknownId {
                block_id: 4,
                shm_id: 43
            })
        );
        let mut posix = frame(42, 5, 0, 16);
        posix.memfd = false;
        assert_eq!(
            t.import(&posix, 4, &mut buf),
            Err(ShmError::PosixRef {
                block_id: 5,
                shm_id: 42
            })
        );
        assert!(matches!(
            t.import(&frame(42, 6, 4090, 16), 4, &mut buf),
            Err(ShmError::Ref(ShmRefError::OutOfBounds { .. }))
        ));
    }

    #[test]
    fn a_pipe_a_socket_or_a_file_is_refused_by_kind() {
        let mut t = ShmImports::new();
        let (rd, _wr) = rustix::pipe::pipe().unwrap();
        assert_eq!(
            t.register(1, vec![rd]),
            Err(ShmError::Import {
                shm_id: 1,
                source: PoolImportError::NotMemfd { kind: FdKind::Pipe }
            })
        );
        let e = t.register(1, vec![rustix::pipe::pipe().unwrap().0]);
        assert!(e.unwrap_err().to_string().contains("got a pipe"));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(matches!(
            t.register(2, vec![a.into()]),
            Err(ShmError::Import {
                source: PoolImportError::NotMemfd {
                    kind: FdKind::Socket
                },
                ..
            })
        ));
        let exe = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(matches!(
            t.register(3, vec![exe.into()]),
            Err(ShmError::Import {
                source: PoolImportError::NotMemfd {
                    kind: FdKind::RegularFile
                },
                ..
            })
        ));
        // Size checks: empty and not a multiple of 8.
        let empty = rustix::fs::memfd_create("e", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(matches!(
            t.register(4, vec![empty]),
            Err(ShmError::Import {
                source: PoolImportError::BadSize { size: 0, .. },
                ..
            })
        ));
        let (odd, _) = memfd_with(&[], 12);
        assert!(matches!(
            t.register(5, vec![odd]),
            Err(ShmError::Import {
                source: PoolImportError::BadSize { size: 12, .. },
                ..
            })
        ));
        assert_eq!(t.segment_count(), 0);
    }

    #[test]
    fn fd_count_duplicates_and_the_17th_segment_are_refused() {
        let mut t = ShmImports::new();
        assert_eq!(
            t.register(1, vec![]),
            Err(ShmError::FdCount { shm_id: 1, got: 0 })
        );
        let two = vec![memfd_with(&[], 64).0, memfd_with(&[], 64).0];
        assert_eq!(
            t.register(1, two),
            Err(ShmError::FdCount { shm_id: 1, got: 2 })
        );
        for id in 0..MAX_SEGMENTS as u32 {
            t.register(id, vec![memfd_with(&[], 64).0]).unwrap();
        }
        assert_eq!(
            t.register(3, vec![memfd_with(&[], 64).0]),
            Err(ShmError::Duplicate { shm_id: 3 })
        );
        assert_eq!(
            t.register(100, vec![memfd_with(&[], 64).0]),
            Err(ShmError::TooManySegments { shm_id: 100 })
        );
        assert_eq!(t.segment_count(), MAX_SEGMENTS);
    }

    #[test]
    fn a_truncated_pool_is_a_read_error_not_sigbus() {
        let mut t = ShmImports::new();
        let (fd, peer) = memfd_with(&[9; 8192], 8192);
        t.register(1, vec![fd]).unwrap();
        rustix::fs::ftruncate(&peer, 4096).unwrap();
        let mut buf = Vec::new();
        assert!(matches!(
            t.import(&frame(1, 2, 6000, 64), 4, &mut buf),
            Err(ShmError::Read {
                block_id: 2,
                shm_id: 1,
                source: PoolReadError::Truncated { got: 0, .. }
            })
        ));
        assert_eq!(t.outstanding(), 0);
        // What is still there reads fine.
        t.import(&frame(1, 3, 0, 64), 4, &mut buf).unwrap();
        assert_eq!(buf, [9; 64]);
    }

    #[test]
    fn the_outstanding_block_cap_is_enforced() {
        let mut t = ShmImports::new();
        let (fd, _peer) = memfd_with(&[1; 64], 64);
        t.register(1, vec![fd]).unwrap();
        let mut buf = Vec::new();
        for b in 0..MAX_OUTSTANDING_BLOCKS as u32 {
            t.import(&frame(1, b, 0, 8), 4, &mut buf).unwrap();
        }
        assert_eq!(
            t.import(&frame(1, 999, 0, 8), 4, &mut buf),
            Err(ShmError::TooManyBlocks)
        );
        t.release(0);
        t.import(&frame(1, 999, 0, 8), 4, &mut buf).unwrap();
    }
}
