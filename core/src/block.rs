//! [`Block`]: the shared memory a channel lives in, as a raw pointer and a length.
//!
//! A block is memory the peer can write at any moment. This crate never forms
//! a `&T`, `&mut T` or slice over it: control words are reached through raw
//! pointers and touched only with atomic operations, and payload bytes are
//! copied with [`core::ptr::copy_nonoverlapping`] between the block and the
//! caller's private buffers, after the Acquire load that hands them over
//! (reader) or before the Release store that publishes them (writer).

use core::ptr::NonNull;

/// A region of shared memory: base address and length in bytes.
///
/// `Block` is `Copy` and carries no lifetime: it is a description, not an
/// owner. Whoever maps the memory (a memfd mapping, a RAM window on a board, a
/// static buffer) keeps it alive for as long as any ring, semaphore or channel
/// built from the block exists.
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

/// Copies `src` into shared memory at `dst`.
///
/// # Safety
/// `dst..dst + src.len()` lies inside a [`Block`] and, by the ring protocol,
/// belongs to the caller (the writer) until it is published.
#[inline]
pub(crate) unsafe fn copy_to_shared(dst: *mut u8, src: &[u8]) {
    // SAFETY: the caller guarantees `dst` is valid for `src.len()` bytes of
    // writes; `src` is private memory, so the ranges cannot overlap.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) }
}

/// Copies shared memory at `src` into `dst`.
///
/// # Safety
/// `src..src + dst.len()` lies inside a [`Block`] and, by the ring protocol,
/// was handed to the caller (the reader) by an Acquire load.
#[inline]
pub(crate) unsafe fn copy_from_shared(src: *const u8, dst: &mut [u8]) {
    // SAFETY: the caller guarantees `src` is valid for `dst.len()` bytes of
    // reads; `dst` is private memory, so the ranges cannot overlap.
    unsafe { core::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) }
}
