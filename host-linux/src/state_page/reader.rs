//! [`StatePage`]: a client's read-only view of a state page.
//!
//! [`StatePage::open`] checks the fd before mapping anything (a memfd on
//! tmpfs, sealed so it can neither shrink nor grow nor be written, at least
//! [`PAGE_LEN`] bytes), maps it `PROT_READ`, and checks the header word by
//! word. [`StatePage::snapshot`] copies the payload under the seqlock into
//! a private array and validates every value ([`SnapshotError`]); nothing
//! else ever reads the mapping, and nothing ever writes it (it is
//! read-only).

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::SealFlags;
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use srb_core::seqlock::SeqlockReader;

use super::layout::{
    self, header, stream, SnapshotError, HEADER_FIELDS, PAGE_LEN, PAYLOAD_WORDS, SEQ_OFFSET,
    SINKS_AT, STREAM_WORDS,
};
use super::snapshot::{interpolate, Snapshot, StreamState, MAX_SINKS};
use crate::memfd::{check_shmem, ImportError};

/// Seals a page must carry before a client maps it: no shrinking (a
/// truncated page would SIGBUS us) and no growing.
pub const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK.union(SealFlags::GROW);

/// Either write seal keeps other clients from scribbling on the page.
const WRITE_SEALS: SealFlags = SealFlags::WRITE.union(SealFlags::FUTURE_WRITE);

/// Why a page fd was refused. The fd is closed in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Inspecting the fd failed.
    #[error("inspecting the state page fd: {0}")]
    Inspect(Errno),
    /// It is not a memfd on shmem (see [`check_shmem`]).
    #[error("the state page: {0}")]
    Kind(ImportError),
    /// It lacks the seals against resizing, or any write seal.
    #[error("the state page is not sealed: seals {seals:?}")]
    NotSealed {
        /// The seals it has.
        seals: SealFlags,
    },
    /// It is smaller than a page.
    #[error("the state page has {size} bytes, at least {PAGE_LEN} needed")]
    TooSmall {
        /// Its size.
        size: u64,
    },
    /// `mmap` failed.
    #[error("mapping the state page read-only: {0}")]
    Map(Errno),
    /// A header word is not what this crate's layout says.
    #[error("state page {field} is {found:#x}, expected {expected:#x}")]
    BadHeader {
        /// Which word.
        field: &'static str,
        /// What it holds.
        found: u32,
        /// What this crate writes there.
        expected: u32,
    },
}

/// A `PROT_READ`, `MAP_SHARED` mapping of a page, unmapped on drop. Never
/// dereferenced: only atomic `u32` loads read it.
#[derive(Debug)]
struct ReadOnlyMap {
    base: NonNull<u8>,
}

// SAFETY: an address of read-only shared memory; every access through it
// is a Relaxed atomic load, from any thread.
unsafe impl Send for ReadOnlyMap {}
// SAFETY: as above.
unsafe impl Sync for ReadOnlyMap {}

impl ReadOnlyMap {
    fn new(fd: &OwnedFd) -> Result<Self, OpenError> {
        // SAFETY: a fresh mapping where the kernel chooses (null hint);
        // nothing existing is replaced. It is read only through atomics.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                PAGE_LEN,
                ProtFlags::READ,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(OpenError::Map)?;
        let base = NonNull::new(p.cast::<u8>()).ok_or(OpenError::Map(Errno::FAULT))?;
        Ok(Self { base })
    }

    /// Header word `i`, loaded Relaxed (legal on read-only memory).
    fn header_word(&self, i: usize) -> u32 {
        debug_assert!(i < layout::HEADER_WORDS);
        // SAFETY: word `i` of the header is inside the live, page-aligned
        // mapping; a shared reference to an atomic allows the server's
        // concurrent writes, and only a Relaxed load is made.
        unsafe { &*self.base.as_ptr().cast::<AtomicU32>().add(i) }.load(Ordering::Relaxed)
    }
}

impl Drop for ReadOnlyMap {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, of PAGE_LEN bytes; the reader
        // built on it is dropped before (field order in `StatePage`).
        if let Err(errno) = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), PAGE_LEN) } {
            tracing::error!(%errno, "munmap of the state page failed");
        }
    }
}

/// A sink's audio clock, read alone ([`StatePage::sink_clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkClock {
    /// The sink's index.
    pub index: u32,
    /// Its state.
    pub state: StreamState,
    /// Frames per second.
    pub rate: u32,
    /// Frames played.
    pub position: u64,
    /// `CLOCK_MONOTONIC` ns when `position` was taken.
    pub clock_ns: u64,
}

impl SinkClock {
    /// The position interpolated to `now_ns` (see
    /// [`super::StreamStats::position_at`]).
    pub fn position_at(&self, now_ns: u64) -> u64 {
        interpolate(self.position, self.clock_ns, self.rate, now_ns)
    }
}

/// A client's read-only view of a state page.
#[derive(Debug)]
pub struct StatePage {
    lock: SeqlockReader,
    /// Keeps the memory mapped for `lock`; dropped after it.
    _map: ReadOnlyMap,
}

impl StatePage {
    /// Checks `fd` (see the module docs), maps it read-only and checks the
    /// header. The fd is closed when this returns: the mapping is enough.
    pub fn open(fd: OwnedFd) -> Result<Self, OpenError> {
        check_shmem(fd.as_fd()).map_err(OpenError::Kind)?;
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(OpenError::Inspect)?;
        if !seals.contains(REQUIRED_SEALS) || !seals.intersects(WRITE_SEALS) {
            return Err(OpenError::NotSealed { seals });
        }
        // After the seals: the size can no longer change.
        let size =
            u64::try_from(rustix::fs::fstat(&fd).map_err(OpenError::Inspect)?.st_size).unwrap_or(0);
        if size < PAGE_LEN as u64 {
            return Err(OpenError::TooSmall { size });
        }
        let map = ReadOnlyMap::new(&fd)?;
        for (i, (&expected, field)) in header().iter().zip(HEADER_FIELDS).enumerate() {
            let found = map.header_word(i);
            if found != expected {
                return Err(OpenError::BadHeader {
                    field,
                    found,
                    expected,
                });
            }
        }
        let base = NonNull::new(map.base.as_ptr().wrapping_add(SEQ_OFFSET))
            .ok_or(OpenError::Map(Errno::FAULT))?;
        // SAFETY: the region lies inside the mapping (a const assertion in
        // `layout`), readable, and `_map` keeps it mapped as long as the
        // reader; it is accessed only through the reader's atomic loads.
        let lock = unsafe { SeqlockReader::new(base, PAYLOAD_WORDS) }
            .map_err(|_| OpenError::Map(Errno::FAULT))?;
        Ok(Self { lock, _map: map })
    }

    /// The same page, with at most `tries` seqlock attempts per read
    /// (default [`srb_core::seqlock::DEFAULT_TRIES`]).
    pub fn with_tries(self, tries: u32) -> Self {
        Self {
            lock: self.lock.with_tries(tries),
            ..self
        }
    }

    /// A validated private copy of the whole page.
    pub fn snapshot(&self) -> Result<Snapshot, SnapshotError> {
        let mut w = [0u32; PAYLOAD_WORDS];
        let seq = self.lock.read(&mut w)?;
        layout::decode(&w, seq)
    }

    /// The clock of the sink in `slot` alone (its first
    /// [`stream::CLOCK_WORDS`] words, one seqlock read): the fast path
    /// for interpolating the audio clock. The checksum covers the whole
    /// page and is not checked here; the state is.
    pub fn sink_clock(&self, slot: usize) -> Result<SinkClock, SnapshotError> {
        if slot >= MAX_SINKS {
            return Err(SnapshotError::NoSuchSink { slot });
        }
        let mut w = [0u32; stream::CLOCK_WORDS];
        self.lock.read_at(SINKS_AT + slot * STREAM_WORDS, &mut w)?;
        let (state, rate, position, clock_ns, index) = layout::decode_clock(&w, slot)?;
        Ok(SinkClock {
            index,
            state,
            rate,
            position,
            clock_ns,
        })
    }
}
