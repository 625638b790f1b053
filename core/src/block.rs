//! [`Block`]: the shared memory a channel lives in, as a raw pointer and a length.
//!
//! A block is memory the peer can write at any moment. References into it
//! are formed only to atomics (see the crate docs for the exact rule);
//! payload bytes are never referenced, only copied with
//! [`core::ptr::copy_nonoverlapping`] between the block and the caller's
//! private buffers, after the Acquire load that hands them over (reader) or
//! before the Release store that publishes them (writer).

use core::ptr::NonNull;

/// A region of shared memory: base address and length in bytes.
///
/// `Block` is `Copy` and carries no lifetime: it is a description, not an
/// owner. Whoever maps the memory (a memfd mapping, a RAM window on a board, a
/// static buffer) keeps it alive for as long as any ring, semaphore or channel
/// built from the block exists.
///
/// # Why no lifetime
///
/// Ring ends are not tied to the mapping's lifetime in their types (as
/// rtrb's or bbqueue's are to their buffer), deliberately:
///
/// - The owners this crate serves cannot express such a borrow. srb-linux
///   keeps the mapping and the channel built on it in *one* struct
///   (`Channel` holds `Arc<SharedMapping>` next to the ring ends, dropping
///   the ends first by field order); a borrow of a sibling field is a
///   self-referential struct, which safe Rust cannot build. A board's block
///   is a `static` window, where a lifetime would be `'static` anyway.
/// - A lifetime would not make the block's contents safe: the other owner
///   of the memory is another process (or core), which Rust's lifetimes do
///   not see. What keeps access sound is the contract of [`Block::new`]
///   (mapped for as long as anything built from it is used; no Rust
///   reference into the range) together with the `unsafe` layout
///   constructors (`create`, `attach`, `init_server`, `adopt_client`),
///   whose callers promise one end per role. Every way to reach the memory
///   passes through one of those `unsafe` calls, so the obligation is
///   stated, and discharged, there.
///
/// `Block` is `Send + Sync` because it is only an address and a length;
/// copying it between threads reads nothing. The ends built from it are
/// `Send` (one role moves with them) and not `Sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Block {
    base: NonNull<u8>,
    len: usize,
}

impl Block {
    /// Describes `len` bytes of shared memory starting at `base`.
    ///
    /// # Safety
    ///
    /// For as long as this `Block` or anything built from it (ring ends,
    /// semaphores, channels) is used:
    /// - `base..base + len` is valid for reads and writes and stays mapped;
    /// - no code in this process holds a Rust reference (`&`, `&mut`, slice)
    ///   into that range: it is accessed only through this crate or through
    ///   raw pointers with atomic or volatile operations.
    ///
    /// The *peer* may write anything to the range at any time; that is the
    /// threat model this crate is built for, not a contract violation.
    pub const unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Self { base, len }
    }

    /// The base address.
    pub const fn base(self) -> NonNull<u8> {
        self.base
    }

    /// The length in bytes.
    pub const fn len(self) -> usize {
        self.len
    }

    /// Whether the block has no bytes.
    pub const fn is_empty(self) -> bool {
        self.len == 0
    }

    /// Whether `offset` is a multiple of `align` *as an address*.
    pub(crate) fn is_aligned_at(self, offset: usize, align: usize) -> bool {
        (self.base.as_ptr() as usize)
            .wrapping_add(offset)
            .is_multiple_of(align)
    }

    /// A raw pointer `offset` bytes into the block, typed as `T`.
    ///
    /// The caller has checked that `offset + size_of::<T>() <= len` and the
    /// alignment; this only does the arithmetic.
    pub(crate) fn at<T>(self, offset: usize) -> *mut T {
        debug_assert!(offset <= self.len);
        self.base.as_ptr().wrapping_add(offset).cast()
    }
}

// SAFETY: a `Block` is an address and a length; sending it to another thread
// does not access the memory. The `Block::new` contract covers all access.
unsafe impl Send for Block {}
// SAFETY: as above: `&Block` exposes only the address and the length.
unsafe impl Sync for Block {}

/// The data area of one ring: where payload bytes are copied to and from.
///
/// Payload is plain shared memory: it is only ever copied, with
/// [`core::ptr::copy_nonoverlapping`] between the ring and the caller's
/// private buffer, never referenced.
///
/// Under `cfg(loom)` every copy is also reported to loom, byte by byte, as
/// an access to a [`loom::cell::UnsafeCell`] that stands for that byte
/// ([`PayloadTrack`], kept in the block's header under loom). loom then
/// checks that each read of a byte happens after the write it reads, and
/// each write after the reads of the previous contents: a publication with
/// too weak an ordering is a causality violation, although the bytes
/// themselves would often look right.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingData {
    base: *mut u8,
    #[cfg(loom)]
    track: *const PayloadTrack,
}

/// How many bytes of a ring loom tracks (the first `TRACKED`; models use
/// smaller capacities, so every byte of theirs is tracked).
#[cfg(loom)]
pub(crate) const TRACKED: usize = 8;

/// One loom cell per tracked byte of a ring (see [`RingData`]).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct PayloadTrack([loom::cell::UnsafeCell<()>; TRACKED]);

#[cfg(loom)]
impl PayloadTrack {
    pub(crate) fn new() -> Self {
        Self(core::array::from_fn(|_| loom::cell::UnsafeCell::new(())))
    }
}

impl RingData {
    /// # Safety
    /// `base` is the first byte of a ring's data area inside a live
    /// [`Block`], and (under loom) `track` points to that ring's cells in
    /// the same block, initialised before the block was shared.
    pub(crate) unsafe fn new(base: *mut u8, #[cfg(loom)] track: *const PayloadTrack) -> Self {
        Self {
            base,
            #[cfg(loom)]
            track,
        }
    }

    /// Tells loom about an access to bytes `idx..idx + len` of the ring.
    #[cfg(loom)]
    fn track(&self, idx: usize, len: usize, write: bool) {
        // SAFETY: `new`'s contract: the cells live in the block's header for
        // as long as the block does, and are only used through `with`.
        let cells = unsafe { &(*self.track).0 };
        for cell in cells.iter().skip(idx).take(len) {
            if write {
                cell.with_mut(|_| ());
            } else {
                cell.with(|_| ());
            }
        }
    }

    /// Copies `src` into the ring at byte `idx`.
    ///
    /// # Safety
    /// `idx + src.len()` is at most the ring's capacity and, by the ring
    /// protocol, those bytes belong to the caller (the writer) until it
    /// publishes them.
    #[inline]
    pub(crate) unsafe fn write(&self, idx: usize, src: &[u8]) {
        #[cfg(loom)]
        self.track(idx, src.len(), true);
        // SAFETY: the caller guarantees the range is inside the data area,
        // valid for writes; `src` is private memory, so no overlap.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(idx), src.len()) }
    }

    /// Copies bytes `idx..idx + dst.len()` of the ring into `dst`.
    ///
    /// # Safety
    /// `idx + dst.len()` is at most the ring's capacity and, by the ring
    /// protocol, those bytes were handed to the caller (the reader) by an
    /// Acquire load.
    #[inline]
    pub(crate) unsafe fn read(&self, idx: usize, dst: &mut [u8]) {
        #[cfg(loom)]
        self.track(idx, dst.len(), false);
        // SAFETY: the caller guarantees the range is inside the data area,
        // valid for reads; `dst` is private memory, so no overlap.
        unsafe { core::ptr::copy_nonoverlapping(self.base.add(idx), dst.as_mut_ptr(), dst.len()) }
    }
}
