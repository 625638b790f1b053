//! [`SharedMapping`]: one shared, writable mapping of a memfd, unmapped on last drop.
//!
//! A mapping is shared with a peer that may write any byte of it at any
//! time. This type therefore never hands out references or slices into the
//! mapped bytes: it gives out the base pointer and [`srb_core::Block`]s
//! (raw pointer + length) for `srb-core`, and offers only atomic or volatile
//! accessors itself.
//!
//! Ownership: a mapping is kept in an [`Arc`]; everything built on it (a
//! channel, a futex word) holds a clone, so the memory stays mapped for as
//! long as any of them lives, and `munmap` runs exactly once, on the last
//! drop. The file descriptor is not needed after mapping and may be closed.
//!
//! SIGBUS: only map memfds that are sealed against shrinking (see
//! [`crate::memfd`]); a peer that truncates an unsealed file under a
//! mapping makes every later access a SIGBUS. Unsealed peer memory is read
//! with [`crate::pool::UnsealedPool`] instead.

use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use srb_core::Block;

/// Why a memfd could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// A mapping of zero bytes was asked for.
    #[error("cannot map zero bytes")]
    Empty,
    /// The length does not fit the address space.
    #[error("cannot map {len} bytes: too large for this address space")]
    TooLarge {
        /// The length asked for.
        len: u64,
    },
    /// `mmap` failed.
    #[error("mmap of {len} bytes failed: {errno}")]
    Mmap {
        /// The length asked for.
        len: usize,
        /// What the kernel said.
        errno: Errno,
    },
}

/// A requested range does not lie inside the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range {offset}+{len} is outside a mapping of {mapping_len} bytes or misaligned")]
pub struct RangeError {
    /// Start of the range.
    pub offset: usize,
    /// Length of the range.
    pub len: usize,
    /// Length of the mapping.
    pub mapping_len: usize,
}

/// A `MAP_SHARED`, read-write mapping of (the start of) a file.
#[derive(Debug)]
pub struct SharedMapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; this type never dereferences
// it, and every access through the pointers it hands out is atomic, volatile
// or made by srb-core under its own protocol, from whichever thread.
unsafe impl Send for SharedMapping {}
// SAFETY: as above; `&SharedMapping` only exposes the address and length.
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// Maps the first `len` bytes of `fd` shared and writable.
    ///
    /// The caller has checked that the file is at least `len` bytes long and
    /// cannot shrink (sealed), or accepts SIGBUS otherwise.
    pub(crate) fn map(fd: std::os::fd::BorrowedFd<'_>, len: u64) -> Result<Arc<Self>, MapError> {
        if len == 0 {
            return Err(MapError::Empty);
        }
        let len = usize::try_from(len).map_err(|_| MapError::TooLarge { len })?;
        // SAFETY: a fresh mapping at an address the kernel picks (null hint),
        // so no existing memory is replaced. The result is only used through
        // raw pointers.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(|errno| MapError::Mmap { len, errno })?;
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(MapError::Mmap {
            len,
            errno: Errno::FAULT,
        })?;
        Ok(Arc::new(Self { base, len }))
    }

    /// The first byte of the mapping (page-aligned).
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never true: empty mappings are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<(), RangeError> {
        let err = RangeError {
            offset,
            len,
            mapping_len: self.len,
        };
        match offset.checked_add(len) {
            Some(end) if end <= self.len && offset.is_multiple_of(align) => Ok(()),
            _ => Err(err),
        }
    }

    /// Describes `len` bytes at `offset` as an [`srb_core::Block`].
    ///
    /// # Safety
    ///
    /// The `Block` carries no lifetime. The caller keeps this mapping (an
    /// `Arc` clone) alive for as long as the block or anything built from it
    /// is used, and forms no Rust reference into the range.
    pub unsafe fn block(&self, offset: usize, len: usize) -> Result<Block, RangeError> {
        self.check(offset, len, 1)?;
        // The base is page-aligned, so the offset decides the alignment
        // srb-core checks; the range is inside the mapping (checked).
        let base = self.base.as_ptr().wrapping_add(offset);
        let base = NonNull::new(base).ok_or(RangeError {
            offset,
            len,
            mapping_len: self.len,
        })?;
        // SAFETY: the range is mapped read-write for as long as the caller
        // keeps `self` alive (forwarded contract), and this crate forms no
        // references into it.
        Ok(unsafe { Block::new(base, len) })
    }

    /// A pointer to the 4-byte-aligned atomic word at `offset`.
    ///
    /// The word stays valid while this mapping lives. The peer may write it
    /// at any time; use it only for atomic operations.
    pub fn atomic_u32(&self, offset: usize) -> Result<*const AtomicU32, RangeError> {
        self.check(offset, 4, 4)?;
        Ok(self.base.as_ptr().wrapping_add(offset).cast::<AtomicU32>())
    }

    /// Copies `dst.len()` bytes at `offset` out of the mapping with volatile
    /// reads (the peer may be writing them; the result is whatever was there).
    pub fn read_volatile(&self, offset: usize, dst: &mut [u8]) -> Result<(), RangeError> {
        self.check(offset, dst.len(), 1)?;
        let src = self.base.as_ptr().wrapping_add(offset);
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: `offset + i` is inside the live mapping (checked above);
            // a volatile byte read of shared memory forms no reference.
            *b = unsafe { src.add(i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `src` into the mapping at `offset` with volatile writes.
    pub fn write_volatile(&self, offset: usize, src: &[u8]) -> Result<(), RangeError> {
        self.check(offset, src.len(), 1)?;
        let dst = self.base.as_ptr().wrapping_add(offset);
        for (i, b) in src.iter().enumerate() {
            // SAFETY: `offset + i` is inside the live, writable mapping
            // (checked above); a volatile byte write forms no reference.
            unsafe { dst.add(i).write_volatile(*b) };
        }
        Ok(())
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is the mapping `map` created; this is the
        // last owner (Arc), and every Block/pointer handed out is documented
        // to be used only while an Arc clone lives.
        if let Err(errno) = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) } {
            tracing::error!(%errno, len = self.len, "munmap failed");
        }
    }
}
