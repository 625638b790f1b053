//! PulseAudio's `struct srbheader`, byte for byte, and its two rings.
//!
//! ```text
//! offset  size  field             written by
//!      0     4  read_count        client adds, server subtracts (client→server ring)
//!      4     4  write_count       server adds, client subtracts (server→client ring)
//!      8    12  read_semdata      {waiting, signalled, in_pipe}: the server waits on it
//!     20    12  write_semdata     {waiting, signalled, in_pipe}: the client waits on it
//!     32     4  capacity          server, before the block is announced
//!     36     4  readbuf_offset    server (client→server ring, from the header start)
//!     40     4  writebuf_offset   server (server→client ring)
//! ```
//!
//! All fields are 32-bit, host byte order (little-endian on every platform
//! PulseAudio's srbchannel runs on), naturally aligned; `sizeof` is 44.
//! Compile-time asserts below pin every offset.
//!
//! The server *creates* the header ([`init_server`]) with PulseAudio's own
//! geometry (`pa_srbchannel_new` in `srbchannel.c`): the first ring starts
//! at the header size aligned up to the pointer size (48 on 64-bit hosts,
//! [`RINGS_START`]); the capacity is half of what follows, `(len - 48) / 2`,
//! *not* rounded; the second ring starts right after the first, with its
//! offset aligned *up* to 8. The capacity is then capped at the distance
//! between the two offsets, which never lowers it. For most lengths that
//! is the whole story; but when the capacity is not a multiple of 8, the
//! aligned-up second ring can end up to 6 bytes past the block (PulseAudio
//! only ever uses its pool block size, where it does not). [`Geometry::for_block`]
//! follows PulseAudio exactly whenever its geometry fits the block, and
//! otherwise shortens the capacity to what fits after the second offset.
//! A 65472-byte block, PulseAudio's pool block size, gives capacity 32712
//! at offsets 48 and 32760, exactly what `pulseaudio` 16.1 sets up.
//!
//! The client *adopts* it ([`adopt_client`]): it reads capacity and offsets
//! once, validates them (capacity > 0, both rings inside the block, after the
//! header, 4-byte aligned, not overlapping) and keeps them privately. libpulse
//! itself trusts these values; we do not.
//!
//! Direction mapping (§5.4): the server receives on `readbuf`/`read_count`
//! and waits on `read_semdata`; the client swaps all of them.

use crate::atomic::{AtomicI32, Ordering};
#[cfg(loom)]
use crate::block::PayloadTrack;
use crate::block::{Block, RingData};
use crate::fdsem::{FdsemPoster, FdsemWaiter, FdsemWords};
use crate::layout::{check_ring, AttachError, Ends};
use crate::ring::pa::{Consumer, Producer, RawRing};

/// `sizeof(struct srbheader)`.
pub const HEADER_SIZE: usize = 44;
/// Offset of `read_count`.
pub const READ_COUNT_OFFSET: usize = 0;
/// Offset of `write_count`.
pub const WRITE_COUNT_OFFSET: usize = 4;
/// Offset of `read_semdata` (`waiting`, `signalled`, `in_pipe` follow at +0, +4, +8).
pub const READ_SEMDATA_OFFSET: usize = 8;
/// Offset of `write_semdata`.
pub const WRITE_SEMDATA_OFFSET: usize = 20;
/// Offset of `capacity`.
pub const CAPACITY_OFFSET: usize = 32;
/// Offset of `readbuf_offset`.
pub const READBUF_OFFSET_OFFSET: usize = 36;
/// Offset of `writebuf_offset`.
pub const WRITEBUF_OFFSET_OFFSET: usize = 40;
/// Where the server puts the first ring: `HEADER_SIZE` rounded up to 8, as
/// PulseAudio's `PA_ALIGN` does on 64-bit hosts.
pub const RINGS_START: usize = 48;
/// The alignment the client demands of ring offsets (what `PA_ALIGN` gives on
/// 32-bit hosts; 64-bit servers use 8).
pub const RING_ALIGN: usize = 4;

/// The header as the code sees it. Under loom the atomics are loom's, so the
/// sizes differ; the wire constants above are asserted against the real one.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    read_count: AtomicI32,
    write_count: AtomicI32,
    read_sem: FdsemWords,
    write_sem: FdsemWords,
    capacity: AtomicI32,
    readbuf_offset: AtomicI32,
    writebuf_offset: AtomicI32,
    /// Under loom only: the cells that stand for the payload bytes of the
    /// read ring and the write ring (see `RingData`).
    #[cfg(loom)]
    track: [PayloadTrack; 2],
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Header>() == HEADER_SIZE);
    assert!(align_of::<Header>() == 4);
    assert!(offset_of!(Header, read_count) == READ_COUNT_OFFSET);
    assert!(offset_of!(Header, write_count) == WRITE_COUNT_OFFSET);
    assert!(offset_of!(Header, read_sem) == READ_SEMDATA_OFFSET);
    assert!(offset_of!(Header, write_sem) == WRITE_SEMDATA_OFFSET);
    assert!(offset_of!(Header, capacity) == CAPACITY_OFFSET);
    assert!(offset_of!(Header, readbuf_offset) == READBUF_OFFSET_OFFSET);
    assert!(offset_of!(Header, writebuf_offset) == WRITEBUF_OFFSET_OFFSET);
    assert!(data_start() == RINGS_START);
};

/// The header's size in this build (44, or loom's larger atomics).
const fn header_len() -> usize {
    core::mem::size_of::<Header>()
}

/// Where rings may start in this build: the header rounded up to 8.
const fn data_start() -> usize {
    (header_len() + 7) & !7
}

/// Capacity and ring offsets, validated; the private copy each side keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Geometry {
    /// Bytes per ring (both rings have the same size).
    pub capacity: u32,
    /// Offset of the client→server ring from the header start.
    pub readbuf_offset: u32,
    /// Offset of the server→client ring from the header start.
    pub writebuf_offset: u32,
}

/// This side's ends of a PulseAudio-layout block.
pub type PaEnds = Ends<Producer, Consumer>;

impl Geometry {
    /// The geometry PulseAudio's server gives a block of `len` bytes (see
    /// the [module docs](self): where PulseAudio's second ring would run
    /// past the block, the capacity is shortened to fit).
    ///
    /// # Examples
    ///
    /// ```
    /// use srb_core::layout::pa::Geometry;
    /// // PulseAudio's pool block size.
    /// let g = Geometry::for_block(65472).unwrap();
    /// assert_eq!((g.capacity, g.readbuf_offset, g.writebuf_offset), (32712, 48, 32760));
    /// ```
    pub fn for_block(len: usize) -> Result<Self, AttachError> {
        let start = data_start();
        // Two rings of at least 8 bytes each after the header.
        let needed = start + 16;
        if len < needed {
            return Err(AttachError::BlockTooSmall { len, needed });
        }
        // PulseAudio: half of what follows the header, not rounded...
        let half = (len - start) / 2;
        // ...the second ring's offset aligned up to 8...
        let second = (start + half + 7) & !7;
        // ...and the capacity capped at the distance between the offsets
        // (never lower than `half`) and, unlike PulseAudio, at what fits
        // after the second offset.
        let capacity = half.min(second - start).min(len - second);
        if capacity > i32::MAX as usize / 2 {
            return Err(AttachError::BadCapacity {
                found: capacity as i64,
            });
        }
        Ok(Self {
            capacity: capacity as u32,
            readbuf_offset: start as u32,
            writebuf_offset: second as u32,
        })
    }

    /// Validates a geometry read from a block of `len` bytes.
    fn check(capacity: i32, readbuf: i32, writebuf: i32, len: usize) -> Result<Self, AttachError> {
        if capacity <= 0 {
            return Err(AttachError::BadCapacity {
                found: i64::from(capacity),
            });
        }
        let (cap, rb, wb) = (i64::from(capacity), i64::from(readbuf), i64::from(writebuf));
        let hdr = header_len();
        check_ring(rb, cap, hdr, len, RING_ALIGN as i64)?;
        check_ring(wb, cap, hdr, len, RING_ALIGN as i64)?;
        if rb + cap > wb && wb + cap > rb {
            return Err(AttachError::BadRingOffset { offset: wb });
        }
        Ok(Self {
            capacity: capacity as u32,
            readbuf_offset: readbuf as u32,
            writebuf_offset: writebuf as u32,
        })
    }
}

fn check_base(block: Block) -> Result<(), AttachError> {
    let required = core::mem::align_of::<Header>();
    if !block.is_aligned_at(0, required) {
        return Err(AttachError::Misaligned { required });
    }
    if block.len() < header_len() {
        return Err(AttachError::BlockTooSmall {
            len: block.len(),
            needed: data_start() + 16,
        });
    }
    Ok(())
}

/// Which role's view of the block to build.
#[derive(Clone, Copy)]
enum Role {
    Server,
    Client,
}

/// # Safety
/// `block` is live (`Block::new`), holds a header validated as `g`, and the
/// caller is the only holder of `role`'s ends.
unsafe fn ends(block: Block, g: Geometry, role: Role) -> PaEnds {
    let h: *mut Header = block.at(0);
    // Field projections through a raw pointer to the live, validated header:
    // nothing is read and no reference is formed.
    // SAFETY: see above.
    let (read_count, write_count) = unsafe {
        (
            core::ptr::addr_of!((*h).read_count),
            core::ptr::addr_of!((*h).write_count),
        )
    };
    // SAFETY: the offsets were validated against the block (each ring lies
    // inside it, after the header); under loom the cells are in the header.
    let (read_data, write_data) = unsafe {
        (
            RingData::new(
                block.at(g.readbuf_offset as usize),
                #[cfg(loom)]
                core::ptr::addr_of!((*h).track[0]),
            ),
            RingData::new(
                block.at(g.writebuf_offset as usize),
                #[cfg(loom)]
                core::ptr::addr_of!((*h).track[1]),
            ),
        )
    };
    // SAFETY: counts and data areas inside the live block, validated; the
    // capacity was validated to lie in `1..=i32::MAX`.
    let (read_ring, write_ring) = unsafe {
        (
            RawRing::new(read_count, read_data, g.capacity),
            RawRing::new(write_count, write_data, g.capacity),
        )
    };
    // SAFETY: as above.
    let read_sem = unsafe { core::ptr::addr_of!((*h).read_sem) };
    // SAFETY: as above.
    let write_sem = unsafe { core::ptr::addr_of!((*h).write_sem) };
    let (rx, tx, wait_on, post_to) = match role {
        Role::Server => (read_ring, write_ring, read_sem, write_sem),
        Role::Client => (write_ring, read_ring, write_sem, read_sem),
    };
    // SAFETY: the rings and semaphores were validated against the live block
    // and the caller is their only user in this role.
    unsafe {
        Ends {
            producer: Producer::new(tx),
            consumer: Consumer::new(rx),
            waiter: FdsemWaiter::new(wait_on),
            poster: FdsemPoster::new(post_to),
        }
    }
}

/// Server side: writes a fresh header for `block` (PulseAudio's geometry,
/// counts and semaphores zero) and returns the server's ends.
///
/// # Safety
/// `block` satisfies [`Block::new`]'s contract, no one else uses it yet (the
/// peer gets it only after this returns), and the returned ends are the only
/// server-side ends of this block.
pub unsafe fn init_server(block: Block) -> Result<(Geometry, PaEnds), AttachError> {
    let g = Geometry::for_block(block.len())?;
    // SAFETY: forwarded contract.
    unsafe { init_server_with(block, g) }
}

/// Server side with a chosen geometry: any capacity and offsets that pass the
/// same validation a client applies (libpulse accepts any such layout; the
/// tests use it to cover every small capacity).
///
/// # Safety
/// As for [`init_server`].
pub unsafe fn init_server_with(
    block: Block,
    g: Geometry,
) -> Result<(Geometry, PaEnds), AttachError> {
    check_base(block)?;
    let as_i32 = |v: u32| i32::try_from(v).unwrap_or(-1);
    let g = Geometry::check(
        as_i32(g.capacity),
        as_i32(g.readbuf_offset),
        as_i32(g.writebuf_offset),
        block.len(),
    )?;
    let h: *mut Header = block.at(0);
    // SAFETY: `h` is aligned and in bounds (checked) and the block is not yet
    // shared, so writing the whole header cannot race.
    unsafe {
        h.write(Header {
            read_count: AtomicI32::new(0),
            write_count: AtomicI32::new(0),
            read_sem: FdsemWords::zeroed(),
            write_sem: FdsemWords::zeroed(),
            capacity: AtomicI32::new(g.capacity as i32),
            readbuf_offset: AtomicI32::new(g.readbuf_offset as i32),
            writebuf_offset: AtomicI32::new(g.writebuf_offset as i32),
            #[cfg(loom)]
            track: [PayloadTrack::new(), PayloadTrack::new()],
        })
    };
    // SAFETY: header written above; the caller is the only server.
    Ok((g, unsafe { ends(block, g, Role::Server) }))
}

/// Client side: validates the header a server wrote and returns the client's
/// ends. Capacity and offsets are read exactly once.
///
/// # Safety
/// `block` satisfies [`Block::new`]'s contract and the returned ends are the
/// only client-side ends of this block.
pub unsafe fn adopt_client(block: Block) -> Result<(Geometry, PaEnds), AttachError> {
    check_base(block)?;
    let h: *const Header = block.at(0);
    // SAFETY: `h` is aligned and the header is in bounds (checked). These are
    // atomic loads; a reference to an atomic is the sound way to perform one.
    let (capacity, readbuf, writebuf) = unsafe {
        (
            (*h).capacity.load(Ordering::Acquire),
            (*h).readbuf_offset.load(Ordering::Acquire),
            (*h).writebuf_offset.load(Ordering::Acquire),
        )
    };
    let g = Geometry::check(capacity, readbuf, writebuf, block.len())?;
    // SAFETY: geometry validated against the block; the caller is the only
    // client.
    Ok((g, unsafe { ends(block, g, Role::Client) }))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pulseaudio_pool_block_gets_pulseaudio_geometry() {
        let g = Geometry::for_block(65472).unwrap();
        assert_eq!(
            g,
            Geometry {
                capacity: 32712,
                readbuf_offset: 48,
                writebuf_offset: 32760
            }
        );
    }

    #[test]
    fn unrounded_capacity_and_aligned_second_offset_as_pulseaudio() {
        // (1007 - 48) / 2 = 479: not rounded down; the second ring at
        // 48 + 479 = 527 aligned up to 528, ending exactly at 1007.
        let g = Geometry::for_block(1007).unwrap();
        assert_eq!(
            (g.capacity, g.readbuf_offset, g.writebuf_offset),
            (479, 48, 528)
        );
    }

    #[test]
    fn capacity_shortened_where_pulseaudio_would_overrun_the_block() {
        // PulseAudio: capacity 476, second ring at 528, ending at 1004 > 1000.
        let g = Geometry::for_block(1000).unwrap();
        assert_eq!(
            (g.capacity, g.readbuf_offset, g.writebuf_offset),
            (472, 48, 528)
        );
        for len in 64..2000 {
            let g = Geometry::for_block(len).unwrap();
            assert!(g.writebuf_offset as usize + g.capacity as usize <= len);
            assert!(g.readbuf_offset + g.capacity <= g.writebuf_offset);
            assert!(Geometry::check(
                g.capacity as i32,
                g.readbuf_offset as i32,
                g.writebuf_offset as i32,
                len
            )
            .is_ok());
        }
    }

    #[test]
    fn tiny_blocks_are_refused() {
        assert_eq!(
            Geometry::for_block(63),
            Err(AttachError::BlockTooSmall {
                len: 63,
                needed: 64
            })
        );
        assert!(Geometry::for_block(64).is_ok());
    }

    #[test]
    fn hostile_geometries_are_refused() {
        let len = 1024;
        let ok = |c, r, w| Geometry::check(c, r, w, len);
        assert!(ok(400, 48, 448).is_ok());
        assert!(ok(400, 448, 48).is_ok(), "rings may be in either order");
        assert_eq!(ok(0, 48, 448), Err(AttachError::BadCapacity { found: 0 }));
        assert_eq!(ok(-8, 48, 448), Err(AttachError::BadCapacity { found: -8 }));
        assert_eq!(
            ok(400, 40, 448),
            Err(AttachError::BadRingOffset { offset: 40 }),
            "overlaps header"
        );
        assert_eq!(
            ok(400, 50, 452),
            Err(AttachError::BadRingOffset { offset: 50 }),
            "misaligned"
        );
        assert_eq!(
            ok(400, 48, 628),
            Err(AttachError::BadRingOffset { offset: 628 }),
            "past the end"
        );
        assert_eq!(
            ok(400, 48, 200),
            Err(AttachError::BadRingOffset { offset: 200 }),
            "overlap"
        );
        assert_eq!(
            ok(i32::MAX, 48, 448),
            Err(AttachError::BadRingOffset { offset: 48 })
        );
        assert_eq!(
            ok(400, i32::MAX - 3, 48),
            Err(AttachError::BadRingOffset {
                offset: i64::from(i32::MAX - 3)
            })
        );
        assert_eq!(
            ok(400, -48, 448),
            Err(AttachError::BadRingOffset { offset: -48 })
        );
    }
}
