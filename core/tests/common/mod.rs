//! Test fixtures: aligned private memory standing in for a shared block, and
//! ring pairs of both layouts over it.
#![allow(dead_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use srb_core::layout::{pa, srb};
use srb_core::ring::{pa as pa_ring, srb as srb_ring};
use srb_core::Block;

/// Zeroed, 128-byte aligned heap memory, only ever touched through raw
/// pointers (the `Block` contract).
pub struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the memory is plain heap memory accessed through atomics and the
// core's raw-pointer copies; sharing the owner between threads is sound.
unsafe impl Send for Mem {}
// SAFETY: as above.
unsafe impl Sync for Mem {}

impl Mem {
    pub fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len.max(1), 128).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("allocation");
        Self { ptr, layout }
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// The block, optionally shortened or offset for misalignment tests.
    pub fn block(&self) -> Block {
        // SAFETY: `self` owns the memory and outlives every use in a test; no
        // reference into it is ever formed.
        unsafe { Block::new(self.ptr, self.len()) }
    }

    pub fn block_at(&self, offset: usize, len: usize) -> Block {
        assert!(offset + len <= self.len());
        // SAFETY: in bounds of the allocation, as above.
        unsafe { Block::new(NonNull::new(self.ptr.as_ptr().add(offset)).unwrap(), len) }
    }

    fn word<T>(&self, off: usize) -> *mut T {
        assert!(off + 4 <= self.len() && off.is_multiple_of(4));
        // SAFETY: in bounds (asserted).
        unsafe { self.ptr.as_ptr().add(off).cast() }
    }

    /// What a hostile peer does: store any value into a shared word.
    pub fn store_u32(&self, off: usize, v: u32) {
        // SAFETY: aligned, in bounds, and only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.word(off)) }.store(v, Ordering::SeqCst);
    }

    pub fn store_i32(&self, off: usize, v: i32) {
        // SAFETY: as in `store_u32`.
        unsafe { AtomicI32::from_ptr(self.word(off)) }.store(v, Ordering::SeqCst);
    }

    pub fn load_u32(&self, off: usize) -> u32 {
        // SAFETY: as in `store_u32`.
        unsafe { AtomicU32::from_ptr(self.word(off)) }.load(Ordering::SeqCst)
    }

    pub fn load_i32(&self, off: usize) -> i32 {
        // SAFETY: as in `store_u32`.
        unsafe { AtomicI32::from_ptr(self.word(off)) }.load(Ordering::SeqCst)
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A `pa`-layout server→client ring of exactly `capacity` bytes: the server's
/// producer and the client's consumer. Returns the offset of its count word.
pub fn pa_pair(capacity: u32) -> (Mem, pa_ring::Producer, pa_ring::Consumer, usize) {
    let (mem, server, client) = pa_block(capacity);
    (
        mem,
        server.producer,
        client.consumer,
        pa::WRITE_COUNT_OFFSET,
    )
}

/// The client→server ring: the client's producer and the server's consumer.
pub fn pa_pair_rev(capacity: u32) -> (Mem, pa_ring::Producer, pa_ring::Consumer, usize) {
    let (mem, server, client) = pa_block(capacity);
    (mem, client.producer, server.consumer, pa::READ_COUNT_OFFSET)
}

/// A `pa` block whose rings hold exactly `capacity` bytes, and both sides.
fn pa_block(capacity: u32) -> (Mem, pa::PaEnds, pa::PaEnds) {
    let rb = pa::RINGS_START as u32;
    let wb = rb + ((capacity + 3) & !3);
    let mem = Mem::new((wb + capacity) as usize);
    let g = pa::Geometry {
        capacity,
        readbuf_offset: rb,
        writebuf_offset: wb,
    };
    // SAFETY: fresh memory; one server and one client.
    let (_, server) = unsafe { pa::init_server_with(mem.block(), g) }.unwrap();
    // SAFETY: as above.
    let (g2, client) = unsafe { pa::adopt_client(mem.block()) }.unwrap();
    assert_eq!(g, g2);
    (mem, server, client)
}

/// Offsets of the attacher→creator ring's position words in the `srb` layout.
pub const SRB_TO_CREATOR_WRITE: usize = srb::LINE;
pub const SRB_TO_CREATOR_READ: usize = 2 * srb::LINE;

/// An `srb`-layout attacher→creator ring of `capacity` bytes.
pub fn srb_pair_rev(capacity: u32) -> (Mem, srb_ring::Producer, srb_ring::Consumer) {
    let mem = Mem::new(srb::block_len(capacity));
    // SAFETY: fresh memory; one creator and one attacher.
    let (_, creator) = unsafe { srb::create(mem.block(), capacity) }.unwrap();
    // SAFETY: as above.
    let (_, attacher) = unsafe { srb::attach(mem.block()) }.unwrap();
    (mem, attacher.producer, creator.consumer)
}

/// Offsets of the creator→attacher ring's position words in the `srb` layout.
pub const SRB_TO_ATTACHER_WRITE: usize = 3 * srb::LINE;
pub const SRB_TO_ATTACHER_READ: usize = 4 * srb::LINE;

/// An `srb`-layout creator→attacher ring of `capacity` bytes whose positions
/// start at `start`.
pub fn srb_pair(capacity: u32, start: u32) -> (Mem, srb_ring::Producer, srb_ring::Consumer) {
    let mem = Mem::new(srb::block_len(capacity));
    // SAFETY: fresh memory; one creator and one attacher.
    let (_, creator) = unsafe { srb::create_at(mem.block(), capacity, start) }.unwrap();
    // SAFETY: as above.
    let (_, attacher) = unsafe { srb::attach(mem.block()) }.unwrap();
    (mem, creator.producer, attacher.consumer)
}

/// Offset of the `waiting` word of the semaphore the attacher sleeps on: the
/// creator's ring ends wake the attacher when it is non-zero.
pub const SRB_ATTACHER_WAITING: usize = 6 * srb::LINE;
/// Likewise for the creator: the attacher's producer reads it.
pub const SRB_CREATOR_WAITING: usize = 5 * srb::LINE;
/// Offset of the creator's `wants_space` word (after its semaphore), which
/// the attacher's consumer reads.
pub const SRB_CREATOR_WANTS_SPACE: usize = 5 * srb::LINE + 12;

/// A deterministic byte pattern: byte `i` of the stream.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// Runs `f`; if it has not returned after `limit`, reports `what` and
/// aborts the test process. A lost wake-up leaves a thread blocked for
/// ever, which no assertion can catch and which cannot be unwound: this
/// turns it into a failing test instead of a hung one. (The limit is a
/// hang detector, generous enough for a loaded machine, not a speed
/// requirement.)
pub fn with_watchdog<R>(limit: std::time::Duration, what: &str, f: impl FnOnce() -> R) -> R {
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let (done, wait) = channel::<()>();
    let what = what.to_owned();
    let dog = std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
            eprintln!("watchdog: {what} still running after {limit:?} (a lost wake-up?): aborting");
            std::process::abort();
        }
    });
    let r = f();
    drop(done);
    dog.join().unwrap();
    r
}
