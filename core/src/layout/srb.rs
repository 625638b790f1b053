//! The `srb` layout: our own versioned header for peers we control.
//!
//! ```text
//! line (128 B)  contents                                      written by
//!   0  @0       magic, version, header_size, capacity,        creator, before sharing
//!               to_creator_offset, to_attacher_offset
//!   1  @128     to_creator.write_pos                          attacher (producer)
//!   2  @256     to_creator.read_pos                           creator  (consumer)
//!   3  @384     to_attacher.write_pos                         creator  (producer)
//!   4  @512     to_attacher.read_pos                          attacher (consumer)
//!   5  @640     creator_sem  {waiting, signalled, in_pipe}    both (the creator waits on it)
//!      @652     creator_wants_space                           creator
//!   6  @768     attacher_sem {waiting, signalled, in_pipe}    both (the attacher waits on it)
//!      @780     attacher_wants_space                          attacher
//!      @896     ring data: to_creator, then to_attacher (each 128-byte aligned)
//! ```
//!
//! All words are little-endian `u32`/`i32` atomics. Every word one side
//! writes in the fast path sits alone on its line: the producer and consumer
//! of a ring never write the same line. Positions are free-running over a
//! power-of-two capacity (see [`crate::ring::srb`]).
//!
//! `*_wants_space` is non-zero while that side waits (or is about to wait)
//! for space in the ring it writes; the reader of that ring wakes it after a
//! read only then (see [`crate::ring::srb`] for the handshake). It sits on
//! the line of the semaphore the same side sleeps on: both are written only
//! when that side goes to sleep, so the reader's check after every read is a
//! cache hit while nobody sleeps.
//!
//! # Versions
//!
//! - **1**: no `*_wants_space` words; a reader woke its writer after every
//!   read while the writer was waiting for anything (space or the reply).
//! - **2** (this crate): the reader wakes the writer only when it waits for
//!   space. The header has the same size, but a version-1 writer never sets
//!   `*_wants_space`, so a version-2 reader would never wake it for space:
//!   the versions must not be mixed, and [`attach`] refuses any other
//!   version ([`AttachError::BadVersion`]).
//!
//! The creator ([`create`]) writes the whole header with `magic` zero and
//! stores the magic last, with Release; the attacher ([`attach`]) loads the
//! magic with Acquire and then validates version, header size, capacity and
//! offsets, reading each exactly once.

use crate::atomic::{AtomicI32, AtomicU32, Ordering};
#[cfg(loom)]
use crate::block::PayloadTrack;
use crate::block::{Block, RingData};
use crate::fdsem::{FdsemPoster, FdsemWaiter, FdsemWords};
use crate::layout::{check_ring, AttachError, Ends};
use crate::ring::srb::{Consumer, Producer, RawRing};

/// The first word of an `srb` block: `"srb1"` read as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"srb1");
/// The layout version this crate writes and accepts (see the module docs
/// for what changed between versions).
pub const VERSION: u32 = 2;
/// The cache-line unit of the layout: two 64-byte lines.
pub const LINE: usize = 128;
/// Size of the header; ring data starts here.
pub const HEADER_SIZE: usize = 7 * LINE;
/// The largest capacity per ring (positions are `u32`, so at most 2^31 apart).
pub const MAX_CAPACITY: u32 = 1 << 30;

/// One 128-byte line holding `T`.
#[repr(C, align(128))]
#[derive(Debug)]
struct Line<T>(T);

#[repr(C)]
#[derive(Debug)]
struct Config {
    magic: AtomicU32,
    version: AtomicU32,
    header_size: AtomicU32,
    capacity: AtomicU32,
    to_creator_offset: AtomicU32,
    to_attacher_offset: AtomicU32,
}

/// A side's sleep line: the semaphore it waits on, and whether it waits
/// for space in the ring it writes.
#[repr(C)]
#[derive(Debug)]
struct SleepWords {
    sem: FdsemWords,
    /// Non-zero while the owner waits (or is about to wait) for space.
    wants_space: AtomicI32,
}

#[repr(C)]
#[derive(Debug)]
struct Header {
    config: Line<Config>,
    to_creator_write: Line<AtomicU32>,
    to_creator_read: Line<AtomicU32>,
    to_attacher_write: Line<AtomicU32>,
    to_attacher_read: Line<AtomicU32>,
    creator_sem: Line<SleepWords>,
    attacher_sem: Line<SleepWords>,
    /// Under loom only: the cells that stand for the payload bytes of the
    /// to-creator and the to-attacher ring (see `RingData`).
    #[cfg(loom)]
    track: Line<[PayloadTrack; 2]>,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Header>() == HEADER_SIZE);
    assert!(align_of::<Header>() == LINE);
    assert!(offset_of!(Header, to_creator_write) == LINE);
    assert!(offset_of!(Header, to_creator_read) == 2 * LINE);
    assert!(offset_of!(Header, to_attacher_write) == 3 * LINE);
    assert!(offset_of!(Header, to_attacher_read) == 4 * LINE);
    assert!(offset_of!(Header, creator_sem) == 5 * LINE);
    assert!(offset_of!(Header, attacher_sem) == 6 * LINE);
    assert!(offset_of!(SleepWords, sem) == 0);
    assert!(offset_of!(SleepWords, wants_space) == 12);
};

/// The header's size in this build (896, or more with loom's atomics).
const fn header_len() -> usize {
    core::mem::size_of::<Header>()
}

const fn align_line(n: usize) -> usize {
    (n + LINE - 1) & !(LINE - 1)
}

/// The block length [`create`] needs for rings of `capacity` bytes.
pub const fn block_len(capacity: u32) -> usize {
    header_len() + align_line(capacity as usize) + capacity as usize
}

/// The largest power-of-two capacity whose rings fit a block of `len` bytes.
pub fn capacity_for(len: usize) -> Option<u32> {
    let mut cap = MAX_CAPACITY;
    while cap > 0 {
        if block_len(cap) <= len {
            return Some(cap);
        }
        cap >>= 1;
    }
    None
}

impl SleepWords {
    fn zeroed() -> Self {
        SleepWords {
            sem: FdsemWords::zeroed(),
            wants_space: AtomicI32::new(0),
        }
    }
}

/// Capacity and ring offsets, validated; the private copy each side keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Geometry {
    /// Bytes per ring, a power of two.
    pub capacity: u32,
    /// Offset of the attacher→creator ring.
    pub to_creator_offset: u32,
    /// Offset of the creator→attacher ring.
    pub to_attacher_offset: u32,
}

/// This side's ends of an `srb`-layout block.
pub type SrbEnds = Ends<Producer, Consumer>;

fn check_capacity(capacity: u32) -> Result<(), AttachError> {
    if capacity == 0 || capacity > MAX_CAPACITY || !capacity.is_power_of_two() {
        return Err(AttachError::BadCapacity {
            found: i64::from(capacity),
        });
    }
    Ok(())
}

fn check_base(block: Block) -> Result<*mut Header, AttachError> {
    let required = core::mem::align_of::<Header>();
    if !block.is_aligned_at(0, required) {
        return Err(AttachError::Misaligned { required });
    }
    if block.len() < block_len(1) {
        return Err(AttachError::BlockTooSmall {
            len: block.len(),
            needed: block_len(1),
        });
    }
    Ok(block.at(0))
}

#[derive(Clone, Copy)]
enum Role {
    Creator,
    Attacher,
}

/// # Safety
/// `h` is a live header in `block`, validated as `g`; the caller is the only
/// holder of `role`'s ends.
unsafe fn ends(
    block: Block,
    h: *mut Header,
    g: Geometry,
    role: Role,
) -> Result<SrbEnds, AttachError> {
    use core::ptr::addr_of;
    // SAFETY: field projections through a raw pointer to a live, aligned
    // header; nothing is read and no reference is formed.
    let (tc_w, tc_r, ta_w, ta_r, c_sleep, a_sleep) = unsafe {
        (
            addr_of!((*h).to_creator_write.0),
            addr_of!((*h).to_creator_read.0),
            addr_of!((*h).to_attacher_write.0),
            addr_of!((*h).to_attacher_read.0),
            addr_of!((*h).creator_sem.0),
            addr_of!((*h).attacher_sem.0),
        )
    };
    let (tx_w, tx_r, tx_off, rx_w, rx_r, rx_off, ours, peers) = match role {
        Role::Creator => (
            ta_w,
            ta_r,
            g.to_attacher_offset,
            tc_w,
            tc_r,
            g.to_creator_offset,
            c_sleep,
            a_sleep,
        ),
        Role::Attacher => (
            tc_w,
            tc_r,
            g.to_creator_offset,
            ta_w,
            ta_r,
            g.to_attacher_offset,
            a_sleep,
            c_sleep,
        ),
    };
    // SAFETY: field projections through raw pointers to the live header.
    let (wait_on, post_to, peer_waiting, peer_wants_space, our_wants_space) = unsafe {
        (
            addr_of!((*ours).sem),
            addr_of!((*peers).sem),
            // Our producer wakes the peer when it sleeps for anything
            // (it may wait for these bytes)...
            addr_of!((*peers).sem.waiting),
            // ...our consumer only when it sleeps for space.
            addr_of!((*peers).wants_space),
            // Our producer announces its own waits for space here.
            addr_of!((*ours).wants_space),
        )
    };
    // Under loom: which of the header's payload cells stand for each ring.
    #[cfg(loom)]
    let (tx_track, rx_track) = match role {
        Role::Creator => (1, 0),
        Role::Attacher => (0, 1),
    };
    // SAFETY: the offsets were validated against the block (each ring lies
    // inside it, after the header); under loom the cells are in the header.
    let (tx_data, rx_data) = unsafe {
        (
            RingData::new(
                block.at(tx_off as usize),
                #[cfg(loom)]
                addr_of!((*h).track.0[tx_track]),
            ),
            RingData::new(
                block.at(rx_off as usize),
                #[cfg(loom)]
                addr_of!((*h).track.0[rx_track]),
            ),
        )
    };
    // SAFETY: positions and the wake words are aligned atomics in the live
    // header; data areas validated above; capacity checked by the caller
    // (a power of two up to MAX_CAPACITY).
    let (tx, rx) = unsafe {
        (
            RawRing::new(tx_w, tx_r, tx_data, g.capacity, peer_waiting),
            RawRing::new(rx_w, rx_r, rx_data, g.capacity, peer_wants_space),
        )
    };
    // Each side reads the current positions once to start its private
    // cursors; they must be at most `capacity` apart.
    let positions = |r: &RawRing| -> Result<(u32, u32), AttachError> {
        let (w, rd) = r.load_positions();
        if w.wrapping_sub(rd) > r.capacity() {
            return Err(AttachError::BadPositions { write: w, read: rd });
        }
        Ok((w, rd))
    };
    let (tx_w, tx_r) = positions(&tx)?;
    let (rx_w, rx_r) = positions(&rx)?;
    // SAFETY: rings and semaphores validated against the live block; the
    // caller is their only user in this role; positions checked above.
    unsafe {
        Ok(Ends {
            producer: Producer::new(tx, tx_w, tx_r, our_wants_space),
            consumer: Consumer::new(rx, rx_r, rx_w),
            waiter: FdsemWaiter::new(wait_on),
            poster: FdsemPoster::new(post_to),
        })
    }
}

/// Creator side: writes a fresh header for rings of `capacity` bytes and
/// returns the creator's ends. The positions start at 0.
///
/// # Safety
/// `block` satisfies [`Block::new`]'s contract, no one else uses it yet, and
/// the returned ends are the only creator-side ends of this block.
pub unsafe fn create(block: Block, capacity: u32) -> Result<(Geometry, SrbEnds), AttachError> {
    // SAFETY: forwarded contract.
    unsafe { create_at(block, capacity, 0) }
}

/// [`create`], with every ring position starting at `position` instead of 0.
///
/// Positions are free-running `u32`s; starting near `u32::MAX` lets a test
/// cross their wrap-around without moving 4 GiB first.
///
/// # Safety
/// As for [`create`].
pub unsafe fn create_at(
    block: Block,
    capacity: u32,
    position: u32,
) -> Result<(Geometry, SrbEnds), AttachError> {
    let h = check_base(block)?;
    check_capacity(capacity)?;
    let needed = block_len(capacity);
    if block.len() < needed {
        return Err(AttachError::BlockTooSmall {
            len: block.len(),
            needed,
        });
    }
    let g = Geometry {
        capacity,
        to_creator_offset: header_len() as u32,
        to_attacher_offset: (header_len() + align_line(capacity as usize)) as u32,
    };
    let pos = || Line(AtomicU32::new(position));
    // SAFETY: `h` is aligned and in bounds (checked), and the block is not
    // yet shared, so writing the whole header cannot race.
    unsafe {
        h.write(Header {
            config: Line(Config {
                magic: AtomicU32::new(0),
                version: AtomicU32::new(VERSION),
                header_size: AtomicU32::new(header_len() as u32),
                capacity: AtomicU32::new(capacity),
                to_creator_offset: AtomicU32::new(g.to_creator_offset),
                to_attacher_offset: AtomicU32::new(g.to_attacher_offset),
            }),
            to_creator_write: pos(),
            to_creator_read: pos(),
            to_attacher_write: pos(),
            to_attacher_read: pos(),
            creator_sem: Line(SleepWords::zeroed()),
            attacher_sem: Line(SleepWords::zeroed()),
            #[cfg(loom)]
            track: Line([PayloadTrack::new(), PayloadTrack::new()]),
        })
    };
    // Release: an attacher that sees the magic sees the whole header.
    // SAFETY: `h` was just initialised; atomic store.
    unsafe { (*h).config.0.magic.store(MAGIC, Ordering::Release) };
    // SAFETY: header initialised; the caller is the only creator.
    let ends = unsafe { ends(block, h, g, Role::Creator) }?;
    Ok((g, ends))
}

/// Attacher side: validates the header the creator wrote and returns the
/// attacher's ends. Every configuration word is read exactly once.
///
/// # Safety
/// `block` satisfies [`Block::new`]'s contract and the returned ends are the
/// only attacher-side ends of this block.
pub unsafe fn attach(block: Block) -> Result<(Geometry, SrbEnds), AttachError> {
    let h = check_base(block)?;
    // SAFETY: aligned, in bounds; atomic loads only.
    let c = unsafe { &(*h).config.0 };
    // Acquire: pairs with the creator's Release store of the magic.
    let magic = c.magic.load(Ordering::Acquire);
    if magic != MAGIC {
        return Err(AttachError::BadMagic { found: magic });
    }
    let version = c.version.load(Ordering::Relaxed);
    if version != VERSION {
        return Err(AttachError::BadVersion { found: version });
    }
    let header_size = c.header_size.load(Ordering::Relaxed);
    if header_size as usize != header_len() {
        return Err(AttachError::BadHeaderSize { found: header_size });
    }
    let capacity = c.capacity.load(Ordering::Relaxed);
    check_capacity(capacity)?;
    let g = Geometry {
        capacity,
        to_creator_offset: c.to_creator_offset.load(Ordering::Relaxed),
        to_attacher_offset: c.to_attacher_offset.load(Ordering::Relaxed),
    };
    let (cap, a, b) = (
        i64::from(capacity),
        i64::from(g.to_creator_offset),
        i64::from(g.to_attacher_offset),
    );
    check_ring(a, cap, header_len(), block.len(), LINE as i64)?;
    check_ring(b, cap, header_len(), block.len(), LINE as i64)?;
    if a + cap > b && b + cap > a {
        return Err(AttachError::BadRingOffset { offset: b });
    }
    // SAFETY: geometry validated; the caller is the only attacher.
    let ends = unsafe { ends(block, h, g, Role::Attacher) }?;
    Ok((g, ends))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn block_len_places_the_second_ring_on_a_line() {
        assert_eq!(block_len(1), 896 + 128 + 1);
        assert_eq!(block_len(128), 896 + 128 + 128);
        assert_eq!(block_len(4096), 896 + 2 * 4096);
    }

    #[test]
    fn capacity_for_picks_the_largest_power_of_two_that_fits() {
        assert_eq!(capacity_for(block_len(1) - 1), None);
        assert_eq!(capacity_for(block_len(1)), Some(1));
        assert_eq!(capacity_for(block_len(4096)), Some(4096));
        assert_eq!(capacity_for(block_len(4096) - 1), Some(2048));
        assert_eq!(capacity_for(usize::MAX), Some(MAX_CAPACITY));
    }

    #[test]
    fn capacities_must_be_powers_of_two_in_range() {
        for ok in [1, 2, 1024, MAX_CAPACITY] {
            assert_eq!(check_capacity(ok), Ok(()));
        }
        for bad in [0, 3, 1000, MAX_CAPACITY * 2, u32::MAX] {
            assert_eq!(
                check_capacity(bad),
                Err(AttachError::BadCapacity {
                    found: i64::from(bad)
                })
            );
        }
    }

    #[test]
    fn magic_spells_srb1() {
        assert_eq!(&MAGIC.to_le_bytes(), b"srb1");
    }
}
