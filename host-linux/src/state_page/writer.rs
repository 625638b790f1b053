//! [`StatePageWriter`]: srbd's side of the state page. Creates the sealed
//! memfd, maps it once read-write, and publishes [`Snapshot`]s under the
//! seqlock.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rustix::fs::SealFlags;
use rustix::io::Errno;
use srb_core::seqlock::{RegionError, SeqlockWriter};

use super::layout::{self, header, PAGE_LEN, PAYLOAD_WORDS, SEQ_OFFSET};
use super::snapshot::Snapshot;
use crate::mapping::{MapError, SharedMapping};
use crate::memfd;

/// The seals a page carries before its fd leaves srbd: it can neither
/// shrink (no SIGBUS in a reader) nor grow, no one can map it writable or
/// `write()` it again (`F_SEAL_FUTURE_WRITE`; srbd's own mapping, made
/// before, stays writable), and no seal can be removed or added.
pub const PAGE_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::FUTURE_WRITE)
    .union(SealFlags::SEAL);

/// Why a state page could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// Creating or sizing the memfd failed.
    #[error("state page memfd: {0}")]
    Memfd(#[from] memfd::CreateError),
    /// Mapping it failed.
    #[error("mapping the state page: {0}")]
    Map(#[from] MapError),
    /// The mapping cannot hold the seqlock (never happens with a
    /// page-aligned mapping).
    #[error("state page seqlock: {0}")]
    Region(RegionError),
    /// Adding [`PAGE_SEALS`] failed.
    #[error("sealing the state page: {0}")]
    Seal(Errno),
}

/// The writer of one state page (see the [module docs](super)).
///
/// [`publish`](Self::publish) neither allocates nor blocks nor makes a
/// system call: it is meant for srbd's real-time mixer thread.
#[derive(Debug)]
pub struct StatePageWriter {
    lock: SeqlockWriter,
    /// The encoding buffer, kept here so `publish` uses no stack megaframe
    /// and no heap.
    words: Box<[u32; PAYLOAD_WORDS]>,
    fd: OwnedFd,
    /// Keeps the memory mapped for `lock`; dropped after it (field order).
    _map: Arc<SharedMapping>,
}

impl StatePageWriter {
    /// Creates a page: memfd `name` (shown in `/proc/PID/maps`), sized
    /// [`PAGE_LEN`], mapped read-write, header written, an empty snapshot
    /// published, then sealed with [`PAGE_SEALS`].
    pub fn create(name: &str) -> Result<Self, CreateError> {
        let fd = memfd::create_unsealed_memfd(name, PAGE_LEN as u64)?;
        let map = SharedMapping::map(fd.as_fd(), PAGE_LEN as u64)?;
        let words = map.base().as_ptr().cast::<AtomicU32>();
        for (i, w) in header().iter().enumerate() {
            // SAFETY: word `i` of the header lies inside the live,
            // page-aligned mapping (HEADER_WORDS * 4 < PAGE_LEN); a
            // reference to an atomic permits the sharing that follows.
            // Relaxed: nobody else has the fd yet; it leaves this process
            // only by a later system call, after these stores.
            unsafe { &*words.add(i) }.store(*w, Ordering::Relaxed);
        }
        let base = map.base().as_ptr().wrapping_add(SEQ_OFFSET);
        let base = NonNull::new(base).ok_or(CreateError::Region(RegionError::Empty))?;
        // SAFETY: the region (sequence + payload) lies inside the mapping
        // (a const assertion in `layout`), which `_map` keeps alive as long
        // as the writer; nobody else can reach it yet; this is its only
        // writer.
        let lock =
            unsafe { SeqlockWriter::init(base, PAYLOAD_WORDS) }.map_err(CreateError::Region)?;
        let mut w = Self {
            lock,
            words: Box::new([0; PAYLOAD_WORDS]),
            fd,
            _map: map,
        };
        w.publish(&Snapshot::new());
        rustix::fs::fcntl_add_seals(&w.fd, PAGE_SEALS).map_err(CreateError::Seal)?;
        Ok(w)
    }

    /// The page's fd, to send to clients (read-only for them by its seals).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A duplicate of the page's fd (close-on-exec), for a thread that
    /// serves clients while the writer lives on another (srbd's control
    /// loop and its mixer).
    pub fn dup_fd(&self) -> Result<OwnedFd, Errno> {
        rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
    }

    /// Publishes `s` (its `sequence` is ignored): encodes it with its
    /// checksum and stores it under the seqlock. Never blocks, never
    /// allocates; readers never make it wait.
    pub fn publish(&mut self, s: &Snapshot) {
        layout::encode(s, &mut self.words);
        // The range is the whole payload, which the region holds.
        let r = self.lock.write(&self.words[..]);
        debug_assert!(r.is_ok(), "the payload fits the region");
    }

    /// The sequence of the last publication (even; grows by 2 each time).
    pub fn sequence(&self) -> u32 {
        self.lock.sequence()
    }
}

impl AsFd for StatePageWriter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
