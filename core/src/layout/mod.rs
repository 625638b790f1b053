//! Block layouts: where the header, the two rings and the two semaphores live.
//!
//! - [`pa`]: PulseAudio's `struct srbheader`, byte for byte. The server
//!   creates it ([`pa::init_server`]); the client adopts it ([`pa::adopt_client`]).
//! - [`srb`]: our own versioned layout for peers we control. The creator
//!   initialises it ([`srb::create`]); the other side attaches ([`srb::attach`]).
//!
//! Both produce [`Ends`]: this side's producer, consumer, the semaphore it
//! waits on and the one it posts, with the geometry validated once and kept
//! privately. Nothing a layout reads from the block is read again later.

pub mod pa;
pub mod srb;

use core::fmt;

use crate::fdsem::{FdsemPoster, FdsemWaiter};

/// One side's view of a channel block, ready for [`crate::SrbChannel::new`].
#[derive(Debug)]
pub struct Ends<P, C> {
    /// The ring this side writes.
    pub producer: P,
    /// The ring this side reads.
    pub consumer: C,
    /// The semaphore this side waits on (posted by the peer).
    pub waiter: FdsemWaiter,
    /// The semaphore the peer waits on (posted by this side).
    pub poster: FdsemPoster,
}

/// Why a block could not be initialised or attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AttachError {
    /// The block's base address is not aligned for the header's atomics.
    Misaligned {
        /// The alignment required, in bytes.
        required: usize,
    },
    /// The block is too small for the header and two non-empty rings.
    BlockTooSmall {
        /// The block's length.
        len: usize,
        /// The smallest length that works.
        needed: usize,
    },
    /// The header does not start with the layout's magic number.
    BadMagic {
        /// What the block holds instead.
        found: u32,
    },
    /// The header's version is not one this crate speaks.
    BadVersion {
        /// What the block holds.
        found: u32,
    },
    /// The header's size field does not match the version.
    BadHeaderSize {
        /// What the block holds.
        found: u32,
    },
    /// The ring capacity is zero, negative, too large or (for `srb`) not a
    /// power of two.
    BadCapacity {
        /// What the block holds (or what was asked for).
        found: i64,
    },
    /// A ring offset is misaligned, overlaps the header, runs past the end of
    /// the block, or the two rings overlap.
    BadRingOffset {
        /// The offending offset.
        offset: i64,
    },
    /// A ring's positions are already further apart than its capacity.
    BadPositions {
        /// The producer's position.
        write: u32,
        /// The consumer's position.
        read: u32,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AttachError::Misaligned { required } => {
                write!(f, "block base is not {required}-byte aligned")
            }
            AttachError::BlockTooSmall { len, needed } => {
                write!(f, "block of {len} bytes is too small (need {needed})")
            }
            AttachError::BadMagic { found } => write!(f, "bad magic {found:#010x}"),
            AttachError::BadVersion { found } => write!(f, "unsupported version {found}"),
            AttachError::BadHeaderSize { found } => write!(f, "bad header size {found}"),
            AttachError::BadCapacity { found } => write!(f, "bad ring capacity {found}"),
            AttachError::BadRingOffset { offset } => write!(f, "bad ring offset {offset}"),
            AttachError::BadPositions { write, read } => {
                write!(f, "ring positions {read}..{write} exceed the capacity")
            }
        }
    }
}

impl core::error::Error for AttachError {}

/// Checks that a ring of `capacity` bytes at `offset` lies in the block after
/// a header of `header` bytes and is `align`-aligned. 64-bit arithmetic.
fn check_ring(
    offset: i64,
    capacity: i64,
    header: usize,
    len: usize,
    align: i64,
) -> Result<(), AttachError> {
    let bad = AttachError::BadRingOffset { offset };
    if offset < header as i64 || offset % align != 0 {
        return Err(bad);
    }
    match offset.checked_add(capacity) {
        Some(end) if end <= len as i64 => Ok(()),
        _ => Err(bad),
    }
}
